//! `bot-scripts/keywords.toml`: the keyword replies operators write, validated into
//! [`KeywordRule`]s (patterns normalised, regexes compiled, windows parsed) and compiled into a
//! [`KeywordSet`]. Errors point at the rule's line.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Format, Message, RawMessage, ScriptError, Source, check_identifier, line_col};
use crate::engine::keywords::{KeywordRule, KeywordSet, MatchMode, Window};
use crate::engine::normalize::normalize;
use crate::engine::scope::Scope;
use crate::engine::template::Templates;

/// The longest cooldown a rule may have: 30 days.
pub const MAX_COOLDOWN_SECS: u64 = 30 * 24 * 3600;

/// The keyword file inside the scripts directory (optional: no file, no keyword replies).
pub const KEYWORDS_FILE: &str = "keywords.toml";

fn yes() -> bool {
    true
}

fn contains() -> MatchMode {
    MatchMode::Contains
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    scope: Option<String>,
    patterns: Vec<String>,
    #[serde(rename = "match", default = "contains")]
    mode: MatchMode,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    cooldown_secs: u64,
    #[serde(default = "yes")]
    mentioned_only: bool,
    #[serde(default)]
    hours: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    format: Format,
    content: toml::Spanned<String>,
    #[serde(default)]
    mention_sender: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordsFile {
    #[serde(default)]
    keyword: Vec<toml::Spanned<RawRule>>,
}

/// Parses `HH:MM-HH:MM` (local time; an end before the start wraps past midnight).
pub(crate) fn parse_window(text: &str) -> Result<Window, String> {
    let minutes = |hm: &str| -> Option<u16> {
        let (h, m) = hm.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (start, end) = text
        .split_once('-')
        .and_then(|(a, b)| Some((minutes(a)?, minutes(b)?)))
        .ok_or_else(|| format!("hours entry {text:?} is not HH:MM-HH:MM"))?;
    if start == end {
        return Err(format!("hours entry {text:?} is empty"));
    }
    Ok(Window { start, end })
}

/// Validates everything but the reply (compiled by the caller, which knows the file).
fn validate(raw: &RawRule) -> Result<KeywordRule, String> {
    check_identifier("id", &raw.id)?;
    let scope = match &raw.scope {
        None => Scope::Global,
        Some(text) => Scope::parse(text).map_err(|e| format!("rule {:?}: {e}", raw.id))?,
    };
    if raw.cooldown_secs > MAX_COOLDOWN_SECS {
        return Err(format!(
            "rule {:?}: cooldown_secs must be at most {MAX_COOLDOWN_SECS} (30 days), got {}",
            raw.id, raw.cooldown_secs
        ));
    }
    let mut patterns: Vec<String> = Vec::new();
    for pattern in &raw.patterns {
        let p = match raw.mode {
            // A regex is matched against normalised text; its source is taken as written.
            MatchMode::Regex => {
                regex::Regex::new(pattern)
                    .map_err(|e| format!("rule {:?}: bad regex {pattern:?}: {e}", raw.id))?;
                pattern.clone()
            }
            _ => normalize(pattern),
        };
        if p.is_empty() {
            return Err(format!("rule {:?}: empty pattern {pattern:?}", raw.id));
        }
        if !patterns.contains(&p) {
            patterns.push(p);
        }
    }
    if patterns.is_empty() {
        return Err(format!(
            "rule {:?}: patterns must list at least one",
            raw.id
        ));
    }
    let hours = raw
        .hours
        .iter()
        .map(|h| parse_window(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("rule {:?}: {e}", raw.id))?;
    Ok(KeywordRule {
        id: raw.id.clone(),
        scope,
        mode: raw.mode,
        patterns,
        priority: raw.priority,
        cooldown: Duration::from_secs(raw.cooldown_secs),
        mentioned_only: raw.mentioned_only,
        hours,
        enabled: raw.enabled,
        reply: Message::literal(raw.format, "", raw.mention_sender),
    })
}

/// Parses and compiles a keywords file, adding its reply templates to `templates`.
pub(crate) fn parse(
    src: &Source<'_>,
    templates: &mut Templates,
) -> Result<KeywordSet, ScriptError> {
    let parsed: KeywordsFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut rules = Vec::with_capacity(parsed.keyword.len());
    let mut first_at: HashMap<(String, Scope), usize> =
        HashMap::with_capacity(parsed.keyword.len());
    for spanned in parsed.keyword {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let mut rule = validate(&raw).map_err(|reason| src.error(start, reason))?;
        let key = (rule.id.clone(), rule.scope.clone());
        if let Some(&earlier) = first_at.get(&key) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!(
                    "id {:?} is already used in scope {} by the rule at line {line}",
                    rule.id, rule.scope
                ),
            ));
        }
        first_at.insert(key, start);
        let name = format!("keyword {} ({})", rule.id, rule.scope);
        rule.reply = src.message(
            templates,
            &name,
            &RawMessage {
                format: raw.format,
                content: raw.content,
                mention_sender: raw.mention_sender,
            },
        )?;
        rules.push(rule);
    }
    KeywordSet::build(rules).map_err(|e| {
        let offset = src.text.find(&format!("\"{}\"", e.rule)).unwrap_or(0);
        src.error(offset, e.to_string())
    })
}

