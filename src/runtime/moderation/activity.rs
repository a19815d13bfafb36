//! Recent activity, in memory: each member's message times per group, where and by whom each
//! text (by the hash of its canonical form) was posted, and joins per group with the raids they
//! started. Bounded: entries older than the longest window the rules look back are swept, each
//! list keeps at most [`MAX_PER_KEY`] entries, and all lists together at most [`MAX_ENTRIES`]
//! (the oldest go first: at thousands of messages a second the windows shrink rather than the
//! memory grow). Lost on restart, which only means a flood or campaign straddling a restart is
//! seen from the restart on.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::AccountKey;
use crate::domain::ChatId;

/// The most entries kept per member, per text or per group.
pub const MAX_PER_KEY: usize = 256;
/// The most message times and text sightings kept in all (about 100 bytes each).
pub const MAX_ENTRIES: usize = 200_000;

/// Which list an entry went into, in the order entries came (for evicting the oldest).
enum Entry {
    Message(u64),
    Text(u64),
}

/// A member of a group, as a 64-bit hash: the lists need only tell members apart, and a hash
/// costs no allocation per entry (two members sharing one would only share a flood count).
fn member_key(chat: &ChatId, user_id: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    chat.as_str().hash(&mut hasher);
    user_id.hash(&mut hasher);
    hasher.finish()
}

/// How often the tracker is swept of old entries.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Where a text was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub chat: ChatId,
    /// The sender, as [`member_key`] of the group and the user id.
    pub member: u64,
    pub at: DateTime<Utc>,
    /// The message and the bot account it came through, to delete the copies of a campaign.
    pub message_id: Option<String>,
    pub via: Option<AccountKey>,
}

/// What the tracker knew before a message, for the checks.
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub member_messages: Vec<DateTime<Utc>>,
    pub same_text: Vec<DateTime<Utc>>,
    /// Sightings of the same text in other groups.
    pub elsewhere: Vec<Sighting>,
    pub raid_until: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct Tracker {
    messages: HashMap<u64, VecDeque<DateTime<Utc>>>,
    texts: HashMap<u64, VecDeque<Sighting>>,
    /// Every message time and sighting, oldest first, with when it was recorded.
    order: VecDeque<(Entry, DateTime<Utc>)>,
    joins: HashMap<ChatId, VecDeque<DateTime<Utc>>>,
    raids: HashMap<ChatId, DateTime<Utc>>,
    last_sweep: Option<DateTime<Utc>>,
}

fn text_key(canonical: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    canonical.hash(&mut hasher);
    hasher.finish()
}

fn push_bounded<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= MAX_PER_KEY {
        list.pop_front();
    }
    list.push_back(item);
}

fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - at).to_std().unwrap_or_default()
}

impl Sighting {
    /// A sighting of `user_id`'s message in `chat` at `at`.
    pub fn new(
        chat: &ChatId,
        user_id: &str,
        at: DateTime<Utc>,
        message_id: Option<String>,
        via: Option<AccountKey>,
    ) -> Self {
        Sighting {
            member: member_key(chat, user_id),
            chat: chat.clone(),
            at,
            message_id,
            via,
        }
    }
}

impl Tracker {
    /// Records a message and returns what was known before it. `keep` is the longest window
    /// any check looks back.
    pub fn message(
        &mut self,
        sighting: Sighting,
        canonical: &str,
        keep: Duration,
        now: DateTime<Utc>,
    ) -> Before {
        self.sweep(keep, now);
        let key = sighting.member;
        let member = self.messages.entry(key).or_default();
        let member_messages: Vec<_> = member.iter().copied().collect();
        push_bounded(member, sighting.at);
        self.order.push_back((Entry::Message(key), sighting.at));
        let mut before = Before {
            member_messages,
            raid_until: self.raid_until(&sighting.chat, now),
            ..Before::default()
        };
        if !canonical.is_empty() {
            let text = text_key(canonical);
            self.order.push_back((Entry::Text(text), sighting.at));
            let seen = self.texts.entry(text).or_default();
            for s in seen.iter() {
                if s.chat == sighting.chat {
                    if s.member == sighting.member {
                        before.same_text.push(s.at);
                    }
                } else {
                    before.elsewhere.push(s.clone());
                }
            }
            push_bounded(seen, sighting);
        }
        while self.order.len() > MAX_ENTRIES {
            self.evict_oldest();
        }
        before
    }

    /// Drops the oldest entry of all (if its list still holds it: a list may have dropped it
    /// already, by its own bound or a sweep).
    fn evict_oldest(&mut self) {
        let Some((entry, at)) = self.order.pop_front() else {
            return;
        };
        match entry {
            Entry::Message(key) => {
                if let Some(times) = self.messages.get_mut(&key) {
                    if times.front() == Some(&at) {
                        times.pop_front();
                    }
                    if times.is_empty() {
                        self.messages.remove(&key);
                    }
                }
            }
            Entry::Text(key) => {
                if let Some(seen) = self.texts.get_mut(&key) {
                    if seen.front().is_some_and(|s| s.at == at) {
                        seen.pop_front();
                    }
                    if seen.is_empty() {
                        self.texts.remove(&key);
                    }
                }
            }
        }
    }

