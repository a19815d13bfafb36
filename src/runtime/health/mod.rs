//! Group health as operators see it: each adopted group's figures gathered from the store (the
//! last four weeks of activity, members, the latest red-envelope verdict), assessed by
//! [`crate::engine::health`], and ranked — the groups that need attention first
//! (`GET /api/v1/health`). [`DigestTask`] pushes the ranking to the operators' group on the
//! schedule of `health.toml`, once per slot (the send's key is the slot), a slot missed while the
//! service was down still within [`DIGEST_CATCH_UP`].

pub mod cache;

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
        messages_seen: !group.customer,
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
    /// Where the ranking the task computes is offered to the console's lists.
    pub ranking_cache: Arc<cache::RankingCache>,
}

impl DigestTask {
    /// Runs until `stop` says so. A slot that cannot be pushed is reported once, not at every
    /// look within its catch-up window.
    pub async fn run(self, stop: CancellationToken) {
        let mut reported: Option<DateTime<Utc>> = None;
        let mut since = EnabledSince::default();
        let mut recorded_day = None;
        loop {
            let scripts = self.scripts.current();
            let now = Utc::now();
            recorded_day = self.record_scores(now, recorded_day).await;
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

    /// Records every adopted group's score once per local day (the first look on a new day, and
    /// once after a start): the history behind the console's health chart. Answers the day
    /// recorded (`recorded`, unchanged, when it was not time or the store failed).
    async fn record_scores(
        &self,
        now: DateTime<Utc>,
        recorded: Option<chrono::NaiveDate>,
    ) -> Option<chrono::NaiveDate> {
        let today = (now + chrono::Duration::seconds(crate::store::CST_OFFSET_SECS)).date_naive();
        if recorded == Some(today) {
            return recorded;
        }
        let (store, directory, speakers) = (
            self.store.clone(),
            Arc::clone(&self.directory),
            Arc::clone(&self.speakers),
        );
        let cache = Arc::clone(&self.ranking_cache);
        let written = tokio::task::spawn_blocking(move || -> Result<usize, StoreError> {
            let ranked = ranking(&store, &directory, &speakers, now)?;
            let scores: Vec<(ChatId, u32)> = ranked
                .iter()
                .filter(|g| g.measured)
                .map(|g| (g.chat_id.clone(), g.score))
                .collect();
            store.put_health_scores(now, &scores)?;
            // The first look at the console after a start finds it ready.
            cache.offer(cache::Ranked::new(ranked, now));
            Ok(scores.len())
        })
        .await;
        match written {
            Ok(Ok(groups)) => {
                info!(groups, day = %today, "health scores recorded for the day");
                Some(today)
            }
            Ok(Err(e)) => {
                warn!(error = %e, "the day's health scores were not recorded");
                recorded
            }
            Err(e) => {
                warn!(error = %e, "the day's health scores were not recorded");
                recorded
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
mod tests;
