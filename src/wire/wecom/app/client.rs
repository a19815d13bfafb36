//! The self-built app's client for WeCom's server API: one access token per app, cached and
//! refreshed before it expires or when WeCom says it is no longer valid (40014, 42001, 42009,
//! 41001) — one refresh at a time, never logged (`reqwest`'s errors are stripped of the URL,
//! which carries it) — each API path held to its per-minute limit, errcodes turned into typed
//! [`ApiError`]s, and the calls the customer-group channel makes: the groups and their members,
//! mass-send tasks and their results, and group welcome templates.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::AppSettings;
use crate::domain::Secret;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per call when WeCom is busy (-1, 45009, 45033) or unreachable.
const MAX_ATTEMPTS: u32 = 3;

/// First wait after a busy answer; doubles per attempt.
const RETRY_BASE: Duration = Duration::from_millis(500);

/// Pages read at most for one listing (a cursor that never ends is WeCom's bug, not a loop).
const MAX_PAGES: usize = 10_000;

/// The wait before attempt `attempt + 1`: doubling from [`RETRY_BASE`], with `jitter` (0.8–1.2).
fn backoff(attempt: u32, jitter: f64) -> Duration {
    RETRY_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(6))
        .mul_f64(jitter)
}

/// The calls to one API path in the last minute (WeCom counts each path per corp).
#[derive(Default)]
pub(super) struct MinuteWindow(VecDeque<Instant>);

impl MinuteWindow {
    /// Counts a call now and returns `None`, or returns how long until one more fits `limit`.
    pub(super) fn take(&mut self, limit: u32, now: Instant) -> Option<Duration> {
        const MINUTE: Duration = Duration::from_secs(60);
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.0.pop_front();
        }
        if self.0.len() < limit as usize {
            self.0.push_back(now);
            return None;
        }
        self.0
            .front()
            .map(|oldest| MINUTE - now.duration_since(*oldest))
    }
}

/// A token is refreshed this long before WeCom says it expires.
const REFRESH_EARLY: Duration = Duration::from_secs(300);

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("WeCom's API could not be reached: {0}")]
    Transport(String),
    #[error("WeCom's API did not answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("WeCom's API answered HTTP {0}")]
    Status(u16),
    #[error("{api}: the answer could not be read: {detail}")]
    Decode { api: &'static str, detail: String },
    /// 40001/40013/40091 on gettoken: the corp id or the app's secret is wrong (not retried).
    #[error(
        "gettoken: WeCom refused the corp id or the app's secret (errcode {errcode}: {errmsg})"
    )]
    Credentials { errcode: i64, errmsg: String },
    #[error("{api}: WeCom errcode {errcode}: {errmsg}")]
    Api {
        api: &'static str,
        errcode: i64,
        errmsg: String,
    },
}

impl ApiError {
    /// The errcode WeCom answered, if it answered one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            ApiError::Api { errcode, .. } | ApiError::Credentials { errcode, .. } => Some(*errcode),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (WeCom busy or unreachable).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport(_) | ApiError::Timeout => true,
            ApiError::Status(status) => *status == 429 || *status >= 500,
            ApiError::Api { errcode, .. } => is_busy(*errcode),
            ApiError::Decode { .. } | ApiError::Credentials { .. } => false,
        }
    }

    /// A short class for logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            ApiError::Transport(_) => "transport",
            ApiError::Timeout => "timeout",
            ApiError::Status(_) => "http_status",
            ApiError::Decode { .. } => "decode",
            ApiError::Credentials { .. } => "credentials",
            ApiError::Api { errcode, .. } if is_busy(*errcode) => "rate_limited",
            ApiError::Api { errcode, .. } if is_token_expired(*errcode) => "token",
            ApiError::Api { .. } => "errcode",
        }
    }
}

/// The token was not valid (any more): fetch a new one and call again.
fn is_token_expired(errcode: i64) -> bool {
    matches!(errcode, 40014 | 41001 | 42001 | 42009)
}

/// WeCom is busy or the limits are reached: wait and call again.
fn is_busy(errcode: i64) -> bool {
    matches!(errcode, -1 | 45009 | 45033 | 45011)
}

