//! The admin API (`/api/v1`, bearer token) and the unauthenticated health check.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use subtle::ConstantTimeEq;
use tracing::{error, warn};

use super::AppState;
use crate::store::{GroupRecord, GroupStatus};

/// `GET /healthz`: 200 while the service is serving.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": "unauthorized"})),
    )
        .into_response()
}

/// Checks `Authorization: Bearer <admin.token>` in constant time. With no token configured,
/// nobody is let in.
fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.admin_token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())) => true,
        _ => {
            warn!("admin API: missing or wrong bearer token");
            false
        }
    }
}

fn internal_error(e: impl std::fmt::Display) -> Response {
    error!(error = %e, "admin API failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"error": "internal error"})),
    )
        .into_response()
}

/// One group as the API shows it (without the webhook key, which is a credential).
#[derive(Serialize)]
struct GroupView {
    chat_id: String,
    bot: String,
    status: GroupStatus,
    adopter: Option<String>,
    adopter_name: Option<String>,
    adopted_at: Option<DateTime<Utc>>,
    adopted_via: Option<String>,
    released_at: Option<DateTime<Utc>>,
    release_reason: Option<String>,
    members_seen: u64,
    messages: u64,
    last_message_at: Option<DateTime<Utc>>,
    can_push: bool,
}

impl From<GroupRecord> for GroupView {
    fn from(g: GroupRecord) -> Self {
        Self {
            chat_id: g.chat_id.to_string(),
            bot: g.bot.to_string(),
            status: g.status,
            adopter: g.adopter.as_ref().map(|a| a.user_id.clone()),
            adopter_name: g.adopter.map(|a| a.name),
            adopted_at: g.adopted_at,
            adopted_via: g.adopted_via,
            released_at: g.released_at,
            release_reason: g.release_reason,
            members_seen: g.members_seen,
            messages: g.messages,
            last_message_at: g.last_message_at,
            can_push: g.webhook_url.is_some() && g.status == GroupStatus::Adopted,
        }
    }
}

/// `GET /api/v1/groups`: every group the bot has been in.
pub async fn list_groups(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.groups()).await {
        Ok(Ok(groups)) => {
            Json(groups.into_iter().map(GroupView::from).collect::<Vec<_>>()).into_response()
        }
        Ok(Err(e)) => internal_error(e),
        Err(e) => internal_error(e),
    }
}

/// One loaded rule as `GET /api/v1/rules` shows it.
#[derive(Serialize)]
struct RuleView {
    id: String,
    kind: &'static str,
    scope: &'static str,
    #[serde(rename = "match")]
    mode: crate::engine::keywords::MatchMode,
    patterns: Vec<String>,
    priority: i32,
    cooldown_secs: u64,
    mentioned_only: bool,
    hours: Vec<String>,
    enabled: bool,
}

/// `GET /api/v1/rules`: the rules in force.
pub async fn list_rules(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let scripts = state.scripts.current();
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let rules: Vec<RuleView> = scripts
        .keywords
        .rules()
        .iter()
        .map(|r| RuleView {
            id: r.id.clone(),
            kind: "keyword",
            scope: "global",
            mode: r.mode,
            patterns: r.patterns.clone(),
            priority: r.priority,
            cooldown_secs: r.cooldown.as_secs(),
            mentioned_only: r.mentioned_only,
            hours: r
                .hours
                .iter()
                .map(|w| format!("{}-{}", hm(w.start), hm(w.end)))
                .collect(),
            enabled: r.enabled,
        })
        .collect();
    Json(rules).into_response()
}

/// `GET /api/v1/scripts/status`: which version of bot-scripts is in force, and the last
/// refused edit.
pub async fn scripts_status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    Json(state.scripts.status()).into_response()
}
