//! The group robot's callback endpoint logic without HTTP: query checks, URL verification, and
//! opening a POST (verify → decrypt → parse) into a domain [`Event`], plus sealing a passive
//! reply. The HTTP handler is a thin shell around this, and the benchmarks measure it directly.

use chrono::{DateTime, Utc};
use sha1::{Digest, Sha1};

use super::reply::{encrypted_envelope, reply_plaintext};
use super::xml::{self, XmlError};
use crate::domain::{BotId, Event, Reply};
use crate::wire::wecom::crypto::{CallbackCrypto, CryptoError};

/// The query parameters WeCom signs a callback with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
    /// Only on URL verification (GET).
    pub echostr: Option<String>,
}

/// Why a callback was refused. [`CallbackError::status`] is the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("missing or malformed query parameter {0}")]
    BadQuery(&'static str),
    #[error("timestamp {0} is too far from now")]
    StaleTimestamp(i64),
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("envelope: {0}")]
    Envelope(XmlError),
    #[error("{0}")]
    Crypto(CryptoError),
    #[error("message: {0}")]
    Message(XmlError),
    /// A JSON body (the AI bot's URL mode) that could not be read.
    #[error("JSON: {0}")]
    Json(String),
    /// A self-built app's decrypted event that could not be read.
    #[error("event: {0}")]
    Event(String),
}

impl CallbackError {
    /// 401 for anything that fails authentication, 400 for bodies that cannot be read.
    pub fn status(&self) -> u16 {
        match self {
            CallbackError::BadQuery(_)
            | CallbackError::StaleTimestamp(_)
            | CallbackError::Crypto(CryptoError::SignatureMismatch) => 401,
            _ => 400,
        }
    }

    /// The official WXBizMsgCrypt error code, where one applies (-40002 for unreadable XML), for
    /// comparing a log line with WeCom's documentation.
    pub fn code(&self) -> Option<i32> {
        match self {
            CallbackError::Crypto(e) => Some(e.code()),
            CallbackError::Envelope(_)
            | CallbackError::Message(_)
            | CallbackError::Json(_)
            | CallbackError::Event(_) => Some(-40002),
            CallbackError::BadQuery(_)
            | CallbackError::StaleTimestamp(_)
            | CallbackError::NotUtf8 => None,
        }
    }

    /// A short stable name for logs.
    pub fn class(&self) -> &'static str {
        match self {
            CallbackError::BadQuery(_) => "bad_query",
            CallbackError::StaleTimestamp(_) => "stale_timestamp",
            CallbackError::NotUtf8 => "not_utf8",
            CallbackError::Envelope(_) => "bad_envelope",
            CallbackError::Crypto(e) => e.class(),
            CallbackError::Message(_) => "bad_message",
            CallbackError::Json(_) => "bad_json",
            CallbackError::Event(_) => "bad_event",
        }
    }
}

/// Reads the signed parameters from a raw query string. `echostr` is required for URL
/// verification.
pub fn parse_query(raw: Option<&str>, want_echostr: bool) -> Result<CallbackQuery, CallbackError> {
    let (mut sig, mut ts, mut nonce, mut echostr) = (None, None, None, None);
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "msg_signature" => &mut sig,
            "timestamp" => &mut ts,
            "nonce" => &mut nonce,
            "echostr" => &mut echostr,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v.into_owned());
        }
    }
    let msg_signature = sig
        .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(CallbackError::BadQuery("msg_signature"))?;
    let timestamp = ts
        .filter(|t| (1..=12).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(CallbackError::BadQuery("timestamp"))?;
    let nonce = nonce
        .filter(|n| (1..=64).contains(&n.len()))
        .ok_or(CallbackError::BadQuery("nonce"))?;
    let echostr = if want_echostr {
        Some(
            echostr
                .filter(|e| !e.is_empty())
                .ok_or(CallbackError::BadQuery("echostr"))?,
        )
    } else {
        None
    };
    Ok(CallbackQuery {
        msg_signature,
        timestamp,
        nonce,
        echostr,
    })
}

/// An opened message callback.
#[derive(Debug)]
pub struct Opened {
    pub event: Event,
    /// Where the group's name and members can be read, once, within 5 minutes
    /// (`GetChatInfoUrl`; its answer: `{errcode, chatid, name, chattype, members}`).
    pub chat_info_url: Option<String>,
}

