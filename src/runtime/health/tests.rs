use super::*;
use crate::domain::BotId;
use crate::engine::red_envelope::Results;
use crate::store::TestRecord;
use std::sync::Mutex;

const HOST: &str = "qyapi.weixin.qq.com";

fn now() -> DateTime<Utc> {
    // Monday 2026-11-23 09:00 in Shanghai.
    "2026-11-23T01:00:00Z".parse().unwrap()
}

fn member(id: &str) -> Sender {
    Sender {
        user_id: id.into(),
        ..Sender::default()
    }
}

/// A group adopted `age_days` ago; `talk(day)` gives (member, messages) spoken `day` days ago.
fn group(
    store: &Store,
    chat: &str,
    age_days: i64,
    talk: impl Fn(i64) -> Vec<(String, u32)>,
    envelope: Option<Verdict>,
) {
    let mut g = GroupRecord::new(ChatId::new(chat), BotId::parse("robot").unwrap());
    g.status = GroupStatus::Adopted;
    g.adopted_at = Some(now() - chrono::Duration::days(age_days));
    g.webhook_url = Some(format!("https://{HOST}/cgi-bin/webhook/send?key={chat}"));
    let mut tally = crate::store::SpeakerTally::default();
    store
        .write(|tx| {
            for day in (0..28).rev() {
                let at = now() - chrono::Duration::days(day) - chrono::Duration::hours(2);
                for (who, count) in talk(day) {
                    for i in 0..count {
                        let when = at + chrono::Duration::seconds(i64::from(i));
                        tx.record_message(&mut g, &member(&who), when)?;
                        tally.add(chat, &who, when);
                    }
                }
            }
            if let Some(verdict) = envelope {
                let started = now() - chrono::Duration::days(3);
                tx.put_envelope_test(&TestRecord {
                    id: format!("rt-{chat}"),
                    chat_id: ChatId::new(chat),
                    total_fen: 2000,
                    shares: 20,
                    window_secs: 7200,
                    seed: 1,
                    claim_phrase: "财税好运 527".into(),
                    started_at: started,
                    ends_at: started + chrono::Duration::hours(2),
                    started_by: "test".into(),
                    state: TestState::Finished,
                    finished_at: Some(started + chrono::Duration::hours(2)),
                    posted_at: Some(started),
                    results: Some(Results {
                        shares: 20,
                        claims: 0,
                        claimed_fen: 0,
                        first_claim_secs: None,
                        half_claimed_secs: None,
                        all_claimed_secs: None,
                        claimer_ratio: None,
                        silent_claimers: 0,
                        verdict,
                    }),
                    cancelled_by: None,
                })?;
            }
            tx.write_speaker_tally(&tally)?;
            tx.put_group(&g)
        })
        .unwrap();
}

fn synthetic_groups(store: &Store) {
    // Thirty members talking every day, most of them each week.
    let lively = |day: i64| -> Vec<(String, u32)> {
        (0..30)
            .filter(|m| (m + day) % 2 == 0)
            .map(|m| (format!("m{m}"), 2))
            .collect()
    };
    group(store, "active", 90, lively, Some(Verdict::Alive));
    // Lively until last week; a third of the talk, from ten of the members, now.
    group(
        store,
        "declining",
        90,
        move |day| {
            if day >= 7 {
                lively(day)
            } else {
                (0..10)
                    .filter(|m| (m + day) % 2 == 0)
                    .map(|m| (format!("m{m}"), 2))
                    .collect()
            }
        },
        None,
    );
    // Nothing this week, and nobody grabbed the envelope.
    group(
        store,
        "dead",
        90,
        |day| {
            if day >= 20 {
                vec![("m1".into(), 1)]
            } else {
                Vec::new()
            }
        },
        Some(Verdict::Dead),
    );
    // Adopted last week.
    group(store, "fresh", 5, |_| vec![("m1".into(), 1)], None);
}

#[test]
fn synthetic_groups_are_ranked_with_their_stage_and_action() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    synthetic_groups(&store);
    let directory = Directory::load(store.clone()).unwrap();
    let ranked = ranking(&store, &directory, &SharedTally::default(), now()).unwrap();
    let order: Vec<(&str, Stage)> = ranked
        .iter()
        .map(|g| (g.chat_id.as_str(), g.stage))
        .collect();
    assert_eq!(order[0], ("dead", Stage::Dead), "{ranked:#?}");
    assert!(
        order.contains(&("declining", Stage::Declining)),
        "{order:?}"
    );
    assert!(order.contains(&("fresh", Stage::New)), "{order:?}");
    assert_eq!(order[3], ("active", Stage::Steady), "{ranked:#?}");
    let active = &ranked[3];
    assert!(active.score >= 60, "{active:#?}");
    assert_eq!(active.activity.speakers_7d, 30);
    assert_eq!(active.envelope, Some(Verdict::Alive));
    let dead = &ranked[0];
    assert!(dead.action.contains("解散"), "{dead:#?}");
    assert!(dead.reasons.iter().any(|r| r.contains("红包")), "{dead:#?}");
    let declining = ranked
        .iter()
        .find(|g| g.chat_id.as_str() == "declining")
        .unwrap();
    assert!(
        declining.reasons.iter().any(|r| r.contains("下降")),
        "{declining:#?}"
    );
    assert!(declining.score < active.score);
}

