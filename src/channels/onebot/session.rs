//! One reverse-WebSocket connection from a OneBot implementation, from upgrade to close: a
//! writer task (action requests, pings), a reader loop (responses matched by echo, meta events,
//! a watchdog that closes a link silent for `heartbeat_misses` intervals), and a few workers
//! that handle the domain events — the events of one group always on the same worker, so in
//! order, while a slow group does not hold up the others or the reading of responses.
//!
//! The reply an event earns is written to the socket at once (the channel's "passive reply");
//! if the implementation then refuses it for now or the link drops, it goes to the durable
//! outbox, which sends it when the account is back (or records it expired).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::{OneBotChannel, reply_params};
use crate::domain::{AccountKey, BotId, Event, Reply};
use crate::runtime::inbound::{self, Handled};
use crate::store::{Destination, NewSend};
use crate::wire::onebot::convert::{Converted, to_domain};
use crate::wire::onebot::hub::{CallError, Connection, OUTGOING_FRAMES, close_code};
use crate::wire::onebot::protocol::{EventBody, Incoming, SelfId, parse_frame};

/// The largest frame accepted from an implementation.
pub const MAX_FRAME: usize = 1 << 20;
/// Workers per connection handling domain events (groups are spread over them).
const WORKERS: usize = 4;
/// Events waiting per worker before the reader waits too.
const WORKER_QUEUE: usize = 4096;
use super::accounts::REMOVE_ACTION;
use super::roster;

/// Serves one connection until it closes.
pub async fn run(state: Arc<OneBotChannel>, bot: BotId, socket: WebSocket) {
    let hub = Arc::clone(&state.hub);
    let (out_tx, out_rx) = mpsc::channel(OUTGOING_FRAMES);
    let connection = Connection::new(hub.connection_id(), out_tx);
    let (sink, mut stream) = socket.split();
    let ping_every = Duration::from_secs(state.config.ping_interval_secs);
    let writer = tokio::spawn(write_frames(
        sink,
        out_rx,
        ping_every,
        Arc::clone(&connection),
    ));
    let workers: Vec<mpsc::Sender<Event>> = (0..WORKERS)
        .map(|_| {
            let (tx, rx) = mpsc::channel(WORKER_QUEUE);
            tokio::spawn(handle_events(
                Arc::clone(&state),
                Arc::clone(&connection),
                rx,
            ));
            tx
        })
        .collect();
    info!(bot = %bot, connection = connection.id, "OneBot connection open");
    let mut reader = Reader {
        state,
        bot,
        connection,
        workers,
        interval: ping_every,
        last_heard: Instant::now(),
        discovered: false,
    };
    while let Some(text) = reader.next_text(&mut stream).await {
        let incoming = match parse_frame(text.as_str()) {
            Ok(incoming) => incoming,
            Err(e) => {
                warn!(bot = %reader.bot, connection = reader.connection.id, error = %e,
                    frame = %truncated(text.as_str()), "unreadable OneBot frame ignored");
                continue;
            }
        };
        match incoming {
            Incoming::Response(response) => {
                let echo = response.echo.clone();
                if !reader.connection.resolve(response) {
                    debug!(bot = %reader.bot, echo = %echo, "answer nobody waits for (late or unknown echo)");
                }
            }
            Incoming::Event(event) => {
                if !reader.on_meta(&event) {
                    reader.dispatch(&event).await;
                }
            }
        }
    }
    let Reader {
        bot,
        connection,
        workers,
        ..
    } = reader;
    let gone = hub.detach_connection(connection.id);
    connection.fail_pending();
    connection.close.cancel();
    drop(workers);
    if let Err(e) = writer.await {
        warn!(error = %e, "OneBot writer task failed");
    }
    info!(bot = %bot, connection = connection.id, accounts = gone.len(), "OneBot connection closed");
}

