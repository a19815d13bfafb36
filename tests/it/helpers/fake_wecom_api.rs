//! A local fake of WeCom's server API as a self-built app with customer-contact rights sees it:
//! access tokens that expire (42001) or are unknown (40014), a wrong secret (40001), customer
//! groups listed a few per page with cursors, `groupchat/get` failing for chosen groups, busy
//! answers (45009), mass-send tasks whose results change when an owner confirms, reminders, the
//! corp's mass-send list, and group welcome templates. Every call is recorded.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const CORP_ID: &str = "wwfakecorp0001";
pub const APP_SECRET: &str = "app-secret-for-tests";

/// One customer group.
#[derive(Debug, Clone)]
pub struct FakeGroup {
    pub name: String,
    pub owner: String,
    pub admins: Vec<String>,
    /// (userid, type (1 employee, 2 customer), name, join_scene)
    pub members: Vec<(String, u8, String, u8)>,
}

impl FakeGroup {
    /// A group owned by `owner` (an employee) with `customers` customers.
    pub fn with_customers(name: &str, owner: &str, customers: usize) -> FakeGroup {
        let mut members = vec![(owner.to_owned(), 1, format!("{owner}老师"), 1)];
        members.extend((0..customers).map(|i| (format!("wm{name}-{i}"), 2, format!("学员{i}"), 3)));
        FakeGroup {
            name: name.to_owned(),
            owner: owner.to_owned(),
            admins: Vec::new(),
            members,
        }
    }
}

/// One mass-send task.
#[derive(Debug, Clone)]
pub struct FakeTask {
    pub msgid: String,
    pub sender: String,
    pub chats: Vec<String>,
    pub text: String,
    pub created_at: i64,
    /// Set when the owner confirmed (unix seconds).
    pub sent_at: Option<i64>,
    /// Per chat, a failure status (2, 3) instead of 1 once sent.
    pub failed: HashMap<String, u8>,
    pub reminders: usize,
    /// Stopped (`cancel_groupmsg_send`): the owner can no longer send it.
    pub cancelled: bool,
}

#[derive(Default)]
struct Inner {
    groups: BTreeMap<String, FakeGroup>,
    /// Token → when it expires.
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    /// `groupchat/get` answers this errcode for these groups.
    failing: HashMap<String, i64>,
    /// Answer 45009 to this many calls (any API but gettoken).
    busy: usize,
    /// After this many more calls, every issued token expires (42001 from then on).
    expire_after: Option<usize>,
    /// The next `add_msg_template` creates its task but the answer is lost (HTTP 502).
    lose_next_add: bool,
    tasks: Vec<FakeTask>,
    templates: BTreeMap<String, String>,
    next_id: usize,
    /// (api path, body) of every call after gettoken.
    calls: Vec<(String, Value)>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeWecomApi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// Groups per `groupchat/list` page (whatever the caller's limit).
    page: usize,
    latency: Duration,
}

type Shared = State<FakeWecomApi>;

impl FakeWecomApi {
    pub async fn start(groups: Vec<(&str, FakeGroup)>) -> FakeWecomApi {
        Self::start_with(groups, 2, Duration::ZERO).await
    }

