//! A local fake of WeCom's robot webhook (`POST /cgi-bin/webhook/send?key=…`): it records what
//! arrives, enforces WeCom's per-key rate limit (answering 45009 past it, failed sends counted
//! too), and answers scripted errcodes or HTTP statuses per key, or hangs past the client's
//! timeout.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the fake answers to one request.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Errcode(i64),
    Status(u16),
    /// Answers only after this long (past the service's timeout in tests: 1 s). Recorded as
    /// [`HUNG`], not as a delivery.
    Hang(Duration),
}

/// What [`Received::answered`] says for a request the fake hung on.
pub const HUNG: i64 = -1_000_000;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub body: Value,
    pub at: Instant,
    /// The errcode it was answered with (or the HTTP status, negated).
    pub answered: i64,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    scripted: HashMap<String, VecDeque<Answer>>,
    /// One-time chat-info codes: the group's (chat id, name) each tells once.
    chat_info: HashMap<String, (String, String)>,
    /// Chat-info codes asked for, used or not.
    chat_info_asked: Vec<String>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeWecom {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    limit: usize,
    window: Duration,
}

impl FakeWecom {
    /// Starts a fake enforcing WeCom's real limit: 20 per minute per key.
    pub async fn start() -> Self {
        Self::start_with_limit(20, Duration::from_secs(60)).await
    }

    pub async fn start_with_limit(limit: usize, window: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeWecom {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            limit,
            window,
        };
        let app = axum::Router::new()
            .route("/cgi-bin/webhook/send", post(send))
            .route(
                "/cgi-bin/webhook/get_chat_info",
                axum::routing::get(get_chat_info),
            )
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// `host:port`, for `wecom.webhook_hosts`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn webhook_url(&self, key: &str) -> String {
        format!("http://{}/cgi-bin/webhook/send?key={key}", self.addr)
    }

    /// A one-time chat-info link telling `chat`'s `name` (as a robot callback's
    /// `GetChatInfoUrl`); a second use answers an errcode, as WeCom's do.
    pub fn chat_info_url(&self, code: &str, chat: &str, name: &str) -> String {
        self.inner
            .lock()
            .unwrap()
            .chat_info
            .insert(code.to_owned(), (chat.to_owned(), name.to_owned()));
        format!(
            "http://{}/cgi-bin/webhook/get_chat_info?code={code}",
            self.addr
        )
    }

    /// The chat-info codes asked for so far.
    pub fn chat_info_asked(&self) -> Vec<String> {
        self.inner.lock().unwrap().chat_info_asked.clone()
    }

    /// Queues answers for `key`; once used up the fake answers errcode 0.
    pub fn script(&self, key: &str, answers: &[Answer]) {
        self.inner
            .lock()
            .unwrap()
            .scripted
            .entry(key.to_owned())
            .or_default()
            .extend(answers.iter().copied());
    }

    pub fn received(&self, key: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.key == key)
            .cloned()
            .collect()
    }

    pub fn all_received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until `key` has received `n` requests answered with errcode 0.
    pub async fn wait_delivered(&self, key: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok: Vec<Received> = self
                .received(key)
                .into_iter()
                .filter(|r| r.answered == 0)
                .collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                Instant::now() < deadline,
                "key {key}: {} of {n} deliveries after 20 s; received {:?}",
                ok.len(),
                self.received(key)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Records a request and decides its answer (the lock is not held while answering).
fn record(fake: &FakeWecom, key: String, body: Value) -> Answer {
    let now = Instant::now();
    let mut inner = fake.inner.lock().unwrap();
    let recent = inner
        .received
        .iter()
        .filter(|r| r.key == key && now.duration_since(r.at) < fake.window)
        .count();
    let answer = if recent >= fake.limit {
        Answer::Errcode(45009)
    } else {
        inner
            .scripted
            .get_mut(&key)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::Errcode(0))
    };
    let answered = match answer {
        Answer::Errcode(code) => code,
        Answer::Status(status) => -i64::from(status),
        Answer::Hang(_) => HUNG,
    };
    inner.received.push(Received {
        key,
        body,
        at: now,
        answered,
    });
    answer
}

async fn get_chat_info(
    State(fake): State<FakeWecom>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let code = query.get("code").cloned().unwrap_or_default();
    let mut inner = fake.inner.lock().unwrap();
    inner.chat_info_asked.push(code.clone());
    match inner.chat_info.remove(&code) {
        Some((chat, name)) => Json(json!({
            "errcode": 0, "errmsg": "ok", "chatid": chat, "name": name, "chattype": "group",
            "members": [{"userid": "owner", "alias": "owner", "name": "群主"}],
        }))
        .into_response(),
        None => Json(json!({"errcode": 40029, "errmsg": "invalid code"})).into_response(),
    }
}

async fn send(
    State(fake): State<FakeWecom>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let key = query.get("key").cloned().unwrap_or_default();
    let answer = record(&fake, key, body);
    match answer {
        Answer::Errcode(code) => Json(json!({"errcode": code, "errmsg": "fake"})).into_response(),
        Answer::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Answer::Hang(delay) => {
            tokio::time::sleep(delay).await;
            Json(json!({"errcode": 0, "errmsg": "too late"})).into_response()
        }
    }
}
