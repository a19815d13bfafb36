//! The AI bots' open links, as the rest of the service sees them: a [`Session`] is one open,
//! subscribed connection — the way to its socket and the acks awaited on it, matched by `req_id`
//! — and [`AiBotLinks`] holds each bot's current session, so that the outbox can post into a
//! group (`aibot_send_msg`), wait while the link is down, and learn when it is back. The channel
//! (`channels::aibot`) opens the sessions and reads the socket; it hands every ack to
//! [`Session::resolve`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use super::{cmd, new_req_id, send_markdown};
use crate::domain::BotId;

/// Why a frame sent on a link got no good answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The bot has no open, subscribed link.
    #[error("the AI bot's link is down")]
    NotConnected,
    /// The bot is in URL-callback mode: there is no link to post on.
    #[error(
        "the AI bot is in URL-callback mode and cannot post unprompted (use the long connection: bot_id and secret)"
    )]
    CallbackOnly,
    /// The link closed before the ack came: it may or may not have arrived.
    #[error("the link closed before the ack came")]
    Closed,
    /// No ack in time: it may have arrived.
    #[error("no ack within {0:?}")]
    Timeout(Duration),
    #[error("WeCom answered errcode {errcode}: {errmsg}")]
    Refused { errcode: i64, errmsg: String },
}

impl AckError {
    /// Whether trying again later may succeed: WeCom's "command conflict" (6000) and its
    /// frequency limits (45009, 45033 and the like).
    pub fn is_retryable(&self) -> bool {
        match self {
            AckError::Refused { errcode, .. } => matches!(errcode, 6000 | 45009 | 45033 | -1),
            AckError::NotConnected | AckError::Closed => true,
            AckError::Timeout(_) | AckError::CallbackOnly => false,
        }
    }

    /// A short name for the log.
    pub fn class(&self) -> &'static str {
        match self {
            AckError::NotConnected => "not_connected",
            AckError::CallbackOnly => "callback_only",
            AckError::Closed => "closed",
            AckError::Timeout(_) => "timeout",
            AckError::Refused { .. } => "refused",
        }
    }
}

/// An ack as the reader hands it over: errcode and errmsg.
pub type Ack = (i64, String);

/// One open connection: where its frames go and who waits for which ack.
pub struct Session {
    out: mpsc::Sender<Message>,
    pending: Mutex<HashMap<String, oneshot::Sender<Ack>>>,
    ack_timeout: Duration,
}

impl Session {
    pub fn new(out: mpsc::Sender<Message>, ack_timeout: Duration) -> Session {
        Session {
            out,
            pending: Mutex::default(),
            ack_timeout,
        }
    }

    /// Queues `frame` for the socket without waiting for an ack (subscribe, ping, close).
    pub async fn send(&self, frame: Message) -> Result<(), AckError> {
        self.out.send(frame).await.map_err(|_| AckError::Closed)
    }

    /// Queues `frame` without waiting at all; false when the socket's queue is full or gone.
    pub fn try_send(&self, frame: Message) -> bool {
        self.out.try_send(frame).is_ok()
    }

    /// Sends `frame` and waits for the ack of `req_id`. Queuing the frame counts against the
    /// same timeout: a socket that stopped taking frames fails the send instead of holding it.
    pub async fn send_and_wait(&self, req_id: &str, frame: String) -> Result<(), AckError> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(req_id.to_owned(), tx);
        let sent_and_acked = async {
            self.out
                .send(Message::text(frame))
                .await
                .map_err(|_| AckError::Closed)?;
            match rx.await {
                Ok((0, _)) => Ok(()),
                Ok((errcode, errmsg)) => Err(AckError::Refused { errcode, errmsg }),
                Err(_) => Err(AckError::Closed),
            }
        };
        let result = tokio::time::timeout(self.ack_timeout, sent_and_acked)
            .await
            .unwrap_or(Err(AckError::Timeout(self.ack_timeout)));
        if result.is_err() {
            self.lock().remove(req_id);
        }
        result
    }

    /// Hands an ack to its waiter; false when nobody waits for it (a late one).
    pub fn resolve(&self, req_id: &str, ack: Ack) -> bool {
        let waiter = self.lock().remove(req_id);
        waiter.is_some_and(|w| w.send(ack).is_ok())
    }

    /// The link closed: everyone still waiting learns it ([`AckError::Closed`]).
    pub fn close(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Ack>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One bot's place: its session while the link is up, and a bell for when it comes up.
#[derive(Default)]
struct Slot {
    session: Mutex<Option<Arc<Session>>>,
    up: Notify,
    /// The bot is in URL-callback mode: it never has a link.
    callback_only: std::sync::atomic::AtomicBool,
}

/// Every AI bot's current link.
#[derive(Default)]
pub struct AiBotLinks {
    slots: RwLock<HashMap<BotId, Arc<Slot>>>,
}

impl AiBotLinks {
    fn slot(&self, bot: &BotId) -> Arc<Slot> {
        if let Some(slot) = self
            .slots
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(bot)
        {
            return Arc::clone(slot);
        }
        Arc::clone(
            self.slots
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(bot.clone())
                .or_default(),
        )
    }

    fn current(&self, bot: &BotId) -> Option<Arc<Session>> {
        self.slot(bot)
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `bot` is in URL-callback mode: posts through it fail at once ([`AckError::CallbackOnly`])
    /// instead of waiting for a link that never comes.
    pub fn callback_only(&self, bot: &BotId) {
        self.slot(bot)
            .callback_only
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a send through `bot` can only fail (URL-callback mode).
    pub fn is_callback_only(&self, bot: &BotId) -> bool {
        self.slot(bot)
            .callback_only
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `bot`'s link is up and subscribed: sends go through `session` from now on.
    pub fn attach(&self, bot: &BotId, session: Arc<Session>) {
        let slot = self.slot(bot);
        *slot.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
        slot.up.notify_waiters();
    }

    /// `bot`'s link is down.
    pub fn detach(&self, bot: &BotId) {
        *self
            .slot(bot)
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn is_connected(&self, bot: &BotId) -> bool {
        self.current(bot).is_some()
    }

    /// Waits at most `limit` for `bot`'s link to be up; whether it is.
    pub async fn wait_connected(&self, bot: &BotId, limit: Duration) -> bool {
        let slot = self.slot(bot);
        let up = slot.up.notified();
        tokio::pin!(up);
        up.as_mut().enable();
        if self.is_connected(bot) {
            return true;
        }
        let _ = tokio::time::timeout(limit, up).await;
        self.is_connected(bot)
    }

    /// Posts `content` (markdown) into `chat_id` through `bot`'s link and waits for WeCom's ack.
    pub async fn post_markdown(
        &self,
        bot: &BotId,
        chat_id: &str,
        content: &str,
    ) -> Result<(), AckError> {
        if self.is_callback_only(bot) {
            return Err(AckError::CallbackOnly);
        }
        let session = self.current(bot).ok_or(AckError::NotConnected)?;
        let req_id = new_req_id(cmd::SEND);
        session
            .send_and_wait(&req_id, send_markdown(&req_id, chat_id, content))
            .await
    }
}