    /// Records a join in `chat`; when it makes `joins` within `within`, raid mode starts for
    /// `lasts` and this returns the number of joins (once per raid).
    pub fn join(
        &mut self,
        chat: &ChatId,
        raid: Option<crate::engine::moderation::Raid>,
        now: DateTime<Utc>,
    ) -> Option<usize> {
        let raid = raid?;
        let joins = self.joins.entry(chat.clone()).or_default();
        push_bounded(joins, now);
        let recent = joins
            .iter()
            .filter(|&&t| age(t, now) <= raid.within)
            .count();
        if recent < raid.joins as usize || self.raid_until(chat, now).is_some() {
            return None;
        }
        let until = now + chrono::Duration::from_std(raid.lasts).unwrap_or_default();
        self.raids.insert(chat.clone(), until);
        Some(recent)
    }

    /// Until when `chat` is in raid mode, if it is.
    pub fn raid_until(&self, chat: &ChatId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.raids.get(chat).copied().filter(|&until| until > now)
    }

    /// Drops everything older than `keep` (and at least the last minute's raids' windows).
    fn sweep(&mut self, keep: Duration, now: DateTime<Utc>) {
        if self
            .last_sweep
            .is_some_and(|last| age(last, now) < SWEEP_EVERY)
        {
            return;
        }
        self.last_sweep = Some(now);
        let keep = keep.max(SWEEP_EVERY);
        let fresh = |at: &DateTime<Utc>| age(*at, now) <= keep;
        while self.order.front().is_some_and(|(_, at)| !fresh(at)) {
            self.order.pop_front();
        }
        self.messages.retain(|_, times| {
            times.retain(fresh);
            !times.is_empty()
        });
        self.texts.retain(|_, seen| {
            seen.retain(|s| fresh(&s.at));
            !seen.is_empty()
        });
        // Joins are kept for the raid window, which may be longer than the checks' windows.
        self.joins.retain(|_, times| {
            times.retain(|t| age(*t, now) <= Duration::from_secs(24 * 3600));
            !times.is_empty()
        });
        self.raids.retain(|_, until| *until > now);
    }

    /// How many entries the tracker holds (for tests of its bounds).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.messages.values().map(VecDeque::len).sum::<usize>()
            + self.texts.values().map(VecDeque::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::moderation::Raid;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn seen(chat: &str, user: &str, secs: i64) -> Sighting {
        Sighting::new(
            &ChatId::new(chat),
            user,
            at(secs),
            Some(format!("m{secs}")),
            None,
        )
    }

    #[test]
    fn messages_and_texts_are_remembered_per_member_and_group() {
        let mut t = Tracker::default();
        let keep = Duration::from_secs(600);
        t.message(seen("g1", "u1", 0), "刷单", keep, at(0));
        t.message(seen("g2", "u2", 1), "刷单", keep, at(1));
        let before = t.message(seen("g1", "u1", 2), "刷单", keep, at(2));
        assert_eq!(before.member_messages, vec![at(0)]);
        assert_eq!(before.same_text, vec![at(0)]);
        assert_eq!(before.elsewhere.len(), 1);
        assert_eq!(before.elsewhere[0].chat, ChatId::new("g2"));
        // Long after, everything is swept.
        let before = t.message(seen("g1", "u1", 5000), "刷单", keep, at(5000));
        assert!(before.member_messages.is_empty() && before.elsewhere.is_empty());
        assert_eq!(t.len(), 2, "only the last message and its text are left");
    }

    #[test]
    fn lists_are_bounded() {
        let mut t = Tracker::default();
        for i in 0..1000 {
            t.message(
                seen("g1", "u1", 0),
                "同一句话",
                Duration::from_secs(600),
                at(0) + chrono::Duration::milliseconds(i),
            );
        }
        assert_eq!(t.len(), 2 * MAX_PER_KEY);
    }

    #[test]
    fn all_lists_together_are_bounded() {
        let mut t = Tracker::default();
        let keep = Duration::from_secs(600);
        for i in 0..(MAX_ENTRIES as i64) {
            let member = format!("u{i}");
            let mut s = seen("g1", &member, 0);
            s.at = at(0) + chrono::Duration::microseconds(i);
            t.message(s, &format!("消息{i}"), keep, at(0));
        }
        assert_eq!(t.len(), MAX_ENTRIES, "the oldest half went");
        assert!(t.order.len() <= MAX_ENTRIES);
        // The newest are kept.
        let before = t.message(seen("g2", "u199999", 1), "消息199999", keep, at(1));
        assert_eq!(before.elsewhere.len(), 1);
        let before = t.message(seen("g2", "u0", 1), "消息0", keep, at(1));
        assert!(before.elsewhere.is_empty(), "evicted");
    }

    #[test]
    fn a_raid_starts_once_and_ends() {
        let mut t = Tracker::default();
        let raid = Some(Raid {
            joins: 3,
            within: Duration::from_secs(60),
            lasts: Duration::from_secs(600),
        });
        let g = ChatId::new("g1");
        assert_eq!(t.join(&g, raid, at(0)), None);
        assert_eq!(t.join(&g, raid, at(10)), None);
        assert_eq!(t.join(&g, raid, at(20)), Some(3));
        assert_eq!(t.join(&g, raid, at(21)), None, "already in a raid");
        assert!(t.raid_until(&g, at(300)).is_some());
        assert!(t.raid_until(&g, at(700)).is_none());
        assert!(t.raid_until(&ChatId::new("g2"), at(30)).is_none());
        // Joins spread out are no raid.
        let g3 = ChatId::new("g3");
        for i in 0..10 {
            assert_eq!(t.join(&g3, raid, at(i * 100)), None);
        }
        assert_eq!(t.join(&g, None, at(0)), None, "no raid rule, no raids");
    }
}
