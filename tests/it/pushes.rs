//! Pushing through the webhook against the fake WeCom: back-off on 45009 and -1, release on
//! 93000, and the per-key limit never exceeded.

use std::time::Duration;

use crate::helpers::*;
use trumpet::domain::OutMessage;
use trumpet::outbox::{Outbox, OutboxOptions, SendSettings};
use trumpet::store::{Destination, NewSend, OutboxState, Store};
use trumpet::wire::wecom::robot::webhook::WebhookClient;

/// The outbox's settings against `fake`: `per_minute` per key in `window`, quick retries (three
/// attempts), no per-bot limit, 1,000 sends a second overall.
fn settings(fake: &FakeWecom, per_minute: u32, window: Duration) -> SendSettings {
    SendSettings {
        per_minute,
        window,
        retry_base: Duration::from_millis(20),
        max_attempts: 3,
        webhook_hosts: vec![fake.host()],
        bot_limits: Default::default(),
        global_per_second: 1000,
        retry_after_timeout: false,
    }
}

/// Asserts that no `window` holds more than `limit` of `received`.
fn assert_within_limit(received: &[Received], window: Duration, limit: usize) {
    for (i, r) in received.iter().enumerate() {
        let in_window = received[i..]
            .iter()
            .filter(|s| s.at - r.at < window)
            .count();
        assert!(in_window <= limit, "{in_window} sends within one window");
    }
}

/// A text send of "message {i}" to `url`.
fn send(key: &str, url: &str, i: usize) -> NewSend {
    NewSend {
        key: key.into(),
        chat: None,
        bot: None,
        to: Destination::Webhook { url: url.into() },
        message: OutMessage::Text {
            content: format!("message {i}"),
            mentioned: vec![],
            mentioned_mobiles: vec![],
        },
        purpose: "test".into(),
        run: None,
        not_before: None,
        skip: None,
    }
}

#[tokio::test]
async fn rate_limited_and_busy_answers_are_retried_with_back_off() {
    let app = spawn_app().await;
    app.fake.script(
        "busy-key",
        &[
            Answer::Errcode(45009),
            Answer::Errcode(-1),
            Answer::Status(502),
        ],
    );
    let hook = app.fake.webhook_url("busy-key");
    app.post_callback(&robot_message(
        "chat-b",
        "o",
        "b-1",
        &hook,
        &event_body("add_to_chat"),
    ))
    .await;
    app.fake.wait_delivered("busy-key", 1).await;
    let received = app.fake.received("busy-key");
    let answers: Vec<i64> = received.iter().map(|r| r.answered).collect();
    assert_eq!(answers, vec![45009, -1, -502, 0]);
    // Back-off grows: the gaps between attempts are not shrinking (base 20 ms, doubling).
    let gaps: Vec<Duration> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(15), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(60), "{gaps:?}");
    let group = app.wait_group("chat-b", |g| g["status"] == "adopted").await;
    assert_eq!(group["can_push"], true);
}

#[tokio::test]
async fn errcode_93000_releases_the_group() {
    let app = spawn_app().await;
    app.fake.script("gone-key", &[Answer::Errcode(93000)]);
    let hook = app.fake.webhook_url("gone-key");
    app.post_callback(&robot_message(
        "chat-g",
        "o",
        "g-1",
        &hook,
        &event_body("add_to_chat"),
    ))
    .await;
    let group = app
        .wait_group("chat-g", |g| g["status"] == "released")
        .await;
    assert!(
        group["release_reason"].as_str().unwrap().contains("93000"),
        "{group}"
    );
    assert_eq!(app.fake.received("gone-key").len(), 1, "not retried");
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried() {
    let app = spawn_app().await;
    app.fake.script("refuse-key", &[Answer::Errcode(45002)]);
    let hook = app.fake.webhook_url("refuse-key");
    app.post_callback(&robot_message(
        "chat-r",
        "o",
        "r-1",
        &hook,
        &event_body("add_to_chat"),
    ))
    .await;
    app.wait_group("chat-r", |g| g["status"] == "adopted").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.fake.received("refuse-key").len(), 1);
}