/// The reading side of one connection: what the watchdog and the routing of events need.
struct Reader {
    state: Arc<OneBotChannel>,
    bot: BotId,
    connection: Arc<Connection>,
    workers: Vec<mpsc::Sender<Event>>,
    /// The implementation's heartbeat interval (the ping interval until it says).
    interval: Duration,
    last_heard: Instant,
    /// What the implementation offers was asked (once: on `meta.connect`, or on its first event
    /// for an implementation that skips it).
    discovered: bool,
}

impl Reader {
    /// The next text frame; `None` when the connection is over (closed, failed, silent for
    /// `heartbeat_misses` intervals, taken over, or the service stopping).
    async fn next_text(
        &mut self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
    ) -> Option<axum::extract::ws::Utf8Bytes> {
        let (bot, id) = (&self.bot, self.connection.id);
        loop {
            let misses = self.state.config.heartbeat_misses;
            let deadline = self.last_heard + self.interval * misses;
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = tokio::time::sleep_until(deadline) => {
                    warn!(bot = %bot, connection = id, silent_ms = (self.interval * misses).as_millis() as u64,
                        "OneBot connection silent for too long; closing it");
                    self.connection.close_with(close_code::SILENT, "nothing heard for too long (no heartbeat)");
                    return None;
                }
                () = self.connection.close.cancelled() => return None,
                () = self.state.hub.stopping().cancelled() => {
                    info!(bot = %bot, connection = id, "the service is stopping; closing the connection");
                    self.connection.close_with(close_code::GOING_AWAY, "the service is stopping");
                    return None;
                }
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    self.last_heard = Instant::now();
                    return Some(text);
                }
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Ok(Message::Binary(_))) => {
                    self.last_heard = Instant::now();
                    warn!(bot = %bot, connection = id,
                        "binary (MessagePack) frame ignored: send JSON text frames");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => self.last_heard = Instant::now(),
                Some(Err(e)) => {
                    warn!(bot = %bot, connection = id, error = %e, "OneBot connection failed");
                    return None;
                }
            }
        }
    }

    /// Asks once what the implementation offers.
    fn discover_once(&mut self) {
        if !std::mem::replace(&mut self.discovered, true) {
            tokio::spawn(discover(
                Arc::clone(&self.state),
                self.bot.clone(),
                Arc::clone(&self.connection),
            ));
        }
    }

    /// Handles a meta event (connect, heartbeat, status update); whether `event` was one.
    fn on_meta(&mut self, event: &crate::wire::onebot::protocol::Event) -> bool {
        let (bot, connection) = (&self.bot, &self.connection);
        match &event.body {
            EventBody::Connect {
                implementation,
                version,
            } => {
                info!(bot = %bot, connection = connection.id, implementation = %implementation,
                    version = %version, "OneBot implementation connected");
                *connection
                    .implementation
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = implementation.clone();
            }
            EventBody::Heartbeat { interval_ms } => {
                // The implementation's own rhythm; never below a second, so that a bogus value
                // cannot make the watchdog close a healthy link.
                self.interval = Duration::from_millis(*interval_ms).max(Duration::from_secs(1));
                return true;
            }
            EventBody::StatusUpdate { bots, .. } => {
                for (account, online) in bots {
                    let key = AccountKey {
                        bot: bot.clone(),
                        user_id: account.user_id.clone(),
                    };
                    if *online {
                        attach(&self.state, connection, key, account);
                    } else {
                        self.state.hub.detach(&key, connection.id);
                    }
                }
            }
            _ => return false,
        }
        self.discover_once();
        true
    }

    /// Routes the account an event is for to this connection, and hands the event to the worker
    /// of its group (events that are not the domain's, or carry impossible ids, are logged).
    async fn dispatch(&mut self, event: &crate::wire::onebot::protocol::Event) {
        let bot = self.bot.clone();
        if let Some(account) = &event.self_id {
            let key = AccountKey {
                bot: bot.clone(),
                user_id: account.user_id.clone(),
            };
            if self
                .state
                .hub
                .route(&key)
                .is_none_or(|(c, _)| c.id != self.connection.id)
            {
                attach(&self.state, &self.connection, key, account);
            }
            self.discover_once();
        }
        let domain = match to_domain(&bot, event, Utc::now()) {
            Converted::Domain(domain) => domain,
            Converted::NotDomain(why) => {
                debug!(bot = %bot, id = %event.id, why, "event not acted on");
                return;
            }
        };
        if let Some(field) = domain.oversized_id() {
            warn!(bot = %bot, id = %crate::channels::untrusted::Untrusted(&event.id), field,
                "event refused: an id longer than a channel sends");
            return;
        }
        let worker = domain
            .chat_id()
            .map(|chat| {
                let mut hasher = DefaultHasher::new();
                chat.hash(&mut hasher);
                (hasher.finish() % WORKERS as u64) as usize
            })
            .unwrap_or_default();
        if self.workers[worker].send(*domain).await.is_err() {
            error!(bot = %bot, connection = self.connection.id, "event worker stopped; event not handled");
        }
    }
}

