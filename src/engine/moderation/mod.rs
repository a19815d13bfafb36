//! Moderation, the pure part: whether a group message breaks the operator's rules
//! (`bot-scripts/moderation.toml`) and what to do about it. [`judge`] takes the message in its
//! compared forms ([`text`]), what is known about the sender (role, approval, clean messages,
//! earlier warnings) and about recent activity (their earlier messages, the same text here and
//! in other groups, a raid), and returns the [`Verdict`]; [`respond`] turns a verdict into what
//! the bot does — the notice in the admins' words, the warning, the actions fitted to the
//! channel, blacklisting on removal — for the service and `trumpet simulate` alike. The caller
//! keeps the activity and the log.
//!
//! Trust: the owner, admins, helpers and approved members skip every check but flood; so does a
//! member with enough clean messages. New members are on probation (their first messages or
//! days, and everyone untrusted during a raid): checks marked `members = "probation"` apply to
//! them only.

pub mod content;
pub mod eval;
pub mod intent;
pub mod learned;
pub mod response;
pub mod text;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ChatId, Role};
use crate::engine::message::Message;
use crate::engine::scope::{Place, Scope};
use content::WordList;
pub use response::{Case, NoticeWindow, Response, blacklist_finding, plan, respond};
pub use text::{Prepared, Variants};

/// What a check does when it fires, mildest first; each does what the milder ones do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Record it in the moderation log only.
    Log,
    /// Also tell the group's admins.
    Notify,
    /// Delete the message (where the channel can; otherwise tell the admins).
    Delete,
    /// Also warn the member; after `warn_limit` warnings within the window, remove them.
    Warn,
    /// Delete and remove the member at once.
    Remove,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Log => "log",
            Severity::Notify => "notify",
            Severity::Delete => "delete",
            Severity::Warn => "warn",
            Severity::Remove => "remove",
        }
    }
}

/// Whom a check applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Members {
    /// Every member who is not trusted.
    All,
    /// Members on probation only (new, or anyone untrusted during a raid): the stricter checks.
    Probation,
}

/// What a check looks at.
#[derive(Debug)]
pub enum CheckKind {
    Words(Box<WordList>),
    /// Links whose host is not one of these domains (or under one).
    Links {
        allow: Vec<String>,
    },
    /// Phone numbers, WeChat and QQ ids offered as contacts.
    Contacts,
    /// Weighted cues of an ad (and of an ordinary message, with negative weights), with the
    /// learned score times `learned_weight`, at or above `threshold`.
    Intent {
        threshold: f32,
        /// Shared with the checks that name this one in `cues_from`.
        cues: std::sync::Arc<intent::Cues>,
        learned_weight: f32,
    },
    /// The learned layer's score (log-odds of spam) above `threshold`.
    Learned {
        threshold: f32,
    },
    /// Message parts of these channel types (`wx.link`, `wx.app`, …).
    Cards {
        kinds: Vec<String>,
    },
    /// QR codes in the message's images, unless they hold an address on one of these domains.
    QrCodes {
        allow: Vec<String>,
    },
    /// More than `messages` messages from one member within `within`.
    Flood {
        messages: u32,
        within: Duration,
    },
    /// The same text from one member `times` times within `within`.
    Repeat {
        times: u32,
        within: Duration,
    },
    /// The same text (at least `min_chars` long) in `groups` or more adopted groups within
    /// `within`, from one sender or many.
    Campaign {
        groups: u32,
        within: Duration,
        min_chars: usize,
    },
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Words(_) => "words",
            CheckKind::Links { .. } => "links",
            CheckKind::Contacts => "contacts",
            CheckKind::Learned { .. } => "learned",
            CheckKind::Intent { .. } => "intent",
            CheckKind::Cards { .. } => "cards",
            CheckKind::QrCodes { .. } => "qr_codes",
            CheckKind::Flood { .. } => "flood",
            CheckKind::Repeat { .. } => "repeat",
            CheckKind::Campaign { .. } => "campaign",
        }
    }

    /// For a check that looks at a burst of messages (a flood, a repeat, a campaign), the
    /// burst's window: its later messages within it are the same offence.
    fn burst_window(&self) -> Option<Duration> {
        match self {
            CheckKind::Flood { within, .. }
            | CheckKind::Repeat { within, .. }
            | CheckKind::Campaign { within, .. } => Some(*within),
            _ => None,
        }
    }

    /// Trusted members skip every check but flood (a trusted account can still be hijacked or
    /// misfire a script).
    fn skipped_when_trusted(&self) -> bool {
        !matches!(self, CheckKind::Flood { .. })
    }
}