/// Parses a keywords file on its own (benchmarks, tests); `file` names it in errors.
pub fn parse_file(text: &str, file: &Path) -> Result<KeywordSet, ScriptError> {
    parse(&Source::new(text, file), &mut Templates::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ScriptError {
        parse_file(text, Path::new("keywords.toml")).unwrap_err()
    }

    const RULE: &str =
        "[[keyword]]\nid = \"a\"\npatterns = [\"发票\"]\nformat = \"text\"\ncontent = \"x\"\n";

    #[test]
    fn errors_point_at_the_rule() {
        let e = err(&format!(
            "{RULE}\n[[keyword]]\nid = \"b\"\npatterns = [\"(\"]\nmatch = \"regex\"\nformat = \"text\"\ncontent = \"y\"\n"
        ));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.reason.contains("bad regex"), "{e}");
        let e = err(&format!("{RULE}{RULE}"));
        assert!(
            e.reason
                .contains("already used in scope global by the rule at line 1"),
            "{e}"
        );
        assert_eq!(e.line, 6, "{e}");
        let e = err(&RULE.replace("format = \"text\"", "format = \"text\"\nhours = [\"9-18\"]"));
        assert!(e.reason.contains("HH:MM"), "{e}");
        let e = err(&RULE.replace(
            "format = \"text\"",
            "format = \"text\"\ncooldown_secs = 99999999999",
        ));
        assert!(e.reason.contains("at most"), "{e}");
        let e = err(&RULE.replace("[\"发票\"]", "[\" \"]"));
        assert!(e.reason.contains("empty pattern"), "{e}");
        let e = err(&RULE.replace("id = \"a\"", "id = \"a\"\nmatch = \"fuzzy\""));
        assert!(e.reason.contains("fuzzy"), "{e}");
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn windows_parse_and_wrap() {
        assert_eq!(
            parse_window("09:00-18:30"),
            Ok(Window {
                start: 540,
                end: 1110
            })
        );
        assert_eq!(
            parse_window("22:00-06:00"),
            Ok(Window {
                start: 1320,
                end: 360
            })
        );
        assert!(parse_window("25:00-26:00").is_err());
        assert!(parse_window("09:00-09:00").is_err());
    }

    #[test]
    fn patterns_are_normalised_and_deduplicated() {
        let set = parse_file(
            &RULE.replace("[\"发票\"]", "[\"ＦＡＰＩＡＯ\", \"fapiao\"]"),
            Path::new("k"),
        )
        .unwrap();
        assert_eq!(set.rules()[0].patterns, vec!["fapiao".to_owned()]);
    }
}
