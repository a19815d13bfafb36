//! The WeCom AI bot over its long connection, end to end: the real service dials a fake of
//! WeCom's WebSocket, subscribes, answers @-questions with streams, keeps the link alive and
//! dials again when it drops — but not when a newer connection took the bot over.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::fake_aibot::{Behaviour, FakeAiBot, WRONG_SECRET, replies_to};
use crate::helpers::*;

const BOT_ID: &str = "aibot-test";
const SECRET: &str = "s3cret-for-tests";
const GROUP: &str = "wrkSFfCgAAaibot";

/// The service with an AI bot dialling `fake` as `secret`: pings every second, acks awaited
/// for a second, reconnections at most 2 s apart.
async fn app_dialling(fake: &FakeAiBot, secret: &str) -> TestApp {
    app_dialling_with(fake, secret, None, "").await
}

/// [`app_dialling`] with a scripts directory and more TOML (`[aibot]` keys go in `aibot`).
async fn app_dialling_with(
    fake: &FakeAiBot,
    secret: &str,
    scripts: Option<&tempfile::TempDir>,
    aibot: &str,
) -> TestApp {
    spawn_app_with(Options {
        scripts_dir: scripts.map(|s| s.path().to_owned()),
        more: format!(
            r#"
[[bots]]
id = "ai"
channel = "wecom-aibot"
bot_id = "{BOT_ID}"
secret = "{secret}"
ws_url = "{url}"
[aibot]
ping_interval_secs = 1
reconnect_max_secs = 2
{aibot}
[onebot]
retry_base_ms = 50
[feeds]
allow_private = true
"#,
            url = fake.url,
            aibot = if aibot.contains("ack_timeout_secs") {
                aibot.to_owned()
            } else {
                format!("ack_timeout_secs = 1\n{aibot}")
            },
        ),
        ..Options::default()
    })
    .await
}

const QUESTION: &str = "个税汇算什么时候截止";

#[tokio::test]
async fn an_at_question_is_answered_by_stream_and_the_group_is_adopted() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let app = app_dialling(&fake, SECRET).await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    assert_eq!(
        fake.subscriptions()[0],
        (BOT_ID.into(), SECRET.into(), true)
    );

    let req_id = fake.group_text(GROUP, "zhangsan", "msg-1", QUESTION);
    let frames = fake
        .wait_frames("aibot_respond_msg", 1, Duration::from_secs(5))
        .await;
    let reply = &frames[0];
    assert_eq!(reply["headers"]["req_id"], req_id.as_str());
    assert_eq!(reply["body"]["msgtype"], "stream");
    assert_eq!(reply["body"]["stream"]["finish"], true);
    assert!(!reply["body"]["stream"]["id"].as_str().unwrap().is_empty());
    let content = reply["body"]["stream"]["content"].as_str().unwrap();
    assert!(content.contains("汇算"), "{content}");

    // Heard once: the group is adopted, by its first message, without an owner (the asker
    // need not be one), and greeted as a robot's group is when the robot is added.
    let group = app.wait_group(GROUP, |g| g["status"] == "adopted").await;
    assert_eq!(group["adopted_via"], "first_message", "{group}");
    assert_eq!(group["bot"], "ai", "{group}");
    assert_eq!(group["channel"], "wecom-aibot", "{group}");
    assert_eq!(group["owner"], serde_json::Value::Null, "{group}");
    let greeting = fake
        .wait_frames("aibot_send_msg", 1, Duration::from_secs(5))
        .await;
    assert_eq!(greeting[0]["body"]["chatid"], GROUP);
    assert!(
        greeting[0]["body"]["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("会计小喇叭"),
        "{greeting:?}"
    );
    // The next message adopts nothing again: one greeting.
    fake.group_text(GROUP, "lisi", "msg-2", "帮助");
    fake.wait_frames("aibot_respond_msg", 2, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.frames("aibot_send_msg").len(), 1);
}

