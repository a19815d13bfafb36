//! The service on tokio's paused clock: claims, the envelope emptied, the window ending on the
//! timer, late and repeated claims, and a restart finishing a test whose window ended meanwhile.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::{BotId, Conversation, EventKind};
use crate::engine::red_envelope::Verdict;
use crate::store::{GroupRecord, OutboxEntry};

const CHAT: &str = "wrEnvelopeChat";
const HOST: &str = "qyapi.weixin.qq.com";

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    sent: Arc<Mutex<Vec<OutboxEntry>>>,
    started: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl World {
    fn new() -> World {
        World::with_group(|group| {
            group.webhook_url = Some(format!("https://{HOST}/cgi-bin/webhook/send?key=k"))
        })
    }

    /// A group served by the bot account `wxid_bot`, owned by `boss`, with the admin `da`.
    fn on_account() -> World {
        let world = World::with_group(|group| group.account = Some("wxid_bot".into()));
        let mut settings = crate::domain::GroupSettings {
            owner: Some("boss".into()),
            ..Default::default()
        };
        settings.roles.insert(
            "da".into(),
            crate::domain::RoleHolder {
                role: Role::Admin,
                name: "大当家甲".into(),
            },
        );
        world
            .store
            .write(|tx| tx.put_settings(&ChatId::new(CHAT), &settings))
            .unwrap();
        world
    }

    fn with_group(prepare: impl FnOnce(&mut GroupRecord)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let mut group = GroupRecord::new(ChatId::new(CHAT), BotId::parse("robot").unwrap());
        group.status = GroupStatus::Adopted;
        prepare(&mut group);
        store.write(|tx| tx.put_group(&group)).unwrap();
        World {
            _dir: dir,
            store,
            sent: Arc::default(),
            started: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            origin: tokio::time::Instant::now(),
        }
    }

    /// A service whose clock follows tokio's (paused) clock.
    fn envelopes(&self) -> Arc<Envelopes> {
        self.envelopes_with(crate::engine::Scripts::embedded().unwrap())
    }

    fn envelopes_with(&self, scripts: crate::engine::Scripts) -> Arc<Envelopes> {
        let sent = Arc::clone(&self.sent);
        let (started, origin) = (self.started, self.origin);
        Arc::new(
            Envelopes::load(EnvelopeDeps {
                store: self.store.clone(),
                scripts: Arc::new(LiveScripts::new(scripts, Path::new("/nonexistent"))),
                directory: Arc::new(Directory::load(self.store.clone()).unwrap()),
                webhook_hosts: vec![HOST.into()],
                alerts: crate::runtime::alerts::Alerts::new(Some(crate::domain::Secret::new(
                    format!("https://{HOST}/cgi-bin/webhook/send?key=staff"),
                ))),
                dispatch: Arc::new(move |entry| sent.lock().unwrap().push(entry)),
                clock: Arc::new(move || {
                    started + chrono::Duration::from_std(origin.elapsed()).unwrap()
                }),
            })
            .unwrap(),
        )
    }

    fn sent(&self) -> Vec<(String, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|e| {
                let text = match &e.message {
                    OutMessage::Text { content, .. } | OutMessage::Markdown { content } => {
                        content.clone()
                    }
                    other => format!("{other:?}"),
                };
                (e.purpose.clone(), text)
            })
            .collect()
    }
}

fn says(user: &str, text: &str) -> Event {
    Event {
        bot: BotId::parse("robot").unwrap(),
        msg_id: format!("{user}-{text}"),
        conversation: Conversation::Group(ChatId::new(CHAT)),
        from: Sender {
            user_id: user.into(),
            name: format!("成员{user}"),
            alias: String::new(),
        },
        webhook_url: None,
        account: None,
        message_id: None,
        kind: EventKind::Text { text: text.into() },
        mentioned: true,
        received_at: Utc::now(),
    }
}

/// What the inbound path does with a message: a claim when it is one.
async fn claim(envelopes: &Envelopes, event: Event) -> Option<Reply> {
    let target = envelopes.claim_target(&event)?;
    envelopes.claim(&event, target).await
}

fn text_of(reply: Option<Reply>) -> String {
    match reply.expect("an answer") {
        Reply::Text { content, .. } | Reply::Markdown { content } => content,
    }
}

fn params(total_fen: u64, shares: u32, window_secs: u64) -> EnvelopeParams {
    EnvelopeParams {
        total_fen: Some(total_fen),
        shares: Some(shares),
        window_secs: Some(window_secs),
    }
}

