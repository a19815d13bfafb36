//! What is in force: the rules loaded, the scripts' version and last refused edit, and the bot
//! accounts connected.

use axum::Router;
use axum::routing::get;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use crate::domain::Role;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/rules", get(list_rules))
        .route("/api/v1/accounts", get(list_accounts))
        .route("/api/v1/scripts/status", get(scripts_status))
}

/// One loaded rule as `GET /api/v1/rules` shows it.
#[derive(Serialize)]
struct RuleView {
    id: String,
    kind: &'static str,
    scope: String,
    #[serde(rename = "match")]
    mode: &'static str,
    patterns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cooldown_secs: Option<u64>,
    mentioned_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hours: Vec<String>,
    /// For commands: the lowest role that may use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    /// For moderation checks: what they do, and to whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<&'static str>,
    enabled: bool,
}

/// `GET /api/v1/rules`: the rules in force.
pub async fn list_rules(State(state): State<Arc<AppState>>) -> Response {
    let scripts = state.scripts.current();
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let mut rules: Vec<RuleView> = scripts
        .keywords
        .rules()
        .iter()
        .map(|r| RuleView {
            id: r.id.clone(),
            kind: "keyword",
            scope: r.scope.to_string(),
            mode: r.mode.as_str(),
            patterns: r.patterns.clone(),
            priority: Some(r.priority),
            cooldown_secs: Some(r.cooldown.as_secs()),
            mentioned_only: r.mentioned_only,
            hours: r
                .hours
                .iter()
                .map(|w| format!("{}-{}", hm(w.start), hm(w.end)))
                .collect(),
            role: None,
            action: None,
            members: None,
            enabled: r.enabled,
        })
        .collect();
    rules.extend(scripts.commands.commands.iter().map(|c| RuleView {
        id: c.kind.key().to_owned(),
        kind: "command",
        scope: "global".into(),
        mode: "prefix",
        patterns: c.triggers.clone(),
        priority: None,
        cooldown_secs: None,
        mentioned_only: true,
        hours: Vec::new(),
        role: Some(c.role),
        action: None,
        members: None,
        enabled: true,
    }));
    rules.extend(scripts.welcome.templates.iter().map(|w| {
        let scene = w.scene.map_or("any", crate::domain::JoinScene::as_str);
        RuleView {
            id: format!("welcome:{scene}"),
            kind: "welcome",
            scope: w.scope.to_string(),
            mode: "join",
            patterns: vec![scene.to_owned()],
            priority: None,
            cooldown_secs: None,
            mentioned_only: false,
            hours: Vec::new(),
            role: None,
            action: None,
            members: None,
            enabled: w.enabled,
        }
    }));
    rules.extend(scripts.moderation.checks.iter().map(|c| {
        use crate::engine::moderation::{CheckKind, Members};
        RuleView {
            id: c.id.clone(),
            kind: "moderation",
            scope: c.scope.to_string(),
            mode: c.kind.name(),
            patterns: match &c.kind {
                CheckKind::Words(list) => list.words().to_vec(),
                CheckKind::Links { allow } | CheckKind::QrCodes { allow } => allow.clone(),
                CheckKind::Cards { kinds } => kinds.clone(),
                _ => Vec::new(),
            },
            priority: None,
            cooldown_secs: None,
            mentioned_only: false,
            hours: Vec::new(),
            role: None,
            action: Some(c.severity.as_str()),
            members: Some(match c.members {
                Members::All => "all",
                Members::Probation => "probation",
            }),
            enabled: true,
        }
    }));
    Json(rules).into_response()
}

/// `GET /api/v1/scripts/status`: which version of bot-scripts is in force, and the last
/// refused edit.
pub async fn scripts_status(State(state): State<Arc<AppState>>) -> Response {
    Json(state.scripts.status()).into_response()
}

/// `GET /api/v1/accounts`: the bot accounts connected now (OneBot), with what their
/// implementation offers.
pub async fn list_accounts(State(state): State<Arc<AppState>>) -> Response {
    Json(state.hub.accounts()).into_response()
}
