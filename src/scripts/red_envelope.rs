//! `bot-scripts/red_envelope.toml`: the defaults of a red-envelope test (total, shares, window),
//! the thresholds of its verdict, the words claim phrases are made of, and the messages of a
//! test (a section left out falls back to the shipped file's).

use std::time::Duration;

use serde::Deserialize;

use super::schedules::{RawTargets, cron_and_zone, targets};
use super::{Format, Message, RawMessage, ScriptError, Source, check_identifier, words};
use crate::domain::EnvelopeParams;
use crate::engine::red_envelope::rules::{
    EnvelopeMessages, EnvelopeSchedule, RedEnvelopeScripts, check_test,
};
use crate::engine::red_envelope::{MAX_SHARES, MAX_TOTAL_FEN, VerdictRules};
use crate::engine::template::Templates;

/// The red-envelope file inside the scripts directory (optional: the built-in defaults apply).
pub const RED_ENVELOPE_FILE: &str = "red_envelope.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    total_fen: Option<u64>,
    shares: Option<u32>,
    window_minutes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerdict {
    dead_below: Option<f64>,
    sluggish_first_claim_minutes: Option<u64>,
    sluggish_half_minutes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    words: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessages {
    envelope: Option<RawMessage>,
    claimed: Option<RawMessage>,
    already_claimed: Option<RawMessage>,
    empty: Option<RawMessage>,
    closed: Option<RawMessage>,
    finished: Option<RawMessage>,
    report: Option<RawMessage>,
    not_started: Option<RawMessage>,
    cancelled: Option<RawMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedEnvelopeFile {
    defaults: Option<toml::Spanned<RawDefaults>>,
    verdict: Option<toml::Spanned<RawVerdict>>,
    claim: Option<toml::Spanned<RawClaim>>,
    messages: Option<RawMessages>,
    #[serde(default)]
    schedule: Vec<toml::Spanned<RawSchedule>>,
}

fn yes() -> bool {
    true
}

fn default_catch_up() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    cron: String,
    timezone: Option<String>,
    targets: RawTargets,
    total_fen: Option<u64>,
    shares: Option<u32>,
    window_minutes: Option<u64>,
    #[serde(default = "default_catch_up")]
    catch_up_within_minutes: u64,
    #[serde(default = "yes")]
    enabled: bool,
}

/// A schedule, checked against the file's defaults.
fn schedule(raw: &RawSchedule, defaults: &RedEnvelopeScripts) -> Result<EnvelopeSchedule, String> {
    check_identifier("name", &raw.name)?;
    let named = |reason: String| format!("schedule {:?}: {reason}", raw.name);
    let (cron, timezone) = cron_and_zone(&raw.cron, raw.timezone.as_deref()).map_err(named)?;
    let params = EnvelopeParams {
        total_fen: raw.total_fen,
        shares: raw.shares,
        window_secs: raw.window_minutes.map(|m| m.saturating_mul(60)),
    };
    check_test(
        params.total_fen.unwrap_or(defaults.total_fen),
        params.shares.unwrap_or(defaults.shares),
        params
            .window_secs
            .map_or(defaults.window, Duration::from_secs),
    )
    .map_err(named)?;
    if raw.catch_up_within_minutes > 24 * 60 {
        return Err(named("catch_up_within_minutes must be at most 1440".into()));
    }
    Ok(EnvelopeSchedule {
        name: raw.name.clone(),
        cron_text: raw.cron.clone(),
        cron,
        timezone,
        targets: targets(&raw.targets).map_err(named)?,
        params,
        catch_up_within: Duration::from_secs(raw.catch_up_within_minutes * 60),
        enabled: raw.enabled,
    })
}

/// Parses a red-envelope file, adding its templates to `templates`.
pub(crate) fn parse(
    src: &Source<'_>,
    templates: &mut Templates,
) -> Result<RedEnvelopeScripts, ScriptError> {
    let parsed: RedEnvelopeFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut out = RedEnvelopeScripts::default();
    if let Some(d) = &parsed.defaults {
        let raw = d.get_ref();
        out.total_fen = raw.total_fen.unwrap_or(out.total_fen);
        out.shares = raw.shares.unwrap_or(out.shares);
        if let Some(m) = raw.window_minutes {
            out.window = Duration::from_secs(m * 60);
        }
        check_test(out.total_fen, out.shares, out.window).map_err(|e| {
            src.error(
                d.span().start,
                format!("[defaults] {e} (total_fen ≤ {MAX_TOTAL_FEN}, shares 1–{MAX_SHARES})"),
            )
        })?;
    }
    if let Some(v) = &parsed.verdict {
        let raw = v.get_ref();
        let dead_below = raw.dead_below.unwrap_or(out.verdict.dead_below);
        if !(0.0..=1.0).contains(&dead_below) {
            return Err(src.error(
                v.span().start,
                format!("[verdict] dead_below must be 0 to 1, got {dead_below}"),
            ));
        }
        let minutes =
            |m: Option<u64>, default: Duration| m.map_or(default, |m| Duration::from_secs(m * 60));
        out.verdict = VerdictRules {
            dead_below,
            sluggish_first_claim: minutes(
                raw.sluggish_first_claim_minutes,
                out.verdict.sluggish_first_claim,
            ),
            sluggish_half: minutes(raw.sluggish_half_minutes, out.verdict.sluggish_half),
        };
    }
    if let Some(c) = &parsed.claim {
        let list = words(&c.get_ref().words);
        if list.is_empty() || list.iter().any(|w| w.chars().any(char::is_whitespace)) {
            return Err(src.error(
                c.span().start,
                "[claim] words must list at least one word, without spaces",
            ));
        }
        out.claim_words = list;
    }
    for spanned in &parsed.schedule {
        let s =
            schedule(spanned.get_ref(), &out).map_err(|e| src.error(spanned.span().start, e))?;
        if out.schedules.iter().any(|other| other.name == s.name) {
            return Err(src.error(
                spanned.span().start,
                format!("schedule {:?} is defined twice", s.name),
            ));
        }
        out.schedules.push(s);
    }
    out.messages = Some(messages(
        src,
        parsed.messages.unwrap_or_default(),
        templates,
    )?);
    Ok(out)
}

/// The file's messages, the shipped file's where a section is left out.
fn messages(
    src: &Source<'_>,
    raw: RawMessages,
    templates: &mut Templates,
) -> Result<EnvelopeMessages, ScriptError> {
    let shipped_file = std::path::PathBuf::from(format!("<embedded>/{RED_ENVELOPE_FILE}"));
    let shipped_src = Source::new(super::EMBEDDED_RED_ENVELOPE, &shipped_file);
    let shipped: RedEnvelopeFile =
        toml::from_str(shipped_src.text).map_err(|e| shipped_src.toml_error(&e))?;
    let shipped = shipped.messages.unwrap_or_default();
    let mut pick = |name: &str,
                    own: Option<RawMessage>,
                    fallback: Option<RawMessage>|
     -> Result<Message, ScriptError> {
        match (own, fallback) {
            (Some(own), _) => src.message(templates, &format!("messages.{name}"), &own),
            (None, Some(fallback)) => {
                shipped_src.message(templates, &format!("messages.{name}"), &fallback)
            }
            (None, None) => Err(src.error(0, format!("[messages.{name}] is missing"))),
        }
    };
    let report = pick("report", raw.report, shipped.report)?;
    if report.format != Format::Text {
        return Err(src.error(
            src.text.find("[messages.report]").unwrap_or(0),
            "[messages.report] must be format = \"text\" (it @-mentions the admins)",
        ));
    }
    Ok(EnvelopeMessages {
        envelope: pick("envelope", raw.envelope, shipped.envelope)?,
        claimed: pick("claimed", raw.claimed, shipped.claimed)?,
        already_claimed: pick(
            "already_claimed",
            raw.already_claimed,
            shipped.already_claimed,
        )?,
        empty: pick("empty", raw.empty, shipped.empty)?,
        closed: pick("closed", raw.closed, shipped.closed)?,
        finished: pick("finished", raw.finished, shipped.finished)?,
        report,
        not_started: pick("not_started", raw.not_started, shipped.not_started)?,
        cancelled: pick("cancelled", raw.cancelled, shipped.cancelled)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use std::path::Path;

    fn parse_text(text: &str) -> Result<RedEnvelopeScripts, ScriptError> {
        parse(
            &Source::new(text, Path::new("red_envelope.toml")),
            &mut Templates::new(),
        )
    }

    #[test]
    fn the_shipped_file_parses_to_the_operators_defaults() {
        let s = parse_text(crate::scripts::EMBEDDED_RED_ENVELOPE).unwrap();
        assert_eq!((s.total_fen, s.shares), (2000, 20));
        assert_eq!(s.window, Duration::from_secs(7200));
        assert_eq!(s.verdict, VerdictRules::default());
        assert!(s.claim_words.len() >= 3);
        assert_eq!(s.messages().count(), 9);
        // An empty file: the built-in defaults and the shipped file's messages.
        let empty = parse_text("").unwrap();
        assert_eq!(
            (empty.total_fen, empty.shares, empty.window),
            (2000, 20, Duration::from_secs(7200))
        );
        assert_eq!(empty.messages, s.messages);
    }

    #[test]
    fn schedules_are_checked_and_find_their_slots() {
        let s = parse_text(
            "[[schedule]]\nname = \"monthly\"\ncron = \"0 20 1 * *\"\ntargets = [\"tag:type:新手群\"]\nshares = 10\n",
        )
        .unwrap();
        let monthly = &s.schedules[0];
        assert_eq!(monthly.params.shares, Some(10));
        assert_eq!(monthly.params.total_fen, None);
        assert_eq!(monthly.catch_up_within, Duration::from_secs(1800));
        // 20:00 in Shanghai on the 1st is 12:00 UTC.
        let from = "2026-11-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let next = monthly.next_slot(from).unwrap();
        assert_eq!(next.to_rfc3339(), "2026-12-01T12:00:00+00:00");
        let until = "2027-02-15T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            monthly.last_slot_between(from, until).unwrap().to_rfc3339(),
            "2027-02-01T12:00:00+00:00"
        );
        assert_eq!(
            monthly.last_slot_between(from, next - chrono::Duration::seconds(1)),
            None
        );
        for (text, expected) in [
            ("name = \"a b\"", "name"),
            ("cron = \"0 20 1 *\"", "5 fields"),
            ("targets = \"everyone\"", "targets"),
            ("shares = 0", "at least one share"),
            ("timezone = \"Mars/Base\"", "IANA"),
        ] {
            let mut fields = vec![
                ("name", "name = \"x\""),
                ("cron", "cron = \"0 20 1 * *\""),
                ("targets", "targets = \"all\""),
            ];
            let key = text.split(' ').next().unwrap();
            fields.retain(|(k, _)| *k != key);
            let body: Vec<&str> = fields.iter().map(|(_, v)| *v).chain([text]).collect();
            let err = parse_text(&format!("[[schedule]]\n{}\n", body.join("\n"))).unwrap_err();
            assert!(err.reason.contains(expected), "{text}: {err}");
            assert_eq!(err.line, 1, "{err}");
        }
    }

    #[test]
    fn a_message_can_be_replaced_and_the_report_must_be_text() {
        let s = parse_text("[messages.closed]\nformat = \"text\"\ncontent = \"结束了\"\n").unwrap();
        let messages = s.messages.unwrap();
        assert_eq!(messages.closed.body.source(), "结束了");
        assert!(messages.claimed.body.source().contains("claim.amount"));
        let err =
            parse_text("[messages.report]\nformat = \"markdown\"\ncontent = \"x\"\n").unwrap_err();
        assert!(err.reason.contains("must be format"), "{err}");
        let err = parse_text("[messages.nope]\nformat = \"text\"\ncontent = \"x\"\n").unwrap_err();
        assert!(err.reason.contains("unknown field"), "{err}");
    }

    #[test]
    fn impossible_settings_are_reported_with_their_line() {
        for (text, expected) in [
            ("[defaults]\ntotal_fen = 10\nshares = 20\n", "0.01 yuan"),
            ("[defaults]\nshares = 0\n", "at least one share"),
            ("[defaults]\nwindow_minutes = 0\n", "window"),
            ("[defaults]\nwindow_minutes = 2000\n", "window"),
            ("[verdict]\ndead_below = 1.5\n", "dead_below"),
            ("[claim]\nwords = []\n", "at least one word"),
            ("[claim]\nwords = [\"有 空格\"]\n", "without spaces"),
        ] {
            let err = parse_text(text).unwrap_err();
            assert!(err.reason.contains(expected), "{text}: {err}");
            assert_eq!(err.line, 1, "{err}");
        }
        let err = parse_text("[defaults]\nshare = 3\n").unwrap_err();
        assert!(err.reason.contains("unknown field"), "{err}");
        assert_eq!(err.line, 2, "{err}");
    }
}