#[tokio::test]
async fn a_one_to_one_chat_is_greeted_on_enter_chat_with_a_welcome_frame() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let _app = app_dialling(&fake, SECRET).await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    fake.push(serde_json::json!({
        "cmd": "aibot_event_callback",
        "headers": { "req_id": "enter-1" },
        "body": {
            "msgid": "enter-msg-1", "create_time": 1_700_000_000, "aibotid": "aibot-test",
            "chattype": "single", "from": { "userid": "zhangsan" }, "msgtype": "event",
            "event": { "eventtype": "enter_chat" },
        },
    }));
    let frames = fake
        .wait_frames("aibot_respond_welcome_msg", 1, Duration::from_secs(5))
        .await;
    assert_eq!(frames[0]["headers"]["req_id"], "enter-1");
    assert_eq!(frames[0]["body"]["msgtype"], "text");
    assert!(
        !frames[0]["body"]["text"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_dialled_again_with_back_off() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let _app = app_dialling(&fake, "not-the-secret").await;
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let attempts = fake.subscriptions();
    assert!(attempts.iter().all(|(_, _, accepted)| !accepted));
    // Back-off of 1 s, then 2 s (±20 %): two or three attempts in 3.5 s, never a tight loop.
    assert!(
        (2..=3).contains(&attempts.len()),
        "{} attempts in 3.5 s: {attempts:?}",
        attempts.len()
    );
    assert_eq!(WRONG_SECRET, 40001);
}

#[tokio::test]
async fn a_quick_restart_refusal_clears_and_the_link_comes_up() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    fake.set(Behaviour {
        refuse_subscribe: Some(45009),
        ..Behaviour::default()
    });
    let _app = app_dialling(&fake, SECRET).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.subscriptions().iter().all(|s| !s.2));
    fake.set(Behaviour::default());
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    let req_id = fake.group_text(GROUP, "lisi", "msg-after-45009", QUESTION);
    let frames = fake
        .wait_frames("aibot_respond_msg", 1, Duration::from_secs(5))
        .await;
    assert_eq!(replies_to(&frames, &req_id).len(), 1);
}

#[tokio::test]
async fn a_dropped_link_is_dialled_again_and_a_repeated_msgid_gets_the_same_answer_once() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let app = app_dialling(&fake, SECRET).await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    let first = fake.group_text(GROUP, "zhangsan", "msg-dup", QUESTION);
    let frames = fake
        .wait_frames("aibot_respond_msg", 1, Duration::from_secs(5))
        .await;
    let answer = replies_to(&frames, &first);

    fake.drop_link();
    fake.wait_subscribed(2, Duration::from_secs(5)).await;
    assert_eq!(fake.connections(), 2);
    // WeCom sends the message again on the new link: the same answer, and it counts once.
    let again = fake.group_text(GROUP, "zhangsan", "msg-dup", QUESTION);
    let frames = fake
        .wait_frames("aibot_respond_msg", 2, Duration::from_secs(5))
        .await;
    assert_eq!(replies_to(&frames, &again), answer);
    let group = app.wait_group(GROUP, |g| g["status"] == "adopted").await;
    assert_eq!(group["messages"], 1, "{group}");
}

#[tokio::test]
async fn two_unanswered_heartbeats_mean_a_dead_link() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let _app = app_dialling(&fake, SECRET).await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    fake.wait_frames("ping", 1, Duration::from_secs(3)).await;
    fake.set(Behaviour {
        ignore_pings: true,
        ..Behaviour::default()
    });
    // Pings at 1 s intervals: two go unanswered, the third tick closes the link, 1 s back-off.
    fake.wait_subscribed(2, Duration::from_secs(8)).await;
}

#[tokio::test]
async fn a_newer_connection_taking_the_bot_over_is_not_fought() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let _app = app_dialling(&fake, SECRET).await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    fake.replaced();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(
        fake.subscriptions().len(),
        1,
        "dialled again after disconnected_event"
    );
    assert!(!fake.is_connected(), "the replaced link is closed");
}

#[tokio::test]
async fn refused_and_late_acks_lose_nothing_that_follows() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let _app = app_dialling(&fake, SECRET).await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    // A refused reply (6000 命令冲突) and a reply acked after the 1 s timeout: logged, and the
    // link stays up for the next question.
    fake.set(Behaviour {
        ack_errcode: Some(6000),
        ..Behaviour::default()
    });
    // Each in its own group: a keyword answered in a group rests there for a while.
    fake.group_text("wrk-refused", "a", "msg-refused", QUESTION);
    fake.wait_frames("aibot_respond_msg", 1, Duration::from_secs(5))
        .await;
    fake.set(Behaviour {
        ack_delay: Duration::from_millis(1_500),
        ..Behaviour::default()
    });
    fake.group_text("wrk-late", "b", "msg-late", QUESTION);
    fake.wait_frames("aibot_respond_msg", 2, Duration::from_secs(5))
        .await;
    fake.set(Behaviour::default());
    let req_id = fake.group_text("wrk-fine", "c", "msg-fine", QUESTION);
    let frames = fake
        .wait_frames("aibot_respond_msg", 3, Duration::from_secs(5))
        .await;
    assert_eq!(replies_to(&frames, &req_id).len(), 1);
    assert_eq!(fake.connections(), 1, "the link never dropped");
}

