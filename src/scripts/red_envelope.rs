//! `bot-scripts/red_envelope.toml`: the defaults of a red-envelope test (total, shares, window),
//! the thresholds of its verdict, and the words claim phrases are made of.

use std::time::Duration;

use serde::Deserialize;

use super::{ScriptError, Source, words};
use crate::engine::red_envelope::{MAX_SHARES, MAX_TOTAL_FEN, VerdictRules};

/// The red-envelope file inside the scripts directory (optional: the built-in defaults apply).
pub const RED_ENVELOPE_FILE: &str = "red_envelope.toml";

/// The longest window a test may have: a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The loaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct RedEnvelopeScripts {
    pub total_fen: u64,
    pub shares: u32,
    pub window: Duration,
    pub verdict: VerdictRules,
    /// Claim phrases are one of these and three digits.
    pub claim_words: Vec<String>,
}

impl Default for RedEnvelopeScripts {
    fn default() -> Self {
        Self {
            total_fen: 2000,
            shares: 20,
            window: Duration::from_secs(2 * 3600),
            verdict: VerdictRules::default(),
            claim_words: vec!["财税好运".into()],
        }
    }
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedEnvelopeFile {
    defaults: Option<toml::Spanned<RawDefaults>>,
    verdict: Option<toml::Spanned<RawVerdict>>,
    claim: Option<toml::Spanned<RawClaim>>,
}

/// Checks a test's parameters (also those given through a command or the API).
pub fn check_test(total_fen: u64, shares: u32, window: Duration) -> Result<(), String> {
    crate::engine::red_envelope::check(total_fen, shares).map_err(|e| e.to_string())?;
    if window.is_zero() || window > MAX_WINDOW {
        return Err(format!(
            "the window must be 1 minute to {} hours",
            MAX_WINDOW.as_secs() / 3600
        ));
    }
    Ok(())
}

/// Parses a red-envelope file.
pub(crate) fn parse(src: &Source<'_>) -> Result<RedEnvelopeScripts, ScriptError> {
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_text(text: &str) -> Result<RedEnvelopeScripts, ScriptError> {
        parse(&Source::new(text, Path::new("red_envelope.toml")))
    }

    #[test]
    fn the_shipped_file_parses_to_the_operators_defaults() {
        let s = parse_text(crate::scripts::EMBEDDED_RED_ENVELOPE).unwrap();
        assert_eq!((s.total_fen, s.shares), (2000, 20));
        assert_eq!(s.window, Duration::from_secs(7200));
        assert_eq!(s.verdict, VerdictRules::default());
        assert!(s.claim_words.len() >= 3);
        assert_eq!(parse_text("").unwrap(), RedEnvelopeScripts::default());
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
