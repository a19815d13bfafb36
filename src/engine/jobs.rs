//! Jobs: what operators write in `bot-scripts/schedules.toml` — a 5-field cron expression in a
//! time zone (croner; see docs/decisions.md), the groups it targets, quiet hours, a spread window
//! and a misfire policy — and the pure arithmetic on them: the next slots, the slots missed in an
//! interval, whether a group is targeted. Planning a slot into sends is `schedule`'s.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::domain::{ChatId, GroupSettings};
use crate::engine::keywords::Window;
use crate::engine::message::Message;
use crate::engine::scope::{Place, Scope};

/// The time zone of a job that names none.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Shanghai;

/// Which groups a job sends to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every adopted group.
    All,
    /// Adopted groups any of these scopes covers (tags, chat ids).
    Scopes(Vec<Scope>),
}

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct Job {
    /// `morning-report`, …: letters, digits, `-`, `_`.
    pub name: String,
    /// The expression as written.
    pub cron_text: String,
    pub cron: croner::Cron,
    pub timezone: Tz,
    pub targets: Targets,
    /// Local-time windows (in the job's zone) in which nothing is sent.
    pub quiet_hours: Vec<Window>,
    /// Sends of one slot are spread evenly over this long.
    pub spread: Duration,
    /// A slot missed while the service was down is still sent within this long after it.
    pub catch_up_within: Duration,
    pub enabled: bool,
    /// Undated items of the content queue each slot takes (the same ones for every group).
    pub queue_items: usize,
    pub message: Message,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.cron_text == other.cron_text
            && self.timezone == other.timezone
            && self.targets == other.targets
            && self.quiet_hours == other.quiet_hours
            && self.spread == other.spread
            && self.catch_up_within == other.catch_up_within
            && self.enabled == other.enabled
            && self.queue_items == other.queue_items
            && self.message == other.message
    }
}

impl Job {
    /// The first slot strictly after `after`, in the job's own time zone.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_slot_in(self.timezone, after)
    }

    /// The first slot strictly after `after` for groups in `zone`.
    pub fn next_slot_in(&self, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next_occurrence(&self.cron, zone, after)
    }

    /// The next `n` slots after `after`.
    pub fn next_slots(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::with_capacity(n);
        let mut at = after;
        while slots.len() < n {
            match self.next_slot(at) {
                Some(slot) => {
                    slots.push(slot);
                    at = slot;
                }
                None => break,
            }
        }
        slots
    }

    /// The slots in `(from, to]` in the job's own time zone, oldest first, at most `limit`.
    pub fn slots_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        self.slots_between_in(self.timezone, from, to, limit)
    }

    /// The slots in `(from, to]` for groups in `zone`, oldest first, at most `limit` of them.
    pub fn slots_between_in(
        &self,
        zone: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::new();
        let mut at = from;
        while slots.len() < limit {
            match self.next_slot_in(zone, at) {
                Some(slot) if slot <= to => {
                    slots.push(slot);
                    at = slot;
                }
                _ => break,
            }
        }
        slots
    }

    /// When the quiet hours `at` falls in end (the first minute after it that is not quiet),
    /// or `None` when `at` is not quiet. Quiet hours that never end (every minute quiet) end
    /// `None` as well: a day later is still quiet.
    pub fn quiet_until(&self, zone: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.is_quiet(zone, at) {
            return None;
        }
        let start = at
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(at);
        (1..=24 * 60)
            .map(|minutes| start + chrono::Duration::minutes(minutes))
            .find(|t| !self.is_quiet(zone, *t))
    }

    /// Whether `at` falls in the job's quiet hours in `zone` (the zone of the group).
    pub fn is_quiet(&self, zone: Tz, at: DateTime<Utc>) -> bool {
        if self.quiet_hours.is_empty() {
            return false;
        }
        let local = at.with_timezone(&zone);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.quiet_hours.iter().any(|w| w.contains(minute))
    }

    /// The zone the job runs in for a group: the group's own when an operator set one (and it
    /// is still a known zone), else the job's.
    pub fn zone_for(&self, settings: &GroupSettings) -> Tz {
        settings
            .timezone
            .as_deref()
            .and_then(|z| z.parse::<Tz>().ok())
            .unwrap_or(self.timezone)
    }

    /// The name under which the last slot planned in `zone` is remembered.
    pub fn mark_name(&self, zone: Tz) -> String {
        if zone == self.timezone {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, zone.name())
        }
    }

    /// Whether the job sends to the group at `chat` with `settings` (adoption is the caller's).
    pub fn targets(&self, chat: &ChatId, settings: &GroupSettings) -> bool {
        self.targets.cover(chat, settings)
    }
}

/// The first time strictly after `after` that `cron` matches in `zone`.
pub fn next_occurrence(
    cron: &croner::Cron,
    zone: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&zone);
    cron.find_next_occurrence(&local, false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The last time in `(after, until]` that `cron` matches in `zone`, if any (at most 10,080 steps:
/// a schedule every minute over a week).
pub fn last_occurrence_between(
    cron: &croner::Cron,
    zone: Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut last = None;
    let mut at = after;
    for _ in 0..10_080 {
        match next_occurrence(cron, zone, at) {
            Some(slot) if slot <= until => {
                last = Some(slot);
                at = slot;
            }
            _ => break,
        }
    }
    last
}

impl Targets {
    /// Whether these targets take in the group at `chat` with `settings`.
    pub fn cover(&self, chat: &ChatId, settings: &GroupSettings) -> bool {
        let place = Place {
            chat: Some(chat),
            settings,
        };
        match self {
            Targets::All => true,
            Targets::Scopes(scopes) => scopes.iter().any(|s| s.covers(place)),
        }
    }
}
