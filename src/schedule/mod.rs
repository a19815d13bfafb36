//! Schedules: the jobs operators write in `bot-scripts/schedules.toml` — a 5-field cron
//! expression in a time zone (croner; see docs/decisions.md), the groups it targets, quiet hours,
//! a spread window and a misfire policy — and the pure arithmetic on them: the next slots, the
//! slots missed in an interval, whether a group is targeted.

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::domain::{ChatId, GroupSettings};
use crate::engine::keywords::Window;
use crate::engine::scope::{Place, Scope};
use crate::scripts::Message;

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
            && self.message == other.message
    }
}

impl Job {
    /// The first slot strictly after `after`.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
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

    /// The slots in `(from, to]`, oldest first, at most `limit` of them.
    pub fn slots_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::new();
        let mut at = from;
        while slots.len() < limit {
            match self.next_slot(at) {
                Some(slot) if slot <= to => {
                    slots.push(slot);
                    at = slot;
                }
                _ => break,
            }
        }
        slots
    }

    /// Whether `at` falls in the job's quiet hours (in its time zone).
    pub fn is_quiet(&self, at: DateTime<Utc>) -> bool {
        if self.quiet_hours.is_empty() {
            return false;
        }
        let local = at.with_timezone(&self.timezone);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.quiet_hours.iter().any(|w| w.contains(minute))
    }

    /// Whether the job sends to the group at `chat` with `settings` (adoption is the caller's).
    pub fn targets(&self, chat: &ChatId, settings: &GroupSettings) -> bool {
        let place = Place {
            chat: Some(chat),
            settings,
        };
        match &self.targets {
            Targets::All => true,
            Targets::Scopes(scopes) => scopes.iter().any(|s| s.covers(place)),
        }
    }
}

#[cfg(test)]
mod tests;
