//! Group health as operators see it: each adopted group's figures gathered from the store (the
//! last four weeks of activity, members, the latest red-envelope verdict), assessed by
//! [`crate::engine::health`], and ranked — the groups that need attention first
//! (`GET /api/v1/health`). [`DigestTask`] pushes the ranking to the operators' group on the
//! schedule of `health.toml`, once per slot (the send's key is the slot), a slot missed while the
//! service was down still within [`DIGEST_CATCH_UP`].

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::domain::{ChatId, Role, Sender};
use crate::engine::health::{DIGEST_CATCH_UP, Digest};
use crate::engine::health::{HealthInput, Stage, assess};
use crate::engine::red_envelope::Verdict;
use crate::runtime::groups::Directory;
use crate::runtime::red_envelope::Dispatch;
use crate::scripts::live::LiveScripts;
use crate::store::{
    GroupRecord, GroupStatus, NewSend, RecentActivity, SharedTally, Store, StoreError, TestState,
};

/// How far back an envelope verdict still says something about a group.
const ENVELOPE_RELEVANT_DAYS: i64 = 30;
/// The longest the digest task sleeps, so that an edited `health.toml` is picked up.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// One group's health, with the figures behind it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupHealth {
    pub chat_id: ChatId,
    pub name: String,
    pub score: u32,
    pub stage: Stage,
    /// The stage in the operators' words: 新群, 稳定, 衰退, 沉寂.
    pub stage_text: &'static str,
    pub action: &'static str,
    pub reasons: Vec<String>,
    /// Members now (bot accounts list them; `null` on the group robot).
    pub members: Option<u64>,
    pub adopted_at: Option<DateTime<Utc>>,
    pub activity: RecentActivity,
    /// The latest red-envelope verdict of the last 30 days.
    pub envelope: Option<Verdict>,
    /// False for a push-only group: its members' messages never reach the bot, so its score
    /// says nothing about it (ranked after the measured groups, with the reason).
    pub measured: bool,
}

pub fn stage_text(stage: Stage) -> &'static str {
    match stage {
        Stage::New => "新群",
        Stage::Steady => "稳定",
        Stage::Declining => "衰退",
        Stage::Dead => "沉寂",
    }
}

/// Assesses `group` at `now` with `pending`, its speaker counts not written yet
/// ([`crate::store::SpeakerTally::of_chat`]). Blocking: reads the store.
pub fn group_health(
    store: &Store,
    group: &GroupRecord,
    name: &str,
    pending: &[(i64, String, u32)],
    now: DateTime<Utc>,
) -> Result<GroupHealth, StoreError> {
    let chat = &group.chat_id;
    let activity = store.recent_activity(chat, now, pending)?;
    let members = store.members_listed(group)?;
    let since = now - chrono::Duration::days(ENVELOPE_RELEVANT_DAYS);
    let envelope = store
        .envelope_tests_of(chat)?
        .into_iter()
        .rev()
        // A test whose envelope never reached the group says nothing about it.
        .filter(|t| {
            t.state == TestState::Finished
                && t.posted_at.is_some()
                && t.finished_at.is_some_and(|f| f >= since)
        })
        .find_map(|t| t.results.map(|r| r.verdict));
    let input = HealthInput {
        members,
        adopted_at: group.adopted_at.unwrap_or(now),
        messages_per_day: activity.messages_7d as f64 / 7.0,
        earlier_messages_per_day: activity.messages_earlier_21d as f64 / 21.0,
        speakers: activity.speakers_7d,
        top3_share: activity.top3_share,
        joins: activity.joins_7d,
        leaves: activity.leaves_7d,
        bot_posts: activity.bot_posts_7d,
        replies_to_posts: activity.replies_to_posts_7d,
        envelope,
    };
    let mut health = assess(&input, now);
    let measured = !group.is_push_only();
    if !measured {
        health.reasons = vec![
            "只推送的群：机器人收不到群里的消息，无法评估活跃度（分数不代表群的情况）".to_owned(),
        ];
    }
    Ok(GroupHealth {
        chat_id: chat.clone(),
        name: if name.is_empty() {
            chat.to_string()
        } else {
            name.to_owned()
        },
        score: health.score,
        stage: health.stage,
        stage_text: stage_text(health.stage),
        action: health.action,
        reasons: health.reasons,
        members: (members > 0).then_some(members),
        adopted_at: group.adopted_at,
        activity,
        envelope,
        measured,
    })
}

