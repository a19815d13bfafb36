//! The app's event parsing, and its client against a small local fake of WeCom's API.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::*;
use crate::wire::wecom::app::event::AppEvent;

const JOIN: &str = "<xml><ToUserName><![CDATA[ww1234]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>3</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>wmJack</Item><Item>wmRose</Item></MemChangeList><LastMemVer>9c3f</LastMemVer><CurMemVer>71217</CurMemVer></xml>";

#[test]
fn a_join_is_read_with_its_scene_members_and_versions() {
    let change = parse_chat_change(JOIN).unwrap();
    assert_eq!(change.corp_id, "ww1234");
    assert_eq!(change.chat_id, "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA");
    assert_eq!(change.kind, ChatChangeKind::AddMember { scene: 3 });
    assert_eq!(change.members, vec!["wmJack", "wmRose"]);
    assert_eq!(change.member_change_count, 2);
    assert_eq!(change.last_member_version, "9c3f");
    assert_eq!(change.current_member_version, "71217");
    assert_eq!(change.create_time, 1_700_000_000);
}

#[test]
fn leaves_creation_dismissal_and_other_updates_are_read() {
    let leave = JOIN
        .replace("add_member", "del_member")
        .replace("<QuitScene>0", "<QuitScene>1");
    assert_eq!(
        parse_chat_change(&leave).unwrap().kind,
        ChatChangeKind::DelMember { quit_scene: 1 }
    );
    let dismiss = "<xml><ToUserName>ww1</ToUserName><Event>change_external_chat</Event><ChatId>wr1</ChatId><ChangeType>dismiss</ChangeType></xml>";
    assert_eq!(
        parse_chat_change(dismiss).unwrap().kind,
        ChatChangeKind::Dismiss
    );
    let created = dismiss.replace("dismiss", "create");
    assert_eq!(
        parse_chat_change(&created).unwrap().kind,
        ChatChangeKind::Create
    );
    let renamed = JOIN.replace("add_member", "change_name");
    assert_eq!(
        parse_chat_change(&renamed).unwrap().kind,
        ChatChangeKind::ChangeName
    );
    let future = JOIN.replace("add_member", "change_avatar");
    assert_eq!(
        parse_chat_change(&future).unwrap().kind,
        ChatChangeKind::OtherUpdate("change_avatar".into())
    );
}

#[test]
fn other_events_are_told_apart_and_bad_ones_refused() {
    let contact = "<xml><MsgType>event</MsgType><Event>change_external_contact</Event></xml>";
    assert_eq!(
        parse_app_event(contact).unwrap(),
        AppEvent::Other {
            msg_type: "event".into(),
            event: "change_external_contact".into()
        }
    );
    for bad in [
        "<xml><Event>change_external_chat</Event><ChangeType>update</ChangeType></xml>",
        "<xml><Event>change_external_chat</Event><ChatId>x</ChatId></xml>",
        "<xml><Event>change_external_chat</Event><ChatId>x</ChatId><ChangeType>boom</ChangeType></xml>",
        "<xml><Event>change_external_chat",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><xml><Event>&a;</Event></xml>",
        "<a><b><c><d><e><f><g><h><i>deep</i></h></g></f></e></d></c></b></a>",
        "",
    ] {
        assert!(
            parse_chat_change(bad).is_err(),
            "accepted {bad:?}: {:?}",
            parse_chat_change(bad)
        );
    }
}

#[test]
fn a_retry_has_the_same_id_and_another_change_another() {
    let first = parse_chat_change(JOIN).unwrap();
    let again = parse_chat_change(JOIN).unwrap();
    assert_eq!(first.dedupe_id(), again.dedupe_id());
    let next = parse_chat_change(&JOIN.replace("71217", "71218")).unwrap();
    assert_ne!(first.dedupe_id(), next.dedupe_id());
}

#[test]
fn errcodes_are_classed() {
    let api = |errcode| ApiError::Api {
        api: "x",
        errcode,
        errmsg: String::new(),
    };
    assert!(api(45009).is_retryable());
    assert!(api(-1).is_retryable());
    assert!(!api(40003).is_retryable());
    assert_eq!(api(42001).class(), "token");
    assert_eq!(api(45009).class(), "rate_limited");
    assert!(ApiError::Status(502).is_retryable());
    assert!(!ApiError::Status(404).is_retryable());
}

/// What the fake has seen, and how it misbehaves.
#[derive(Default)]
struct Fake {
    tokens_issued: AtomicUsize,
    /// Answer 42001 to the next this-many calls made with the first token.
    expire_first_token: AtomicUsize,
    /// Answer 45009 to the next this-many list calls.
    busy: AtomicUsize,
    list_calls: AtomicUsize,
    /// `expires_in` of the tokens issued (0: 7,200 s).
    lifetime_secs: AtomicUsize,
}

