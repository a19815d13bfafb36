//! The WeCom AI bot's long connection: the service dials WeCom (`wss://openws.work.weixin.qq.com`
//! by default), subscribes as the bot, keeps the link alive with heartbeats, and hands every
//! @-message to [`crate::runtime::inbound`]; the answer goes back as a finished stream on the
//! callback's `req_id`, one message at a time, each waiting for WeCom's ack. Nothing has to be
//! reachable from outside: the bot runs behind NAT on an operator's own machine.
//!
//! A dropped link (closed, broken, or two heartbeats unanswered) is dialled again after a
//! back-off that starts at 1 s and doubles to `aibot.reconnect_max_secs`, jittered; a refused
//! subscription (a wrong secret, WeCom's 45009 after a quick restart) backs off the same way,
//! never in a tight loop. `disconnected_event` means a newer connection took the bot over —
//! another instance runs with the same bot: it is logged as an error and this link is not dialled
//! again, so that two instances do not keep kicking each other off. The same `msgid` heard twice
//! (WeCom resends after a reconnect) is handled once and answered with the reply it got then.
//! The wire format is [`crate::wire::wecom::aibot`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::domain::{BotId, ChatId, Event, EventKind, Reply, Sender};
use crate::runtime::Services;
use crate::runtime::inbound::{self, Handled};
use crate::store::GroupStatus;
use crate::wire::wecom::aibot::{self, AckError, AiBotLinks, Callback, Inbound, Session, cmd};
use crate::wire::wecom::aibot::{AiBotConfig, AiBotSettings};

/// Callbacks being decided at once on one link; past it the link stops reading until one is
/// decided, so a flood waits in WeCom's socket rather than in memory. A callback gives its place
/// back before its reply waits for WeCom's ack: the acks come in on the very link that stopped
/// reading, and a place held while waiting for one would never be given back (a slow peer would
/// stop the link for good). The replies waiting for acks are bounded by the ack timeout.
const MAX_HANDLING: usize = 512;

/// Frames waiting to be written to the socket.
const OUTGOING_FRAMES: usize = 1024;

/// How long dialling and the WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One AI bot's link to WeCom.
pub struct AiBotLink {
    pub bot: BotId,
    pub settings: AiBotSettings,
    pub timings: AiBotConfig,
    pub services: Arc<Services>,
    /// Where the link's session is put while it is up and subscribed (the outbox posts
    /// through it).
    pub links: Arc<AiBotLinks>,
    /// Groups known to be adopted: a message from any other is checked against the store
    /// first, and adopts (and greets) the group when it is new or was released.
    pub adopted: Arc<std::sync::Mutex<std::collections::HashSet<ChatId>>>,
}

/// How one connection ended.
#[derive(Debug)]
enum Ended {
    /// The service is stopping.
    Stopping,
    /// WeCom refused the subscription.
    Refused { errcode: i64, errmsg: String },
    /// A newer connection took the bot over (`disconnected_event`).
    Replaced,
    /// The link broke or closed; `subscribed` says whether it had been working.
    Dropped { reason: String, subscribed: bool },
}