/// One check from the file.
#[derive(Debug)]
pub struct Check {
    pub id: String,
    pub scope: Scope,
    pub kind: CheckKind,
    pub severity: Severity,
    /// Shown to the member in the warning and to the admins (`发布广告`).
    pub reason: String,
    pub members: Members,
}

/// Whom the admins hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyAdmins {
    /// Every deletion, warning and removal.
    Always,
    /// Removals only (and what the bot could not do itself, always).
    Removals,
}

/// The settings in force in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    /// Log what would have happened; do nothing.
    pub dry_run: bool,
    /// Warnings within `warn_window` after which a member is removed.
    pub warn_limit: u32,
    pub warn_window: Duration,
    /// Clean messages (in a row, in this group) after which a member is trusted; 0: never.
    pub trust_after: u64,
    /// A member's first messages in a group…
    pub probation_messages: u64,
    /// …or first days since first seen there, whichever lasts longer.
    pub probation: Duration,
    pub notify_admins: NotifyAdmins,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            warn_limit: 3,
            warn_window: Duration::from_secs(24 * 3600),
            trust_after: 20,
            probation_messages: 5,
            probation: Duration::from_secs(3 * 24 * 3600),
            notify_admins: NotifyAdmins::Removals,
        }
    }
}

/// Settings for one scope; `None` keeps the wider scope's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsOverride {
    pub scope: Scope,
    pub enabled: Option<bool>,
    pub dry_run: Option<bool>,
    pub warn_limit: Option<u32>,
    pub warn_window: Option<Duration>,
    pub trust_after: Option<u64>,
    pub probation_messages: Option<u64>,
    pub probation: Option<Duration>,
    pub notify_admins: Option<NotifyAdmins>,
}

/// Raid mode: this many joins within `within` tighten the rules for `lasts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raid {
    pub joins: u32,
    pub within: Duration,
    pub lasts: Duration,
}

/// The loaded `moderation.toml`.
#[derive(Debug, Default)]
pub struct ModerationRules {
    pub settings: Vec<SettingsOverride>,
    pub checks: Vec<Check>,
    pub variants: Variants,
    /// Operator-wide approved members (user ids): never checked but for flood.
    pub approved: HashSet<String>,
    pub raid: Option<Raid>,
    /// The warning posted to a member (`member`, `reason`, `rule`, `warnings`, `limit`).
    pub warning: Option<Message>,
    /// The notice to the admins (`member`, `reason`, `rule`, `action`, `evidence`, `text`).
    pub admin_notice: Option<Message>,
    /// The learned layer the `learned` and `intent` checks weigh: the shipped corpus' until the
    /// service trains one with the operator's labels too.
    pub learned: learned::Model,
}

impl ModerationRules {
    /// Whether the file has anything to check.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// The settings in force at `place`: global, then tag, then group overrides.
    pub fn settings_at(&self, place: Place<'_>) -> Settings {
        let mut applicable: Vec<&SettingsOverride> = self
            .settings
            .iter()
            .filter(|o| o.scope.covers(place))
            .collect();
        applicable.sort_by_key(|o| o.scope.rank());
        let mut s = Settings::default();
        for o in applicable {
            s.enabled = o.enabled.unwrap_or(s.enabled);
            s.dry_run = o.dry_run.unwrap_or(s.dry_run);
            s.warn_limit = o.warn_limit.unwrap_or(s.warn_limit);
            s.warn_window = o.warn_window.unwrap_or(s.warn_window);
            s.trust_after = o.trust_after.unwrap_or(s.trust_after);
            s.probation_messages = o.probation_messages.unwrap_or(s.probation_messages);
            s.probation = o.probation.unwrap_or(s.probation);
            s.notify_admins = o.notify_admins.unwrap_or(s.notify_admins);
        }
        s
    }

    /// The checks in force at `place`: for each id, the one of the most specific scope.
    pub fn checks_at(&self, place: Place<'_>) -> Vec<&Check> {
        let mut best: Vec<&Check> = Vec::new();
        for check in self.checks.iter().filter(|c| c.scope.covers(place)) {
            match best.iter_mut().find(|b| b.id == check.id) {
                Some(b) if b.scope.rank() < check.scope.rank() => *b = check,
                Some(_) => {}
                None => best.push(check),
            }
        }
        best
    }

