//! `bot-scripts/welcome.toml`: the welcome for new members — templates per scope and join scene,
//! and the timing (batch window, interval between welcomes, quiet period for rejoins) per scope.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Format, RawMessage, ScriptError, Source, line_col};
use crate::domain::JoinScene;
use crate::engine::scope::Scope;
use crate::engine::template::Templates;
use crate::engine::welcome::{TimingOverride, WecomWelcome, WelcomeScripts, WelcomeTemplate};

/// The welcome file inside the scripts directory (optional: no file, no welcomes).
pub const WELCOME_FILE: &str = "welcome.toml";

/// Limits on the timing operators may set.
const MAX_BATCH_WINDOW_SECS: u64 = 600;
const MAX_INTERVAL_SECS: u64 = 24 * 3600;
const MAX_QUIET_DAYS: u64 = 365;

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    #[serde(default)]
    scope: Option<String>,
    batch_window_secs: Option<u64>,
    min_interval_secs: Option<u64>,
    rejoin_quiet_days: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWelcome {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scene: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    format: Format,
    content: toml::Spanned<String>,
    #[serde(default)]
    mention_sender: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWecomTemplate {
    name: String,
    content: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WelcomeFile {
    #[serde(default)]
    timing: Vec<toml::Spanned<RawTiming>>,
    #[serde(default)]
    welcome: Vec<toml::Spanned<RawWelcome>>,
    #[serde(default)]
    wecom_template: Vec<toml::Spanned<RawWecomTemplate>>,
}

/// A `[[wecom_template]]`, checked: a name, and a text WeCom takes (not empty, at most
/// 3,000 bytes, no template syntax — WeCom sends it as written, `%NICKNAME%` aside).
fn wecom_template(raw: RawWecomTemplate) -> Result<WecomWelcome, String> {
    let name = raw.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        return Err("name must be 1 to 64 characters".into());
    }
    let text = raw.content.trim().to_owned();
    if text.is_empty() {
        return Err(format!("{name:?}: content must not be empty"));
    }
    let max = crate::engine::welcome::WECOM_WELCOME_MAX_BYTES;
    if text.len() > max {
        return Err(format!(
            "{name:?}: content is {} bytes; WeCom takes at most {max}",
            text.len()
        ));
    }
    if text.contains("{{") || text.contains("{%") {
        return Err(format!(
            "{name:?}: WeCom sends this text as written — no {{{{ … }}}} here; %NICKNAME% stands for the newcomer's name"
        ));
    }
    Ok(WecomWelcome { name, text })
}

fn scope_of(text: &Option<String>) -> Result<Scope, String> {
    text.as_deref().map_or(Ok(Scope::Global), Scope::parse)
}

fn scene_of(text: &Option<String>) -> Result<Option<JoinScene>, String> {
    match text.as_deref().unwrap_or("any") {
        "any" => Ok(None),
        "invited" => Ok(Some(JoinScene::Invited)),
        "qrcode" => Ok(Some(JoinScene::Qrcode)),
        "link" => Ok(Some(JoinScene::Link)),
        other => Err(format!(
            "scene {other:?} must be any, invited, qrcode or link"
        )),
    }
}

fn bounded(name: &str, value: Option<u64>, max: u64) -> Result<Option<u64>, String> {
    match value {
        Some(v) if v > max => Err(format!("{name} must be at most {max}, got {v}")),
        other => Ok(other),
    }
}

fn timing(raw: &RawTiming) -> Result<TimingOverride, String> {
    let window = bounded(
        "batch_window_secs",
        raw.batch_window_secs,
        MAX_BATCH_WINDOW_SECS,
    )?;
    if window == Some(0) {
        return Err("batch_window_secs must be at least 1".into());
    }
    let interval = bounded(
        "min_interval_secs",
        raw.min_interval_secs,
        MAX_INTERVAL_SECS,
    )?;
    let quiet = bounded("rejoin_quiet_days", raw.rejoin_quiet_days, MAX_QUIET_DAYS)?;
    Ok(TimingOverride {
        scope: scope_of(&raw.scope)?,
        batch_window: window.map(Duration::from_secs),
        min_interval: interval.map(Duration::from_secs),
        rejoin_quiet: quiet.map(|d| Duration::from_secs(d * 24 * 3600)),
    })
}

/// Parses a welcome file, adding its templates to `templates`.
pub(crate) fn parse(
    src: &Source<'_>,
    templates: &mut Templates,
) -> Result<WelcomeScripts, ScriptError> {
    let parsed: WelcomeFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let mut out = WelcomeScripts::default();
    let mut timing_at: HashMap<Scope, usize> = HashMap::new();
    for spanned in &parsed.timing {
        let start = spanned.span().start;
        let t =
            timing(spanned.get_ref()).map_err(|e| src.error(start, format!("[[timing]] {e}")))?;
        if let Some(&earlier) = timing_at.get(&t.scope) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!("[[timing]] for {} is already set at line {line}", t.scope),
            ));
        }
        timing_at.insert(t.scope.clone(), start);
        out.timing.push(t);
    }
    let mut welcome_at: HashMap<(Scope, Option<JoinScene>), usize> = HashMap::new();
    for spanned in parsed.welcome {
        let start = spanned.span().start;
        let raw = spanned.into_inner();
        let scope =
            scope_of(&raw.scope).map_err(|e| src.error(start, format!("[[welcome]] {e}")))?;
        let scene =
            scene_of(&raw.scene).map_err(|e| src.error(start, format!("[[welcome]] {e}")))?;
        if let Some(&earlier) = welcome_at.get(&(scope.clone(), scene)) {
            let (line, _) = line_col(src.text, earlier);
            return Err(src.error(
                start,
                format!(
                    "[[welcome]] for {scope}, scene {} is already written at line {line}",
                    scene.map_or("any", JoinScene::as_str)
                ),
            ));
        }
        welcome_at.insert((scope.clone(), scene), start);
        let name = format!(
            "welcome ({scope}, {})",
            scene.map_or("any", JoinScene::as_str)
        );
        let message = src.message(
            templates,
            &name,
            &RawMessage {
                format: raw.format,
                content: raw.content,
                mention_sender: raw.mention_sender,
            },
        )?;
        out.templates.push(WelcomeTemplate {
            scope,
            scene,
            enabled: raw.enabled,
            message,
        });
    }
    for spanned in parsed.wecom_template {
        let start = spanned.span().start;
        let template = wecom_template(spanned.into_inner())
            .map_err(|e| src.error(start, format!("[[wecom_template]] {e}")))?;
        if out.wecom_templates.iter().any(|t| t.name == template.name) {
            return Err(src.error(
                start,
                format!("[[wecom_template]] {:?} is written twice", template.name),
            ));
        }
        out.wecom_templates.push(template);
    }
    Ok(out)
}
