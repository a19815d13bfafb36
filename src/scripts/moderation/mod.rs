//! `bot-scripts/moderation.toml`: the checks (banned words, links, contacts, cards, flood,
//! repeats, cross-group campaigns) with their scope, action and reason; settings per scope
//! (dry-run, warnings before removal, trust, probation, what the admins hear); the variant
//! spellings of contact words; the operator-wide approved list; raid mode; and the texts of the
//! warning and of the notice to the admins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Format, RawMessage, ScriptError, Source, check_identifier, line_col, words};
use crate::engine::moderation::content::{WordList, WordMatch};
use crate::engine::moderation::intent::{Cue, Cues, Finder};
use crate::engine::moderation::{
    Check, CheckKind, Members, ModerationRules, NotifyAdmins, Raid, SettingsOverride, Severity,
    Variants,
};
use crate::engine::scope::Scope;
use crate::engine::template::Templates;

/// The moderation file inside the scripts directory (optional: no file, no moderation).
pub const MODERATION_FILE: &str = "moderation.toml";

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    scope: Option<String>,
    enabled: Option<bool>,
    dry_run: Option<bool>,
    warn_limit: Option<u32>,
    warn_window_hours: Option<u64>,
    trust_after: Option<u64>,
    probation_messages: Option<u64>,
    probation_days: Option<u64>,
    notify_admins: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRaid {
    joins: u32,
    within_secs: u64,
    lasts_minutes: u64,
}

/// One `[[check.cue]]` of an intent check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCue {
    name: String,
    weight: f64,
    #[serde(rename = "match", default)]
    match_: Option<String>,
    #[serde(default)]
    words: Vec<String>,
    /// `canonical` (the default: squeezed, variants replaced) or `normalized` (punctuation kept).
    #[serde(default)]
    form: Option<String>,
    /// Instead of words: `contacts` (a phone number, WeChat or QQ id), `bait` ("add me" and a
    /// handle) or `links` (a link outside `allow`).
    #[serde(default)]
    finds: Option<String>,
    /// With `finds = "links"`: the domains (and their subdomains) that do not count.
    #[serde(default)]
    allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    kind: String,
    #[serde(default)]
    scope: Option<String>,
    action: String,
    reason: String,
    #[serde(default)]
    members: Option<String>,
    // words
    #[serde(rename = "match")]
    match_: Option<String>,
    words: Option<Vec<String>>,
    // links
    allow: Option<Vec<String>>,
    // cards
    kinds: Option<Vec<String>>,
    // flood, repeat, campaign
    messages: Option<u32>,
    times: Option<u32>,
    groups: Option<u32>,
    within_secs: Option<u64>,
    within_minutes: Option<u64>,
    min_chars: Option<usize>,
    // learned, intent
    threshold: Option<f64>,
    // intent
    learned_weight: Option<f64>,
    #[serde(default)]
    cue: Vec<RawCue>,
    /// The id of an intent check written earlier whose cues this one uses.
    cues_from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModerationFile {
    #[serde(default)]
    approved: Vec<String>,
    #[serde(default)]
    settings: Vec<toml::Spanned<RawSettings>>,
    #[serde(default)]
    raid: Option<toml::Spanned<RawRaid>>,
    #[serde(default)]
    variants: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    warning: Option<RawMessage>,
    #[serde(default)]
    admin_notice: Option<RawMessage>,
    #[serde(default)]
    check: Vec<toml::Spanned<RawCheck>>,
}

/// The card types checked when a `cards` check lists none.
pub const DEFAULT_CARD_KINDS: [&str; 6] = [
    "wx.link",
    "wx.app",
    "wx.card",
    "wx.contact",
    "wx.miniprogram",
    "wx.namecard",
];

