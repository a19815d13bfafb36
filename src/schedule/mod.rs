//! Planning a job's slot: for each adopted group it targets (in the zone the group runs in), the
//! message rendered with the slot's content — the calendar column, dated and queued items, feed
//! headlines — as sends for the outbox, with their spread over the job's window. The jobs
//! themselves and their cron arithmetic are the engine's ([`crate::engine::jobs`]).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::{ChatId, GroupSettings};
use crate::engine::content::{Column, Content, Item};
use crate::engine::jobs::Job;

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
/// How a slot is planned beyond its facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanFlags {
    /// Missed while the service was down and beyond `catch_up_within`: every send is skipped.
    pub missed: bool,
    /// An operator chose to send inside the job's quiet hours (a run by hand with the override).
    pub override_quiet_hours: bool,
}

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
    scripts: &crate::engine::Scripts,
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
        PlanFlags {
            missed,
            override_quiet_hours: false,
        },
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
    scripts: &'a crate::engine::Scripts,
    content: &'a SlotContent,
    flags: PlanFlags,
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
            let skip = if flags.missed {
                Some(format!(
                    "missed: the service was down at {local_slot} and catch_up_within_minutes ({}) had passed",
                    job.catch_up_within.as_secs() / 60
                ))
            } else if !flags.override_quiet_hours && job.is_quiet(zone, not_before) {
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
