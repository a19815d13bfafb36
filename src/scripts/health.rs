//! `bot-scripts/health.toml`: the weekly health digest — when it is pushed, to which group, how
//! many groups it lists, and its message.

use serde::Deserialize;

use super::schedules::cron_and_zone;
use super::{Format, RawMessage, ScriptError, Source};
use crate::domain::ChatId;
use crate::engine::health::{Digest, HealthScripts, MAX_DIGEST_GROUPS};
use crate::engine::template::Templates;

/// The health file inside the scripts directory (optional: no digest).
pub const HEALTH_FILE: &str = "health.toml";
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    digest: Option<toml::Spanned<RawDigest>>,
}

fn default_limit() -> usize {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    #[serde(default)]
    enabled: bool,
    cron: String,
    timezone: Option<String>,
    #[serde(default)]
    to: String,
    #[serde(default = "default_limit")]
    limit: usize,
    format: Format,
    content: toml::Spanned<String>,
    #[serde(default)]
    mention_sender: bool,
}

/// Parses a health file, adding its template to `templates` (also when the digest is off, so
/// that `trumpet check` finds its mistakes before it is switched on).
pub(crate) fn parse(
    src: &Source<'_>,
    templates: &mut Templates,
) -> Result<HealthScripts, ScriptError> {
    let parsed: HealthFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let Some(spanned) = parsed.digest else {
        return Ok(HealthScripts::default());
    };
    let start = spanned.span().start;
    let raw = spanned.into_inner();
    let fail = |reason: String| src.error(start, format!("[digest] {reason}"));
    let (cron, timezone) = cron_and_zone(&raw.cron, raw.timezone.as_deref()).map_err(fail)?;
    if !(1..=MAX_DIGEST_GROUPS).contains(&raw.limit) {
        return Err(fail(format!("limit must be 1 to {MAX_DIGEST_GROUPS}")));
    }
    let to = raw.to.trim();
    if raw.enabled && to.is_empty() {
        return Err(fail(
            "to must name the group the digest is pushed to".into(),
        ));
    }
    let message = src.message(
        templates,
        "digest",
        &RawMessage {
            format: raw.format,
            content: raw.content,
            mention_sender: raw.mention_sender,
        },
    )?;
    Ok(HealthScripts {
        digest: Some(Digest {
            enabled: raw.enabled,
            cron_text: raw.cron.clone(),
            cron,
            timezone,
            to: ChatId::new(to),
            limit: raw.limit,
            message,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_text(text: &str) -> Result<HealthScripts, ScriptError> {
        parse(
            &Source::new(text, Path::new("health.toml")),
            &mut Templates::new(),
        )
    }

    #[test]
    fn the_shipped_digest_is_off_and_switching_it_on_needs_a_group() {
        let shipped = crate::scripts::EMBEDDED_HEALTH;
        assert!(!parse_text(shipped).unwrap().digest.unwrap().enabled);
        let on = shipped.replace("enabled = false", "enabled = true");
        let err = parse_text(&on).unwrap_err();
        assert!(err.reason.contains("to must name"), "{err}");
        let on = on.replace("to = \"\"", "to = \"wrOps\"");
        let digest = parse_text(&on).unwrap().digest.unwrap();
        assert_eq!((digest.to.as_str(), digest.limit), ("wrOps", 10));
        let err = parse_text(&on.replace("limit = 10", "limit = 0")).unwrap_err();
        assert!(err.reason.contains("limit"), "{err}");
        let err = parse_text(&on.replace("0 9 * * 1", "0 9 * *")).unwrap_err();
        assert!(err.reason.contains("5 fields"), "{err}");
        assert_eq!(parse_text("").unwrap(), HealthScripts::default());
    }
}
