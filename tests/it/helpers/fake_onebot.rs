//! A fake OneBot 12 implementation: a WebSocket client that connects to the service with a
//! token and the `12.fake` sub-protocol, sends `meta.connect`, heartbeats and a status update,
//! sends the group events a test asks for, and answers the service's actions the way an
//! implementation does: from its own list of groups and members, with failures, unsupported
//! actions and slow answers when told to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const PLATFORM: &str = "wechat";

/// How the fake answers one action.
#[derive(Debug, Clone)]
pub enum Reaction {
    /// `status: failed` with this retcode.
    Fail(i64),
    /// Answer only after this long.
    Delay(Duration),
}

/// What the implementation knows and how it behaves; shared with its connection task.
#[derive(Debug, Default)]
pub struct World {
    /// Group id → (name, member ids).
    pub groups: HashMap<String, (String, Vec<String>)>,
    /// Actions it offers (`get_supported_actions`); others answer 10002.
    pub supported: Vec<String>,
    /// Reactions queued per action, used once each.
    pub reactions: HashMap<String, VecDeque<Reaction>>,
    /// Removals it pretends to perform without removing anyone.
    pub lie_about_removals: bool,
    /// Every action request received, in order.
    pub requests: Vec<Value>,
    /// Files `get_file` answers with, by file id.
    pub files: HashMap<String, Vec<u8>>,
    /// Skip `meta.connect` (an implementation that starts with its status).
    pub skip_connect: bool,
    /// The account's contacts: a private message to anyone else is refused, as WeChat refuses
    /// messages to people who are not friends.
    pub contacts: Vec<String>,
}

/// One connected fake implementation.
pub struct FakeOneBot {
    pub account: String,
    pub world: Arc<Mutex<World>>,
    out: mpsc::UnboundedSender<Message>,
    task: tokio::task::JoinHandle<()>,
    silence: Arc<tokio::sync::Notify>,
    nonce: u32,
    next_id: std::sync::atomic::AtomicU64,
    /// The close frame the service sent (code, reason), once it closed the connection.
    closed_with: Arc<Mutex<Option<(u16, String)>>>,
}

/// The actions every fake offers.
pub const STANDARD: [&str; 8] = [
    "send_message",
    "delete_message",
    "get_group_info",
    "get_group_list",
    "get_group_member_list",
    "get_supported_actions",
    "get_status",
    "upload_file",
];

impl World {
    pub fn with_groups(groups: &[(&str, &str, &[&str])], extra_actions: &[&str]) -> World {
        World {
            groups: groups
                .iter()
                .map(|(id, name, members)| {
                    (
                        id.to_string(),
                        (
                            name.to_string(),
                            members.iter().map(|m| m.to_string()).collect(),
                        ),
                    )
                })
                .collect(),
            supported: STANDARD
                .iter()
                .chain(extra_actions)
                .map(|s| s.to_string())
                .collect(),
            ..World::default()
        }
    }
}

/// Why a connection attempt failed: the HTTP status when the service refused the upgrade.
#[derive(Debug)]
pub struct Refused(pub Option<u16>);

