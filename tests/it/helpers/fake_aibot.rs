//! A fake of WeCom's side of the AI bot's long connection: a WebSocket server that takes
//! `aibot_subscribe` (acking errcode 0 for the right bot id and secret, an error otherwise),
//! answers pings, acks replies and posts (after a delay, or with an errcode, when told to), keeps
//! every frame the service sent, and lets a test push callbacks, drop the link or send
//! `disconnected_event` as WeCom does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The errcode the fake answers a wrong secret with (WeCom's "invalid secret" family).
pub const WRONG_SECRET: i64 = 40001;

/// How the fake answers.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Pings get no ack (a link that looks open but is dead).
    pub ignore_pings: bool,
    /// Replies and posts are acked after this long.
    pub ack_delay: Duration,
    /// Replies and posts are acked with this errcode instead of 0.
    pub ack_errcode: Option<i64>,
    /// Subscriptions are refused with this errcode even with the right secret (45009 after a
    /// quick restart).
    pub refuse_subscribe: Option<i64>,
}

#[derive(Default)]
struct State {
    behaviour: Behaviour,
    /// Every subscription attempt: (bot id, secret, accepted).
    subscriptions: Vec<(String, String, bool)>,
    /// Every frame the service sent, parsed.
    frames: Vec<Value>,
    /// The way to push frames to the connection accepted last, while it is open.
    current: Option<mpsc::UnboundedSender<Message>>,
    connections: usize,
}

pub struct FakeAiBot {
    pub url: String,
    state: Arc<Mutex<State>>,
    next: std::sync::atomic::AtomicU64,
}

impl FakeAiBot {
    /// Listens on a free port for the bot `bot_id` with `secret`.
    pub async fn start(bot_id: &str, secret: &str) -> FakeAiBot {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let (bot_id, secret) = (bot_id.to_owned(), secret.to_owned());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(socket) = tokio_tungstenite::accept_async(tcp).await else {
                    continue;
                };
                tokio::spawn(serve(
                    socket,
                    Arc::clone(&shared),
                    bot_id.clone(),
                    secret.clone(),
                ));
            }
        });
        FakeAiBot {
            url,
            state,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    /// Every subscription attempt so far: (bot id, secret, accepted).
    pub fn subscriptions(&self) -> Vec<(String, String, bool)> {
        self.state.lock().unwrap().subscriptions.clone()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.state
            .lock()
            .unwrap()
            .current
            .as_ref()
            .is_some_and(|c| !c.is_closed())
    }

    /// Waits until `count` subscriptions were accepted.
    pub async fn wait_subscribed(&self, count: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let accepted = self.subscriptions().iter().filter(|s| s.2).count();
            if accepted >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{accepted} subscriptions accepted within {within:?}, wanted {count}: {:?}",
                self.subscriptions()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The frames the service sent with `cmd`.
    pub fn frames(&self, cmd: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .frames
            .iter()
            .filter(|f| f["cmd"] == cmd)
            .cloned()
            .collect()
    }

    /// Waits until the service sent `count` frames with `cmd`; returns them.
    pub async fn wait_frames(&self, cmd: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frames = self.frames(cmd);
            if frames.len() >= count {
                return frames;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} {cmd} frames within {within:?}, wanted {count}",
                frames.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Pushes `frame` to the open connection.
    pub fn push(&self, frame: Value) {
        let state = self.state.lock().unwrap();
        let current = state.current.as_ref().expect("a connection is open");
        current.send(Message::text(frame.to_string())).unwrap();
    }

    /// A fresh id for a callback (`prefix` + a number).
    pub fn id(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{prefix}{n}")
    }

    /// Pushes a group message from `user` in `chat` with id `msgid`, as WeCom does when the bot
    /// is @-mentioned; returns the callback's `req_id`.
    pub fn group_text(&self, chat: &str, user: &str, msgid: &str, text: &str) -> String {
        let req_id = self.id("req-");
        self.push(json!({
            "cmd": "aibot_msg_callback",
            "headers": { "req_id": req_id },
            "body": {
                "msgid": msgid, "aibotid": "aibot-test", "chatid": chat, "chattype": "group",
                "from": { "userid": user }, "msgtype": "text",
                "text": { "content": format!("@会计小喇叭 {text}") },
                "response_url": "https://example.invalid/response",
            },
        }));
        req_id
    }

    /// Sends `disconnected_event` (a newer connection took the bot over) on the open link.
    pub fn replaced(&self) {
        let req_id = self.id("ev-");
        self.push(json!({
            "cmd": "aibot_event_callback",
            "headers": { "req_id": req_id },
            "body": {
                "msgid": self.id("evm-"), "create_time": 1_700_000_000, "aibotid": "aibot-test",
                "from": { "userid": "" }, "msgtype": "event",
                "event": { "eventtype": "disconnected_event" },
            },
        }));
    }

    /// Closes the open connection from WeCom's side.
    pub fn drop_link(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(current) = state.current.take() {
            let _ = current.send(Message::Close(None));
        }
    }
}

/// The reply contents the service sent on `req_id`, in order.
pub fn replies_to(frames: &[Value], req_id: &str) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["headers"]["req_id"] == req_id)
        .map(|f| {
            f["body"]["stream"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn serve(
    socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    state: Arc<Mutex<State>>,
    bot_id: String,
    secret: String,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        s.current = Some(tx.clone());
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let req_id = frame["headers"]["req_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ack = |errcode: i64, errmsg: &str| {
            Message::text(
                json!({ "headers": { "req_id": req_id }, "errcode": errcode, "errmsg": errmsg })
                    .to_string(),
            )
        };
        let behaviour = {
            let mut s = state.lock().unwrap();
            s.frames.push(frame.clone());
            s.behaviour.clone()
        };
        match frame["cmd"].as_str().unwrap_or_default() {
            "aibot_subscribe" => {
                let given_bot = frame["body"]["bot_id"].as_str().unwrap_or_default();
                let given_secret = frame["body"]["secret"].as_str().unwrap_or_default();
                let right = given_bot == bot_id && given_secret == secret;
                let refusal = match (right, behaviour.refuse_subscribe) {
                    (false, _) => Some(WRONG_SECRET),
                    (true, refusal) => refusal,
                };
                state.lock().unwrap().subscriptions.push((
                    given_bot.to_owned(),
                    given_secret.to_owned(),
                    refusal.is_none(),
                ));
                let _ = match refusal {
                    None => tx.send(ack(0, "ok")),
                    Some(code) => tx.send(ack(code, "invalid bot_id or secret")),
                };
            }
            "ping" if !behaviour.ignore_pings => {
                let _ = tx.send(ack(0, "ok"));
            }
            "aibot_respond_msg" | "aibot_respond_welcome_msg" | "aibot_send_msg" => {
                let message = match behaviour.ack_errcode {
                    Some(code) => ack(code, "refused by the fake"),
                    None => ack(0, "ok"),
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(behaviour.ack_delay).await;
                    let _ = tx.send(message);
                });
            }
            _ => {}
        }
    }
    writer.abort();
    let mut s = state.lock().unwrap();
    if s.current.as_ref().is_some_and(|c| c.same_channel(&tx)) {
        s.current = None;
    }
}