#[tokio::test]
async fn the_outbox_never_exceeds_the_per_key_limit() {
    // A short window keeps the test quick; the fake enforces the same limit and would answer
    // 45009 to any request over it.
    let limit = 3;
    let window = Duration::from_millis(1500);
    let fake = FakeWecom::start_with_limit(limit, window).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("p.redb")).unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        // The same margin for jitter as the service keeps (61 s for WeCom's 60).
        settings(&fake, limit as u32, window + Duration::from_millis(100)),
        store,
    )
    .unwrap();
    let sends = (0..7)
        .map(|i| send(&format!("limit-{i}"), &fake.webhook_url("limited"), i))
        .collect();
    assert_eq!(outbox.enqueue(sends).await.unwrap(), 7);
    let delivered = fake.wait_delivered("limited", 7).await;
    let received = fake.received("limited");
    assert!(
        received.iter().all(|r| r.answered == 0),
        "no request was over the limit"
    );
    let contents: Vec<&str> = delivered
        .iter()
        .map(|r| r.body["text"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        (0..7).map(|i| format!("message {i}")).collect::<Vec<_>>(),
        "in order"
    );
    assert_within_limit(&received, window, limit);
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
    assert_eq!(outbox.stats().delivered, 7);
}

#[tokio::test]
async fn a_key_keeps_its_limit_across_bursts_and_idle_keys_are_forgotten() {
    let limit = 3;
    let window = Duration::from_millis(1200);
    let fake = FakeWecom::start_with_limit(limit, window).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("p.redb")).unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        settings(&fake, limit as u32, window + Duration::from_millis(100)),
        store,
    )
    .unwrap();
    let burst = |from: usize, to: usize| {
        (from..to)
            .map(|i| send(&format!("burst-{i}"), &fake.webhook_url("bursty"), i))
            .collect::<Vec<_>>()
    };
    // A full window's worth; the lane's task ends with its queue empty…
    outbox.enqueue(burst(0, limit)).await.unwrap();
    fake.wait_delivered("bursty", limit).await;
    // …and a second burst inside the same minute still waits for it.
    outbox.enqueue(burst(limit, limit + 2)).await.unwrap();
    fake.wait_delivered("bursty", limit + 2).await;
    let received = fake.received("bursty");
    assert!(
        received.iter().all(|r| r.answered == 0),
        "none over the limit"
    );
    assert!(most_within(&received.iter().map(|r| r.at).collect::<Vec<_>>(), window) <= limit);
    assert_eq!(outbox.lane_count(), 1, "remembered within its minute");
    // Past the minute, the next dispatch forgets the idle key.
    tokio::time::sleep(window + Duration::from_millis(300)).await;
    outbox
        .enqueue(vec![send("other-0", &fake.webhook_url("other"), 0)])
        .await
        .unwrap();
    fake.wait_delivered("other", 1).await;
    assert_eq!(outbox.lane_count(), 1, "only the key that just sent");
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
    assert_eq!(outbox.stats().delivered, limit as u64 + 3);
}

/// The largest number of `times` within any interval shorter than `window`.
fn most_within(times: &[std::time::Instant], window: Duration) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .filter(|t| **t - times[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_per_bot_and_global_limits_hold_across_keys() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("g.redb")).unwrap();
    let window = Duration::from_millis(1000);
    let limited = trumpet::domain::BotId::parse("limited-bot").unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        SendSettings {
            // Three per window for this bot across all of its keys; eight a second overall.
            bot_limits: [(limited.clone(), 3)].into(),
            global_per_second: 8,
            ..settings(&fake, 20, window)
        },
        store,
    )
    .unwrap();
    // Six sends of the limited bot and ten of no bot, each to a key of its own: the per-key
    // limit never binds, only the shared ones do.
    let mut sends: Vec<NewSend> = (0..6)
        .map(|i| NewSend {
            bot: Some(limited.clone()),
            ..send(&format!("bot-{i}"), &fake.webhook_url(&format!("b{i}")), i)
        })
        .collect();
    sends.extend(
        (0..10).map(|i| send(&format!("free-{i}"), &fake.webhook_url(&format!("f{i}")), i)),
    );
    assert_eq!(outbox.enqueue(sends).await.unwrap(), 16);
    for i in 0..6 {
        fake.wait_delivered(&format!("b{i}"), 1).await;
    }
    for i in 0..10 {
        fake.wait_delivered(&format!("f{i}"), 1).await;
    }
    let all = fake.all_received();
    assert_eq!(all.len(), 16, "each sent once");
    let at = |prefix: char| -> Vec<std::time::Instant> {
        all.iter()
            .filter(|r| r.key.starts_with(prefix))
            .map(|r| r.at)
            .collect()
    };
    let everything: Vec<_> = all.iter().map(|r| r.at).collect();
    // Arrival times lag departures by a little; a 50 ms margin keeps that from counting.
    let margin = Duration::from_millis(50);
    assert!(most_within(&at('b'), window - margin) <= 3, "per-bot limit");
    assert!(
        most_within(&everything, Duration::from_secs(1) - margin) <= 8,
        "global limit"
    );
    let span = everything
        .iter()
        .max()
        .unwrap()
        .duration_since(*everything.iter().min().unwrap());
    assert!(
        span >= Duration::from_millis(900),
        "16 sends at 8/s take over a second: {span:?}"
    );
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
}

