//! The group robot's push webhook: validated webhook URLs, request bodies with
//! WeCom's byte limits, and a client that turns errcodes into typed [`WebhookError`]s.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::{Article, OutMessage};
use crate::engine::pieces::split_on_lines;

/// WeCom's limits, in bytes of UTF-8.
pub const TEXT_MAX_BYTES: usize = 2048;
pub const MARKDOWN_MAX_BYTES: usize = 4096;
pub const IMAGE_MAX_BYTES: usize = 2 * 1024 * 1024;
pub const NEWS_MAX_ARTICLES: usize = 8;

/// A webhook URL whose host is on the allow-list. Its `key` is a credential: `Debug` and
/// `Display` show only a short prefix of it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: String,
    key: String,
}

/// Why a webhook URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("not a URL")]
    NotAUrl,
    #[error("host {0:?} is not in wecom.webhook_hosts")]
    HostNotAllowed(String),
    #[error("scheme {0:?} is not allowed (https, or http to a loopback address)")]
    Scheme(String),
    #[error("path is not /cgi-bin/webhook/send")]
    Path,
    #[error("no key parameter")]
    NoKey,
}

impl WebhookUrl {
    /// Accepts `url` only when its `host[:port]` is one of `allowed_hosts`, it uses https (or
    /// http to a loopback address, for local fakes), its path is the send endpoint and it has a
    /// key — so a leaked Token cannot turn the service into a forwarder to arbitrary addresses.
    pub fn parse(url: &str, allowed_hosts: &[String]) -> Result<Self, WebhookUrlError> {
        use crate::outbound::{Refused, check_listed};
        let parsed = url::Url::parse(url.trim()).map_err(|_| WebhookUrlError::NotAUrl)?;
        check_listed(allowed_hosts, &parsed, "wecom.webhook_hosts").map_err(|e| match e {
            Refused::HostNotListed(authority, _) => WebhookUrlError::HostNotAllowed(authority),
            Refused::Scheme(scheme) => WebhookUrlError::Scheme(scheme),
            Refused::NotAUrl | Refused::Private(_) => WebhookUrlError::NotAUrl,
        })?;
        if parsed.path() != "/cgi-bin/webhook/send" {
            return Err(WebhookUrlError::Path);
        }
        let key = parsed
            .query_pairs()
            .find(|(k, _)| k == "key")
            .map(|(_, v)| v.into_owned())
            .filter(|k| !k.is_empty())
            .ok_or(WebhookUrlError::NoKey)?;
        Ok(Self {
            url: parsed.into(),
            key,
        })
    }

    /// The robot's key: the unit WeCom rate-limits by.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The full URL (contains the key: do not log it).
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// A loggable short form of the key.
    pub fn key_hint(&self) -> String {
        let prefix: String = self.key.chars().take(6).collect();
        format!("{prefix}…")
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl(key={})", self.key_hint())
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "webhook key {}", self.key_hint())
    }
}

/// A send that did not succeed, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// 45009: over 20 messages a minute for this key. Back off and retry.
    #[error("rate limited by WeCom (errcode 45009)")]
    RateLimited,
    /// -1: WeCom is busy. Retry with back-off.
    #[error("WeCom system busy (errcode -1)")]
    Busy,
    /// 93000 / 93008: the key is invalid or the robot is no longer in the group.
    #[error("robot is gone (errcode {errcode}: {errmsg})")]
    RobotGone { errcode: i64, errmsg: String },
    /// Any other errcode (40008 bad msgtype, 44004 empty, 45002 too long, 93004 disabled, …):
    /// retrying the same message will not help.
    #[error("refused by WeCom (errcode {errcode}: {errmsg})")]
    Refused { errcode: i64, errmsg: String },
    /// An HTTP status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("transport error: {0}")]
    Transport(String),
    #[error("unreadable answer: {0}")]
    BadAnswer(String),
    /// The message breaks a limit before it is sent (too many articles, image too large, …).
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl WebhookError {
    /// Whether sending the same message again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            WebhookError::RateLimited
            | WebhookError::Busy
            | WebhookError::Timeout
            | WebhookError::Transport(_) => true,
            WebhookError::Status(status) => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// A short stable name for logs.
    pub fn class(&self) -> &'static str {
        match self {
            WebhookError::RateLimited => "rate_limited",
            WebhookError::Busy => "busy",
            WebhookError::RobotGone { .. } => "robot_gone",
            WebhookError::Refused { .. } => "refused",
            WebhookError::Status(_) => "http_status",
            WebhookError::Timeout => "timeout",
            WebhookError::Transport(_) => "transport",
            WebhookError::BadAnswer(_) => "bad_answer",
            WebhookError::Invalid(_) => "invalid",
        }
    }
}