#[tokio::test(start_paused = true)]
async fn an_envelope_emptied_is_finished_at_once_and_claims_are_one_per_member() {
    let world = World::new();
    let envelopes = world.envelopes();
    let chat = ChatId::new(CHAT);
    let test = envelopes
        .start(&chat, params(300, 3, 600), "tester")
        .await
        .unwrap();
    let posted = world.sent();
    assert_eq!(posted[0].0, "red_envelope");
    assert!(posted[0].1.contains(&test.claim_phrase), "{posted:?}");
    assert!(posted[0].1.contains("3.00"), "{posted:?}");
    // A second test in the same group waits for this one.
    let again = envelopes.start(&chat, params(300, 3, 600), "tester").await;
    assert!(matches!(again, Err(StartError::Running { ref id }) if *id == test.id));

    let phrase = test.claim_phrase.clone();
    assert!(
        envelopes
            .claim_target(&says("u1", "今天开票了吗"))
            .is_none()
    );
    // Spaces, full-width digits and a word of thanks still claim.
    let spaced = format!("{} 谢谢", phrase.replace(' ', "").replace('5', "５"));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert!(text_of(claim(&envelopes, says("u1", &spaced)).await).contains("抢到"));
    tokio::time::advance(Duration::from_secs(30)).await;
    let twice = text_of(claim(&envelopes, says("u1", &phrase)).await);
    assert!(twice.contains("只能抢一份"), "{twice}");
    assert!(text_of(claim(&envelopes, says("u2", &phrase)).await).contains("抢到"));
    assert!(envelopes.running_in(&chat).is_some());
    let last = text_of(claim(&envelopes, says("u3", &phrase)).await);
    assert!(last.contains("抢完"), "{last}");
    // Emptied: finished without waiting for the window.
    assert!(envelopes.running_in(&chat).is_none());
    assert!(text_of(claim(&envelopes, says("u4", &phrase)).await).contains("手慢了"));
    assert!(text_of(claim(&envelopes, says("u2", &phrase)).await).contains("只能抢一份"));

    let stored = world.store.envelope_test(&test.id).unwrap().unwrap();
    assert_eq!(stored.state, TestState::Finished);
    let results = stored.results.unwrap();
    assert_eq!((results.claims, results.claimed_fen), (3, 300));
    assert_eq!(results.first_claim_secs, Some(30));
    assert_eq!(results.all_claimed_secs, Some(60));
    assert_eq!(results.verdict, Verdict::Alive);
    assert_eq!(results.silent_claimers, 3, "nobody had spoken before");
    let claims = world.store.envelope_claims(&test.id).unwrap();
    let who: Vec<&str> = claims.iter().map(|c| c.user_id.as_str()).collect();
    assert_eq!(who, ["u1", "u2", "u3"]);
    assert_eq!(claims.iter().map(|c| c.amount_fen).sum::<u64>(), 300);
    assert_eq!(claims[0].name, "成员u1");

    let posted = world.sent();
    let purposes: Vec<&str> = posted.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        purposes,
        ["red_envelope", "red_envelope", "red_envelope_report"]
    );
    // The verdict goes to the operators' staff group, not into the group (issue 27 §2).
    let report = world.sent.lock().unwrap()[2].clone();
    assert_eq!(report.chat, None);
    assert!(
        matches!(&report.to, crate::store::Destination::Webhook { url } if url.ends_with("key=staff")),
        "{report:?}"
    );
    // Nothing delivered the envelope here (the outbox is a stand-in): the report says so.
    assert_eq!(
        world
            .store
            .envelope_test(&test.id)
            .unwrap()
            .unwrap()
            .posted_at,
        None
    );
    assert!(posted[2].1.contains("没能发到群里"), "{posted:?}");
    assert!(posted[1].1.contains("已抢完"), "{posted:?}");
    assert!(posted[2].1.contains("活跃"), "{posted:?}");
    // Issue 27 §14: the last claimer's 「抢到」 goes out before 「红包已抢完」 — the announcement
    // and the report wait a moment after the claim that emptied the envelope.
    let last_claim = claims[2].at;
    let sent = world.sent.lock().unwrap();
    for entry in &sent[1..] {
        assert_eq!(
            entry.not_before,
            Some(last_claim + LAST_CLAIM_FIRST),
            "{entry:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_timer_ends_the_window_and_late_claims_are_refused() {
    let world = World::new();
    let envelopes = world.envelopes();
    let stop = CancellationToken::new();
    let timer = tokio::spawn(Arc::clone(&envelopes).run(stop.clone()));
    let chat = ChatId::new(CHAT);
    let test = envelopes
        .start(&chat, params(1000, 10, 3600), "tester")
        .await
        .unwrap();
    let phrase = test.claim_phrase.clone();
    tokio::time::advance(Duration::from_secs(20 * 60)).await;
    assert!(text_of(claim(&envelopes, says("u1", &phrase)).await).contains("还剩 9 份"));
    // The window ends with one share of ten taken: the group is dead.
    tokio::time::sleep(Duration::from_secs(41 * 60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while envelopes.running_in(&chat).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the timer did not finish the test"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results = world
        .store
        .envelope_test(&test.id)
        .unwrap()
        .unwrap()
        .results
        .unwrap();
    assert_eq!(results.verdict, Verdict::Dead);
    assert_eq!(results.first_claim_secs, Some(20 * 60));
    assert_eq!(results.half_claimed_secs, None);
    let late = text_of(claim(&envelopes, says("u2", &phrase)).await);
    assert!(late.contains("已经结束"), "{late}");
    let posted = world.sent();
    assert!(posted[1].1.contains("已结束"), "{posted:?}");
    assert!(posted[2].1.contains("已沉寂"), "{posted:?}");
    stop.cancel();
    timer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_test_is_measured_from_when_its_envelope_reached_the_group() {
    let world = World::new();
    let envelopes = world.envelopes();
    let chat = ChatId::new(CHAT);
    let test = envelopes
        .start(&chat, params(200, 2, 3600), "tester")
        .await
        .unwrap();
    // The post goes out two minutes late (say the account was offline).
    let post = world.sent.lock().unwrap()[0].clone();
    let delivered = world.started + chrono::Duration::minutes(2);
    world
        .store
        .write(|tx| {
            let outcome = crate::store::SendOutcome {
                id: post.id,
                state: crate::store::OutboxState::Delivered,
                attempts: 1,
                pieces_done: 1,
                last_error: None,
            };
            tx.record_send(&outcome, delivered)
        })
        .unwrap();
    tokio::time::advance(Duration::from_secs(3 * 60)).await;
    claim(&envelopes, says("u1", &test.claim_phrase)).await;
    claim(&envelopes, says("u2", &test.claim_phrase)).await;
    let stored = world.store.envelope_test(&test.id).unwrap().unwrap();
    assert_eq!(stored.posted_at, Some(delivered));
    let results = stored.results.unwrap();
    assert_eq!(
        results.first_claim_secs,
        Some(60),
        "from the post, not the start"
    );
    let report = &world.sent()[2].1;
    assert!(report.contains("晚发了 2 分"), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_the_claims_and_finishes_a_window_that_ended_meanwhile() {
    let world = World::new();
    let chat = ChatId::new(CHAT);
    let test = {
        let envelopes = world.envelopes();
        let test = envelopes
            .start(&chat, params(2000, 4, 600), "tester")
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(60)).await;
        claim(&envelopes, says("u1", &test.claim_phrase)).await;
        claim(&envelopes, says("u2", &test.claim_phrase)).await;
        test
    };
    // Back before the window's end: the claims made are remembered.
    let envelopes = world.envelopes();
    assert_eq!(envelopes.running_in(&chat), Some(test.id.clone()));
    let again = text_of(claim(&envelopes, says("u1", &test.claim_phrase)).await);
    assert!(again.contains("只能抢一份"), "{again}");
    drop(envelopes);
    // Down past the window's end: the test is finished as soon as the service is back.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let envelopes = world.envelopes();
    assert_eq!(envelopes.finish_due().await, 0);
    let stored = world.store.envelope_test(&test.id).unwrap().unwrap();
    assert_eq!(stored.state, TestState::Finished);
    let results = stored.results.unwrap();
    assert_eq!(results.claims, 2);
    assert_eq!(results.half_claimed_secs, Some(60));
    assert_eq!(
        results.verdict,
        Verdict::Alive,
        "half the shares went in a minute"
    );
    assert!(world.sent().iter().any(|(p, _)| p == "red_envelope_report"));
}

/// A released group's test is cancelled for good: not resumed after a restart, its claims
/// answered as cancelled, no results and no report when its window would have ended.
#[tokio::test(start_paused = true)]
async fn a_cancelled_test_is_not_resumed_and_answers_claims_as_cancelled() {
    let world = World::new();
    let chat = ChatId::new(CHAT);
    let test = {
        let envelopes = world.envelopes();
        let test = envelopes
            .start(&chat, params(2000, 4, 600), "tester")
            .await
            .unwrap();
        claim(&envelopes, says("u1", &test.claim_phrase)).await;
        envelopes.group_released(&chat).await;
        assert_eq!(envelopes.running_in(&chat), None);
        test
    };
    let envelopes = world.envelopes();
    assert_eq!(envelopes.running_in(&chat), None, "not resumed");
    let late = text_of(claim(&envelopes, says("u2", &test.claim_phrase)).await);
    assert!(late.contains("已取消"), "{late}");
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(envelopes.finish_due().await, 0);
    let stored = world.store.envelope_test(&test.id).unwrap().unwrap();
    assert_eq!(stored.state, TestState::Cancelled);
    assert_eq!(stored.cancelled_by.as_deref(), Some(RELEASED_BY));
    assert_eq!(stored.results, None);
    assert_eq!(world.store.envelope_claims(&test.id).unwrap().len(), 1);
    assert!(
        !world.sent().iter().any(|(p, _)| p == "red_envelope_report"),
        "no report for a cancelled test: {:?}",
        world.sent()
    );
}

/// The shipped scripts with `extra` appended to `red_envelope.toml`.
fn scripts_with_envelope_toml(extra: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"),
        dir.path(),
    );
    let file = dir.path().join("red_envelope.toml");
    let text = std::fs::read_to_string(&file).unwrap() + extra;
    std::fs::write(&file, text).unwrap();
    dir
}

#[tokio::test(start_paused = true)]
async fn a_schedule_starts_one_test_per_slot_in_the_groups_it_targets() {
    let world = World::new();
    let tagged = ChatId::new("wrTaggedChat");
    let mut group = GroupRecord::new(tagged.clone(), BotId::parse("robot").unwrap());
    group.status = GroupStatus::Adopted;
    group.webhook_url = Some(format!("https://{HOST}/cgi-bin/webhook/send?key=t"));
    let mut settings = crate::domain::GroupSettings::default();
    settings.tags.insert("type:新手群".into());
    world
        .store
        .write(|tx| {
            tx.put_group(&group)?;
            tx.put_settings(&tagged, &settings)
        })
        .unwrap();
    let schedule = "\n[[schedule]]\nname = \"hourly\"\ncron = \"0 * * * *\"\ntargets = [\"tag:type:新手群\"]\ntotal_fen = 200\nshares = 2\nwindow_minutes = 5\n";
    let dir = scripts_with_envelope_toml(schedule);
    let scripts = || crate::engine::Scripts::load(dir.path()).unwrap();
    let envelopes = world.envelopes_with(scripts());
    let tests_in = |chat: &ChatId| world.store.envelope_tests_of(chat).unwrap().len();
    // 11:06:40 UTC: the schedule is new, nothing is back-filled; the next slot is 12:00.
    let next = envelopes.run_schedules().await.unwrap();
    assert_eq!(next.to_rfc3339(), "2026-11-18T12:00:00+00:00");
    tokio::time::advance(Duration::from_secs(53 * 60 + 25)).await;
    envelopes.run_schedules().await;
    assert_eq!((tests_in(&tagged), tests_in(&ChatId::new(CHAT))), (1, 0));
    let started = world.store.envelope_tests_of(&tagged).unwrap().remove(0);
    assert_eq!(
        (started.total_fen, started.shares, started.window_secs),
        (200, 2, 300)
    );
    assert_eq!(started.started_by, "schedule:hourly");
    // The same slot again, after a restart, or with the mark lost in a crash: nothing new.
    envelopes.run_schedules().await;
    let envelopes = world.envelopes_with(scripts());
    envelopes.run_schedules().await;
    let before = started.started_at - chrono::Duration::minutes(1);
    world
        .store
        .write(|tx| tx.set_schedule_mark("red_envelope:hourly", before))
        .unwrap();
    envelopes.run_schedules().await;
    assert_eq!(tests_in(&tagged), 1);
    // Down from 12:06 to 13:45: the 13:00 slot is 45 minutes old (over 30) and skipped.
    tokio::time::advance(Duration::from_secs(6 * 60)).await;
    envelopes.finish_due().await;
    drop(envelopes);
    tokio::time::advance(Duration::from_secs(99 * 60)).await;
    let envelopes = world.envelopes_with(scripts());
    let next = envelopes.run_schedules().await.unwrap();
    assert_eq!(tests_in(&tagged), 1, "a slot too old is skipped");
    assert_eq!(next.to_rfc3339(), "2026-11-18T14:00:00+00:00");
    tokio::time::advance(Duration::from_secs(15 * 60)).await;
    envelopes.run_schedules().await;
    assert_eq!(tests_in(&tagged), 2);
}

#[test]
fn claims_are_the_phrase_and_a_few_characters_more() {
    let key = phrase_key("财税好运 527");
    assert_eq!(key, "财税好运527");
    assert!(is_claim_of(&phrase_key("财税好运527"), &key));
    assert!(is_claim_of(&phrase_key("財稅好運 527!"), &key));
    assert!(is_claim_of(&phrase_key("抢 财税好运 527 谢谢"), &key));
    assert!(!is_claim_of(
        &phrase_key("财税好运 527 加我微信 abc123"),
        &key
    ));
    assert!(!is_claim_of(&phrase_key("财税好运 52"), &key));
    assert!(!is_claim_of(&phrase_key("anything"), ""));
}

/// A platform's grab notice cannot claim more than the envelope holds: two grabs of 2^63 fen are
/// refused (they used to wrap the total to 0), an honest one is recorded.
#[tokio::test(start_paused = true)]
async fn a_grab_of_more_than_the_envelope_holds_is_refused() {
    let world = World::new();
    let envelopes = world.envelopes();
    let chat = ChatId::new(CHAT);
    let test = envelopes
        .start(&chat, params(2000, 5, 600), "tester")
        .await
        .unwrap();
    let grab = |user: &str| Event {
        kind: EventKind::EnvelopeGrabbed { amount_fen: None },
        ..says(user, "grab")
    };
    assert!(!envelopes.record_grab(&grab("a"), Some(1 << 63)).await);
    assert!(!envelopes.record_grab(&grab("b"), Some(1 << 63)).await);
    assert!(!envelopes.record_grab(&grab("c"), Some(2001)).await);
    assert!(envelopes.record_grab(&grab("d"), Some(1500)).await);
    assert!(
        !envelopes.record_grab(&grab("e"), Some(501)).await,
        "more than is left"
    );
    assert!(envelopes.record_grab(&grab("f"), Some(500)).await);
    let stored = world.store.envelope_claims(&test.id).unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored.iter().map(|c| c.amount_fen).sum::<u64>(), 2000);
}

/// Issue 27 §2: on a bot account the verdict also reaches the group's owner and admins as
/// private messages (never the group), beside the operators' alert group.
#[tokio::test(start_paused = true)]
async fn on_a_bot_account_the_report_goes_privately_to_the_owner_and_admins() {
    let world = World::on_account();
    let envelopes = world.envelopes();
    let chat = ChatId::new(CHAT);
    envelopes
        .start(&chat, params(300, 3, 600), "tester")
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(601)).await;
    envelopes.finish_due().await;
    let sent = world.sent.lock().unwrap().clone();
    let reports: Vec<&OutboxEntry> = sent
        .iter()
        .filter(|e| e.purpose == "red_envelope_report")
        .collect();
    let mut private: Vec<&str> = reports
        .iter()
        .filter_map(|e| match &e.to {
            crate::store::Destination::Private { account, user_id } => {
                assert_eq!(account, "wxid_bot");
                assert_eq!(
                    e.chat.as_ref(),
                    Some(&chat),
                    "listed with the group's sends"
                );
                Some(user_id.as_str())
            }
            _ => None,
        })
        .collect();
    private.sort();
    assert_eq!(private, ["boss", "da"], "{reports:?}");
    assert!(
        reports.iter().any(
            |e| matches!(&e.to, crate::store::Destination::Webhook { url } if url.ends_with("key=staff"))
        ),
        "{reports:?}"
    );
    // Into the group only the announcement, which names no verdict on the group.
    assert!(
        sent.iter()
            .filter(|e| matches!(e.to, crate::store::Destination::Account { .. }))
            .all(|e| e.purpose == "red_envelope"),
        "{sent:?}"
    );
}
