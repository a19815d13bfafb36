//! The WeCom AI bot over its long connection, end to end: the real service dials a fake of
//! WeCom's WebSocket, subscribes, answers @-questions with streams, keeps the link alive and
//! dials again when it drops — but not when a newer connection took the bot over.

use std::time::Duration;

use crate::helpers::fake_aibot::{Behaviour, FakeAiBot, WRONG_SECRET, replies_to};
use crate::helpers::*;

const BOT_ID: &str = "aibot-test";
const SECRET: &str = "s3cret-for-tests";
const GROUP: &str = "wrkSFfCgAAaibot";

/// The service with an AI bot dialling `fake` as `secret`: pings every second, acks awaited
/// for a second, reconnections at most 2 s apart.
async fn app_dialling(fake: &FakeAiBot, secret: &str) -> TestApp {
    spawn_app_with(Options {
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
ack_timeout_secs = 1
reconnect_max_secs = 2
"#,
            url = fake.url
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

    // Heard once: the group is adopted, by its first message.
    let group = app.wait_group(GROUP, |g| g["status"] == "adopted").await;
    assert_eq!(group["adopted_via"], "first_message", "{group}");
    assert_eq!(group["bot"], "ai", "{group}");
    assert_eq!(group["channel"], "wecom-aibot", "{group}");
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