fn scope_of(text: &Option<String>) -> Result<Scope, String> {
    text.as_deref().map_or(Ok(Scope::Global), Scope::parse)
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, String> {
    match value {
        Some(v) if v < min || v > max => Err(format!("{name} must be {min} to {max}, got {v}")),
        other => Ok(other),
    }
}

fn settings(raw: &RawSettings) -> Result<SettingsOverride, String> {
    let notify_admins = match raw.notify_admins.as_deref() {
        None => None,
        Some("always") => Some(NotifyAdmins::Always),
        Some("removals") => Some(NotifyAdmins::Removals),
        Some(other) => {
            return Err(format!(
                "notify_admins {other:?} must be \"always\" or \"removals\""
            ));
        }
    };
    Ok(SettingsOverride {
        scope: scope_of(&raw.scope)?,
        enabled: raw.enabled,
        dry_run: raw.dry_run,
        warn_limit: in_range("warn_limit", raw.warn_limit, 1, 100)?,
        warn_window: in_range("warn_window_hours", raw.warn_window_hours, 1, 24 * 365)?
            .map(|h| Duration::from_secs(h * HOUR)),
        trust_after: in_range("trust_after", raw.trust_after, 0, 1_000_000)?,
        probation_messages: in_range("probation_messages", raw.probation_messages, 0, 10_000)?,
        probation: in_range("probation_days", raw.probation_days, 0, 365)?
            .map(|d| Duration::from_secs(d * DAY)),
        notify_admins,
    })
}

fn severity(text: &str) -> Result<Severity, String> {
    Ok(match text {
        "log" => Severity::Log,
        "notify" => Severity::Notify,
        "delete" => Severity::Delete,
        "warn" => Severity::Warn,
        "remove" => Severity::Remove,
        other => {
            return Err(format!(
                "action {other:?} must be log, notify, delete, warn or remove"
            ));
        }
    })
}

/// Keys that belong to some kinds only: a key given for another kind is a mistake worth
/// reporting (a `words` list on a links check would otherwise be ignored silently).
fn refuse_foreign_keys(raw: &RawCheck) -> Result<(), String> {
    let given: [(&str, bool, &[&str]); 14] = [
        ("threshold", raw.threshold.is_some(), &["learned", "intent"]),
        ("cues_from", raw.cues_from.is_some(), &["intent"]),
        ("learned_weight", raw.learned_weight.is_some(), &["intent"]),
        ("cue", !raw.cue.is_empty(), &["intent"]),
        ("match", raw.match_.is_some(), &["words"]),
        ("words", raw.words.is_some(), &["words"]),
        ("allow", raw.allow.is_some(), &["links", "qr_codes"]),
        ("kinds", raw.kinds.is_some(), &["cards"]),
        ("messages", raw.messages.is_some(), &["flood"]),
        ("times", raw.times.is_some(), &["repeat"]),
        ("groups", raw.groups.is_some(), &["campaign"]),
        (
            "within_secs",
            raw.within_secs.is_some(),
            &["flood", "repeat"],
        ),
        (
            "within_minutes",
            raw.within_minutes.is_some(),
            &["campaign"],
        ),
        ("min_chars", raw.min_chars.is_some(), &["campaign"]),
    ];
    for (key, present, kinds) in given {
        if present && !kinds.contains(&raw.kind.as_str()) {
            return Err(format!(
                "{key} is not a setting of a {} check (only of: {})",
                raw.kind,
                kinds.join(", ")
            ));
        }
    }
    Ok(())
}

/// An allow-list of domains as written: lower case, a leading `*.` dropped. A URL or a path is
/// refused — it would never match a link's host, so the list would silently allow nothing.
fn domains(list: Option<&[String]>) -> Result<Vec<String>, String> {
    words(list.unwrap_or_default())
        .into_iter()
        .map(|d| {
            let domain = d.to_lowercase().trim_start_matches("*.").to_owned();
            let looks_like_one = domain.contains('.')
                && domain
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
            if looks_like_one {
                Ok(domain)
            } else {
                let host = url::Url::parse(&d)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned));
                Err(format!(
                    "allow {d:?} is not a domain: write the host alone{}",
                    host.map_or_else(String::new, |h| format!(", e.g. \"{h}\""))
                ))
            }
        })
        .collect()
}

fn required<T>(value: Option<T>, key: &str, kind: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("a {kind} check needs {key}"))
}