/// Waits until `holds` (10 s at most; `what` says what did not happen).
async fn wait_until(what: &str, holds: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !holds() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the morning report now and waits until every send of the run is finished.
async fn report_run(app: &TestApp) -> Value {
    let run_id = app.start_report().await;
    app.wait_run(&run_id, |run| run["state"] == "done" && run["pending"] == 0)
        .await
}

/// Adopts `chats` by a first @-message each and waits until they are recorded.
async fn adopt(app: &TestApp, fake: &FakeAiBot, chats: &[&str]) {
    for chat in chats {
        fake.group_text(chat, "owner", &fake.id("hello-"), "你好");
    }
    for chat in chats {
        app.wait_group(chat, |g| g["status"] == "adopted").await;
    }
}

/// The `aibot_send_msg` posts into `chat` so far.
fn posts_to(fake: &FakeAiBot, chat: &str) -> Vec<Value> {
    fake.frames("aibot_send_msg")
        .into_iter()
        .filter(|f| f["body"]["chatid"] == chat)
        .collect()
}

#[tokio::test]
async fn the_morning_report_reaches_every_aibot_group_by_send_msg() {
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let app = app_dialling_with(&fake, SECRET, Some(&scripts), "").await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    let chats = ["wrk-r1", "wrk-r2", "wrk-r3"];
    adopt(&app, &fake, &chats).await;
    let before: Vec<usize> = chats.iter().map(|c| posts_to(&fake, c).len()).collect();

    let run = report_run(&app).await;
    assert_eq!(run["planned"], 3, "{run}");
    assert_eq!(run["delivered"], 3, "{run}");
    for (chat, before) in chats.iter().zip(before) {
        let posts = posts_to(&fake, chat);
        assert_eq!(posts.len(), before + 1, "one report in {chat}: {posts:?}");
        let post = posts.last().unwrap();
        assert_eq!(post["body"]["msgtype"], "markdown");
        assert!(
            !post["body"]["markdown"]["content"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    let sends = app.api("/api/v1/groups/wrk-r1/sends").await;
    assert!(
        sends["sends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["via"] == "aibot" && s["state"] == "delivered"),
        "{sends}"
    );
}

#[tokio::test]
async fn a_post_unanswered_when_the_link_drops_is_sent_again_after_the_reconnect() {
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let app = app_dialling_with(&fake, SECRET, Some(&scripts), "ack_timeout_secs = 10").await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    adopt(&app, &fake, &["wrk-drop"]).await;
    let before = posts_to(&fake, "wrk-drop").len();
    // WeCom takes the post but the link drops before its ack.
    fake.set(Behaviour {
        ack_delay: Duration::from_secs(30),
        ..Behaviour::default()
    });
    let run_id = app.start_report().await;
    wait_until("the report never went out", || {
        posts_to(&fake, "wrk-drop").len() > before
    })
    .await;
    fake.set(Behaviour::default());
    fake.drop_link();
    fake.wait_subscribed(2, Duration::from_secs(5)).await;
    let run = app
        .wait_run(&run_id, |run| run["receipts"][0]["state"] == "delivered")
        .await;
    let receipt = &run["receipts"][0];
    assert_eq!(
        receipt["attempts"], 2,
        "sent again after the reconnect: {receipt}"
    );
    assert_eq!(posts_to(&fake, "wrk-drop").len(), before + 2);
}

#[tokio::test]
async fn a_rate_limit_refusal_of_a_post_backs_off_and_is_retried() {
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let app = app_dialling_with(&fake, SECRET, Some(&scripts), "").await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    adopt(&app, &fake, &["wrk-limit"]).await;
    // Let the adoption greeting (if any) be acked before WeCom starts refusing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = posts_to(&fake, "wrk-limit").len();
    fake.set(Behaviour {
        ack_errcode: Some(45009),
        ..Behaviour::default()
    });
    let run_id = app.start_report().await;
    wait_until("not retried", || {
        posts_to(&fake, "wrk-limit").len() >= before + 2
    })
    .await;
    fake.set(Behaviour::default());
    let run = app.wait_run(&run_id, |run| run["delivered"] == 1).await;
    assert!(
        run["receipts"][0]["attempts"].as_u64().unwrap() >= 3,
        "{run}"
    );
}

#[tokio::test]
async fn a_slow_peer_with_many_callbacks_in_flight_does_not_stop_the_link() {
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let _app = app_dialling_with(&fake, SECRET, None, "ack_timeout_secs = 5").await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    // More callbacks than the link decides at once (512), each reply acked a second late: the
    // acks come in on the same link, which must keep reading them.
    fake.set(Behaviour {
        ack_delay: Duration::from_secs(1),
        ..Behaviour::default()
    });
    let count = 700;
    for i in 0..count {
        fake.group_text(
            &format!("wrk-slow{}", i % 10),
            &format!("u{i}"),
            &format!("slow-{i}"),
            &format!("请问这张单据应该怎么处理 {i}"),
        );
    }
    fake.wait_frames("aibot_respond_msg", count, Duration::from_secs(20))
        .await;
    assert_eq!(fake.connections(), 1);
}

/// The service with an AI bot in URL-callback mode (the test Token and EncodingAESKey).
async fn app_with_url_mode() -> TestApp {
    app_with_url_mode_and(None).await
}

/// [`app_with_url_mode`] with a scripts directory.
async fn app_with_url_mode_and(scripts: Option<&tempfile::TempDir>) -> TestApp {
    spawn_app_with(Options {
        scripts_dir: scripts.map(|s| s.path().to_owned()),
        more: format!(
            r#"
[[bots]]
id = "aiurl"
channel = "wecom-aibot"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
"#
        ),
        ..Options::default()
    })
    .await
}

/// POSTs `plaintext` to the URL-mode bot sealed as WeCom does; returns the status and the
/// decrypted answer (None for an empty one).
async fn post_sealed(app: &TestApp, plaintext: &str) -> (reqwest::StatusCode, Option<Value>) {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let nonce = "n0nce";
    let encrypt = app.crypto.encrypt(rand::random(), plaintext).unwrap();
    let signature = app.crypto.sign(&timestamp, nonce, &encrypt);
    let response = app
        .http
        .post(app.url(&format!(
            "/wecom/aibot/aiurl?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        )))
        .body(serde_json::json!({ "encrypt": encrypt }).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    if body.is_empty() {
        return (status, None);
    }
    let sealed: Value = serde_json::from_str(&body).unwrap();
    let encrypt = sealed["encrypt"].as_str().unwrap();
    let timestamp = sealed["timestamp"].as_i64().unwrap().to_string();
    app.crypto
        .verify(
            &timestamp,
            sealed["nonce"].as_str().unwrap(),
            encrypt,
            sealed["msgsignature"].as_str().unwrap(),
        )
        .expect("the answer is signed");
    let opened = app.crypto.decrypt(encrypt).unwrap();
    (status, Some(serde_json::from_str(&opened.message).unwrap()))
}

#[tokio::test]
async fn in_url_mode_a_sealed_question_is_answered_with_a_sealed_finished_stream() {
    let app = app_with_url_mode().await;
    let question = serde_json::json!({
        "msgid": "url-1", "aibotid": "AIBOTID", "chatid": "wrk-url", "chattype": "group",
        "from": { "userid": "zhangsan" }, "response_url": "https://example.invalid/r",
        "msgtype": "text", "text": { "content": format!("@会计小喇叭 {QUESTION}") },
    })
    .to_string();
    let (status, answer) = post_sealed(&app, &question).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let answer = answer.expect("an answer");
    assert_eq!(answer["msgtype"], "stream");
    assert_eq!(answer["stream"]["finish"], true);
    assert_eq!(answer["stream"]["id"], "url-1");
    let content = answer["stream"]["content"].as_str().unwrap().to_owned();
    assert!(content.contains("汇算"), "{content}");
    // WeCom's retry: the same answer, handled once.
    let (_, again) = post_sealed(&app, &question).await;
    assert_eq!(again.unwrap()["stream"]["content"], content.as_str());
    let group = app
        .wait_group("wrk-url", |g| g["status"] == "adopted")
        .await;
    assert_eq!(group["messages"], 1, "{group}");
    assert_eq!(group["adopted_via"], "first_message", "{group}");
    // A refresh of a stream that is finished already: finished, nothing more.
    let refresh = serde_json::json!({
        "msgid": "url-2", "aibotid": "AIBOTID", "chattype": "group", "chatid": "wrk-url",
        "from": { "userid": "zhangsan" }, "msgtype": "stream", "stream": { "id": "url-1" },
    })
    .to_string();
    let (_, finished) = post_sealed(&app, &refresh).await;
    assert_eq!(
        finished.unwrap(),
        serde_json::json!({ "msgtype": "stream", "stream": { "id": "url-1", "finish": true } })
    );
}

#[tokio::test]
async fn in_url_mode_forged_and_malformed_callbacks_are_refused_and_the_url_verifies() {
    let app = app_with_url_mode().await;
    // URL verification, as for the robot.
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let echostr = app.crypto.encrypt(rand::random(), "echo-4711").unwrap();
    let signature = app.crypto.sign(&timestamp, "n", &echostr);
    let verified = app
        .http
        .get(app.url(&format!(
            "/wecom/aibot/aiurl?msg_signature={signature}&timestamp={timestamp}&nonce=n&echostr={}",
            urlencode(&echostr)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), reqwest::StatusCode::OK);
    assert_eq!(verified.text().await.unwrap(), "echo-4711");
    // A forged signature: 401, nothing handled.
    let encrypt = app.crypto.encrypt(rand::random(), "{}").unwrap();
    let forged = app
        .http
        .post(app.url(&format!(
            "/wecom/aibot/aiurl?msg_signature={}&timestamp={timestamp}&nonce=n",
            "0".repeat(40)
        )))
        .body(serde_json::json!({ "encrypt": encrypt }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Not JSON around, or inside: 400.
    let signature = app.crypto.sign(&timestamp, "n", "x");
    let bad_envelope = app
        .http
        .post(app.url(&format!(
            "/wecom/aibot/aiurl?msg_signature={signature}&timestamp={timestamp}&nonce=n"
        )))
        .body("<xml>not json</xml>")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_envelope.status(), reqwest::StatusCode::BAD_REQUEST);
    let (status, _) = post_sealed(&app, "{\"msgid\": 5").await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    // An unknown bot: 404.
    let unknown = app
        .http
        .post(app.url("/wecom/aibot/nobody?msg_signature=x&timestamp=1&nonce=n"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn in_url_mode_a_broadcast_records_why_it_cannot_reach_the_group() {
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let app = app_with_url_mode_and(Some(&scripts)).await;
    let question = serde_json::json!({
        "msgid": "url-b1", "aibotid": "AIBOTID", "chatid": "wrk-url-b", "chattype": "group",
        "from": { "userid": "lisi" }, "msgtype": "text", "text": { "content": "@会计小喇叭 你好" },
    })
    .to_string();
    post_sealed(&app, &question).await;
    app.wait_group("wrk-url-b", |g| g["status"] == "adopted")
        .await;
    let run = report_run(&app).await;
    let receipt = run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "wrk-url-b")
        .cloned()
        .unwrap_or_else(|| panic!("the group is in the run: {run}"));
    assert_eq!(receipt["state"], "failed", "{receipt}");
    assert!(
        receipt["last_error"]
            .as_str()
            .unwrap()
            .contains("URL-callback mode"),
        "{receipt}"
    );
}

#[tokio::test]
async fn a_report_queued_while_the_link_is_down_goes_out_when_it_is_back() {
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let fake = FakeAiBot::start(BOT_ID, SECRET).await;
    let app = app_dialling_with(&fake, SECRET, Some(&scripts), "").await;
    fake.wait_subscribed(1, Duration::from_secs(5)).await;
    adopt(&app, &fake, &["wrk-down1", "wrk-down2"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The link drops and WeCom refuses it back for now (45009 after a quick restart).
    fake.set(Behaviour {
        refuse_subscribe: Some(45009),
        ..Behaviour::default()
    });
    fake.drop_link();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = fake.frames("aibot_send_msg").len();
    let run_id = app.start_report().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        fake.frames("aibot_send_msg").len(),
        before,
        "nothing goes out while down"
    );
    let run = app.api(&format!("/api/v1/runs/{run_id}")).await;
    assert_eq!(run["pending"], 2, "both wait: {run}");

    fake.set(Behaviour::default());
    app.wait_run(&run_id, |run| run["delivered"] == 2).await;
    for chat in ["wrk-down1", "wrk-down2"] {
        assert!(!posts_to(&fake, chat).is_empty());
    }
}