    /// The longest window a behaviour check looks back (how much activity the caller keeps).
    pub fn longest_window(&self) -> Duration {
        self.checks
            .iter()
            .filter_map(|c| match c.kind {
                CheckKind::Flood { within, .. }
                | CheckKind::Repeat { within, .. }
                | CheckKind::Campaign { within, .. } => Some(within),
                _ => None,
            })
            .chain(self.raid.map(|r| r.within))
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// What is known about the sender in this group.
#[derive(Debug, Clone)]
pub struct Standing<'a> {
    pub role: Role,
    /// Approved in this group (by an admin's command or the API).
    pub approved: bool,
    /// Messages they sent here before this one.
    pub messages: u64,
    /// Of them, the ones since their last finding.
    pub clean: u64,
    /// When they were first seen here (joined or first spoke).
    pub first_seen: Option<DateTime<Utc>>,
    /// Their earlier warnings here.
    pub warnings: &'a [DateTime<Utc>],
}

/// Recent activity around the message (kept by the caller for [`ModerationRules::longest_window`]).
#[derive(Debug, Clone, Default)]
pub struct Activity<'a> {
    /// The sender's earlier messages in this group.
    pub member_messages: &'a [DateTime<Utc>],
    /// When the sender posted this same canonical text here before.
    pub same_text: &'a [DateTime<Utc>],
    /// Where (other adopted groups) and when this canonical text was seen, from anyone.
    pub elsewhere: &'a [(ChatId, DateTime<Utc>)],
    /// The group is in raid mode until then.
    pub raid_until: Option<DateTime<Utc>>,
}

/// The message itself.
#[derive(Debug, Clone)]
pub struct Content<'a> {
    pub prepared: &'a Prepared,
    /// The channel types of its parts (`text`, `image`, `wx.link`…).
    pub parts: &'a [&'a str],
    /// What the QR codes in its images hold (searched only when a `qr_codes` check applies:
    /// see [`wants_qr_codes`]).
    pub qr_codes: &'a [String],
}

/// One check that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: String,
    pub kind: &'static str,
    pub severity: Severity,
    pub reason: String,
    /// What was found (the word, the link's host, the number, the card type, the count).
    pub evidence: String,
}

/// The judgement on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub findings: Vec<Finding>,
    pub settings: Settings,
    pub trusted: bool,
    pub probation: bool,
    /// Warnings within the window, this message's included when it earns one.
    pub warnings: u32,
    /// This message earns a warning (the caller records it with the member's standing). A
    /// burst's later messages do not: one finding, one warning.
    pub new_warning: bool,
}

impl Verdict {
    /// The finding with the highest severity (the first of them), if any.
    pub fn worst(&self) -> Option<&Finding> {
        // `max_by_key` keeps the last of equals: reversed, that is the first.
        self.findings.iter().rev().max_by_key(|f| f.severity)
    }

    /// What is done: the worst severity, raised to removal when this warning reaches the limit;
    /// a warning already given for this burst is not given again (the message is deleted).
    pub fn outcome(&self) -> Option<Severity> {
        let worst = self.worst()?.severity;
        if worst != Severity::Warn {
            Some(worst)
        } else if !self.new_warning {
            Some(Severity::Delete)
        } else if self.warnings >= self.settings.warn_limit.max(1) {
            Some(Severity::Remove)
        } else {
            Some(Severity::Warn)
        }
    }

    /// The member's warnings (Unix seconds) after this verdict: those still in the window, and
    /// this message's when it earns one (none in dry-run).
    pub fn warnings_after(&self, earlier: &[i64], now: DateTime<Utc>) -> Vec<i64> {
        let mut warnings = earlier.to_vec();
        if self.new_warning && !self.settings.dry_run {
            let window = self.settings.warn_window.as_secs() as i64;
            warnings.retain(|&t| now.timestamp() - t < window);
            warnings.push(now.timestamp());
        }
        warnings
    }
}

/// Judges one message at `place`.
pub fn judge(
    rules: &ModerationRules,
    place: Place<'_>,
    content: &Content<'_>,
    standing: &Standing<'_>,
    activity: &Activity<'_>,
    user_id: &str,
    now: DateTime<Utc>,
) -> Verdict {
    let settings = rules.settings_at(place);
    let (trusted, probation) = assess(rules, &settings, standing, activity, user_id, now);
    let warn_window_start =
        now - chrono::Duration::from_std(settings.warn_window).unwrap_or_default();
    let earlier_warnings = standing
        .warnings
        .iter()
        .filter(|&&at| at > warn_window_start)
        .count() as u32;
    let classifier = rules.learned.current();
    let learned = learned::LazyScore::new(&classifier, &content.prepared.normalized);
    let mut verdict = Verdict {
        findings: Vec::new(),
        settings: settings.clone(),
        trusted,
        probation,
        warnings: earlier_warnings,
        new_warning: false,
    };
    if !settings.enabled {
        return verdict;
    }
    for check in rules.checks_at(place) {
        if trusted && check.kind.skipped_when_trusted() {
            continue;
        }
        if check.members == Members::Probation && !probation {
            continue;
        }
        if let Some(evidence) = examine(&check.kind, content, activity, &learned, now) {
            verdict.findings.push(Finding {
                check: check.id.clone(),
                kind: check.kind.name(),
                severity: check.severity,
                reason: check.reason.clone(),
                evidence,
            });
        }
    }
    if let Some(worst) = verdict.worst()
        && worst.severity == Severity::Warn
    {
        // A burst (a flood's tenth message, a repeat's fourth) is one offence: the member was
        // warned for it when it began, so its later messages within the burst's window earn no
        // second warning.
        let burst = rules
            .checks_at(place)
            .iter()
            .find(|c| c.id == worst.check)
            .and_then(|c| c.kind.burst_window());
        let warned_in_burst = burst.is_some_and(|window| {
            standing
                .warnings
                .iter()
                .any(|&at| at <= now && elapsed(at, now) <= window)
        });
        if !warned_in_burst {
            verdict.warnings += 1;
            verdict.new_warning = true;
        }
    }
    verdict
}

