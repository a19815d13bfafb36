//! What group health is computed from beyond the daily counters: who spoke on which day (distinct
//! speakers and how concentrated the talk is over a week), joins and leaves, the bot's posts and
//! the member messages that followed one within 30 minutes. Joins, leaves, posts and replies are
//! written in the transactions of the events and deliveries; who spoke is tallied in memory by
//! the pipeline ([`SpeakerTally`]) and written about once a minute, so that a busy member costs
//! one row update a minute rather than one per message (decision D27). Speaker days older than
//! [`KEEP_SPEAKER_DAYS`] are pruned.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use super::{CST_OFFSET_SECS, DAILY, Store, StoreError, WriteTx, local_day, local_day_number};
use crate::domain::ChatId;

/// (local day, chat, user) → the member's messages that day. Day first, so that old days are
/// pruned from the front of the table.
pub(super) const SPEAKER_DAYS: TableDefinition<(&str, &str, &str), u32> =
    TableDefinition::new("speaker_days");
/// (chat, local day) → (joins, leaves, the bot's posts, member messages replying to them).
pub(super) const GROUP_DAYS: TableDefinition<(&str, &str), (u64, u64, u64, u64)> =
    TableDefinition::new("group_days");
/// chat → unix seconds of the bot's last post delivered there.
pub(super) const LAST_POSTS: TableDefinition<&str, i64> = TableDefinition::new("last_posts");
/// (chat, local day) → the group's health score that day (written once a day for every
/// adopted group: the history the console charts).
pub(super) const HEALTH_DAYS: TableDefinition<(&str, &str), u32> =
    TableDefinition::new("health_days");

/// A member message this soon after one of the bot's posts counts as a reply to it.
pub const REPLY_WINDOW_SECS: i64 = 30 * 60;
/// Days of speakers kept (health looks back 28).
pub const KEEP_SPEAKER_DAYS: i64 = 35;
/// Sends that are not the bot's posts to the group (answers, notices to the admins).
const NOT_POSTS: [&str; 2] = ["reply", "notify_admins"];

/// Written at least this often while messages come.
pub const TALLY_FLUSH_EVERY: Duration = Duration::from_secs(60);
/// Written sooner when it holds this many (day, group, member) entries.
pub const TALLY_MAX_ENTRIES: usize = 50_000;

/// The tally the pipeline counts into and health reads from.
pub type SharedTally = std::sync::Arc<std::sync::Mutex<SpeakerTally>>;

/// Messages per (local day, group, member) not written yet.
#[derive(Debug, Default)]
pub struct SpeakerTally {
    counts: HashMap<(i64, String, String), u32>,
    since: Option<Instant>,
}

impl SpeakerTally {
    /// Counts a message of `user` in `chat` at `at`.
    pub fn add(&mut self, chat: &str, user: &str, at: DateTime<Utc>) {
        let day = local_day_number(at.timestamp());
        *self
            .counts
            .entry((day, chat.to_owned(), user.to_owned()))
            .or_default() += 1;
        self.since.get_or_insert_with(Instant::now);
    }

    /// Whether it is time to write it.
    pub fn is_due(&self) -> bool {
        self.counts.len() >= TALLY_MAX_ENTRIES
            || self.since.is_some_and(|s| s.elapsed() >= TALLY_FLUSH_EVERY)
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// `chat`'s counts not written yet: (local day number, member, messages).
    pub fn of_chat(&self, chat: &str) -> Vec<(i64, String, u32)> {
        self.counts
            .iter()
            .filter(|((_, c, _), _)| c == chat)
            .map(|((day, _, user), count)| (*day, user.clone(), *count))
            .collect()
    }

    /// Every group's counts not written yet, in one pass (for reading many groups).
    pub fn by_chat(&self) -> HashMap<String, Vec<(i64, String, u32)>> {
        let mut out: HashMap<String, Vec<(i64, String, u32)>> = HashMap::new();
        for ((day, chat, user), count) in &self.counts {
            out.entry(chat.clone())
                .or_default()
                .push((*day, user.clone(), *count));
        }
        out
    }

    /// Forgets what was written.
    pub fn clear(&mut self) {
        self.counts.clear();
        self.since = None;
    }
}

/// The local day number as the day key (`2026-11-22`).
fn day_of_number(day: i64) -> String {
    let at = DateTime::from_timestamp(day * 86_400 - CST_OFFSET_SECS, 0).unwrap_or_default();
    local_day(at)
}

/// A group's last 28 days, as health needs them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecentActivity {
    /// Messages in the last 7 days, and in the 21 days before them.
    pub messages_7d: u64,
    pub messages_earlier_21d: u64,
    /// Distinct members who spoke in the last 7 days.
    pub speakers_7d: u64,
    /// Share of the last 7 days' messages by the 3 most talkative members (0 when silent).
    pub top3_share: f64,
    pub joins_7d: u64,
    pub leaves_7d: u64,
    pub bot_posts_7d: u64,
    pub replies_to_posts_7d: u64,
}