impl AiBotLink {
    /// Keeps the link up until `stop`: dial, subscribe, serve, and dial again after a back-off
    /// when it drops — except when another connection took the bot over.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let ended = tokio::select! {
                ended = self.connect_and_serve(&stop) => ended,
                () = stop.cancelled() => Ended::Stopping,
            };
            self.links.detach(&self.bot);
            match ended {
                Ended::Stopping => return,
                Ended::Replaced => {
                    error!(bot = %self.bot, bot_id = %self.settings.bot_id,
                        "WeCom says a newer connection took this AI bot over (disconnected_event): another instance of the service (or another program) runs with the same bot id. This link is not dialled again; stop the other one and restart this service");
                    return;
                }
                Ended::Refused { errcode, errmsg } => {
                    failures += 1;
                    error!(bot = %self.bot, bot_id = %self.settings.bot_id, errcode, errmsg = %errmsg,
                        "WeCom refused the AI bot's subscription (check bot_id and secret; 45009 after a quick restart clears by itself)");
                }
                Ended::Dropped { reason, subscribed } => {
                    if subscribed {
                        // It had been working: the back-off starts over.
                        failures = 0;
                        warn!(bot = %self.bot, reason = %reason, "the AI bot's link dropped; dialling again");
                    } else {
                        warn!(bot = %self.bot, reason = %reason, "the AI bot's link could not be set up; dialling again");
                    }
                    failures += 1;
                }
            }
            let wait = self.backoff(failures);
            info!(bot = %self.bot, wait_ms = wait.as_millis() as u64, attempt = failures,
                "the AI bot's link waits before dialling again");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// 1 s, 2 s, 4 s … up to `reconnect_max_secs`, each ±20 %.
    fn backoff(&self, failures: u32) -> Duration {
        let max = Duration::from_secs(self.timings.reconnect_max_secs);
        let base = Duration::from_secs(1)
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(max);
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    async fn connect_and_serve(&self, stop: &CancellationToken) -> Ended {
        let config = WebSocketConfig::default()
            .max_message_size(Some(aibot::MAX_FRAME_BYTES))
            .max_frame_size(Some(aibot::MAX_FRAME_BYTES));
        let dialled = tokio::time::timeout(
            CONNECT_TIMEOUT,
            // Without Nagle's algorithm: replies are small frames that must go out at once,
            // not wait for the ack of the previous one.
            tokio_tungstenite::connect_async_with_config(
                self.settings.ws_url.as_str(),
                Some(config),
                true,
            ),
        )
        .await;
        let socket = match dialled {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => {
                return Ended::Dropped {
                    reason: format!("could not connect to {}: {e}", self.settings.ws_url),
                    subscribed: false,
                };
            }
            Err(_) => {
                return Ended::Dropped {
                    reason: format!(
                        "could not connect to {} within {CONNECT_TIMEOUT:?}",
                        self.settings.ws_url
                    ),
                    subscribed: false,
                };
            }
        };
        info!(bot = %self.bot, url = %self.settings.ws_url, "AI bot link open; subscribing");
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::channel::<Message>(OUTGOING_FRAMES);
        let writer = tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                let closing = matches!(frame, Message::Close(_));
                if sink.send(frame).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let session = Arc::new(Session::new(
            out,
            Duration::from_secs(self.timings.ack_timeout_secs),
        ));
        let ended = self.serve(&session, &mut stream, stop).await;
        self.links.detach(&self.bot);
        // Everyone still waiting for an ack learns that the link closed.
        session.close();
        let _ = session.try_send(Message::Close(None));
        drop(session);
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        ended
    }

    /// Subscribes, then reads frames, pings and answers until the link ends.
    async fn serve<S>(
        &self,
        session: &Arc<Session>,
        stream: &mut S,
        stop: &CancellationToken,
    ) -> Ended
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        let subscribe_id = aibot::new_req_id(cmd::SUBSCRIBE);
        let frame = aibot::subscribe(
            &subscribe_id,
            &self.settings.bot_id,
            self.settings.secret.expose(),
        );
        if session.send(Message::text(frame)).await.is_err() {
            return dropped("the link closed before the subscription went out", false);
        }
        let subscribe_deadline =
            tokio::time::sleep(Duration::from_secs(self.timings.ack_timeout_secs.max(10)));
        tokio::pin!(subscribe_deadline);
        let mut subscribed = false;
        let ping_every = Duration::from_secs(self.timings.ping_interval_secs);
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let mut unanswered_pings = 0u32;
        let handling = Arc::new(Semaphore::new(MAX_HANDLING));
        loop {
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = stop.cancelled() => return Ended::Stopping,
                () = &mut subscribe_deadline, if !subscribed => {
                    return dropped("no answer to the subscription", false);
                }
                _ = pings.tick(), if subscribed => {
                    if unanswered_pings >= 2 {
                        return dropped("two heartbeats unanswered", true);
                    }
                    unanswered_pings += 1;
                    let ping = aibot::ping(&aibot::new_req_id(cmd::PING));
                    // Never waited for: the reader must keep reading, and a socket whose queue
                    // of frames is full has stopped taking them — the link is as good as dead.
                    if !session.try_send(Message::text(ping)) {
                        return dropped("the link stopped taking frames", true);
                    }
                    continue;
                }
            };
            let text = match frame {
                None => return dropped("WeCom closed the link", subscribed),
                Some(Err(e)) => return dropped(&format!("the link broke: {e}"), subscribed),
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(close))) => {
                    let reason = close.map_or_else(
                        || "WeCom closed the link".to_owned(),
                        |c| format!("WeCom closed the link ({} {})", u16::from(c.code), c.reason),
                    );
                    return dropped(&reason, subscribed);
                }
                // Pings are answered by the library; binary frames are not part of the protocol.
                Some(Ok(_)) => continue,
            };
            let inbound = match aibot::parse_frame(text.as_str()) {
                Ok(inbound) => inbound,
                Err(e) => {
                    warn!(bot = %self.bot, error = %e, bytes = text.len(), "AI bot frame not understood; skipped");
                    continue;
                }
            };
            match inbound {
                Inbound::Ack {
                    req_id,
                    errcode,
                    errmsg,
                } if req_id == subscribe_id => {
                    if errcode != 0 {
                        return Ended::Refused { errcode, errmsg };
                    }
                    subscribed = true;
                    self.links.attach(&self.bot, Arc::clone(session));
                    info!(bot = %self.bot, bot_id = %self.settings.bot_id, "AI bot subscribed");
                }
                Inbound::Ack {
                    req_id, errcode, ..
                } if req_id.starts_with(cmd::PING) => {
                    if errcode == 0 {
                        unanswered_pings = 0;
                    } else {
                        warn!(bot = %self.bot, errcode, "heartbeat answered with an error");
                    }
                }
                Inbound::Ack {
                    req_id,
                    errcode,
                    errmsg,
                } => {
                    if !session.resolve(&req_id, (errcode, errmsg)) {
                        debug!(bot = %self.bot, req_id = %req_id, errcode, "an ack nobody waits for (late)");
                    }
                }
                Inbound::Event { body, .. } if body.event_type() == "disconnected_event" => {
                    return Ended::Replaced;
                }
                Inbound::Message { req_id, body } | Inbound::Event { req_id, body } => {
                    let Ok(permit) = Arc::clone(&handling).acquire_owned().await else {
                        continue;
                    };
                    let services = Arc::clone(&self.services);
                    let session = Arc::clone(session);
                    let bot = self.bot.clone();
                    let adopted = Arc::clone(&self.adopted);
                    self.services.tasks.spawn(async move {
                        handle_callback(&services, &session, &bot, &adopted, req_id, body, permit)
                            .await;
                    });
                }
                Inbound::Other { cmd } => {
                    info!(bot = %self.bot, cmd = %cmd, "AI bot frame with a command this version does not know; skipped");
                }
            }
        }
    }
}