/// Maps WeCom's `errcode` to the outcome of a send.
pub fn classify_errcode(errcode: i64, errmsg: &str) -> Result<(), WebhookError> {
    match errcode {
        0 => Ok(()),
        45009 => Err(WebhookError::RateLimited),
        -1 => Err(WebhookError::Busy),
        93000 | 93008 => Err(WebhookError::RobotGone {
            errcode,
            errmsg: errmsg.to_owned(),
        }),
        _ => Err(WebhookError::Refused {
            errcode,
            errmsg: errmsg.to_owned(),
        }),
    }
}

/// The JSON bodies for `message`: one per piece, after splitting long text and markdown.
pub fn request_bodies(message: &OutMessage) -> Result<Vec<Value>, WebhookError> {
    match message {
        OutMessage::Text {
            content,
            mentioned,
            mentioned_mobiles,
        } => {
            if content.trim().is_empty() {
                return Err(WebhookError::Invalid("empty text".into()));
            }
            Ok(split_on_lines(content, TEXT_MAX_BYTES)
                .into_iter()
                .enumerate()
                .map(|(i, piece)| {
                    // Mention people once, on the first piece, rather than on every piece.
                    let (users, mobiles) = if i == 0 {
                        (mentioned.clone(), mentioned_mobiles.clone())
                    } else {
                        (Vec::new(), Vec::new())
                    };
                    json!({"msgtype": "text", "text": {
                        "content": piece, "mentioned_list": users, "mentioned_mobile_list": mobiles}})
                })
                .collect())
        }
        OutMessage::Markdown { content } => {
            if content.trim().is_empty() {
                return Err(WebhookError::Invalid("empty markdown".into()));
            }
            Ok(split_on_lines(content, MARKDOWN_MAX_BYTES)
                .into_iter()
                .map(|piece| json!({"msgtype": "markdown", "markdown": {"content": piece}}))
                .collect())
        }
        OutMessage::News { articles } => {
            if articles.is_empty() || articles.len() > NEWS_MAX_ARTICLES {
                return Err(WebhookError::Invalid(format!(
                    "news takes 1 to {NEWS_MAX_ARTICLES} articles, got {}",
                    articles.len()
                )));
            }
            let articles: Vec<Value> = articles.iter().map(article_json).collect();
            Ok(vec![
                json!({"msgtype": "news", "news": {"articles": articles}}),
            ])
        }
        OutMessage::Image { bytes } => {
            if bytes.len() > IMAGE_MAX_BYTES {
                return Err(WebhookError::Invalid(format!(
                    "image is {} bytes; WeCom takes at most {IMAGE_MAX_BYTES}",
                    bytes.len()
                )));
            }
            let is_png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
            let is_jpg = bytes.starts_with(&[0xff, 0xd8, 0xff]);
            if !is_png && !is_jpg {
                return Err(WebhookError::Invalid("image must be a JPG or PNG".into()));
            }
            let md5 = hex::encode(Md5::digest(bytes));
            let base64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            Ok(vec![
                json!({"msgtype": "image", "image": {"base64": base64, "md5": md5}}),
            ])
        }
    }
}

fn article_json(a: &Article) -> Value {
    json!({"title": a.title, "description": a.description, "url": a.url, "picurl": a.picurl})
}

#[derive(Deserialize)]
struct Answer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// Posts bodies to robot webhooks. Redirects are never followed (a redirect could lead off the
/// allow-list).
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("trumpet/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// Sends one body and classifies the answer.
    pub async fn post(&self, url: &WebhookUrl, body: &Value) -> Result<(), WebhookError> {
        let response = self
            .http
            .post(url.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    WebhookError::Timeout
                } else {
                    // Without the URL: it contains the key.
                    WebhookError::Transport(e.without_url().to_string())
                }
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(WebhookError::Status(status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                WebhookError::Timeout
            } else {
                WebhookError::Transport(e.without_url().to_string())
            }
        })?;
        let answer: Answer =
            serde_json::from_slice(&bytes).map_err(|e| WebhookError::BadAnswer(e.to_string()))?;
        classify_errcode(answer.errcode, &answer.errmsg)
    }
}

#[cfg(test)]
mod tests;