impl WriteTx<'_> {
    /// Adds `tally`'s counts to the speaker days (the caller clears it once this commits).
    pub fn write_speaker_tally(&mut self, tally: &SpeakerTally) -> Result<(), StoreError> {
        let mut days: HashMap<i64, String> = HashMap::new();
        for ((day, chat, user), added) in &tally.counts {
            let day = days.entry(*day).or_insert_with(|| day_of_number(*day));
            let key = (day.as_str(), chat.as_str(), user.as_str());
            let count = self.speaker_days.get(key)?.map_or(0, |v| v.value());
            self.speaker_days
                .insert(key, count.saturating_add(*added))?;
        }
        Ok(())
    }

    /// Counts a member's message at `at_secs` as a reply when the bot posted shortly before it.
    pub(super) fn note_reply(
        &mut self,
        chat: &str,
        day: &str,
        at_secs: i64,
    ) -> Result<(), StoreError> {
        let last_post = self.last_posts.get(chat)?.map(|v| v.value());
        if last_post.is_some_and(|p| (0..=REPLY_WINDOW_SECS).contains(&(at_secs - p))) {
            self.bump_group_day(chat, day, |d| d.3 += 1)?;
        }
        Ok(())
    }

    /// Counts a member joining (`joined`) or leaving `chat` at `at`.
    pub fn note_move(
        &mut self,
        chat: &ChatId,
        at: DateTime<Utc>,
        joined: bool,
    ) -> Result<(), StoreError> {
        let day = local_day(at);
        self.bump_group_day(chat.as_str(), &day, |d| {
            if joined { d.0 += 1 } else { d.1 += 1 }
        })
    }

    /// Counts a send delivered to `chat` at `at` of `purpose`, when it is one of the bot's posts.
    pub(super) fn note_post(
        &mut self,
        chat: &ChatId,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if NOT_POSTS.contains(&purpose) {
            return Ok(());
        }
        self.last_posts.insert(chat.as_str(), at.timestamp())?;
        let day = local_day(at);
        self.bump_group_day(chat.as_str(), &day, |d| d.2 += 1)
    }

    fn bump_group_day(
        &mut self,
        chat: &str,
        day: &str,
        change: impl FnOnce(&mut (u64, u64, u64, u64)),
    ) -> Result<(), StoreError> {
        let mut counts = self
            .group_days
            .get((chat, day))?
            .map_or((0, 0, 0, 0), |v| v.value());
        change(&mut counts);
        self.group_days.insert((chat, day), counts)?;
        Ok(())
    }

    /// Forgets who spoke on days before `before`'s day minus [`KEEP_SPEAKER_DAYS`]; returns the
    /// rows removed.
    pub fn prune_speaker_days(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = local_day(before - chrono::Duration::days(KEEP_SPEAKER_DAYS));
        let old: Vec<(String, String, String)> = self
            .speaker_days
            .range::<(&str, &str, &str)>(..(cutoff.as_str(), "", ""))?
            .map(|entry| {
                entry.map(|(k, _)| {
                    let (d, c, u) = k.value();
                    (d.to_owned(), c.to_owned(), u.to_owned())
                })
            })
            .collect::<Result<_, _>>()?;
        for (d, c, u) in &old {
            self.speaker_days
                .remove((d.as_str(), c.as_str(), u.as_str()))?;
        }
        Ok(old.len() as u64)
    }
}