/// One bot's callback endpoint.
#[derive(Debug, Clone)]
pub struct RobotEndpoint {
    pub bot: BotId,
    pub(crate) crypto: CallbackCrypto,
    tolerance_secs: i64,
}

impl RobotEndpoint {
    pub fn new(bot: BotId, crypto: CallbackCrypto, tolerance_secs: u64) -> Self {
        Self {
            bot,
            crypto,
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
        }
    }

    pub(crate) fn check_timestamp(
        &self,
        query: &CallbackQuery,
        now: i64,
    ) -> Result<(), CallbackError> {
        // parse_query guarantees 1..=12 digits, which always fit an i64.
        let ts: i64 = query
            .timestamp
            .parse()
            .map_err(|_| CallbackError::BadQuery("timestamp"))?;
        if (ts - now).abs() > self.tolerance_secs {
            return Err(CallbackError::StaleTimestamp(ts));
        }
        Ok(())
    }

    /// URL verification: checks the signature over `echostr` and returns its plaintext.
    pub fn verify_url(&self, query: &CallbackQuery, now: i64) -> Result<String, CallbackError> {
        self.check_timestamp(query, now)?;
        let echostr = query
            .echostr
            .as_deref()
            .ok_or(CallbackError::BadQuery("echostr"))?;
        self.crypto
            .verify(
                &query.timestamp,
                &query.nonce,
                echostr,
                &query.msg_signature,
            )
            .map_err(CallbackError::Crypto)?;
        let opened = self
            .crypto
            .decrypt(echostr)
            .map_err(CallbackError::Crypto)?;
        Ok(opened.message)
    }

    /// Checks and decrypts an XML callback: timestamp, envelope, signature (before any
    /// decryption), decryption. Returns the plaintext, for the caller's own message format.
    pub fn open_plaintext(
        &self,
        query: &CallbackQuery,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, CallbackError> {
        self.check_timestamp(query, now.timestamp())?;
        let body = std::str::from_utf8(body).map_err(|_| CallbackError::NotUtf8)?;
        let encrypt = xml::parse_envelope(body).map_err(CallbackError::Envelope)?;
        self.crypto
            .verify(
                &query.timestamp,
                &query.nonce,
                &encrypt,
                &query.msg_signature,
            )
            .map_err(CallbackError::Crypto)?;
        let opened = self
            .crypto
            .decrypt(&encrypt)
            .map_err(CallbackError::Crypto)?;
        Ok(opened.message)
    }

    /// Opens a message callback: [`RobotEndpoint::open_plaintext`], then the message itself.
    pub fn open(
        &self,
        query: &CallbackQuery,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Opened, CallbackError> {
        let plaintext = self.open_plaintext(query, body, now)?;
        let message = xml::parse_message(&plaintext).map_err(CallbackError::Message)?;
        let chat_info_url =
            (!message.get_chat_info_url.is_empty()).then(|| message.get_chat_info_url.to_string());
        let event = message
            .into_event(&self.bot, now, || {
                // Retries carry the same plaintext, so its hash identifies the message.
                format!("sha1:{}", hex::encode(Sha1::digest(plaintext.as_bytes())))
            })
            .map_err(CallbackError::Message)?;
        Ok(Opened {
            event,
            chat_info_url,
        })
    }

    /// Encrypts and signs a passive reply, reusing the request's timestamp and nonce.
    pub fn seal(
        &self,
        reply: &Reply,
        query: &CallbackQuery,
        random: [u8; 16],
    ) -> Result<String, CryptoError> {
        encrypted_envelope(
            &self.crypto,
            random,
            &reply_plaintext(reply),
            &query.timestamp,
            &query.nonce,
        )
    }

    /// Builds a signed callback as WeCom would send it (for tests, benchmarks and the load tool).
    pub fn forge_callback(
        &self,
        plaintext: &str,
        timestamp: &str,
        nonce: &str,
        random: [u8; 16],
    ) -> Result<(String, String), CryptoError> {
        let encrypt = self.crypto.encrypt(random, plaintext)?;
        let signature = self.crypto.sign(timestamp, nonce, &encrypt);
        let body = format!(
            "<xml><ToUserName><![CDATA[robot]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        );
        let query = format!("msg_signature={signature}&timestamp={timestamp}&nonce={nonce}");
        Ok((query, body))
    }
}