/// A crash (the runtime torn down mid-send, nothing recorded on the way out) loses no send: the
/// next start resumes every unfinished entry, and duplicates are bounded by what was in flight.
#[test]
fn a_crash_loses_no_send_and_the_next_start_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let limit = 2;
    let window = Duration::from_millis(1500);
    // The fake WeCom runs on its own runtime, which outlives the "crashed" one.
    let fake_runtime = tokio::runtime::Runtime::new().unwrap();
    let fake = fake_runtime.block_on(FakeWecom::start_with_limit(limit, window));
    let url = fake.webhook_url("crashy");
    let settings = settings(&fake, limit as u32, window + Duration::from_millis(100));
    let first_life = tokio::runtime::Runtime::new().unwrap();
    first_life.block_on(async {
        let store = Store::open(&path).unwrap();
        let outbox = Outbox::start(
            WebhookClient::new(Duration::from_secs(5)).unwrap(),
            settings.clone(),
            store,
        )
        .unwrap();
        let sends = (0..6)
            .map(|i| send(&format!("crash-{i}"), &url, i))
            .collect();
        outbox.enqueue(sends).await.unwrap();
        // Two go out at once; the rest wait for the window when the process "dies".
        fake.wait_delivered("crashy", 2).await;
    });
    // Every task of the first life is dropped where it stands: no shutdown, no final records.
    drop(first_life);

    let second_life = tokio::runtime::Runtime::new().unwrap();
    second_life.block_on(async {
        let store = Store::open(&path).unwrap();
        let outbox = Outbox::start(
            WebhookClient::new(Duration::from_secs(5)).unwrap(),
            settings,
            store.clone(),
        )
        .unwrap();
        assert!(outbox.stats().resumed >= 4, "{:?}", outbox.stats());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let done = (0..6).all(|i| {
                store
                    .send_by_key(&format!("crash-{i}"))
                    .unwrap()
                    .is_some_and(|e| e.state == OutboxState::Delivered)
            });
            if done {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the resumed sends never finished"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(outbox.shutdown(Duration::from_secs(5)).await);
        assert!(store.pending_sends().unwrap().is_empty());
    });
    let delivered = fake_runtime.block_on(fake.wait_delivered("crashy", 6));
    let contents: std::collections::BTreeSet<String> = delivered
        .iter()
        .map(|r| r.body["text"]["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(contents.len(), 6, "every message arrived: {contents:?}");
    // At most the two sent before the crash can have gone out twice.
    assert!(delivered.len() <= 6 + 2, "{} deliveries", delivered.len());
}

#[tokio::test]
async fn sends_waiting_for_a_released_group_are_skipped() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.redb")).unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        settings(&fake, 20, Duration::from_secs(61)),
        store.clone(),
    )
    .unwrap();
    let chat = trumpet::domain::ChatId::new("leaving");
    let later = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    let waiting = NewSend {
        chat: Some(chat.clone()),
        not_before: Some(later),
        ..send("spread-1", &fake.webhook_url("leaving-key"), 1)
    };
    assert_eq!(outbox.enqueue(vec![waiting]).await.unwrap(), 1);
    outbox.release(&chat, chrono::Utc::now());
    // A send planned after the release (a re-adoption) goes out.
    let after = NewSend {
        chat: Some(chat.clone()),
        ..send("after-1", &fake.webhook_url("leaving-key"), 2)
    };
    assert_eq!(outbox.enqueue(vec![after]).await.unwrap(), 1);
    let delivered = fake.wait_delivered("leaving-key", 1).await;
    assert_eq!(delivered[0].body["text"]["content"], "message 2");
    assert!(outbox.shutdown(Duration::from_secs(2)).await);
    let skipped = store.send_by_key("spread-1").unwrap().unwrap();
    assert_eq!(skipped.state, OutboxState::Skipped);
    assert_eq!(
        skipped.last_error.as_deref(),
        Some("the group was released")
    );
    assert_eq!(
        fake.received("leaving-key").len(),
        1,
        "the waiting send never left"
    );
}

