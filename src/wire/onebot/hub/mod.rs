//! The live connections of OneBot implementations and the bot accounts each one carries:
//! sending an action to an account and matching its response by `echo`, with a timeout.
//!
//! A connection registers the accounts it learns about (`meta.status_update`, the `self` of its
//! events); a new connection for an account replaces the old one, which is told to close. Sends
//! for an account that is not connected fail with [`CallError::NotConnected`] at once, and
//! [`Hub::wait_connected`] lets the outbox wait for the account to come back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::convert::{Outgoing, outgoing};
use super::protocol::{ActionError, ActionResponse, Segment, SelfId, action_request};
use crate::domain::{AccountKey, OutMessage};

/// The action that deletes a message.
pub const DELETE_ACTION: &str = "delete_message";

/// Frames waiting to be written to one connection before senders wait too.
pub const OUTGOING_FRAMES: usize = 1024;

/// Why an action did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the bot account is not connected")]
    NotConnected,
    #[error("the connection closed before the answer came")]
    Disconnected,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Action(#[from] ActionError),
}

impl CallError {
    /// Whether trying again later may work.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::NotConnected | CallError::Disconnected | CallError::Timeout(_) => true,
            CallError::Action(e) => e.is_retryable(),
        }
    }

    /// A short class for logs.
    pub fn class(&self) -> &'static str {
        match self {
            CallError::NotConnected => "not_connected",
            CallError::Disconnected => "disconnected",
            CallError::Timeout(_) => "timeout",
            CallError::Action(ActionError::Unsupported { .. }) => "unsupported",
            CallError::Action(ActionError::BadRequest { .. }) => "bad_request",
            CallError::Action(ActionError::PlatformRefused { .. }) => "platform_refused",
            CallError::Action(ActionError::Logic { .. }) => "logic",
            CallError::Action(ActionError::Tired { .. }) => "tired",
            CallError::Action(ActionError::Failed { .. }) => "failed",
        }
    }
}

/// One connection from an implementation.
pub struct Connection {
    pub id: u64,
    /// What the implementation said it is (`meta.connect`), for logs and the API.
    pub implementation: RwLock<String>,
    out: mpsc::Sender<String>,
    pending: Mutex<HashMap<String, oneshot::Sender<Result<Value, ActionError>>>>,
    /// The actions the implementation offers (`get_supported_actions`); `None` until known.
    supported: RwLock<Option<HashSet<String>>>,
    /// Cancelled when the connection must close (replaced, or the service stops).
    pub close: CancellationToken,
    /// The WebSocket close code and reason the peer is told, when the service closes it.
    close_reason: Mutex<Option<(u16, String)>>,
}

/// Close codes the service sends (RFC 6455 §7.4; 4000–4999 are the application's own).
pub mod close_code {
    /// The service is stopping.
    pub const GOING_AWAY: u16 = 1001;
    /// A newer connection took over this connection's accounts.
    pub const REPLACED: u16 = 4000;
    /// Nothing was heard for too long (no heartbeat, no event, no pong).
    pub const SILENT: u16 = 4001;
}

impl Connection {
    /// A connection whose outgoing frames go to `out`.
    pub fn new(id: u64, out: mpsc::Sender<String>) -> Arc<Connection> {
        Arc::new(Connection {
            id,
            implementation: RwLock::new(String::new()),
            out,
            pending: Mutex::new(HashMap::new()),
            supported: RwLock::new(None),
            close: CancellationToken::new(),
            close_reason: Mutex::new(None),
        })
    }

    /// Closes the connection telling the peer why (the first reason given wins).
    pub fn close_with(&self, code: u16, reason: &str) {
        self.close_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| (code, reason.to_owned()));
        self.close.cancel();
    }

    /// The code and reason to close with, if the service chose one.
    pub fn close_reason(&self) -> Option<(u16, String)> {
        self.close_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Hands a response to whoever waits for its echo; returns false for an echo nobody waits
    /// for (a late answer after a timeout).
    pub fn resolve(&self, response: ActionResponse) -> bool {
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&response.echo);
        match waiter {
            Some(tx) => tx.send(response.outcome).is_ok(),
            None => false,
        }
    }

    pub fn set_supported(&self, actions: HashSet<String>) {
        *self.supported.write().unwrap_or_else(|e| e.into_inner()) = Some(actions);
    }

    /// Whether the implementation offers `action` (false while unknown).
    pub fn supports(&self, action: &str) -> bool {
        self.supported
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.contains(action))
    }

    /// Sends `action` with `params` for `account` and waits up to `timeout` for the answer.
    pub async fn call(
        self: &Arc<Self>,
        echo: String,
        action: &str,
        params: Value,
        account: Option<&SelfId>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        self.request(echo, action, params, account)
            .await?
            .answer(timeout)
            .await
    }

    /// Queues the request for writing (in order with the connection's other frames) and
    /// returns the answer to wait for: a caller that must keep its order need not wait for
    /// the answer before sending the next request.
    pub async fn request(
        self: &Arc<Self>,
        echo: String,
        action: &str,
        params: Value,
        account: Option<&SelfId>,
    ) -> Result<PendingAnswer, CallError> {
        let frame = action_request(action, params, &echo, account).to_string();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(echo.clone(), tx);
        let pending = PendingAnswer {
            connection: Arc::clone(self),
            echo,
            rx,
        };
        if self.out.send(frame).await.is_err() {
            pending.forget();
            return Err(CallError::Disconnected);
        }
        Ok(pending)
    }

    /// Fails every waiting call: the connection is gone.
    pub fn fail_pending(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// An answer still to come.
pub struct PendingAnswer {
    connection: Arc<Connection>,
    echo: String,
    rx: oneshot::Receiver<Result<Value, ActionError>>,
}

impl PendingAnswer {
    fn forget(&self) {
        self.connection
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.echo);
    }

    /// Waits up to `timeout` for the answer.
    pub async fn answer(mut self, timeout: Duration) -> Result<Value, CallError> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(outcome)) => outcome.map_err(CallError::from),
            Ok(Err(_)) => Err(CallError::Disconnected),
            Err(_) => {
                self.forget();
                Err(CallError::Timeout(timeout))
            }
        }
    }
}