impl Store {
    /// `chat`'s last 28 local days up to `now`, with `pending` (the speaker counts not written
    /// yet, [`SpeakerTally::of_chat`]).
    pub fn recent_activity(
        &self,
        chat: &ChatId,
        now: DateTime<Utc>,
        pending: &[(i64, String, u32)],
    ) -> Result<RecentActivity, StoreError> {
        let tx = self.db.begin_read()?;
        let daily = tx.open_table(DAILY)?;
        let speakers = tx.open_table(SPEAKER_DAYS)?;
        let group_days = tx.open_table(GROUP_DAYS)?;
        let chat = chat.as_str();
        let mut out = RecentActivity::default();
        let mut per_member: std::collections::HashMap<String, u64> = Default::default();
        let today = local_day_number(now.timestamp());
        for (day, user, count) in pending {
            if (today - 6..=today).contains(day) {
                *per_member.entry(user.clone()).or_default() += u64::from(*count);
            }
        }
        for back in 0..28 {
            let day = local_day(now - chrono::Duration::days(back));
            let messages = daily.get((chat, day.as_str()))?.map_or(0, |v| v.value().0);
            if back >= 7 {
                out.messages_earlier_21d += messages;
                continue;
            }
            out.messages_7d += messages;
            for entry in speakers.range((day.as_str(), chat, "")..)? {
                let (key, count) = entry?;
                let (d, c, user) = key.value();
                if d != day || c != chat {
                    break;
                }
                *per_member.entry(user.to_owned()).or_default() += u64::from(count.value());
            }
            if let Some(v) = group_days.get((chat, day.as_str()))? {
                let (joins, leaves, posts, replies) = v.value();
                out.joins_7d += joins;
                out.leaves_7d += leaves;
                out.bot_posts_7d += posts;
                out.replies_to_posts_7d += replies;
            }
        }
        out.speakers_7d = per_member.len() as u64;
        let mut counts: Vec<u64> = per_member.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: u64 = counts.iter().sum();
        if total > 0 {
            out.top3_share = counts.iter().take(3).sum::<u64>() as f64 / total as f64;
        }
        Ok(out)
    }

    /// `chat`'s counters on each of the `days` local days up to `now`, oldest first (written
    /// counters: speakers tallied in the last minute are not in them yet).
    pub fn daily_series(
        &self,
        chat: &ChatId,
        now: DateTime<Utc>,
        days: u32,
    ) -> Result<Vec<DayCounters>, StoreError> {
        let tx = self.db.begin_read()?;
        let daily = tx.open_table(DAILY)?;
        let group_days = tx.open_table(GROUP_DAYS)?;
        let health_days = tx.open_table(HEALTH_DAYS)?;
        let chat = chat.as_str();
        (0..i64::from(days))
            .rev()
            .map(|back| {
                let day = local_day(now - chrono::Duration::days(back));
                let (messages, speakers) = daily
                    .get((chat, day.as_str()))?
                    .map_or((0, 0), |v| v.value());
                let (joins, leaves, _, _) = group_days
                    .get((chat, day.as_str()))?
                    .map_or((0, 0, 0, 0), |v| v.value());
                let health_score = health_days.get((chat, day.as_str()))?.map(|v| v.value());
                Ok(DayCounters {
                    day,
                    messages,
                    speakers,
                    joins,
                    leaves,
                    health_score,
                })
            })
            .collect()
    }