/// The kinds of check there are.
const CHECK_KINDS: [&str; 10] = [
    "words", "links", "contacts", "cards", "qr_codes", "flood", "repeat", "campaign", "learned",
    "intent",
];

/// The learned layer's threshold when a check names none: a score (log-odds) the ordinary
/// messages of the project's corpus almost never reach (5-fold cross-validation over it: 1 of
/// 1,055 ordinary messages at 1.0, 79 % of the spam; `trumpet moderation-eval --cv 5`).
pub const DEFAULT_LEARNED_THRESHOLD: f64 = 1.0;

fn kind(raw: &RawCheck, variants: &Variants, earlier: &[Check]) -> Result<CheckKind, String> {
    // The kind first: with a mistyped kind every other key would look foreign to it.
    if !CHECK_KINDS.contains(&raw.kind.as_str()) {
        return Err(format!(
            "kind {:?} must be {}",
            raw.kind,
            CHECK_KINDS.join(", ")
        ));
    }
    refuse_foreign_keys(raw)?;
    let kind = raw.kind.as_str();
    let secs = |v: Option<u64>, max: u64| -> Result<Duration, String> {
        let v = required(in_range("within_secs", v, 1, max)?, "within_secs", kind)?;
        Ok(Duration::from_secs(v))
    };
    Ok(match kind {
        "intent" => intent(raw, variants, earlier)?,
        "words" => {
            let mode = word_match(raw.match_.as_deref())?;
            let list = words(raw.words.as_deref().unwrap_or_default());
            CheckKind::Words(Box::new(WordList::build(mode, list, variants)?))
        }
        "links" => CheckKind::Links {
            allow: domains(raw.allow.as_deref())?,
        },
        "contacts" => CheckKind::Contacts,
        "learned" => {
            let threshold = raw.threshold.unwrap_or(DEFAULT_LEARNED_THRESHOLD);
            if !threshold.is_finite() || !(-50.0..=50.0).contains(&threshold) {
                return Err(format!("threshold {threshold} must be between -50 and 50"));
            }
            CheckKind::Learned {
                threshold: threshold as f32,
            }
        }
        "qr_codes" => CheckKind::QrCodes {
            allow: domains(raw.allow.as_deref())?,
        },
        "cards" => CheckKind::Cards {
            kinds: match &raw.kinds {
                Some(kinds) => words(kinds),
                None => DEFAULT_CARD_KINDS.iter().map(|k| k.to_string()).collect(),
            },
        },
        "flood" => CheckKind::Flood {
            messages: required(
                in_range("messages", raw.messages, 1, 1000)?,
                "messages",
                kind,
            )?,
            within: secs(raw.within_secs, HOUR)?,
        },
        "repeat" => CheckKind::Repeat {
            times: required(in_range("times", raw.times, 2, 1000)?, "times", kind)?,
            within: secs(raw.within_secs, DAY)?,
        },
        "campaign" => CheckKind::Campaign {
            groups: required(in_range("groups", raw.groups, 2, 10_000)?, "groups", kind)?,
            within: Duration::from_secs(
                required(
                    in_range("within_minutes", raw.within_minutes, 1, 24 * 60)?,
                    "within_minutes",
                    kind,
                )? * 60,
            ),
            min_chars: in_range("min_chars", raw.min_chars, 1, 1000)?.unwrap_or(8),
        },
        other => {
            return Err(format!(
                "kind {other:?} must be words, links, contacts, cards, qr_codes, flood, repeat, campaign, learned or intent"
            ));
        }
    })
}

/// How a word list is matched: `substring` (the default), `exact` or `regex`.
fn word_match(value: Option<&str>) -> Result<WordMatch, String> {
    match value.unwrap_or("substring") {
        "substring" => Ok(WordMatch::Substring),
        "exact" => Ok(WordMatch::Exact),
        "regex" => Ok(WordMatch::Regex),
        other => Err(format!("match {other:?} must be substring, exact or regex")),
    }
}