#[tokio::test]
async fn a_send_resumed_after_a_restart_is_skipped_when_its_group_was_released_meanwhile() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.redb")).unwrap();
    let chat = trumpet::domain::ChatId::new("gone-while-down");
    // A send left in the outbox by a previous run, then the group released (an operator's
    // DELETE, or WeCom's 93000 for another send) before the service starts again.
    store
        .write(|tx| {
            tx.enqueue(
                NewSend {
                    chat: Some(chat.clone()),
                    ..send("left-over", &fake.webhook_url("gone-key"), 1)
                },
                chrono::Utc::now(),
            )?;
            let mut group = trumpet::store::GroupRecord::new(
                chat.clone(),
                trumpet::domain::BotId::parse("b").unwrap(),
            );
            group.status = trumpet::store::GroupStatus::Released;
            group.released_at = Some(chrono::Utc::now() + chrono::Duration::milliseconds(1));
            tx.put_group(&group)
        })
        .unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        settings(&fake, 20, Duration::from_secs(61)),
        store.clone(),
    )
    .unwrap();
    assert!(outbox.shutdown(Duration::from_secs(2)).await);
    assert_eq!(outbox.stats().resumed, 1);
    let left = store.send_by_key("left-over").unwrap().unwrap();
    assert_eq!(left.state, OutboxState::Skipped);
    assert_eq!(left.last_error.as_deref(), Some("the group was released"));
    assert!(fake.received("gone-key").is_empty(), "nothing sent");
}

#[tokio::test]
async fn a_bot_waiting_for_its_limit_does_not_hold_up_other_bots() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let slow = trumpet::domain::BotId::parse("one-a-minute").unwrap();
    let outbox = Outbox::start(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        SendSettings {
            bot_limits: [(slow.clone(), 1)].into(),
            ..settings(&fake, 20, Duration::from_secs(61))
        },
        store,
    )
    .unwrap();
    // More lanes of the slow bot than there are places in flight, each waiting a minute for
    // its turn; then one send of no bot at all.
    let mut sends: Vec<NewSend> = (0..trumpet::outbox::MAX_IN_FLIGHT + 20)
        .map(|i| NewSend {
            bot: Some(slow.clone()),
            ..send(&format!("slow-{i}"), &fake.webhook_url(&format!("s{i}")), i)
        })
        .collect();
    sends.push(send("free", &fake.webhook_url("free"), 0));
    outbox.enqueue(sends).await.unwrap();
    // Goes out at once rather than after the slow bot's minutes.
    fake.wait_delivered("free", 1).await;
    let slow_sent = fake
        .all_received()
        .iter()
        .filter(|r| r.key.starts_with('s'))
        .count();
    assert_eq!(slow_sent, 1, "the slow bot still sends one a minute");
}