#[test]
fn a_digest_switched_on_while_running_starts_from_its_next_slot() {
    let scripts = crate::engine::Scripts::embedded().unwrap();
    let mut digest = scripts.health.digest.clone().unwrap();
    digest.enabled = true;
    let t0 = now();
    let mut since = EnabledSince::default();
    // On at start: catches up.
    assert_eq!(since.observe(Some(&digest), t0), None);
    assert_eq!(
        since.observe(Some(&digest), t0 + chrono::Duration::minutes(1)),
        None
    );
    // Off, then on again: from that moment.
    let later = t0 + chrono::Duration::minutes(2);
    assert_eq!(since.observe(None, later), None);
    let on = later + chrono::Duration::minutes(1);
    assert_eq!(since.observe(Some(&digest), on), Some(on));
    assert_eq!(
        since.observe(Some(&digest), on + chrono::Duration::hours(1)),
        Some(on)
    );
    // Another schedule is a new start too.
    let mut moved = digest.clone();
    moved.to = ChatId::new("elsewhere");
    let then = on + chrono::Duration::hours(2);
    assert_eq!(since.observe(Some(&moved), then), Some(then));
    // Off at start, switched on later: from then.
    let mut fresh = EnabledSince::default();
    assert_eq!(fresh.observe(None, t0), None);
    assert_eq!(fresh.observe(Some(&digest), on), Some(on));
}

#[tokio::test]
async fn the_digest_is_pushed_once_per_slot_to_the_chosen_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    synthetic_groups(&store);
    group(&store, "ops", 90, |_| Vec::new(), None);
    let scripts_dir = tempfile::tempdir().unwrap();
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/scripts/defaults")).unwrap()
    {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), scripts_dir.path().join(entry.file_name())).unwrap();
        }
    }
    let health = scripts_dir.path().join("health.toml");
    let text = std::fs::read_to_string(&health)
        .unwrap()
        .replace("enabled = false", "enabled = true")
        .replace("to = \"\"", "to = \"ops\"")
        .replace("limit = 10", "limit = 2");
    std::fs::write(&health, text).unwrap();
    let scripts = crate::engine::Scripts::load(scripts_dir.path()).unwrap();
    let digest = scripts.health.digest.clone().unwrap();
    let sent: Arc<Mutex<Vec<crate::store::OutboxEntry>>> = Arc::default();
    let sink = Arc::clone(&sent);
    let task = DigestTask {
        store: store.clone(),
        directory: Arc::new(Directory::load(store.clone()).unwrap()),
        scripts: Arc::new(LiveScripts::new(
            crate::engine::Scripts::load(scripts_dir.path()).unwrap(),
            scripts_dir.path(),
        )),
        webhook_hosts: vec![HOST.into()],
        dispatch: Arc::new(move |entry| sink.lock().unwrap().push(entry)),
        speakers: SharedTally::default(),
        ranking_cache: Arc::default(),
    };
    // Sunday evening: the last Monday 09:00 slot is a week old, past the catch-up window.
    let sunday = now() - chrono::Duration::hours(14);
    assert_eq!(
        task.push_due(&digest, &scripts, sunday, None).await,
        DigestOutcome::NotDue
    );
    // Monday 09:05: switched on a minute ago, the digest waits for its next slot (issue 17
    // §5) — the 09:00 slot came before it was on.
    let monday = now() + chrono::Duration::minutes(5);
    let switched_on = monday - chrono::Duration::minutes(1);
    assert_eq!(
        task.push_due(&digest, &scripts, monday, Some(switched_on))
            .await,
        DigestOutcome::NotDue
    );
    // On since before the slot (or since before the start): pushed once, however often the
    // task looks.
    assert_eq!(
        task.push_due(&digest, &scripts, monday, None).await,
        DigestOutcome::Queued
    );
    assert_eq!(
        task.push_due(&digest, &scripts, monday + chrono::Duration::hours(1), None)
            .await,
        DigestOutcome::NotDue
    );
    // A group the bot has not adopted gets nothing, and the reason says so.
    let mut nowhere = digest.clone();
    nowhere.to = ChatId::new("wrNowhere");
    let outcome = task.push_due(&nowhere, &scripts, monday, None).await;
    assert!(
        matches!(&outcome, DigestOutcome::Failed { reason, .. } if reason.contains("not adopted")),
        "{outcome:?}"
    );
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].chat.as_ref().map(ChatId::as_str), Some("ops"));
    let crate::domain::OutMessage::Markdown { content } = &sent[0].message else {
        panic!("a markdown digest: {:?}", sent[0].message)
    };
    assert!(content.contains("共 5 个群"), "{content}");
    assert!(content.contains("1. **dead**（沉寂"), "{content}");
    assert!(!content.contains("3. "), "limit 2: {content}");
}
