//! Schedules: the jobs operators write in `bot-scripts/schedules.toml` — a 5-field cron
//! expression in a time zone (croner; see docs/decisions.md), the groups it targets, quiet hours,
//! a spread window and a misfire policy — and the pure arithmetic on them: the next slots, the
//! slots missed in an interval, whether a group is targeted.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use crate::domain::{ChatId, GroupSettings};
use crate::engine::keywords::Window;
use crate::engine::scope::{Place, Scope};
use crate::scripts::Message;
use crate::scripts::content::{Column, Content, Item};

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

#[cfg(test)]
mod tests;

/// A group a job may send to: its chat id, bot, webhook URL and settings.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub chat: ChatId,
    pub bot: crate::domain::BotId,
    pub to: crate::store::Destination,
    /// Members the bot has seen in the group (`group.member_count`).
    pub members: u64,
    pub settings: std::sync::Arc<GroupSettings>,
}

/// What one slot's message is made of besides the group: the day's column of the weekly
/// calendar, the content queue's items for the day, and the whole week's calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotContent {
    pub column: Option<Column>,
    /// Items dated that day, then the undated ones the slot took.
    pub items: Vec<Item>,
    pub calendar: Vec<Column>,
    /// Every declared feed by name, with its cached entries for the slot.
    pub feeds: std::collections::BTreeMap<String, crate::engine::vars::FeedView>,
}

impl SlotContent {
    /// Gathers the content of the local date `date` from `content`; `claimed` are the undated
    /// items the (job, date) took from the queue (see [`claim_name`]).
    pub fn gather(content: &Content, date: NaiveDate, claimed: &[String]) -> Self {
        let weekday = date.weekday().number_from_monday() as u8;
        let mut items: Vec<Item> = content.dated(date).cloned().collect();
        items.extend(claimed.iter().filter_map(|id| content.item(id)).cloned());
        Self {
            column: content.column(weekday).cloned(),
            items,
            calendar: content.columns.iter().flatten().cloned().collect(),
            feeds: Default::default(),
        }
    }
}

/// Why a slot due at `now` is planned: `schedule` when it came while the service was running
/// (since `started`), else — it went by while the service was down — `catch_up` when it is at
/// most `catch_up_within` old, or `missed` (recorded as skipped for every group).
pub fn trigger_for(
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    catch_up_within: std::time::Duration,
) -> &'static str {
    if slot >= started {
        "schedule"
    } else if (now - slot).to_std().unwrap_or_default() <= catch_up_within {
        "catch_up"
    } else {
        "missed"
    }
}

/// The local date of `slot` in `zone`.
pub fn local_date(slot: DateTime<Utc>, zone: Tz) -> NaiveDate {
    slot.with_timezone(&zone).date_naive()
}

/// The name under which a job's queue items of one local date are claimed: every zone and every
/// planning of that day shares them.
pub fn claim_name(job: &str, date: NaiveDate) -> String {
    format!("{job}@{date}")
}

/// The run id of a job's slot: the same however often the slot is planned.
pub fn run_id(job: &str, slot: DateTime<Utc>) -> String {
    format!("{job}@{}", slot.format("%Y%m%dT%H%MZ"))
}

/// Plans one slot of `job` in `zone` for `recipients` (the adopted groups): the groups in that
/// zone that the job targets and that have not switched it off get one send each, spread over
/// the job's window from `max(slot, now)`. A slot `missed` while the service was down and beyond
/// `catch_up_within` (see [`trigger_for`]), a send that would fall in quiet hours, and a message
/// that does not render are planned as skipped with the reason — counted in the run, never
/// silently lost.
#[allow(clippy::too_many_arguments)] // each is one fact about the slot; a struct would only rename them
pub fn plan(
    job: &Job,
    zone: Tz,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
    recipients: &[Recipient],
    scripts: &crate::scripts::Scripts,
    content: &SlotContent,
    missed: bool,
) -> Vec<crate::store::NewSend> {
    plan_each(
        job,
        zone,
        slot,
        slot.max(now),
        recipients,
        scripts,
        content,
        missed,
    )
    .collect()
}

/// [`plan`], one send at a time as the iterator is advanced: a run to 100,000 groups renders and
/// writes them in chunks instead of holding every report at once. The sends are spread from
/// `start` — `max(slot, now)`, or now for a slot run by hand before it comes.
#[allow(clippy::too_many_arguments)]
pub fn plan_each<'a>(
    job: &'a Job,
    zone: Tz,
    slot: DateTime<Utc>,
    start: DateTime<Utc>,
    recipients: &'a [Recipient],
    scripts: &'a crate::scripts::Scripts,
    content: &'a SlotContent,
    missed: bool,
) -> impl Iterator<Item = crate::store::NewSend> + 'a {
    use crate::domain::{Role, Sender};
    use crate::engine::vars;

    let run = run_id(&job.name, slot);
    let targeted: Vec<&Recipient> = recipients
        .iter()
        .filter(|r| job.targets(&r.chat, &r.settings))
        .filter(|r| !r.settings.disabled_rules.contains(&job.name))
        .filter(|r| job.zone_for(&r.settings) == zone)
        .collect();
    let n = targeted.len().max(1) as u32;
    let local_slot = slot
        .with_timezone(&zone)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    targeted
        .into_iter()
        .enumerate()
        .map(move |(i, r)| {
            let offset = job.spread.checked_mul(i as u32).map(|d| d / n).unwrap_or_default();
            let not_before = start + chrono::Duration::from_std(offset).unwrap_or_default();
            let vars = || {
                minijinja::context! {
                    job => minijinja::context! { name => &job.name, slot => &local_slot },
                    date => vars::date_in(slot, zone),
                    group => minijinja::context! {
                        member_count => r.members,
                        ..vars::group(Some(&r.chat), &r.settings)
                    },
                    column => &content.column,
                    items => &content.items,
                    calendar => &content.calendar,
                    feeds => &content.feeds,
                    ..vars::base(&Sender::default(), Role::Member, Some(&r.chat), &r.settings, slot)
                }
            };
            let rendered = job.message.push(&scripts.templates, vars, &[]);
            let skip = if missed {
                Some(format!(
                    "missed: the service was down at {local_slot} and catch_up_within_minutes ({}) had passed",
                    job.catch_up_within.as_secs() / 60
                ))
            } else if job.is_quiet(zone, not_before) {
                Some("quiet hours".to_owned())
            } else {
                rendered.as_ref().err().map(|e| format!("template failed: {e}"))
            };
            let message = rendered.unwrap_or_else(|_| crate::domain::OutMessage::Text {
                content: String::new(),
                mentioned: Vec::new(),
                mentioned_mobiles: Vec::new(),
            });
            crate::store::NewSend {
                key: format!("job:{}:{}", run, r.chat),
                chat: Some(r.chat.clone()),
                bot: Some(r.bot.clone()),
                to: r.to.clone(),
                message,
                purpose: job.name.clone(),
                run: Some(run.clone()),
                not_before: Some(not_before),
                skip,
            }
        })
}
