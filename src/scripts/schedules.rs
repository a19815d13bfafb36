//! `bot-scripts/schedules.toml`: scheduled jobs (the morning report, the weekly columns), each
//! validated completely — the cron expression, the time zone, the targets, quiet hours, spread
//! and misfire window, and the message template.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use super::keywords::parse_window;
use super::{Format, RawMessage, ScriptError, Source, check_identifier, line_col};
use crate::engine::jobs::{DEFAULT_TIMEZONE, Job, Targets};
use crate::engine::scope::Scope;
use crate::engine::template::Templates;

/// The schedules file inside the scripts directory (optional: no file, no jobs).
pub const SCHEDULES_FILE: &str = "schedules.toml";

/// Limits on what operators may set.
const MAX_SPREAD_MINUTES: u64 = 180;
const MAX_CATCH_UP_MINUTES: u64 = 24 * 60;
const DEFAULT_CATCH_UP_MINUTES: u64 = 120;
const MAX_QUEUE_ITEMS: usize = 10;

fn yes() -> bool {
    true
}

fn default_catch_up() -> u64 {
    DEFAULT_CATCH_UP_MINUTES
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawTargets {
    /// `"all"`.
    Word(String),
    /// `["tag:…", "group:…"]`.
    Scopes(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    name: String,
    cron: String,
    #[serde(default)]
    timezone: Option<String>,
    targets: RawTargets,
    #[serde(default)]
    quiet_hours: Vec<String>,
    #[serde(default)]
    spread_minutes: u64,
    #[serde(default = "default_catch_up")]
    catch_up_within_minutes: u64,
    #[serde(default = "yes")]
    enabled: bool,
    format: Format,
    content: toml::Spanned<String>,
    #[serde(default)]
    mention_sender: bool,
    #[serde(default)]
    queue_items: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchedulesFile {
    #[serde(default)]
    job: Vec<toml::Spanned<RawJob>>,
}

pub(crate) fn targets(raw: &RawTargets) -> Result<Targets, String> {
    match raw {
        RawTargets::Word(w) if w == "all" => Ok(Targets::All),
        RawTargets::Word(w) => Err(format!(
            "targets {w:?} must be \"all\" or a list of \"tag:…\" / \"group:…\""
        )),
        RawTargets::Scopes(list) if list.is_empty() => {
            Err("targets must name at least one tag or group".into())
        }
        RawTargets::Scopes(list) => list
            .iter()
            .map(|s| match Scope::parse(s)? {
                Scope::Global => Err("use targets = \"all\" rather than \"global\"".into()),
                scope => Ok(scope),
            })
            .collect::<Result<Vec<_>, String>>()
            .map(Targets::Scopes),
    }
}

/// A 5-field cron expression and an IANA time zone (the default when `None`), checked.
pub(crate) fn cron_and_zone(
    cron: &str,
    timezone: Option<&str>,
) -> Result<(croner::Cron, Tz), String> {
    // Five fields, as crontab writes them; croner would also take six (with seconds).
    if cron.split_whitespace().count() != 5 {
        return Err(format!(
            "cron {cron:?} must have 5 fields (minute hour day month weekday), e.g. \"30 7 * * *\""
        ));
    }
    if let Some(problem) = out_of_range_field(cron) {
        return Err(format!("cron {cron:?}: {problem}"));
    }
    let parsed = croner::Cron::new(cron).parse().map_err(|e| {
        format!("cron {cron:?}: {e} (the fields are minute hour day month weekday; a weekday is 0–7 or SUN–SAT, a month 1–12 or JAN–DEC)")
    })?;
    let zone = match timezone {
        None => DEFAULT_TIMEZONE,
        Some(name) => Tz::from_str(name).map_err(|_| {
            format!("timezone {name:?} is not an IANA time zone such as \"Asia/Shanghai\"")
        })?,
    };
    // `30 7 30 2 *` parses but never comes; `0 9 29 2 *` comes every four years.
    let start = chrono::Utc::now();
    if crate::engine::jobs::next_occurrence(&parsed, zone, start)
        .is_none_or(|next| next - start > chrono::Duration::days(5 * 366))
    {
        return Err(format!(
            "cron {cron:?} never fires (no such day: check the day and month fields)"
        ));
    }
    Ok((parsed, zone))
}

/// The first number outside its field's range, named: croner's own message does not say which
/// field (`30 25 * * *` → "Number out of bounds").
fn out_of_range_field(cron: &str) -> Option<String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day", 1, 31),
        ("month", 1, 12),
        ("weekday", 0, 7),
    ];
    for (field, (name, low, high)) in cron.split_whitespace().zip(FIELDS) {
        // Numbers in lists, ranges and steps (`1,15`, `9-17`, `*/20`); a step is not a value.
        for part in field.split(',') {
            let (values, _step) = part.split_once('/').unwrap_or((part, ""));
            for value in values.split('-') {
                if let Ok(n) = value.parse::<u32>()
                    && !(low..=high).contains(&n)
                {
                    return Some(format!(
                        "the {name} field is {n}, but a {name} is {low}–{high}"
                    ));
                }
            }
        }
    }
    None
}

/// Everything but the message, which the caller compiles.
fn validate(raw: &RawJob) -> Result<Job, String> {
    check_identifier("name", &raw.name)?;
    let job = |reason: String| format!("job {:?}: {reason}", raw.name);
    let (cron, timezone) = cron_and_zone(&raw.cron, raw.timezone.as_deref()).map_err(job)?;
    if raw.spread_minutes > MAX_SPREAD_MINUTES {
        return Err(job(format!(
            "spread_minutes must be at most {MAX_SPREAD_MINUTES}"
        )));
    }
    if raw.catch_up_within_minutes > MAX_CATCH_UP_MINUTES {
        return Err(job(format!(
            "catch_up_within_minutes must be at most {MAX_CATCH_UP_MINUTES}"
        )));
    }
    if raw.queue_items > MAX_QUEUE_ITEMS {
        return Err(job(format!(
            "queue_items must be at most {MAX_QUEUE_ITEMS}"
        )));
    }
    let quiet_hours = raw
        .quiet_hours
        .iter()
        .map(|h| parse_window(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(job)?;
    let job_built = Job {
        name: raw.name.clone(),
        cron_text: raw.cron.clone(),
        cron,
        timezone,
        targets: targets(&raw.targets).map_err(job)?,
        quiet_hours,
        spread: Duration::from_secs(raw.spread_minutes * 60),
        catch_up_within: Duration::from_secs(raw.catch_up_within_minutes * 60),
        enabled: raw.enabled,
        queue_items: raw.queue_items,
        message: super::Message::literal(raw.format, "", raw.mention_sender),
    };
    // Quiet hours that hold every slot would skip every send, for ever.
    if !job_built.quiet_hours.is_empty() && !sends_outside_quiet_hours(&job_built) {
        return Err(job(format!(
            "every slot of cron {:?} falls in quiet_hours {:?}: the job would never send",
            raw.cron, raw.quiet_hours
        )));
    }
    Ok(job_built)
}

/// Whether some slot of `job` in the coming year falls outside its quiet hours. Stops at the
/// first such slot; looks at most at two weeks' worth of minutes (a job every minute covers
/// every time of day and weekday in that) — a count of slots from now alone could end inside
/// tonight's quiet hours.
fn sends_outside_quiet_hours(job: &Job) -> bool {
    const MAX_SLOTS: usize = 14 * 24 * 60;
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::days(400);
    let mut at = now;
    for _ in 0..MAX_SLOTS {
        match job.next_slot_in(job.timezone, at) {
            Some(slot) if slot <= until => {
                if !job.is_quiet(job.timezone, slot) {
                    return true;
                }
                at = slot;
            }
            // No slot at all is the never-firing check's to report.
            _ => return at == now,
        }
    }
    false
}

/// Parses a schedules file, adding its templates to `templates`.
pub(crate) fn parse(src: &Source<'_>, templates: &mut Templates) -> Result<Vec<Job>, ScriptError> {
    let parsed: SchedulesFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut jobs = Vec::with_capacity(parsed.job.len());
    let mut first_at: HashMap<String, usize> = HashMap::new();
    for spanned in parsed.job {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let mut job = validate(&raw).map_err(|reason| src.error(start, reason))?;
        if let Some(&earlier) = first_at.get(&job.name) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!("job {:?} is already defined at line {line}", job.name),
            ));
        }
        first_at.insert(job.name.clone(), start);
        job.message = src.message(
            templates,
            &format!("job {}", job.name),
            &RawMessage {
                format: raw.format,
                content: raw.content,
                mention_sender: raw.mention_sender,
            },
        )?;
        jobs.push(job);
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const JOB: &str = "[[job]]\nname = \"morning-report\"\ncron = \"30 7 * * *\"\ntargets = \"all\"\nformat = \"markdown\"\ncontent = \"早上好\"\n";

    fn parse_text(text: &str) -> Result<Vec<Job>, ScriptError> {
        parse(
            &Source::new(text, Path::new("schedules.toml")),
            &mut Templates::new(),
        )
    }

    #[test]
    fn a_job_parses_with_its_defaults() {
        let jobs = parse_text(JOB).unwrap();
        assert_eq!(jobs[0].timezone, DEFAULT_TIMEZONE);
        assert_eq!(jobs[0].catch_up_within, Duration::from_secs(7200));
        assert_eq!(jobs[0].targets, Targets::All);
    }

    /// Issue 27 §12: quiet hours that hold every slot are refused; holding some is fine.
    #[test]
    fn quiet_hours_over_every_slot_are_refused() {
        let with = |cron: &str, quiet: &str| {
            parse_text(&JOB.replace("30 7 * * *", cron).replace(
                "targets = \"all\"",
                &format!("targets = \"all\"\nquiet_hours = [\"{quiet}\"]"),
            ))
        };
        let err = with("30 23 * * *", "22:00-07:00").unwrap_err();
        assert!(err.reason.contains("would never send"), "{err}");
        assert!(with("30 7 * * *", "22:00-07:00").is_ok());
        assert!(
            with("0 6,8 * * *", "22:00-07:00").is_ok(),
            "the 08:00 slot sends"
        );
        // Every minute: however late it is now, the next morning's minutes send.
        assert!(with("* * * * *", "22:00-07:00").is_ok());
    }

    #[test]
    fn mistakes_point_at_the_job() {
        for (from, to, phrase) in [
            ("30 7 * * *", "30 7 * *", "5 fields"),
            ("30 7 * * *", "0 30 7 * * *", "5 fields"),
            ("30 7 * * *", "61 7 * * *", "cron"),
            ("targets = \"all\"", "targets = \"everyone\"", "targets"),
            ("targets = \"all\"", "targets = [\"global\"]", "\"all\""),
            ("targets = \"all\"", "targets = []", "at least one"),
            (
                "targets = \"all\"",
                "targets = \"all\"\ntimezone = \"Mars/Base\"",
                "IANA",
            ),
            (
                "targets = \"all\"",
                "targets = \"all\"\nquiet_hours = [\"22-7\"]",
                "HH:MM",
            ),
            (
                "targets = \"all\"",
                "targets = \"all\"\nspread_minutes = 999",
                "at most",
            ),
        ] {
            let e = parse_text(&JOB.replace(from, to)).unwrap_err();
            assert!(e.reason.contains(phrase), "{to}: {e}");
            assert_eq!(e.line, 1, "{to}: {e}");
        }
        let e = parse_text(&format!("{JOB}{JOB}")).unwrap_err();
        assert!(e.reason.contains("already defined at line 1"), "{e}");
    }
}

#[cfg(test)]
mod cron_tests {
    use super::cron_and_zone;

    /// Issue 27 §12: crons that parse but never fire, numbers out of a field's range (named),
    /// and the weekday and month forms the message offers.
    #[test]
    fn crons_are_checked_field_by_field_and_for_firing_at_all() {
        let started = std::time::Instant::now();
        let err = cron_and_zone("30 7 30 2 *", None).unwrap_err();
        assert!(err.contains("never fires"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(
            cron_and_zone("0 9 29 2 *", None).is_ok(),
            "every four years"
        );
        for (cron, named) in [
            ("30 25 * * *", "the hour field is 25"),
            ("60 7 * * *", "the minute field is 60"),
            ("0 7 32 * *", "the day field is 32"),
            ("0 7 1 13 *", "the month field is 13"),
            ("0 7 * * 8", "the weekday field is 8"),
            ("0 9-25 * * *", "the hour field is 25"),
        ] {
            let err = cron_and_zone(cron, None).unwrap_err();
            assert!(err.contains(named), "{cron}: {err}");
        }
        for fine in [
            "0 9 15 1,4,7,10 *",
            "*/20 9-17 * * 1-5",
            "0 20 * * MON-FRI",
            "0 20 * * SUN",
            "0 20 * * 0,7",
            "0 8 1 JAN *",
        ] {
            assert!(cron_and_zone(fine, None).is_ok(), "{fine}");
        }
    }
}