/// A customer group as `groupchat/get` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupChat {
    pub chat_id: String,
    #[serde(default)]
    pub name: String,
    /// The owner (群主), an employee's userid.
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub notice: String,
    #[serde(default)]
    pub member_version: String,
    #[serde(default)]
    pub member_list: Vec<GroupMember>,
    #[serde(default, deserialize_with = "admin_ids")]
    pub admin_list: Vec<String>,
}

/// One member of a customer group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupMember {
    pub userid: String,
    /// 1: an employee of the corp; 2: an outside contact (a customer).
    #[serde(default, rename = "type")]
    pub kind: u8,
    #[serde(default)]
    pub join_time: i64,
    /// 1 invited directly, 2 by an invitation link, 3 by the group's QR code.
    #[serde(default)]
    pub join_scene: u8,
    /// The member's name (`need_name: 1`).
    #[serde(default)]
    pub name: String,
    /// The member's nickname in this group.
    #[serde(default)]
    pub group_nickname: String,
}

impl GroupMember {
    /// The name the group knows the member by: the group nickname, else the name.
    pub fn display_name(&self) -> &str {
        if self.group_nickname.is_empty() {
            &self.name
        } else {
            &self.group_nickname
        }
    }
}

fn admin_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct Admin {
        userid: String,
    }
    let admins: Option<Vec<Admin>> = Option::deserialize(d)?;
    Ok(admins
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.userid)
        .collect())
}

/// One owner's part of a mass-send task (`get_groupmsg_task`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MassTaskOwner {
    pub userid: String,
    /// 0 not sent yet, 2 sent (the owner confirmed).
    #[serde(default)]
    pub status: u8,
    #[serde(default)]
    pub send_time: i64,
}

/// How a mass-send task went in one group (`get_groupmsg_send_result`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MassSendResult {
    #[serde(default)]
    pub chat_id: String,
    #[serde(default)]
    pub userid: String,
    /// 0 not sent, 1 sent, 2 failed (not a friend), 3 failed (already received a mass send).
    #[serde(default)]
    pub status: u8,
    #[serde(default)]
    pub send_time: i64,
}

/// A mass send the corp made, as `get_groupmsg_list_v2` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMassMessage {
    pub msgid: String,
    pub create_time: i64,
    pub text: String,
}

struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

/// One app's client. Cheap to share behind an `Arc`.
pub struct AppClient {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: Secret,
    /// Held while a token is fetched: one refresh at a time.
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// Each API path's calls in the last minute.
    windows: std::sync::Mutex<HashMap<&'static str, MinuteWindow>>,
    per_minute: u32,
}

impl std::fmt::Debug for AppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppClient")
            .field("base", &self.base)
            .field("corp_id", &self.corp_id)
            .finish_non_exhaustive()
    }
}