    /// Records each group's health score for the local day of `at` (a later call the same day
    /// replaces it).
    pub fn put_health_scores(
        &self,
        at: DateTime<Utc>,
        scores: &[(ChatId, u32)],
    ) -> Result<(), StoreError> {
        let day = local_day(at);
        let tx = self.db.begin_write()?;
        {
            let mut table = tx.open_table(HEALTH_DAYS)?;
            for (chat, score) in scores {
                table.insert((chat.as_str(), day.as_str()), *score)?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// One group's local day: messages, members who spoke, joins and leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCounters {
    pub day: String,
    pub messages: u64,
    pub speakers: u64,
    pub joins: u64,
    pub leaves: u64,
    /// The group's health score that day, where one was recorded.
    pub health_score: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BotId, Sender};
    use crate::store::GroupRecord;

    #[test]
    fn tally_days_are_the_local_days() {
        let at: DateTime<Utc> = "2026-11-22T16:30:00Z".parse().unwrap();
        assert_eq!(
            day_of_number(local_day_number(at.timestamp())),
            "2026-11-23"
        );
        assert_eq!(
            day_of_number(local_day_number(at.timestamp() - 3600)),
            "2026-11-22"
        );
    }

    #[test]
    fn a_week_of_activity_is_counted_and_old_speakers_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let chat = ChatId::new("g");
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let member = |id: &str| Sender {
            user_id: id.into(),
            ..Sender::default()
        };
        let mut tally = SpeakerTally::default();
        store
            .write(|tx| {
                let mut group = GroupRecord::new(chat.clone(), BotId::parse("b").unwrap());
                // Ten days ago: a post nobody answered and a message of someone else's.
                let old = now - chrono::Duration::days(10);
                tx.note_post(&chat, "morning-report", old)?;
                let at = old + chrono::Duration::hours(2);
                tx.record_message(&mut group, &member("old"), at)?;
                tally.add("g", "old", at);
                // Today: a post, two replies within 30 minutes, a later message; a notice to the
                // admins is not a post.
                let post = now - chrono::Duration::hours(3);
                tx.note_post(&chat, "morning-report", post)?;
                tx.note_post(&chat, "notify_admins", post + chrono::Duration::minutes(50))?;
                for (who, minutes) in [("a", 5), ("b", 20), ("a", 45), ("a", 60), ("c", 90)] {
                    let at = post + chrono::Duration::minutes(minutes);
                    tx.record_message(&mut group, &member(who), at)?;
                    tally.add("g", who, at);
                }
                tx.write_speaker_tally(&tally)?;
                tx.note_move(&chat, now, true)?;
                tx.note_move(&chat, now, true)?;
                tx.note_move(&chat, now, false)
            })
            .unwrap();
        let week = store.recent_activity(&chat, now, &[]).unwrap();
        assert_eq!((week.messages_7d, week.messages_earlier_21d), (5, 1));
        assert_eq!(week.speakers_7d, 3);
        assert_eq!(week.top3_share, 1.0);
        assert_eq!((week.joins_7d, week.leaves_7d), (2, 1));
        assert_eq!((week.bot_posts_7d, week.replies_to_posts_7d), (1, 2));

        // Forty days on, the speakers of those days are gone; the message counts stay.
        let later = now + chrono::Duration::days(40);
        let removed = store.write(|tx| tx.prune_speaker_days(later)).unwrap();
        assert_eq!(removed, 4);
        assert_eq!(
            store.recent_activity(&chat, now, &[]).unwrap().speakers_7d,
            0
        );
        assert_eq!(
            store.recent_activity(&chat, now, &[]).unwrap().messages_7d,
            5
        );
        // Counts not written yet are taken in.
        let today = local_day_number(now.timestamp());
        let pending = [(today, "z".to_owned(), 4), (today - 9, "y".to_owned(), 1)];
        let week = store.recent_activity(&chat, now, &pending).unwrap();
        assert_eq!((week.speakers_7d, week.top3_share), (1, 1.0));
    }

    #[test]
    fn a_day_series_holds_the_counters_and_the_recorded_scores() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let chat = ChatId::new("g");
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let yesterday = now - chrono::Duration::days(1);
        store
            .write(|tx| {
                let mut group = GroupRecord::new(chat.clone(), BotId::parse("b").unwrap());
                for (user, at) in [("a", yesterday), ("a", now), ("b", now)] {
                    let sender = Sender {
                        user_id: user.into(),
                        ..Sender::default()
                    };
                    tx.record_message(&mut group, &sender, at)?;
                }
                Ok(())
            })
            .unwrap();
        store
            .put_health_scores(yesterday, &[(chat.clone(), 61)])
            .unwrap();
        store.put_health_scores(now, &[(chat.clone(), 40)]).unwrap();
        // The same day again replaces its score.
        store.put_health_scores(now, &[(chat.clone(), 42)]).unwrap();
        let days = store.daily_series(&chat, now, 3).unwrap();
        let seen: Vec<(u64, u64, Option<u32>)> = days
            .iter()
            .map(|d| (d.messages, d.speakers, d.health_score))
            .collect();
        assert_eq!(seen, [(0, 0, None), (1, 1, Some(61)), (2, 2, Some(42))]);
        assert_eq!(days[2].day, local_day(now));
        let totals = store.message_totals(now, 2).unwrap();
        assert_eq!(totals, [(local_day(yesterday), 1), (local_day(now), 2)]);
    }
}