/// The per-key window survives a restart: sends made just before it count after it, so no key
/// ever sees more than its limit in one window (it used to start empty: twice the limit got
/// through across a restart).
#[tokio::test]
async fn a_key_keeps_its_window_across_a_restart() {
    let limit = 3;
    let window = Duration::from_millis(1500);
    let fake = FakeWecom::start_with_limit(limit, window).await;
    let dir = tempfile::tempdir().unwrap();
    // The store stays open (a new outbox on it is what a restart starts with).
    let store = Store::open(&dir.path().join("p.redb")).unwrap();
    let start = |store: Store| {
        Outbox::start(
            WebhookClient::new(Duration::from_secs(5)).unwrap(),
            settings(&fake, limit as u32, window + Duration::from_millis(100)),
            store,
        )
        .unwrap()
    };
    let outbox = start(store.clone());
    let sends = (0..3)
        .map(|i| send(&format!("before-{i}"), &fake.webhook_url("restarted"), i))
        .collect();
    outbox.enqueue(sends).await.unwrap();
    fake.wait_delivered("restarted", 3).await;
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
    drop(outbox);

    let outbox = start(store.clone());
    let sends = (3..6)
        .map(|i| send(&format!("after-{i}"), &fake.webhook_url("restarted"), i))
        .collect();
    outbox.enqueue(sends).await.unwrap();
    fake.wait_delivered("restarted", 6).await;
    let received = fake.received("restarted");
    assert!(
        received.iter().all(|r| r.answered == 0),
        "a request went over the limit across the restart: {:?}",
        received.iter().map(|r| r.answered).collect::<Vec<_>>()
    );
    assert_within_limit(&received, window, limit);
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
}

/// A send with no answer in time may have arrived: by default it is recorded as `timed_out`
/// and not sent again (no duplicate); with `retry_after_timeout` it is retried (a gap avoided,
/// a duplicate risked).
#[tokio::test]
async fn a_timed_out_send_is_recorded_so_and_retried_only_when_asked() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb")).unwrap();
    for (retry, key) in [(false, "gap"), (true, "again")] {
        fake.script(key, &[Answer::Hang(Duration::from_millis(1500))]);
        let outbox = Outbox::start(
            WebhookClient::new(Duration::from_secs(1)).unwrap(),
            SendSettings {
                retry_after_timeout: retry,
                ..settings(&fake, 20, Duration::from_secs(61))
            },
            store.clone(),
        )
        .unwrap();
        outbox
            .enqueue(vec![send(key, &fake.webhook_url(key), 1)])
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let entry = loop {
            let entry = store
                .send_by_key(key)
                .unwrap()
                .expect("the send is in the store");
            if entry.state != OutboxState::Pending {
                break entry;
            }
            assert!(std::time::Instant::now() < deadline, "{key} never finished");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let requests = fake.received(key).len();
        if retry {
            assert_eq!(entry.state, OutboxState::Delivered, "{entry:?}");
            assert_eq!(requests, 2, "retried once after the timeout");
        } else {
            assert_eq!(entry.state, OutboxState::TimedOut, "{entry:?}");
            assert_eq!(requests, 1, "not sent again");
            assert!(entry.last_error.unwrap_or_default().contains("timed out"));
        }
        assert!(outbox.shutdown(Duration::from_secs(2)).await);
    }
}