/// Whether the sender is trusted, and whether they are on probation.
fn assess(
    rules: &ModerationRules,
    settings: &Settings,
    standing: &Standing<'_>,
    activity: &Activity<'_>,
    user_id: &str,
    now: DateTime<Utc>,
) -> (bool, bool) {
    let staff = matches!(standing.role, Role::Owner | Role::Admin | Role::Helper);
    let trusted = staff
        || standing.approved
        || rules.approved.contains(user_id)
        || (settings.trust_after > 0 && standing.clean >= settings.trust_after);
    let raid = activity.raid_until.is_some_and(|until| until > now);
    let new_here = standing.messages < settings.probation_messages
        || standing
            .first_seen
            .is_none_or(|first| elapsed(first, now) < settings.probation);
    (trusted, !trusted && (new_here || raid))
}

/// Whether a `qr_codes` check would look at this sender's images at `place` (searching images
/// costs a download and tens of milliseconds: it is done only then).
pub fn wants_qr_codes(
    rules: &ModerationRules,
    place: Place<'_>,
    standing: &Standing<'_>,
    activity: &Activity<'_>,
    user_id: &str,
    now: DateTime<Utc>,
) -> bool {
    let settings = rules.settings_at(place);
    let (trusted, probation) = assess(rules, &settings, standing, activity, user_id, now);
    settings.enabled
        && !trusted
        && rules.checks_at(place).iter().any(|c| {
            matches!(c.kind, CheckKind::QrCodes { .. }) && (c.members == Members::All || probation)
        })
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or_default()
}

/// How many of `times` are within `window` of `now`.
fn within(times: &[DateTime<Utc>], window: Duration, now: DateTime<Utc>) -> usize {
    times.iter().filter(|&&t| elapsed(t, now) <= window).count()
}

/// What `kind` finds in the message, as evidence.
fn examine(
    kind: &CheckKind,
    content: &Content<'_>,
    activity: &Activity<'_>,
    learned: &learned::LazyScore<'_>,
    now: DateTime<Utc>,
) -> Option<String> {
    let message = content.prepared;
    match kind {
        CheckKind::Words(list) => list.find(message),
        CheckKind::Links { allow } => content::find_link(message, allow),
        CheckKind::Contacts => content::find_contact(message),
        CheckKind::Intent {
            threshold,
            cues,
            learned_weight,
        } => intent::score(message, *threshold, cues, *learned_weight, learned),
        CheckKind::Learned { threshold } => {
            let score = learned.get();
            (score >= *threshold).then(|| format!("learned score {score:.1} ≥ {threshold}"))
        }
        CheckKind::Cards { kinds } => content::find_card(content.parts, kinds).map(str::to_owned),
        CheckKind::QrCodes { allow } => content::find_qr_code(content.qr_codes, allow),
        CheckKind::Flood {
            messages,
            within: window,
        } => {
            let count = within(activity.member_messages, *window, now) + 1;
            (count > *messages as usize)
                .then(|| format!("{count} 条消息 / {} 秒", window.as_secs()))
        }
        CheckKind::Repeat {
            times,
            within: window,
        } => {
            let count = within(activity.same_text, *window, now) + 1;
            (!message.canonical.is_empty() && count >= *times as usize)
                .then(|| format!("同一内容 {count} 次"))
        }
        CheckKind::Campaign {
            groups,
            within: window,
            min_chars,
        } => {
            if message.canonical.chars().count() < *min_chars {
                return None;
            }
            let mut seen: Vec<&ChatId> = activity
                .elsewhere
                .iter()
                .filter(|(_, at)| elapsed(*at, now) <= *window)
                .map(|(chat, _)| chat)
                .collect();
            seen.sort();
            seen.dedup();
            // This group counts too.
            let count = seen.len() + 1;
            (count >= *groups as usize).then(|| format!("{count} 个群出现同一内容"))
        }
    }
}

#[cfg(test)]
mod tests;