/// Every adopted group's health, lowest score first (blocking).
pub fn ranking(
    store: &Store,
    directory: &Directory,
    speakers: &SharedTally,
    now: DateTime<Utc>,
) -> Result<Vec<GroupHealth>, StoreError> {
    // One pass over the tally, not one per group.
    let pending = speakers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .by_chat();
    let mut out = Vec::new();
    for group in store
        .groups()?
        .into_iter()
        .filter(|g| g.status == GroupStatus::Adopted)
    {
        let name = directory.get(&group.chat_id).name.clone();
        let counts = pending
            .get(group.chat_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        out.push(group_health(store, &group, &name, counts, now)?);
    }
    // Push-only groups have no activity to measure: after the others, not at the top.
    out.sort_by(|a, b| {
        b.measured
            .cmp(&a.measured)
            .then_with(|| a.score.cmp(&b.score))
            .then_with(|| a.chat_id.cmp(&b.chat_id))
    });
    Ok(out)
}

/// When the digest in force was switched on with its schedule, as the running service saw it: a
/// digest switched on (or given another schedule or target) while the service runs starts from
/// its next slot — not with the slot a minute before — while one already on at start catches up
/// a slot missed while the service was down.
#[derive(Debug, Default)]
struct EnabledSince {
    /// The schedule and target in force, and since when (`None`: since before this start).
    current: Option<(DigestSchedule, Option<DateTime<Utc>>)>,
    seen: bool,
}

/// What makes a digest's slots: its cron, zone and target group.
type DigestSchedule = (String, chrono_tz::Tz, ChatId);

impl EnabledSince {
    /// Notes the digest in force at `now` (`None` when off); returns the time its slots must
    /// come after, if any.
    fn observe(&mut self, digest: Option<&Digest>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let identity = digest.map(|d| (d.cron_text.clone(), d.timezone, d.to.clone()));
        let first = !std::mem::replace(&mut self.seen, true);
        let unchanged = self.current.as_ref().map(|(id, _)| id) == identity.as_ref();
        if first {
            self.current = identity.map(|id| (id, None));
        } else if !unchanged {
            self.current = identity.map(|id| (id, Some(now)));
        }
        self.current.as_ref().and_then(|(_, at)| *at)
    }
}

/// Pushes the weekly digest.
pub struct DigestTask {
    pub store: Store,
    pub directory: Arc<Directory>,
    pub scripts: Arc<LiveScripts>,
    pub webhook_hosts: Vec<String>,
    pub dispatch: Dispatch,
    pub speakers: SharedTally,
}

impl DigestTask {
    /// Runs until `stop` says so. A slot that cannot be pushed is reported once, not at every
    /// look within its catch-up window.
    pub async fn run(self, stop: CancellationToken) {
        let mut reported: Option<DateTime<Utc>> = None;
        let mut since = EnabledSince::default();
        loop {
            let scripts = self.scripts.current();
            let now = Utc::now();
            let enabled = scripts.health.digest.as_ref().filter(|d| d.enabled);
            let starts_after = since.observe(enabled, now);
            if let Some(digest) = enabled
                && let DigestOutcome::Failed { slot, reason } =
                    self.push_due(digest, &scripts, now, starts_after).await
                && reported != Some(slot)
            {
                warn!(to = %digest.to, slot = %slot, "health digest not pushed: {reason}");
                reported = Some(slot);
            }
            tokio::select! {
                () = tokio::time::sleep(MAX_SLEEP) => {}
                () = stop.cancelled() => break,
            }
        }
    }

    /// Pushes the digest of the latest slot at or before `now`, unless it was pushed already,
    /// the slot is older than [`DIGEST_CATCH_UP`], or it is not after `starts_after` (the
    /// digest was switched on, or its schedule changed, after that slot).
    pub async fn push_due(
        &self,
        digest: &Digest,
        scripts: &crate::engine::Scripts,
        now: DateTime<Utc>,
        starts_after: Option<DateTime<Utc>>,
    ) -> DigestOutcome {
        let catch_up = now - chrono::Duration::from_std(DIGEST_CATCH_UP).unwrap_or_default();
        let after = starts_after.map_or(catch_up, |at| at.max(catch_up));
        let Some(slot) =
            crate::engine::jobs::last_occurrence_between(&digest.cron, digest.timezone, after, now)
        else {
            return DigestOutcome::NotDue;
        };
        let failed = |reason: String| DigestOutcome::Failed { slot, reason };
        // Per target too: a digest moved to another group goes there as well.
        let key = format!(
            "health-digest:{}:{}",
            digest.to,
            slot.format("%Y%m%dT%H%MZ")
        );
        let store = self.store.clone();
        let directory = Arc::clone(&self.directory);
        let speakers = Arc::clone(&self.speakers);
        let (to, probe_key) = (digest.to.clone(), key.clone());
        // The ranking reads every group: only once the slot is unsent and the target can get it.
        let facts = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            if store.send_by_key(&probe_key)?.is_some() {
                return Ok(None);
            }
            let group = store.group(&to)?;
            let ranked = match &group {
                Some(g) if g.status == GroupStatus::Adopted => {
                    ranking(&store, &directory, &speakers, now)?
                }
                _ => Vec::new(),
            };
            Ok(Some((group, ranked)))
        })
        .await;
        let (group, ranked) = match facts {
            Ok(Ok(Some(facts))) => facts,
            Ok(Ok(None)) => return DigestOutcome::NotDue,
            Ok(Err(e)) => return failed(format!("the store is unreadable: {e}")),
            Err(e) => return failed(format!("the task failed: {e}")),
        };
        let Some(group) = group.filter(|g| g.status == GroupStatus::Adopted) else {
            return failed("the bot has not adopted that group".into());
        };
        let to = match crate::outbox::group_destination(&group, &self.webhook_hosts) {
            Ok(to) => to,
            Err(why) => return failed(why),
        };
        // Push-only groups are counted apart: their stage is not measured.
        let measured: Vec<&GroupHealth> = ranked.iter().filter(|g| g.measured).collect();
        let count = |stage| measured.iter().filter(|g| g.stage == stage).count();
        let counts = context! {
            total => measured.len(),
            push_only => ranked.len() - measured.len(),
            dead => count(Stage::Dead),
            declining => count(Stage::Declining),
            new => count(Stage::New),
            steady => count(Stage::Steady),
        };
        let groups: Vec<_> = measured
            .iter()
            .take(digest.limit)
            .map(|g| {
                context! {
                    chat_id => g.chat_id.as_str(),
                    name => &g.name,
                    score => g.score,
                    stage => g.stage,
                    stage_text => g.stage_text,
                    action => g.action,
                    reasons => g.reasons.join("；"),
                }
            })
            .collect();
        let settings = self.directory.get(&digest.to);
        let vars = || {
            context! {
                groups, counts,
                ..crate::engine::vars::base(&Sender::default(), Role::Member, Some(&digest.to), &settings, now)
            }
        };
        let message = match digest.message.push(&scripts.templates, vars, &[]) {
            Ok(message) => message,
            Err(e) => return failed(format!("the message did not render: {e}")),
        };
        let send = NewSend {
            key,
            chat: Some(digest.to.clone()),
            bot: Some(group.bot.clone()),
            to,
            message,
            purpose: "health_digest".into(),
            run: None,
            not_before: None,
            skip: None,
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.write(|tx| tx.enqueue(send, now))).await {
            Ok(Ok(entry)) => {
                if let Some(entry) = entry {
                    (self.dispatch)(entry);
                }
                info!(to = %digest.to, slot = %slot, groups = ranked.len(), "health digest queued");
                DigestOutcome::Queued
            }
            Ok(Err(e)) => failed(format!("not queued: {e}")),
            Err(e) => failed(format!("the task failed: {e}")),
        }
    }
}

/// What became of a look at the digest's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestOutcome {
    /// The slot's digest went to the outbox.
    Queued,
    /// No slot within the catch-up window, or its digest was queued before.
    NotDue,
    /// The slot's digest could not be pushed (the caller reports it once per slot).
    Failed { slot: DateTime<Utc>, reason: String },
}

#[cfg(test)]
mod tests {
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
}