/// An intent check: its cues (at least one, or an earlier intent check's through `cues_from`),
/// its threshold and the learned part's weight.
fn intent(raw: &RawCheck, variants: &Variants, earlier: &[Check]) -> Result<CheckKind, String> {
    let shared = match (&raw.cues_from, raw.cue.is_empty()) {
        (Some(_), false) => {
            return Err(
                "cues_from and [[check.cue]] tables together: give one or the other".into(),
            );
        }
        (None, true) => {
            return Err("an intent check needs at least one [[check.cue]], or cues_from".into());
        }
        (Some(from), true) => Some(
            earlier
                .iter()
                .find_map(|c| match &c.kind {
                    CheckKind::Intent { cues, .. } if c.id == *from => Some(Arc::clone(cues)),
                    _ => None,
                })
                .ok_or_else(|| {
                    format!("cues_from {from:?} must name an intent check written above this one")
                })?,
        ),
        (None, false) => None,
    };
    let threshold = raw.threshold.unwrap_or(4.0);
    let learned_weight = raw.learned_weight.unwrap_or(0.0);
    for (key, value) in [("threshold", threshold), ("learned_weight", learned_weight)] {
        if !value.is_finite() || !(-50.0..=50.0).contains(&value) {
            return Err(format!("{key} {value} must be between -50 and 50"));
        }
    }
    // A word in two cues (or twice in one) would count twice: a mistake, refused with both names.
    let mut listed: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for cue in &raw.cue {
        for word in &cue.words {
            if let Some(first) = listed.insert(word.trim(), cue.name.as_str()) {
                return Err(format!(
                    "{word:?} is listed in cue {first:?} and again in cue {:?}: it would count twice",
                    cue.name
                ));
            }
        }
    }
    if let Some(cues) = shared {
        return Ok(CheckKind::Intent {
            threshold: threshold as f32,
            cues,
            learned_weight: learned_weight as f32,
        });
    }
    let cues = raw
        .cue
        .iter()
        .map(|cue| {
            if cue.name.trim().is_empty() {
                return Err("a cue needs a name (the evidence shows it)".to_owned());
            }
            if !cue.weight.is_finite() || !(-20.0..=20.0).contains(&cue.weight) {
                return Err(format!(
                    "cue {:?}: weight {} must be between -20 and 20",
                    cue.name, cue.weight
                ));
            }
            Ok(Cue {
                name: cue.name.trim().to_owned(),
                weight: cue.weight as f32,
                finds: cue_finder(cue, variants).map_err(|e| format!("cue {:?}: {e}", cue.name))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(CheckKind::Intent {
        threshold: threshold as f32,
        cues: Arc::new(Cues::new(cues)?),
        learned_weight: learned_weight as f32,
    })
}

/// What makes `cue` fire: its words, or one of the content finders named by `finds`.
fn cue_finder(cue: &RawCue, variants: &Variants) -> Result<Finder, String> {
    let Some(finds) = cue.finds.as_deref() else {
        if cue.allow.is_some() {
            return Err("allow goes with finds = \"links\"".into());
        }
        if cue.words.is_empty() {
            return Err("a cue needs words, or finds = \"contacts\" | \"bait\" | \"links\"".into());
        }
        let mode = word_match(cue.match_.as_deref())?;
        let on_normalized = match cue.form.as_deref().unwrap_or("canonical") {
            "canonical" => false,
            "normalized" => true,
            other => return Err(format!("form {other:?} must be canonical or normalized")),
        };
        return Ok(Finder::Words {
            words: Box::new(WordList::build(mode, words(&cue.words), variants)?),
            on_normalized,
        });
    };
    if !cue.words.is_empty() || cue.match_.is_some() || cue.form.is_some() {
        return Err(format!(
            "finds = {finds:?} takes no words, match or form: give one kind of cue"
        ));
    }
    if cue.allow.is_some() && finds != "links" {
        return Err(format!("allow goes with finds = \"links\", not {finds:?}"));
    }
    Ok(match finds {
        "contacts" => Finder::Contacts,
        "bait" => Finder::Bait,
        "links" => Finder::Links {
            allow: domains(cue.allow.as_deref())?,
        },
        other => {
            return Err(format!("finds {other:?} must be contacts, bait or links"));
        }
    })
}

fn check(raw: RawCheck, variants: &Variants, earlier: &[Check]) -> Result<Check, String> {
    check_identifier("id", &raw.id)?;
    let members = match raw.members.as_deref().unwrap_or("all") {
        "all" => Members::All,
        "probation" => Members::Probation,
        other => {
            return Err(format!(
                "members {other:?} must be \"all\" or \"probation\""
            ));
        }
    };
    if raw.reason.trim().is_empty() {
        return Err("reason must not be empty (members and admins are shown it)".into());
    }
    Ok(Check {
        scope: scope_of(&raw.scope)?,
        kind: kind(&raw, variants, earlier)?,
        severity: severity(&raw.action)?,
        reason: raw.reason.trim().to_owned(),
        members,
        id: raw.id,
    })
}

/// Parses a moderation file on its own (benchmarks, tools); `file` names it in errors. Its
/// templates are compiled but not kept.
pub fn parse_file(text: &str, file: &std::path::Path) -> Result<ModerationRules, ScriptError> {
    parse(&Source::new(text, file), &mut Templates::new())
}

/// Parses a moderation file, adding its templates to `templates`.
pub(crate) fn parse(
    src: &Source<'_>,
    templates: &mut Templates,
) -> Result<ModerationRules, ScriptError> {
    let parsed: ModerationFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let at = |key: &str| src.text.find(key).unwrap_or(0);
    let variants = Variants::build(
        parsed
            .variants
            .iter()
            .map(|(word, spellings)| (word.as_str(), spellings.as_slice())),
    )
    .map_err(|e| src.error(at("[variants]"), format!("[variants] {e}")))?;
    let mut rules = ModerationRules {
        approved: words(&parsed.approved).into_iter().collect::<HashSet<_>>(),
        ..ModerationRules::default()
    };
    let mut settings_at: HashMap<Scope, usize> = HashMap::new();
    for spanned in &parsed.settings {
        let start = spanned.span().start;
        let s = settings(spanned.get_ref())
            .map_err(|e| src.error(start, format!("[[settings]] {e}")))?;
        if let Some(&earlier) = settings_at.get(&s.scope) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!(
                    "[[settings]] for {} are already set at line {line}",
                    s.scope
                ),
            ));
        }
        settings_at.insert(s.scope.clone(), start);
        rules.settings.push(s);
    }
    if let Some(raid) = &parsed.raid {
        let start = raid.span().start;
        let r = raid.get_ref();
        let checked = in_range("joins", Some(r.joins), 2, 10_000)
            .and(in_range("within_secs", Some(r.within_secs), 1, DAY))
            .and(in_range("lasts_minutes", Some(r.lasts_minutes), 1, 24 * 60));
        checked.map_err(|e| src.error(start, format!("[raid] {e}")))?;
        rules.raid = Some(Raid {
            joins: r.joins,
            within: Duration::from_secs(r.within_secs),
            lasts: Duration::from_secs(r.lasts_minutes * 60),
        });
    }
    let mut check_at: HashMap<(String, Scope), usize> = HashMap::new();
    for spanned in parsed.check {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let id = raw.id.clone();
        let c = check(raw, &variants, &rules.checks)
            .map_err(|e| src.error(start, format!("[[check]] {id:?}: {e}")))?;
        let key = (c.id.clone(), c.scope.clone());
        if let Some(&earlier) = check_at.get(&key) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!(
                    "[[check]] {id:?} for {} is already written at line {line}",
                    c.scope
                ),
            ));
        }
        check_at.insert(key, start);
        rules.checks.push(c);
    }
    rules.variants = variants;
    rules.warning = parsed
        .warning
        .as_ref()
        .map(|raw| src.message(templates, "moderation warning", raw))
        .transpose()?;
    rules.admin_notice = match &parsed.admin_notice {
        Some(raw) if raw.format != Format::Text => {
            return Err(src.error(
                at("[admin_notice]"),
                "[admin_notice] must be format = \"text\" (it @-mentions the admins)",
            ));
        }
        raw => raw
            .as_ref()
            .map(|raw| src.message(templates, "moderation notice", raw))
            .transpose()?,
    };
    Ok(rules)
}

#[cfg(test)]
mod tests;