struct Attached {
    platform: String,
    connection: Arc<Connection>,
}

/// A connected account, as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountStatus {
    pub bot: String,
    pub account: String,
    pub platform: String,
    pub connection: u64,
    pub implementation: String,
    /// What the implementation offers; `null` until it said.
    pub supported_actions: Option<Vec<String>>,
}

/// Whom a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To<'a> {
    /// A group, by its id.
    Group(&'a str),
    /// A person, privately, by their user id.
    Private(&'a str),
}

/// Every connected account; cheap to share behind an `Arc`.
pub struct Hub {
    accounts: RwLock<HashMap<AccountKey, Attached>>,
    /// Accounts the platform refused for now (34xxx): no sends through them until then.
    paused: Mutex<HashMap<AccountKey, tokio::time::Instant>>,
    /// Woken whenever an account is attached.
    attached: Notify,
    next_echo: AtomicU64,
    next_connection: AtomicU64,
    timeout: Duration,
    /// Cancelled when the service stops: every connection closes.
    stopping: CancellationToken,
}

impl Hub {
    /// A hub whose actions time out after `timeout`, stopped only by [`Hub::stop`].
    pub fn new(timeout: Duration) -> Hub {
        Hub::stopped_by(timeout, CancellationToken::new())
    }

    /// A hub whose connections all close when `stop` (the service's) is cancelled.
    pub fn stopped_by(timeout: Duration, stop: CancellationToken) -> Hub {
        Hub {
            accounts: RwLock::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            attached: Notify::new(),
            next_echo: AtomicU64::new(1),
            next_connection: AtomicU64::new(1),
            timeout,
            stopping: stop,
        }
    }

    /// Closes every connection (the service is stopping).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Cancelled once the service is stopping.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A fresh connection id.
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh echo.
    pub fn echo(&self) -> String {
        format!("t{}", self.next_echo.fetch_add(1, Ordering::Relaxed))
    }

    /// Routes `account` to `connection`. Returns true when the account was not on this
    /// connection before (the caller syncs it); an older connection carrying it is told to
    /// close when it carries nothing else.
    pub fn attach(&self, key: AccountKey, platform: &str, connection: &Arc<Connection>) -> bool {
        let replaced = {
            let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            let previous = accounts.insert(
                key.clone(),
                Attached {
                    platform: platform.to_owned(),
                    connection: Arc::clone(connection),
                },
            );
            match previous {
                Some(old) if old.connection.id == connection.id => return false,
                Some(old) => {
                    let still_used = accounts
                        .values()
                        .any(|a| a.connection.id == old.connection.id);
                    Some((old.connection, still_used))
                }
                None => None,
            }
        };
        if let Some((old, still_used)) = replaced {
            info!(bot = %key.bot, account = %key.user_id, old = old.id, new = connection.id,
                "a new connection replaces the old one for this account");
            if !still_used {
                old.close_with(
                    close_code::REPLACED,
                    "replaced by a newer connection for the same account",
                );
            }
        } else {
            info!(bot = %key.bot, account = %key.user_id, connection = connection.id, "account online");
        }
        self.attached.notify_waiters();
        true
    }

    /// Forgets `account` if it is routed to `connection` (an account going offline, or the
    /// connection closing).
    pub fn detach(&self, key: &AccountKey, connection: u64) {
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        if accounts
            .get(key)
            .is_some_and(|a| a.connection.id == connection)
        {
            accounts.remove(key);
            info!(bot = %key.bot, account = %key.user_id, connection, "account offline");
        }
    }

    /// Forgets every account routed to `connection`.
    pub fn detach_connection(&self, connection: u64) -> Vec<AccountKey> {
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<AccountKey> = accounts
            .iter()
            .filter(|(_, a)| a.connection.id == connection)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &gone {
            accounts.remove(key);
        }
        gone
    }

    /// The connection carrying `key`, and the `self` to name in requests.
    pub fn route(&self, key: &AccountKey) -> Option<(Arc<Connection>, SelfId)> {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        accounts.get(key).map(|a| {
            (
                Arc::clone(&a.connection),
                SelfId {
                    platform: a.platform.clone(),
                    user_id: key.user_id.clone(),
                },
            )
        })
    }

    pub fn is_connected(&self, key: &AccountKey) -> bool {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        accounts.contains_key(key)
    }

    /// Every connected account, by bot and account.
    pub fn accounts(&self) -> Vec<AccountStatus> {
        let accounts = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<AccountStatus> = accounts
            .iter()
            .map(|(key, a)| AccountStatus {
                bot: key.bot.to_string(),
                account: key.user_id.clone(),
                platform: a.platform.clone(),
                connection: a.connection.id,
                implementation: a
                    .connection
                    .implementation
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
                supported_actions: a
                    .connection
                    .supported
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|s| {
                        let mut s: Vec<String> = s.iter().cloned().collect();
                        s.sort();
                        s
                    }),
            })
            .collect();
        all.sort_by(|a, b| (&a.bot, &a.account).cmp(&(&b.bot, &b.account)));
        all
    }

    /// Whether the implementation carrying `key` offers `action`.
    pub fn supports(&self, key: &AccountKey, action: &str) -> bool {
        self.route(key).is_some_and(|(c, _)| c.supports(action))
    }

    /// Calls `action` for `key`.
    pub async fn call(
        &self,
        key: &AccountKey,
        action: &str,
        params: Value,
    ) -> Result<Value, CallError> {
        let Some((connection, account)) = self.route(key) else {
            return Err(CallError::NotConnected);
        };
        let result = connection
            .call(self.echo(), action, params, Some(&account), self.timeout)
            .await;
        if let Err(e) = &result {
            warn!(bot = %key.bot, account = %key.user_id, action, error = %e, class = e.class(),
                "action failed");
        }
        result
    }

    /// Sends `message` to a group or a person through `key` (OneBot 12's `send_message`, whose
    /// `detail_type` is `group` or `private`), uploading an image first; returns the new
    /// message's id.
    pub async fn send_message(
        &self,
        key: &AccountKey,
        to: To<'_>,
        message: &OutMessage,
    ) -> Result<String, CallError> {
        let segments = match outgoing(message) {
            Outgoing::Segments(segments) => segments,
            Outgoing::Image(bytes) => {
                use base64::Engine as _;
                let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
                let uploaded = self
                    .call(
                        key,
                        "upload_file",
                        json!({"type": "data", "name": "trumpet.png", "data": data}),
                    )
                    .await?;
                let Some(file_id) = uploaded
                    .get("file_id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                else {
                    return Err(CallError::Action(ActionError::Failed {
                        retcode: 0,
                        message: "upload_file answered without a file_id".into(),
                    }));
                };
                vec![Segment::Image {
                    file_id: file_id.to_owned(),
                }]
            }
        };
        let message: Vec<Value> = segments.iter().map(Segment::to_json).collect();
        let sent = self
            .call(
                key,
                "send_message",
                match to {
                    To::Group(group_id) => {
                        json!({"detail_type": "group", "group_id": group_id, "message": message})
                    }
                    To::Private(user_id) => {
                        json!({"detail_type": "private", "user_id": user_id, "message": message})
                    }
                },
            )
            .await?;
        Ok(sent
            .get("message_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    /// Deletes (recalls) a message through `key`: `message_id` as the implementation gave it.
    /// Deletes a message (standard in OneBot 12, yet offered only where
    /// `get_supported_actions` lists it: WeChat implementations may not recall others' messages).
    pub async fn delete_message(
        &self,
        key: &AccountKey,
        message_id: &str,
    ) -> Result<(), CallError> {
        self.call(key, DELETE_ACTION, json!({"message_id": message_id}))
            .await
            .map(|_| ())
    }

    /// Holds every send through `key` for `wait`: the platform refused it (a rate limit is per
    /// account, so each of its groups backing off on its own would keep hitting it).
    pub fn pause(&self, key: &AccountKey, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let slot = paused.entry(key.clone()).or_insert(until);
        if *slot < until {
            *slot = until;
        }
    }

    /// How long sends through `key` must still wait after a refusal.
    pub fn paused_for(&self, key: &AccountKey) -> Option<Duration> {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        match paused.get(key) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                paused.remove(key);
                None
            }
            None => None,
        }
    }

    /// Waits until `key` is connected or `limit` passes; returns whether it is connected.
    pub async fn wait_connected(&self, key: &AccountKey, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let attached = self.attached.notified();
            tokio::pin!(attached);
            // Registered before the check, so an attach in between is not missed.
            attached.as_mut().enable();
            if self.is_connected(key) {
                return true;
            }
            if tokio::time::timeout_at(deadline, attached).await.is_err() {
                return self.is_connected(key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