/// Routes `key` to this connection; a newly routed account is brought up to date.
fn attach(
    state: &Arc<OneBotChannel>,
    connection: &Arc<Connection>,
    key: AccountKey,
    account: &SelfId,
) {
    if state.hub.attach(key.clone(), &account.platform, connection) {
        let every = state.config.sync_interval_minutes.saturating_mul(60);
        roster::account_online(
            Arc::clone(&state.services),
            Arc::clone(&state.hub),
            key,
            Duration::from_secs(every),
        );
    }
}

/// After `meta.connect`: learns what the implementation offers and which accounts it carries.
async fn discover(state: Arc<OneBotChannel>, bot: BotId, connection: Arc<Connection>) {
    let timeout = state.hub.timeout();
    match connection
        .call(
            state.hub.echo(),
            "get_supported_actions",
            json!({}),
            None,
            timeout,
        )
        .await
    {
        Ok(Value::Array(actions)) => {
            let actions: std::collections::HashSet<String> = actions
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            info!(bot = %bot, connection = connection.id, actions = actions.len(),
                removal = actions.contains(REMOVE_ACTION), "supported actions known");
            connection.set_supported(actions);
        }
        Ok(other) => {
            warn!(bot = %bot, answer = %truncated(&other.to_string()),
                "get_supported_actions gave no list: optional actions are not used");
            connection.set_supported(Default::default());
        }
        Err(e) => {
            warn!(bot = %bot, error = %e, "get_supported_actions failed: optional actions are not used");
            connection.set_supported(Default::default());
        }
    }
    match connection
        .call(state.hub.echo(), "get_status", json!({}), None, timeout)
        .await
    {
        Ok(status) => {
            let bots = status
                .get("bots")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for entry in bots {
                let online = entry
                    .get("online")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let Some(account) = entry
                    .get("self")
                    .and_then(|s| serde_json::from_value::<SelfId>(s.clone()).ok())
                else {
                    continue;
                };
                if online {
                    let key = AccountKey {
                        bot: bot.clone(),
                        user_id: account.user_id.clone(),
                    };
                    attach(&state, &connection, key, &account);
                }
            }
        }
        Err(e) => {
            info!(bot = %bot, error = %e, "get_status failed: accounts are learnt from their events")
        }
    }
}

/// Writes queued frames and pings until the connection closes.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut frames: mpsc::Receiver<String>,
    ping_every: Duration,
    connection: Arc<Connection>,
) {
    let close = connection.close.clone();
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    loop {
        let message = tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => Message::Text(frame.into()),
                None => break,
            },
            _ = ping.tick() => Message::Ping(Vec::new().into()),
            () = close.cancelled() => break,
        };
        if let Err(e) = sink.send(message).await {
            debug!(error = %e, "OneBot socket write failed");
            close.cancel();
            break;
        }
    }
    // The peer learns why: going away at shutdown, replaced, silent; a plain close otherwise.
    let frame = connection
        .close_reason()
        .map(|(code, reason)| axum::extract::ws::CloseFrame {
            code,
            reason: reason.into(),
        });
    let _ = sink.send(Message::Close(frame)).await;
}