impl FakeOneBot {
    /// Connects to `url` presenting `token` as a Bearer header (or, with `in_query`, as
    /// `?access_token=`).
    pub async fn connect(
        url: &str,
        token: Option<&str>,
        in_query: bool,
        account: &str,
        world: Arc<Mutex<World>>,
    ) -> Result<FakeOneBot, Refused> {
        let url = match (token, in_query) {
            (Some(t), true) => format!("{url}?access_token={t}"),
            _ => url.to_owned(),
        };
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "12.fake".parse().unwrap());
        if let (Some(t), false) = (token, in_query) {
            request
                .headers_mut()
                .insert("Authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (socket, response) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(Refused(Some(response.status().as_u16())));
            }
            Err(_) => return Err(Refused(None)),
        };
        assert_eq!(
            response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap()),
            Some("12.fake"),
            "the service echoes the OneBot sub-protocol"
        );
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (mut sink, mut stream) = socket.split();
        let answers = out.clone();
        let account_id = account.to_owned();
        let shared = Arc::clone(&world);
        let silence = Arc::new(tokio::sync::Notify::new());
        let quiet = Arc::clone(&silence);
        let closed_with = Arc::new(Mutex::new(None));
        let close_seen = Arc::clone(&closed_with);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = outgoing.recv() => match frame {
                        Some(Message::Close(_)) | None => {
                            let _ = sink.send(Message::Close(None)).await;
                            return;
                        }

                        Some(frame) => if sink.send(frame).await.is_err() { return },
                    },
                    // Hold the socket, never touch it again.
                    () = quiet.notified() => {
                        let _keep = (sink, stream);
                        std::future::pending::<()>().await;
                        return;
                    }
                    incoming = stream.next() => match incoming {
                        Some(Ok(Message::Text(text))) => {
                            let request: Value = serde_json::from_str(text.as_str()).unwrap();
                            answer(&shared, &account_id, request, answers.clone());
                        }
                        Some(Ok(Message::Close(frame))) => {
                            *close_seen.lock().unwrap() =
                                frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                            return;
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                }
            }
        });
        let fake = FakeOneBot {
            account: account.to_owned(),
            world,
            out,
            task,
            silence,
            closed_with,
            nonce: rand::random(),
            next_id: std::sync::atomic::AtomicU64::new(1),
        };
        let skip_connect = fake.world.lock().unwrap().skip_connect;
        if !skip_connect {
            fake.send(json!({
                "id": fake.id(), "time": now(), "type": "meta", "detail_type": "connect", "sub_type": "",
                "version": {"impl": "fake", "version": "1.0", "onebot_version": "12"}
            }));
        }
        fake.send(json!({
            "id": fake.id(), "time": now(), "type": "meta", "detail_type": "status_update", "sub_type": "",
            "status": {"good": true, "bots": [{"self": fake.self_json(), "online": true}]}
        }));
        Ok(fake)
    }

    fn id(&self) -> String {
        // Unique across connections, as real implementations' ids (UUIDs) are.
        format!(
            "{}-{}-ev{}",
            self.account,
            self.nonce,
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }

    fn self_json(&self) -> Value {
        json!({"platform": PLATFORM, "user_id": self.account})
    }

    /// Sends a raw frame.
    pub fn send(&self, frame: Value) {
        let _ = self.out.send(Message::Text(frame.to_string().into()));
    }

    /// Sends a text frame as it is (bad input).
    pub fn send_text(&self, text: &str) {
        let _ = self.out.send(Message::Text(text.to_owned().into()));
    }

    pub fn heartbeat(&self, interval_ms: u64) {
        self.send(json!({
            "id": self.id(), "time": now(), "type": "meta", "detail_type": "heartbeat",
            "sub_type": "", "interval": interval_ms
        }));
    }

    /// A group message with `segments`; returns its event id.
    pub fn message(&self, group: &str, user: &str, segments: Value) -> String {
        let id = self.id();
        self.send(json!({
            "id": id, "time": now(), "type": "message", "detail_type": "group", "sub_type": "",
            "self": self.self_json(), "message_id": format!("m-{id}"), "group_id": group,
            "user_id": user, "message": segments, "alt_message": ""
        }));
        id
    }

    /// A plain text group message; returns its event id.
    pub fn text(&self, group: &str, user: &str, text: &str) -> String {
        self.message(
            group,
            user,
            json!([{"type": "text", "data": {"text": text}}]),
        )
    }

    /// A member notice (`group_member_increase` / `group_member_decrease`) with event `id`.
    pub fn notice(
        &self,
        id: &str,
        detail: &str,
        sub: &str,
        group: &str,
        user: &str,
        operator: &str,
    ) {
        {
            let mut world = self.world.lock().unwrap();
            if let Some((_, members)) = world.groups.get_mut(group) {
                match detail {
                    "group_member_increase" if !members.iter().any(|m| m == user) => {
                        members.push(user.to_owned())
                    }
                    "group_member_decrease" => members.retain(|m| m != user),
                    _ => {}
                }
            }
        }
        self.send(json!({
            "id": id, "time": now(), "type": "notice", "detail_type": detail, "sub_type": sub,
            "self": self.self_json(), "group_id": group, "user_id": user, "operator_id": operator
        }));
    }

    /// Requests received for `action`.
    pub fn requests(&self, action: &str) -> Vec<Value> {
        let world = self.world.lock().unwrap();
        world
            .requests
            .iter()
            .filter(|r| r["action"] == action)
            .cloned()
            .collect()
    }

    /// Waits until `count` requests for `action` arrived, returning them.
    pub async fn wait_requests(&self, action: &str, count: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let found = self.requests(action);
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{action}: {} of {count} requests within {within:?}: {:?}",
                found.len(),
                self.world.lock().unwrap().requests
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queues a reaction for the next request of `action`.
    pub fn react(&self, action: &str, reaction: Reaction) {
        self.world
            .lock()
            .unwrap()
            .reactions
            .entry(action.to_owned())
            .or_default()
            .push_back(reaction);
    }

    /// Closes the connection (as an implementation does before reconnecting).
    pub async fn disconnect(self) {
        let _ = self.out.send(Message::Close(None));
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }

    /// Whether the connection has ended (the service closed it).
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// The code and reason of the service's close frame, if it sent one with them.
    pub fn close_frame(&self) -> Option<(u16, String)> {
        self.closed_with.lock().unwrap().clone()
    }

    /// Stops reading and writing but keeps the socket open: pings go unanswered (a hung
    /// implementation or a dead link that TCP has not noticed).
    pub fn go_silent(&self) {
        self.silence.notify_one();
    }
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// The text of a `send_message` request (its text segments joined).
pub fn sent_text(request: &Value) -> String {
    request["params"]["message"]
        .as_array()
        .map(|segments| {
            segments
                .iter()
                .filter(|s| s["type"] == "text")
                .filter_map(|s| s["data"]["text"].as_str())
                .collect::<String>()
        })
        .unwrap_or_default()
}

/// The users a `send_message` request mentions.
pub fn sent_mentions(request: &Value) -> Vec<String> {
    request["params"]["message"]
        .as_array()
        .map(|segments| {
            segments
                .iter()
                .filter(|s| s["type"] == "mention")
                .filter_map(|s| s["data"]["user_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Answers one action request, after its reaction's delay if any.
fn answer(
    world: &Arc<Mutex<World>>,
    account: &str,
    request: Value,
    out: mpsc::UnboundedSender<Message>,
) {
    let action = request["action"].as_str().unwrap_or_default().to_owned();
    let echo = request["echo"].clone();
    let (reaction, response) = {
        let mut w = world.lock().unwrap();
        w.requests.push(request.clone());
        let reaction = w.reactions.get_mut(&action).and_then(VecDeque::pop_front);
        let response = if !w.supported.contains(&action) {
            failed(10002, "unsupported action")
        } else {
            perform(&mut w, account, &action, &request["params"])
        };
        (reaction, response)
    };
    let mut response = match reaction {
        Some(Reaction::Fail(retcode)) => failed(retcode, "refused by the fake"),
        _ => response,
    };
    response["echo"] = echo;
    let delay = match reaction {
        Some(Reaction::Delay(d)) => d,
        _ => Duration::ZERO,
    };
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = out.send(Message::Text(response.to_string().into()));
    });
}

fn ok(data: Value) -> Value {
    json!({"status": "ok", "retcode": 0, "data": data, "message": ""})
}

fn failed(retcode: i64, message: &str) -> Value {
    json!({"status": "failed", "retcode": retcode, "data": null, "message": message})
}

fn perform(world: &mut World, account: &str, action: &str, params: &Value) -> Value {
    let group = params["group_id"].as_str().unwrap_or_default();
    match action {
        "get_supported_actions" => ok(json!(world.supported)),
        "get_status" => ok(json!({
            "good": true,
            "bots": [{"self": {"platform": PLATFORM, "user_id": account}, "online": true}]
        })),
        "get_group_list" => ok(Value::Array(
            world
                .groups
                .iter()
                .map(|(id, (name, _))| json!({"group_id": id, "group_name": name}))
                .collect(),
        )),
        "get_group_info" => match world.groups.get(group) {
            Some((name, _)) => ok(json!({"group_id": group, "group_name": name})),
            None => failed(35001, "no such group"),
        },
        "get_group_member_list" => match world.groups.get(group) {
            Some((_, members)) => ok(Value::Array(
                members
                    .iter()
                    .map(|m| json!({"user_id": m, "user_name": format!("名{m}"), "user_displayname": ""}))
                    .collect(),
            )),
            None => failed(35001, "no such group"),
        },
        "send_message" if params["detail_type"] == "private" => {
            let user = params["user_id"].as_str().unwrap_or_default();
            if world.contacts.iter().any(|c| c == user) {
                ok(json!({"message_id": format!("sent-{}", world.requests.len()), "time": now()}))
            } else {
                failed(35003, "not a contact of this account")
            }
        }
        "send_message" => {
            if world.groups.contains_key(group) {
                ok(json!({"message_id": format!("sent-{}", world.requests.len()), "time": now()}))
            } else {
                failed(35001, "no such group")
            }
        }
        "upload_file" => ok(json!({"file_id": "file-1"})),
        "delete_message" => ok(Value::Null),
        "get_file" => match params["file_id"].as_str().and_then(|id| world.files.get(id)) {
            Some(bytes) => {
                use base64::Engine;
                ok(json!({
                    "name": "image.png",
                    "data": base64::engine::general_purpose::STANDARD.encode(bytes),
                }))
            }
            None => failed(35001, "no such file"),
        },
        "wx.delete_groupmember" => {
            let users: Vec<String> = params["user_list"]
                .as_array()
                .map(|u| u.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let lie = world.lie_about_removals;
            match world.groups.get_mut(group) {
                Some((_, members)) => {
                    if !lie {
                        members.retain(|m| !users.contains(m));
                    }
                    ok(Value::Null)
                }
                None => failed(35001, "no such group"),
            }
        }
        _ => failed(10002, "unsupported action"),
    }
}
