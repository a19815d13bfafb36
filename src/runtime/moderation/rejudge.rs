//! Before an operator switches a moderation change on: what a moderation file would have done
//! with what moderation already logged. Every finding logged (the newest first, up to a limit)
//! and every message members reported (举报) is judged again with the candidate rules, as its
//! sender stood then (a newcomer's with the newcomers' checks, anyone else's as a long-standing
//! member's who is not trusted yet); the findings admins judged (误判 / 确认) are scored the same
//! way as labelled messages. Nothing is changed, sent or stored.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::ChatId;
use crate::engine::moderation::ModerationRules;
use crate::engine::moderation::eval::{Labelled, Sender, acts_on_as, evaluate_as};
use crate::store::{Label, LogEntry, LogFilter, Store, StoreError};

/// Log entries read at most.
pub const MAX_ENTRIES: usize = 5_000;
/// Messages listed at most in each list of the report.
const LISTED: usize = 100;

/// A logged message the candidate rules would let pass.
#[derive(Debug, Serialize)]
pub struct Rejudged {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub chat_id: ChatId,
    /// The check that fired then (`report` for a member's report).
    pub check: String,
    pub text: String,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Findings judged again (the newest `MAX_ENTRIES` log entries at most).
    pub findings: usize,
    /// Of them, the ones the candidate rules still act on.
    pub still_acted_on: usize,
    /// The findings they would let pass (the first 100).
    pub would_pass: Vec<Rejudged>,
    /// Messages members reported as spam.
    pub reports: usize,
    /// Of them, the ones the candidate rules act on.
    pub reports_caught: usize,
    /// Reported messages they would still let pass (the first 100).
    pub reports_missed: Vec<Rejudged>,
    /// The findings admins judged, as labelled messages: `spam` confirmed, `ordinary` 误判.
    pub labels: LabelScore,
}

/// How the candidate rules do on the admins' labels.
#[derive(Debug, Serialize)]
pub struct LabelScore {
    pub spam: usize,
    pub caught: usize,
    pub ordinary: usize,
    /// 误判 messages the candidate rules would still act on…
    pub flagged: usize,
    /// …and what fires on them (the first 100).
    pub false_positives: Vec<FalsePositive>,
}

#[derive(Debug, Serialize)]
pub struct FalsePositive {
    pub text: String,
    pub evidence: String,
}

/// Judges the log again with `rules` at `now`.
pub fn report(
    store: &Store,
    rules: &ModerationRules,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let entries = store.moderation_log(&LogFilter {
        chat_id: None,
        user_id: None,
        check: None,
        since: None,
        until: None,
        before: None,
        limit: MAX_ENTRIES,
    })?;
    let mut report = Report {
        findings: 0,
        still_acted_on: 0,
        would_pass: Vec::new(),
        reports: 0,
        reports_caught: 0,
        reports_missed: Vec::new(),
        labels: labels(store, rules, now)?,
    };
    for entry in entries.into_iter().filter(|e| !e.text.is_empty()) {
        let (is_report, is_finding) = (entry.check == "report", entry.is_finding());
        if !is_report && !is_finding {
            continue;
        }
        // Judged as the sender stood then: a newcomer's message meets the stricter checks.
        let sender = match entry.probation {
            true => Sender::Newcomer,
            false => Sender::LongStanding,
        };
        let caught = acts_on_as(rules, &entry.text, sender, now).is_some();
        let (count, hits, list) = match is_report {
            true => (
                &mut report.reports,
                &mut report.reports_caught,
                &mut report.reports_missed,
            ),
            false => (
                &mut report.findings,
                &mut report.still_acted_on,
                &mut report.would_pass,
            ),
        };
        *count += 1;
        if caught {
            *hits += 1;
        } else if list.len() < LISTED {
            list.push(rejudged(entry));
        }
    }
    Ok(report)
}

fn rejudged(entry: LogEntry) -> Rejudged {
    Rejudged {
        id: entry.id,
        at: entry.at,
        chat_id: entry.chat_id,
        check: entry.check,
        text: entry.text,
    }
}

fn labels(
    store: &Store,
    rules: &ModerationRules,
    now: DateTime<Utc>,
) -> Result<LabelScore, StoreError> {
    // Each label judged as its sender stood when the finding was made.
    let (newcomers, others): (Vec<Label>, Vec<Label>) =
        store.labels()?.into_iter().partition(|l| l.probation);
    let labelled = |labels: Vec<Label>| -> Vec<Labelled> {
        labels
            .into_iter()
            .map(|l| Labelled {
                spam: l.label == "spam",
                text: l.text,
            })
            .collect()
    };
    let mut score = evaluate_as(rules, &labelled(others), Sender::LongStanding, now);
    let newcomers = evaluate_as(rules, &labelled(newcomers), Sender::Newcomer, now);
    score.spam += newcomers.spam;
    score.caught += newcomers.caught;
    score.ordinary += newcomers.ordinary;
    score.flagged += newcomers.flagged;
    score.false_positives.extend(newcomers.false_positives);
    Ok(LabelScore {
        spam: score.spam,
        caught: score.caught,
        ordinary: score.ordinary,
        flagged: score.flagged,
        false_positives: score
            .false_positives
            .into_iter()
            .take(LISTED)
            .map(|(text, evidence)| FalsePositive { text, evidence })
            .collect(),
    })
}