/// Handles one worker's events in order.
async fn handle_events(
    state: Arc<OneBotChannel>,
    connection: Arc<Connection>,
    mut events: mpsc::Receiver<Event>,
) {
    while let Some(event) = events.recv().await {
        let caps = crate::wire::onebot::capabilities(
            connection.supports(REMOVE_ACTION),
            connection.supports(crate::wire::onebot::hub::DELETE_ACTION),
        );
        let (bot, chat, account) = (
            event.bot.clone(),
            event.chat_id().cloned(),
            event.account.clone(),
        );
        let dedupe_key = crate::runtime::dedupe::dedupe_key(&event.bot, &event.msg_id);
        let added = event.kind == crate::domain::EventKind::BotAdded;
        // Nothing on the socket acknowledges an event: the reply need not wait for the commit.
        let reply = match inbound::handle_queued(&state.services, event, caps).await {
            Ok(Handled::New(reply)) if added => {
                if let (Some(chat), Some(account)) = (chat.clone(), account.clone()) {
                    let key = AccountKey {
                        bot: bot.clone(),
                        user_id: account,
                    };
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        roster::sync_group(&state.services, &state.hub, &key, &chat).await
                    });
                }
                reply
            }
            Ok(Handled::New(reply) | Handled::NotSaved(reply)) => reply,
            Ok(Handled::Duplicate(_)) => None,
            Err(_) => {
                error!(bot = %bot, "pipeline stopped; OneBot event not handled");
                None
            }
        };
        let (Some(reply), Some(chat), Some(account)) = (reply, chat, account) else {
            continue;
        };
        let key = AccountKey {
            bot,
            user_id: account,
        };
        send_reply(&state, &connection, key, chat.as_str(), reply, dedupe_key).await;
    }
}

/// Writes the reply now; its answer is awaited aside (the next event's reply need not wait for
/// it), and a reply the implementation could not take goes to the outbox.
async fn send_reply(
    state: &Arc<OneBotChannel>,
    connection: &Arc<Connection>,
    key: AccountKey,
    group: &str,
    reply: Reply,
    dedupe_key: String,
) {
    let account = state
        .hub
        .route(&key)
        .map(|(_, account)| account)
        .unwrap_or(SelfId {
            platform: String::new(),
            user_id: key.user_id.clone(),
        });
    let params = reply_params(group, &reply);
    let sent = connection
        .request(state.hub.echo(), "send_message", params, Some(&account))
        .await;
    let state = Arc::clone(state);
    let group = group.to_owned();
    let timeout = state.hub.timeout();
    tokio::spawn(async move {
        let failed = match sent {
            Ok(pending) => pending.answer(timeout).await.err(),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            reply_failed(&state, key, &group, reply, dedupe_key, e).await;
        }
    });
}

/// A reply that did not go through: retried through the outbox when that may help.
async fn reply_failed(
    state: &OneBotChannel,
    key: AccountKey,
    group: &str,
    reply: Reply,
    dedupe_key: String,
    error: CallError,
) {
    if !error.is_retryable() {
        error!(bot = %key.bot, account = %key.user_id, group, error = %error, class = error.class(),
            "reply refused by the implementation; not retried");
        return;
    }
    warn!(bot = %key.bot, account = %key.user_id, group, error = %error,
        "reply not taken now; it goes through the outbox");
    let send = NewSend {
        key: format!("reply:{dedupe_key}"),
        chat: Some(crate::domain::ChatId::new(group)),
        bot: Some(key.bot.clone()),
        to: Destination::Account {
            account: key.user_id.clone(),
        },
        message: crate::engine::reply_as_post(reply),
        purpose: "reply".into(),
        run: None,
        not_before: None,
        skip: None,
    };
    if let Err(e) = state.services.outbox.enqueue(vec![send]).await {
        error!(bot = %key.bot, group, error = %e, "the reply could not be queued either");
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(200).collect()
}