/// The cursor of the next page, if there is one.
fn next_cursor(answer: &Value) -> Option<String> {
    answer
        .get("next_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

fn field<T: serde::de::DeserializeOwned>(
    answer: &mut Value,
    api: &'static str,
    name: &str,
) -> Result<T, ApiError> {
    let value = answer.get_mut(name).map(Value::take).unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| ApiError::Decode {
        api,
        detail: format!("{name}: {e}"),
    })
}

impl AppClient {
    pub fn new(settings: &AppSettings) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("trumpet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Transport(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base: settings.api_base.trim_end_matches('/').to_owned(),
            corp_id: settings.corp_id.clone(),
            secret: settings.secret.clone(),
            token: tokio::sync::Mutex::new(None),
            windows: std::sync::Mutex::new(HashMap::new()),
            per_minute: settings.api_per_minute.max(1),
        })
    }

    /// The current token, fetched when there is none or it is about to expire.
    async fn token(&self) -> Result<Secret, ApiError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fetched = self.fetch_token().await?;
        let value = fetched.value.clone();
        *cached = Some(fetched);
        Ok(value)
    }

    /// Forgets `used` when it is still the cached token (another call may have refreshed it).
    async fn invalidate(&self, used: &Secret) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| &t.value == used) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<CachedToken, ApiError> {
        let url = format!("{}/cgi-bin/gettoken", self.base);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .send(
                    "gettoken",
                    self.http.get(&url).query(&[
                        ("corpid", self.corp_id.as_str()),
                        ("corpsecret", self.secret.expose()),
                    ]),
                )
                .await
                .and_then(|answer| read_token(&answer));
            match result {
                Ok(token) => {
                    info!(corp = %self.corp_id, "access token fetched");
                    return Ok(token);
                }
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    warn!(corp = %self.corp_id, error = %e, attempt, "gettoken failed; trying again");
                    tokio::time::sleep(backoff(attempt, 1.0)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request and reads its JSON answer (errcode not looked at yet).
    async fn send(
        &self,
        api: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ApiError> {
        self.wait_for_limit(api).await;
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                ApiError::Timeout
            } else {
                // Without the URL: it carries the token or the secret.
                ApiError::Transport(e.without_url().to_string())
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(ApiError::Status(status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                ApiError::Timeout
            } else {
                ApiError::Transport(e.without_url().to_string())
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            api,
            detail: e.to_string(),
        })
    }

    /// Waits until `api` may be called again within its per-minute limit.
    async fn wait_for_limit(&self, api: &'static str) {
        loop {
            let wait = {
                let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
                windows
                    .entry(api)
                    .or_default()
                    .take(self.per_minute, Instant::now())
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Calls `POST /cgi-bin/{path}` with `body`: refreshes the token once when WeCom says it
    /// is not valid, waits and tries again when WeCom is busy or unreachable, and returns the
    /// answer of an errcode 0.
    pub async fn call(&self, api: &'static str, body: &Value) -> Result<Value, ApiError> {
        self.call_with(api, body, true).await
    }

    /// [`AppClient::call`] for a call that must not be made twice (creating a task): tried
    /// again only when WeCom refused it outright (a token error, busy), never after an answer
    /// that was lost — the caller finds out whether it took effect.
    pub async fn call_once(&self, api: &'static str, body: &Value) -> Result<Value, ApiError> {
        self.call_with(api, body, false).await
    }

    async fn call_with(
        &self,
        api: &'static str,
        body: &Value,
        repeat_unanswered: bool,
    ) -> Result<Value, ApiError> {
        let url = format!("{}/cgi-bin/{api}", self.base);
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let token = self.token().await?;
            let result = self
                .send(
                    api,
                    self.http
                        .post(&url)
                        .query(&[("access_token", token.expose())])
                        .json(body),
                )
                .await
                .and_then(|answer| check_errcode(api, answer));
            match result {
                Ok(answer) => return Ok(answer),
                Err(ApiError::Api { errcode, .. }) if is_token_expired(errcode) && !refreshed => {
                    info!(corp = %self.corp_id, api, errcode, "access token no longer valid; fetching a new one");
                    self.invalidate(&token).await;
                    refreshed = true;
                    attempt -= 1;
                }
                Err(e)
                    if e.is_retryable()
                        && attempt < MAX_ATTEMPTS
                        && (repeat_unanswered || matches!(e, ApiError::Api { .. })) =>
                {
                    let jitter = rand::random_range(0.8..1.2);
                    let wait = backoff(attempt, jitter);
                    warn!(corp = %self.corp_id, api, error = %e, attempt,
                        wait_ms = wait.as_millis() as u64, "WeCom API call failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every customer group the app can see (`groupchat/list`, all pages, groups in the normal
    /// state — not those of employees who left).
    pub async fn group_chat_ids(&self) -> Result<Vec<String>, ApiError> {
        #[derive(Deserialize)]
        struct Listed {
            chat_id: String,
        }
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut body = json!({"status_filter": 0, "limit": 1000});
            if let Some(c) = &cursor {
                body["cursor"] = json!(c);
            }
            let mut answer = self.call("externalcontact/groupchat/list", &body).await?;
            let page: Option<Vec<Listed>> = field(
                &mut answer,
                "externalcontact/groupchat/list",
                "group_chat_list",
            )?;
            ids.extend(page.unwrap_or_default().into_iter().map(|g| g.chat_id));
            match next_cursor(&answer) {
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => return Ok(ids),
            }
        }
        Ok(ids)
    }

    /// One customer group with its members' names (`groupchat/get`, `need_name: 1`).
    pub async fn group_chat(&self, chat_id: &str) -> Result<GroupChat, ApiError> {
        let mut answer = self
            .call(
                "externalcontact/groupchat/get",
                &json!({"chat_id": chat_id, "need_name": 1}),
            )
            .await?;
        field(&mut answer, "externalcontact/groupchat/get", "group_chat")
    }

    /// Creates a mass-send task for `sender` (the groups' owner) to `chat_ids` with `text`;
    /// returns its msgid and the groups WeCom refused (`fail_list`).
    pub async fn add_mass_task(
        &self,
        sender: &str,
        chat_ids: &[String],
        text: &str,
    ) -> Result<(String, Vec<String>), ApiError> {
        const API: &str = "externalcontact/add_msg_template";
        let mut answer = self
            .call_once(
                API,
                &json!({
                    "chat_type": "group",
                    "sender": sender,
                    "chat_id_list": chat_ids,
                    "allow_select": false,
                    "text": {"content": text},
                }),
            )
            .await?;
        let msgid: String = field(&mut answer, API, "msgid")?;
        let failed: Option<Vec<String>> = field(&mut answer, API, "fail_list")?;
        Ok((msgid, failed.unwrap_or_default()))
    }

    /// The owners of task `msgid` and whether each has sent it (`get_groupmsg_task`).
    pub async fn mass_task_owners(&self, msgid: &str) -> Result<Vec<MassTaskOwner>, ApiError> {
        self.pages(
            "externalcontact/get_groupmsg_task",
            json!({"msgid": msgid, "limit": 1000}),
            "task_list",
        )
        .await
    }

    /// How task `msgid` went in each of `userid`'s groups (`get_groupmsg_send_result`).
    pub async fn mass_send_results(
        &self,
        msgid: &str,
        userid: &str,
    ) -> Result<Vec<MassSendResult>, ApiError> {
        self.pages(
            "externalcontact/get_groupmsg_send_result",
            json!({"msgid": msgid, "userid": userid, "limit": 1000}),
            "send_list",
        )
        .await
    }

    /// Reminds the owners of task `msgid` who have not sent it (at most 3 times a day).
    pub async fn remind_mass_task(&self, msgid: &str) -> Result<(), ApiError> {
        self.call(
            "externalcontact/remind_groupmsg_send",
            &json!({"msgid": msgid}),
        )
        .await
        .map(|_| ())
    }

    /// Stops task `msgid` so that its owner can no longer send it (`cancel_groupmsg_send`).
    pub async fn cancel_mass_task(&self, msgid: &str) -> Result<(), ApiError> {
        self.call(
            "externalcontact/cancel_groupmsg_send",
            &json!({"msgid": msgid}),
        )
        .await
        .map(|_| ())
    }

    /// The corp's mass sends to customer groups created through the API between `start` and
    /// `end` (unix seconds), with their texts: how a task whose creation went unanswered is
    /// found again instead of created twice.
    pub async fn mass_messages_between(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<SentMassMessage>, ApiError> {
        #[derive(Deserialize)]
        struct Text {
            #[serde(default)]
            content: String,
        }
        #[derive(Deserialize)]
        struct Listed {
            msgid: String,
            #[serde(default, deserialize_with = "lenient_i64")]
            create_time: i64,
            #[serde(default)]
            text: Option<Text>,
        }
        let listed: Vec<Listed> = self
            .pages(
                "externalcontact/get_groupmsg_list_v2",
                json!({"chat_type": "group", "start_time": start, "end_time": end,
                    "filter_type": 0, "limit": 100}),
                "group_msg_list",
            )
            .await?;
        Ok(listed
            .into_iter()
            .map(|m| SentMassMessage {
                msgid: m.msgid,
                create_time: m.create_time,
                text: m.text.map(|t| t.content).unwrap_or_default(),
            })
            .collect())
    }

    /// Adds a group welcome template with `text`; returns its id. `notify: 0`: the owners are
    /// not pushed a notice each time the operator edits the welcome file.
    pub async fn add_welcome_template(&self, text: &str) -> Result<String, ApiError> {
        const API: &str = "externalcontact/group_welcome_template/add";
        let mut answer = self
            .call(API, &json!({"text": {"content": text}, "notify": 0}))
            .await?;
        field(&mut answer, API, "template_id")
    }

    /// Replaces the text of welcome template `id`.
    pub async fn edit_welcome_template(&self, id: &str, text: &str) -> Result<(), ApiError> {
        self.call(
            "externalcontact/group_welcome_template/edit",
            &json!({"template_id": id, "text": {"content": text}}),
        )
        .await
        .map(|_| ())
    }

    /// The text of welcome template `id`.
    pub async fn welcome_template(&self, id: &str) -> Result<String, ApiError> {
        const API: &str = "externalcontact/group_welcome_template/get";
        let mut answer = self.call(API, &json!({"template_id": id})).await?;
        #[derive(Deserialize)]
        struct Text {
            #[serde(default)]
            content: String,
        }
        let text: Option<Text> = field(&mut answer, API, "text")?;
        Ok(text.map(|t| t.content).unwrap_or_default())
    }

    /// Deletes welcome template `id`.
    pub async fn delete_welcome_template(&self, id: &str) -> Result<(), ApiError> {
        self.call(
            "externalcontact/group_welcome_template/del",
            &json!({"template_id": id}),
        )
        .await
        .map(|_| ())
    }

    /// Every item of a listing that pages with `cursor` / `next_cursor`.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        api: &'static str,
        body: Value,
        list: &str,
    ) -> Result<Vec<T>, ApiError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut body = body.clone();
            if let Some(c) = &cursor {
                body["cursor"] = json!(c);
            }
            let mut answer = self.call(api, &body).await?;
            let page: Option<Vec<T>> = field(&mut answer, api, list)?;
            items.extend(page.unwrap_or_default());
            match next_cursor(&answer) {
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(items)
    }
}

/// `call`, given up when `stop` is cancelled (as a transport error: what it was doing is looked
/// at again on the next start). The service's loops wrap their calls with it, and never their
/// store writes: a write left running on a blocking thread would keep the store open after
/// the service ended.
pub async fn until_stopped<T>(
    stop: &tokio_util::sync::CancellationToken,
    call: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    stop.run_until_cancelled(call)
        .await
        .unwrap_or_else(|| Err(ApiError::Transport("the service is stopping".into())))
}

/// An integer WeCom sends as a number or as a string of digits (`create_time`).
fn lenient_i64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().unwrap_or_default(),
        Value::String(s) => s.trim().parse().unwrap_or_default(),
        _ => 0,
    })
}

/// The answer of an errcode 0, or the error WeCom said.
fn check_errcode(api: &'static str, answer: Value) -> Result<Value, ApiError> {
    let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if errcode == 0 {
        return Ok(answer);
    }
    let errmsg = answer
        .get("errmsg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Err(ApiError::Api {
        api,
        errcode,
        errmsg,
    })
}

/// The token of a `gettoken` answer.
fn read_token(answer: &Value) -> Result<CachedToken, ApiError> {
    match check_errcode("gettoken", answer.clone()) {
        Ok(_) => {}
        Err(ApiError::Api {
            errcode, errmsg, ..
        }) if matches!(errcode, 40001 | 40013 | 40091 | 40056) => {
            return Err(ApiError::Credentials { errcode, errmsg });
        }
        Err(e) => return Err(e),
    }
    let value = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Decode {
            api: "gettoken",
            detail: "no access_token".into(),
        })?;
    let expires_in = answer
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(7200);
    let lifetime = Duration::from_secs(expires_in);
    let early = REFRESH_EARLY.min(lifetime / 2);
    Ok(CachedToken {
        value: Secret::new(value),
        refresh_at: Instant::now() + lifetime.saturating_sub(early),
    })
}