    /// A fake answering `page` groups per list page, each answer after `latency`.
    pub async fn start_with(
        groups: Vec<(&str, FakeGroup)>,
        page: usize,
        latency: Duration,
    ) -> FakeWecomApi {
        let inner = Inner {
            groups: groups
                .into_iter()
                .map(|(id, g)| (id.to_owned(), g))
                .collect(),
            ..Inner::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeWecomApi {
            addr: listener.local_addr().unwrap(),
            inner: Arc::new(Mutex::new(inner)),
            page,
            latency,
        };
        let app = axum::Router::new()
            .route("/cgi-bin/gettoken", get(gettoken))
            .route("/cgi-bin/externalcontact/{*api}", post(api))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    pub fn tokens_issued(&self) -> usize {
        self.with(|i| i.tokens_issued)
    }

    pub fn fail_get(&self, chat: &str, errcode: i64) {
        self.with(|i| i.failing.insert(chat.to_owned(), errcode));
    }

    pub fn busy(&self, calls: usize) {
        self.with(|i| i.busy = calls);
    }

    /// Every token expires after `calls` more calls.
    pub fn expire_tokens_after(&self, calls: usize) {
        self.with(|i| i.expire_after = Some(calls));
    }

    pub fn lose_next_add(&self) {
        self.with(|i| i.lose_next_add = true);
    }

    pub fn set_group(&self, id: &str, group: FakeGroup) {
        self.with(|i| i.groups.insert(id.to_owned(), group));
    }

    pub fn remove_group(&self, id: &str) {
        self.with(|i| i.groups.remove(id));
    }

    pub fn add_member(&self, chat: &str, user: &str, name: &str, scene: u8) {
        self.with(|i| {
            if let Some(g) = i.groups.get_mut(chat) {
                g.members.push((user.to_owned(), 2, name.to_owned(), scene));
            }
        });
    }

    pub fn remove_member(&self, chat: &str, user: &str) {
        self.with(|i| {
            if let Some(g) = i.groups.get_mut(chat) {
                g.members.retain(|m| m.0 != user);
            }
        });
    }

    /// The calls made to `api` (a path under `externalcontact/`), in order.
    pub fn calls(&self, api: &str) -> Vec<Value> {
        self.with(|i| {
            i.calls
                .iter()
                .filter(|(path, _)| path == api)
                .map(|(_, body)| body.clone())
                .collect()
        })
    }

    pub fn tasks(&self) -> Vec<FakeTask> {
        self.with(|i| i.tasks.clone())
    }

    pub fn templates(&self) -> BTreeMap<String, String> {
        self.with(|i| i.templates.clone())
    }

    /// `sender` confirms every task of theirs not sent yet.
    pub fn confirm(&self, sender: &str) {
        let now = chrono::Utc::now().timestamp();
        self.with(|i| {
            for t in i
                .tasks
                .iter_mut()
                .filter(|t| t.sender == sender && !t.cancelled)
            {
                t.sent_at.get_or_insert(now);
            }
        });
    }

    /// In `msgid`'s task, `chat` fails with `status` once sent.
    pub fn fail_in_task(&self, msgid: &str, chat: &str, status: u8) {
        self.with(|i| {
            if let Some(t) = i.tasks.iter_mut().find(|t| t.msgid == msgid) {
                t.failed.insert(chat.to_owned(), status);
            }
        });
    }

    /// Waits until `check` holds for the tasks, returning them.
    pub async fn wait_tasks(&self, check: impl Fn(&[FakeTask]) -> bool) -> Vec<FakeTask> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tasks = self.tasks();
            if check(&tasks) {
                return tasks;
            }
            assert!(
                Instant::now() < deadline,
                "tasks never became as expected: {tasks:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `api` was called `n` times.
    pub async fn wait_calls(&self, api: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls(api);
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "{api} called {} times, not {n}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn gettoken(State(fake): Shared, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    tokio::time::sleep(fake.latency).await;
    if q.get("corpid").map(String::as_str) != Some(CORP_ID) {
        return Json(json!({"errcode": 40013, "errmsg": "invalid corpid"}));
    }
    if q.get("corpsecret").map(String::as_str) != Some(APP_SECRET) {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    let token = fake.with(|i| {
        i.tokens_issued += 1;
        let token = format!("ACCESS{}", i.tokens_issued);
        i.tokens
            .insert(token.clone(), Instant::now() + Duration::from_secs(7200));
        token
    });
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
}

fn err(errcode: i64, errmsg: &str) -> Response {
    Json(json!({"errcode": errcode, "errmsg": errmsg})).into_response()
}

async fn api(
    State(fake): Shared,
    Path(api): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    tokio::time::sleep(fake.latency).await;
    let token = q.get("access_token").cloned().unwrap_or_default();
    let page = fake.page;
    let mut inner = fake.inner.lock().unwrap();
    let inner = &mut *inner;
    if let Some(left) = inner.expire_after.as_mut() {
        if *left == 0 {
            let past = Instant::now() - Duration::from_secs(1);
            inner.tokens.values_mut().for_each(|t| *t = past);
            inner.expire_after = None;
        } else {
            *left -= 1;
        }
    }
    match inner.tokens.get(&token) {
        None => return err(40014, "invalid access_token"),
        Some(expires) if *expires <= Instant::now() => {
            return err(42001, "access_token expired");
        }
        Some(_) => {}
    }
    inner.calls.push((api.clone(), body.clone()));
    if inner.busy > 0 {
        inner.busy -= 1;
        return err(45009, "api freq out of limit");
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let now = chrono::Utc::now().timestamp();
    match api.as_str() {
        "groupchat/list" => {
            let after = s(&body, "cursor");
            let ids: Vec<&String> = inner
                .groups
                .keys()
                .filter(|id| after.is_empty() || id.as_str() > after.as_str())
                .take(page)
                .collect();
            let last = ids.last().map(|s| s.to_string()).unwrap_or_default();
            let more = inner.groups.keys().any(|id| id.as_str() > last.as_str());
            Json(json!({
                "errcode": 0, "errmsg": "ok",
                "group_chat_list": ids.iter().map(|id| json!({"chat_id": id, "status": 0})).collect::<Vec<_>>(),
                "next_cursor": if more { last } else { String::new() },
            }))
            .into_response()
        }
        "groupchat/get" => {
            let chat = s(&body, "chat_id");
            if let Some(code) = inner.failing.get(&chat) {
                return err(*code, "fake failure");
            }
            let Some(g) = inner.groups.get(&chat) else {
                return err(40050, "chatid not found");
            };
            Json(json!({"errcode": 0, "errmsg": "ok", "group_chat": {
                "chat_id": chat, "name": g.name, "owner": g.owner, "create_time": 1_600_000_000,
                "notice": "", "member_version": format!("v{}", g.members.len()),
                "member_list": g.members.iter().map(|(id, kind, name, scene)| json!({
                    "userid": id, "type": kind, "join_time": 1_600_000_000, "join_scene": scene,
                    "name": name, "group_nickname": ""})).collect::<Vec<_>>(),
                "admin_list": g.admins.iter().map(|a| json!({"userid": a})).collect::<Vec<_>>(),
            }}))
            .into_response()
        }
        "add_msg_template" => {
            let sender = s(&body, "sender");
            let chats: Vec<String> = body["chat_id_list"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let text = body["text"]["content"].as_str().unwrap_or("").to_owned();
            if body["chat_type"] != "group" || sender.is_empty() || chats.is_empty() {
                return err(40058, "invalid parameter");
            }
            if chats.len() > 2000 || text.len() > 4000 {
                return err(40058, "too many chats or text too long");
            }
            let (ok, fail): (Vec<String>, Vec<String>) = chats
                .into_iter()
                .partition(|c| inner.groups.get(c).is_some_and(|g| g.owner == sender));
            inner.next_id += 1;
            let msgid = format!("msgGROUP{}", inner.next_id);
            inner.tasks.push(FakeTask {
                msgid: msgid.clone(),
                sender,
                chats: ok,
                text,
                created_at: now,
                sent_at: None,
                failed: HashMap::new(),
                reminders: 0,
                cancelled: false,
            });
            if std::mem::take(&mut inner.lose_next_add) {
                return StatusCode::BAD_GATEWAY.into_response();
            }
            Json(json!({"errcode": 0, "errmsg": "ok", "fail_list": fail, "msgid": msgid}))
                .into_response()
        }
        "get_groupmsg_task" => {
            let msgid = s(&body, "msgid");
            let Some(t) = inner.tasks.iter().find(|t| t.msgid == msgid) else {
                return err(41062, "msgid not found");
            };
            Json(
                json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "task_list": [
                {"userid": t.sender, "status": if t.sent_at.is_some() { 2 } else { 0 },
                 "send_time": t.sent_at.unwrap_or(0)}]}),
            )
            .into_response()
        }
        "get_groupmsg_send_result" => {
            let msgid = s(&body, "msgid");
            let userid = s(&body, "userid");
            let Some(t) = inner.tasks.iter().find(|t| t.msgid == msgid) else {
                return err(41062, "msgid not found");
            };
            let list: Vec<Value> = t
                .chats
                .iter()
                .filter(|_| t.sender == userid)
                .map(|c| {
                    let status = match t.sent_at {
                        None => 0,
                        Some(_) => t.failed.get(c).copied().unwrap_or(1),
                    };
                    let mut item = json!({"chat_id": c, "userid": t.sender, "status": status});
                    if status == 1 {
                        item["send_time"] = json!(t.sent_at);
                    }
                    item
                })
                .collect();
            Json(json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": list}))
                .into_response()
        }
        "remind_groupmsg_send" => {
            let msgid = s(&body, "msgid");
            let Some(t) = inner.tasks.iter_mut().find(|t| t.msgid == msgid) else {
                return err(41062, "msgid not found");
            };
            t.reminders += 1;
            err(0, "ok")
        }
        "cancel_groupmsg_send" => {
            let msgid = s(&body, "msgid");
            match inner.tasks.iter().position(|t| t.msgid == msgid) {
                Some(i) if inner.tasks[i].sent_at.is_none() => {
                    inner.tasks[i].cancelled = true;
                    err(0, "ok")
                }
                Some(_) => err(41068, "already sent"),
                None => err(41062, "msgid not found"),
            }
        }
        "get_groupmsg_list_v2" => {
            let start = body["start_time"].as_i64().unwrap_or(0);
            let end = body["end_time"].as_i64().unwrap_or(i64::MAX);
            let list: Vec<Value> = inner
                .tasks
                .iter()
                .filter(|t| t.created_at >= start && t.created_at <= end)
                .map(|t| {
                    json!({"msgid": t.msgid, "create_type": 0,
                    "create_time": t.created_at.to_string(), "text": {"content": t.text}})
                })
                .collect();
            Json(json!({"errcode": 0, "errmsg": "ok", "next_cursor": "", "group_msg_list": list}))
                .into_response()
        }
        "group_welcome_template/add" => {
            let text = body["text"]["content"].as_str().unwrap_or("").to_owned();
            if text.is_empty() || text.len() > 3000 {
                return err(40058, "invalid text");
            }
            inner.next_id += 1;
            let id = format!("tpl{}", inner.next_id);
            inner.templates.insert(id.clone(), text);
            Json(json!({"errcode": 0, "errmsg": "ok", "template_id": id})).into_response()
        }
        "group_welcome_template/edit" => {
            let id = s(&body, "template_id");
            let text = body["text"]["content"].as_str().unwrap_or("").to_owned();
            match inner.templates.get_mut(&id) {
                Some(t) => {
                    *t = text;
                    err(0, "ok")
                }
                None => err(41063, "template not found"),
            }
        }
        "group_welcome_template/get" => {
            let id = s(&body, "template_id");
            match inner.templates.get(&id) {
                Some(t) => Json(json!({"errcode": 0, "errmsg": "ok", "text": {"content": t}}))
                    .into_response(),
                None => err(41063, "template not found"),
            }
        }
        "group_welcome_template/del" => {
            let id = s(&body, "template_id");
            match inner.templates.remove(&id) {
                Some(_) => err(0, "ok"),
                None => err(41063, "template not found"),
            }
        }
        _ => err(40050, "unknown api in the fake"),
    }
}