async fn gettoken(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    if q.get("corpsecret").map(String::as_str) != Some("s3cret") {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let lifetime = match fake.lifetime_secs.load(Ordering::SeqCst) {
        0 => 7200,
        secs => secs,
    };
    Json(
        json!({"errcode": 0, "errmsg": "ok", "access_token": format!("TOKEN{n}"), "expires_in": lifetime}),
    )
}

async fn list(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Json<Value> {
    fake.list_calls.fetch_add(1, Ordering::SeqCst);
    if q.get("access_token").map(String::as_str) == Some("TOKEN1")
        && fake
            .expire_first_token
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        return Json(json!({"errcode": 42001, "errmsg": "access_token expired"}));
    }
    if fake
        .busy
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Json(json!({"errcode": 45009, "errmsg": "api freq out of limit"}));
    }
    let page = match body.get("cursor").and_then(Value::as_str) {
        None => {
            json!({"errcode": 0, "group_chat_list": [{"chat_id": "wr1", "status": 0}, {"chat_id": "wr2", "status": 0}], "next_cursor": "p2"})
        }
        Some("p2") => {
            json!({"errcode": 0, "group_chat_list": [{"chat_id": "wr3", "status": 0}], "next_cursor": ""})
        }
        Some(_) => json!({"errcode": 40003, "errmsg": "bad cursor"}),
    };
    Json(page)
}

async fn fake_api(fake: Arc<Fake>) -> String {
    let app = axum::Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/externalcontact/groupchat/list", post(list))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn settings(base: &str, secret: &str) -> AppSettings {
    AppSettings {
        corp_id: "ww1234".into(),
        secret: crate::domain::Secret::new(secret),
        api_base: base.into(),
        sync_interval_secs: 3600,
        result_poll_secs: 300,
        remind_after_secs: 3600,
        api_per_minute: 1000,
    }
}

#[tokio::test]
async fn groups_are_listed_across_pages_with_one_cached_token() {
    let fake = Arc::new(Fake::default());
    let client = AppClient::new(&settings(&fake_api(fake.clone()).await, "s3cret")).unwrap();
    assert_eq!(
        client.group_chat_ids().await.unwrap(),
        ["wr1", "wr2", "wr3"]
    );
    assert_eq!(client.group_chat_ids().await.unwrap().len(), 3);
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    assert_eq!(fake.list_calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_once_and_the_call_repeated() {
    let fake = Arc::new(Fake::default());
    fake.expire_first_token.store(1, Ordering::SeqCst);
    let client = AppClient::new(&settings(&fake_api(fake.clone()).await, "s3cret")).unwrap();
    assert_eq!(client.group_chat_ids().await.unwrap().len(), 3);
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_busy_api_is_tried_again_and_gives_up_after_three_attempts() {
    let fake = Arc::new(Fake::default());
    fake.busy.store(1, Ordering::SeqCst);
    let client = AppClient::new(&settings(&fake_api(fake.clone()).await, "s3cret")).unwrap();
    assert_eq!(client.group_chat_ids().await.unwrap().len(), 3);
    fake.busy.store(3, Ordering::SeqCst);
    let e = client.group_chat_ids().await.unwrap_err();
    assert_eq!(e.errcode(), Some(45009), "{e}");
}

#[tokio::test]
async fn a_wrong_secret_is_a_credentials_error_that_never_shows_the_secret() {
    let fake = Arc::new(Fake::default());
    let client = AppClient::new(&settings(&fake_api(fake.clone()).await, "wrong-secret")).unwrap();
    let e = client.group_chat_ids().await.unwrap_err();
    assert!(
        matches!(e, ApiError::Credentials { errcode: 40001, .. }),
        "{e:?}"
    );
    assert!(!e.to_string().contains("wrong-secret"));
    assert_eq!(fake.list_calls.load(Ordering::SeqCst), 0);
    assert!(!format!("{client:?}").contains("wrong-secret"));
}

#[tokio::test]
async fn an_unreachable_api_is_an_error_without_the_url() {
    // Nothing listens on port 9 of the loopback address.
    let client = AppClient::new(&settings("http://127.0.0.1:9", "s3cret")).unwrap();
    let e = client.group_chat_ids().await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn each_api_path_is_held_to_its_minute() {
    let mut window = super::client::MinuteWindow::default();
    let start = std::time::Instant::now();
    assert_eq!(window.take(2, start), None);
    assert_eq!(window.take(2, start), None);
    let wait = window
        .take(2, start + std::time::Duration::from_secs(20))
        .unwrap();
    assert_eq!(wait, std::time::Duration::from_secs(40));
    assert_eq!(
        window.take(2, start + std::time::Duration::from_secs(60)),
        None
    );
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires_and_once_for_many_callers() {
    let fake = Arc::new(Fake::default());
    // Tokens that live 2 s: refreshed after 1 s (half their life, when that is under 5 min).
    fake.lifetime_secs.store(2, Ordering::SeqCst);
    let client =
        Arc::new(AppClient::new(&settings(&fake_api(fake.clone()).await, "s3cret")).unwrap());
    // Ten callers at once with no token yet: one gettoken.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.group_chat_ids().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().len(), 3);
    }
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    client.group_chat_ids().await.unwrap();
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        2,
        "refreshed early"
    );
}