fn dropped(reason: &str, subscribed: bool) -> Ended {
    Ended::Dropped {
        reason: reason.to_owned(),
        subscribed,
    }
}

/// Handles one callback: the engine decides (and the event is committed) before anything is
/// answered; the reply goes back on `req_id`.
async fn handle_callback(
    services: &Services,
    session: &Session,
    bot: &BotId,
    adopted: &std::sync::Mutex<std::collections::HashSet<ChatId>>,
    req_id: String,
    body: Callback,
    place: tokio::sync::OwnedSemaphorePermit,
) {
    let msg_id = body.msgid.clone();
    let event = match body.into_event(bot, Utc::now()) {
        Ok(event) => event,
        Err(e) => {
            warn!(bot = %bot, msg_id = %msg_id, error = %e, "AI bot callback refused");
            return;
        }
    };
    if let Some(field) = event.oversized_id() {
        warn!(bot = %bot, msg_id = %msg_id, field, "AI bot callback refused: an id longer than a channel sends");
        return;
    }
    if let EventKind::Unknown { msg_type } = &event.kind {
        info!(bot = %bot, msg_id = %msg_id, msg_type = %msg_type, "AI bot message kind not handled");
        return;
    }
    if let Some(chat) = event.chat_id()
        && !adopt_first(services, &event, chat, adopted).await
    {
        // Not adopted (the store failed; logged with the message id): the message is not
        // handled either, so that the member's next message adopts the group first.
        return;
    }
    let welcome = event.kind == EventKind::EnterChat;
    let reply = match inbound::handle(services, event, aibot::CAPABILITIES).await {
        Ok(Handled::Duplicate(reply) | Handled::New(reply) | Handled::NotSaved(reply)) => reply,
        Err(e) => {
            error!(bot = %bot, msg_id = %msg_id, error = %e, "AI bot message not accepted; it is not answered");
            return;
        }
    };
    drop(place);
    let Some(reply) = reply else {
        return;
    };
    if let Err(e) = send_reply(session, &req_id, &reply, welcome, &msg_id).await {
        warn!(bot = %bot, msg_id = %msg_id, error = %e, "AI bot reply not delivered");
    }
}