/// An outbox on a store in `dir`, with at most `max_running_lanes` lane tasks.
fn outbox_with_lanes(
    dir: &tempfile::TempDir,
    settings: SendSettings,
    max_running_lanes: usize,
) -> Outbox {
    Outbox::start_with(
        WebhookClient::new(Duration::from_secs(5)).unwrap(),
        settings,
        OutboxOptions {
            max_running_lanes,
            ..OutboxOptions::default()
        },
        Store::open(&dir.path().join("lanes.redb")).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn lanes_past_the_cap_wait_for_a_task_and_all_arrive() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox_with_lanes(&dir, settings(&fake, 20, Duration::from_secs(60)), 3);
    let sends = (0..60)
        .map(|i| send(&format!("cap-{i}"), &fake.webhook_url(&format!("c{i}")), i))
        .collect();
    assert_eq!(outbox.enqueue(sends).await.unwrap(), 60);
    let mut most = 0;
    while outbox.stats().delivered < 60 {
        most = most.max(outbox.lane_tasks());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(most <= 3, "{most} lane tasks at once with a cap of 3");
    for i in 0..60 {
        assert_eq!(fake.received(&format!("c{i}")).len(), 1);
    }
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn a_spread_broadcast_parks_its_lanes_instead_of_holding_tasks() {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Window 2 s: waits over 250 ms park.
    let outbox = outbox_with_lanes(&dir, settings(&fake, 20, Duration::from_secs(2)), 8);
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let later = (0..500)
        .map(|i| NewSend {
            not_before: Some(in_an_hour),
            ..send(
                &format!("spread-{i}"),
                &fake.webhook_url(&format!("s{i}")),
                i,
            )
        })
        .collect();
    assert_eq!(outbox.enqueue(later).await.unwrap(), 500);
    assert_eq!(outbox.lane_tasks(), 0, "no task waits for an hour");
    assert_eq!(outbox.waiting_lanes(), 500);
    // One due in 600 ms goes then, not before, and one due now goes at once.
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(600);
    let asked = std::time::Instant::now();
    outbox
        .enqueue(vec![
            NewSend {
                not_before: Some(soon),
                ..send("soon", &fake.webhook_url("soon"), 0)
            },
            send("now", &fake.webhook_url("now"), 0),
        ])
        .await
        .unwrap();
    let now = fake.wait_delivered("now", 1).await;
    let soon_at = fake.wait_delivered("soon", 1).await[0].at;
    assert!(now[0].at < soon_at);
    assert!(
        soon_at - asked >= Duration::from_millis(550),
        "{:?}",
        soon_at - asked
    );
    assert_eq!(outbox.waiting_lanes(), 500, "the hour's sends still wait");
    assert!(fake.received("s0").is_empty());
    // Shutdown does not wait for parked lanes: they stay in the outbox for the next start.
    let stopping = std::time::Instant::now();
    assert!(outbox.shutdown(Duration::from_secs(5)).await);
    assert!(stopping.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_lane_waiting_for_its_minute_does_not_hold_up_the_others() {
    let fake = FakeWecom::start_with_limit(2, Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    // One lane task at a time: without parking, "other" would wait for "full" to finish.
    let outbox = outbox_with_lanes(&dir, settings(&fake, 2, Duration::from_millis(2100)), 1);
    let full = (0..4)
        .map(|i| send(&format!("full-{i}"), &fake.webhook_url("full"), i))
        .collect();
    outbox.enqueue(full).await.unwrap();
    fake.wait_delivered("full", 2).await;
    outbox
        .enqueue(vec![send("other", &fake.webhook_url("other"), 0)])
        .await
        .unwrap();
    let other_at = fake.wait_delivered("other", 1).await[0].at;
    assert_eq!(
        fake.received("full").len(),
        2,
        "full still waits for its window"
    );
    let full = fake.wait_delivered("full", 4).await;
    assert!(other_at < full[2].at);
    assert!(full.iter().all(|r| r.answered == 0), "none over the limit");
    assert!(outbox.shutdown(Duration::from_secs(1)).await);
}

/// A runtime dropped while lanes are running and others wait for a task (a test's end, a
/// process exiting without a drain) must not hang: a cancelled lane's end used to start the
/// next lane while holding the lane map, and spawning on a runtime that is shutting down drops
/// the new task at once — whose end locked the same map again.
#[test]
fn dropping_the_runtime_while_lanes_wait_does_not_hang() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kept = runtime.block_on(async {
            let fake = FakeWecom::start().await;
            let store = Store::open(&dir.path().join("p.redb")).unwrap();
            let options = OutboxOptions {
                max_running_lanes: 2,
                ..OutboxOptions::default()
            };
            let outbox = Outbox::start_with(
                WebhookClient::new(Duration::from_secs(20)).unwrap(),
                settings(&fake, 20, Duration::from_secs(60)),
                options,
                store,
            )
            .unwrap();
            let keys: Vec<String> = (0..20).map(|i| format!("hang-{i}")).collect();
            for key in &keys {
                fake.script(key, &[Answer::Hang(Duration::from_secs(30))]);
            }
            let sends = keys
                .iter()
                .enumerate()
                .map(|(i, key)| send(key, &fake.webhook_url(key), i))
                .collect();
            outbox.enqueue(sends).await.unwrap();
            // Two lanes are on the wire, eighteen wait for a task.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while fake.all_received().len() < 2 {
                assert!(std::time::Instant::now() < deadline, "no lane started");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (outbox, fake)
        });
        drop(runtime);
        drop(kept);
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("dropping the runtime hung");
}