/// Makes sure `chat` is adopted before `event` from it is handled: a group not known to be
/// adopted is looked up, and when it is new (or was released) it is adopted by a `BotAdded`
/// from nobody — adopted as `first_message` and greeted with the adoption message, as a robot's
/// group is when the robot is added. False when the store could not say or keep it.
async fn adopt_first(
    services: &Services,
    event: &Event,
    chat: &ChatId,
    adopted: &std::sync::Mutex<std::collections::HashSet<ChatId>>,
) -> bool {
    let known = |set: &std::sync::Mutex<std::collections::HashSet<ChatId>>| {
        set.lock().unwrap_or_else(|e| e.into_inner()).contains(chat)
    };
    if known(adopted) {
        return true;
    }
    let store = services.store.clone();
    let lookup = chat.clone();
    let status = match tokio::task::spawn_blocking(move || store.group(&lookup)).await {
        Ok(Ok(group)) => group.map(|g| g.status),
        Ok(Err(e)) => {
            error!(bot = %event.bot, chat = %chat, msg_id = %event.msg_id, error = %e,
                "the group could not be read; this message is not handled");
            return false;
        }
        Err(e) => {
            error!(bot = %event.bot, chat = %chat, error = %e, "the group read failed");
            return false;
        }
    };
    if status != Some(GroupStatus::Adopted) {
        let adoption = Event {
            // Its own id, derived from the message's: a retry adopts once.
            msg_id: format!("{}#adopted", event.msg_id),
            from: Sender::default(),
            kind: EventKind::BotAdded,
            ..event.clone()
        };
        if let Err(e) = inbound::handle(services, adoption, aibot::CAPABILITIES).await {
            error!(bot = %event.bot, chat = %chat, error = %e, "the group could not be adopted");
            return false;
        }
    }
    adopted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(chat.clone());
    true
}

/// Sends `reply` on `req_id`: a welcome as one text, an answer as finished streams, one after
/// another, each after the previous one's ack.
async fn send_reply(
    session: &Session,
    req_id: &str,
    reply: &Reply,
    welcome: bool,
    msg_id: &str,
) -> Result<(), AckError> {
    let pieces = aibot::reply_contents(reply);
    if welcome {
        return session
            .send_and_wait(req_id, aibot::respond_welcome(req_id, &pieces.concat()))
            .await;
    }
    for (i, content) in pieces.iter().enumerate() {
        let stream_id = format!("{msg_id}-{i}");
        session
            .send_and_wait(req_id, aibot::respond_stream(req_id, &stream_id, content))
            .await?;
    }
    Ok(())
}
