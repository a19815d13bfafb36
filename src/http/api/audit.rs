//! The audit trail of the admin API: every change (any method but GET; a simulation is no
//! change) that passed the
//! authentication layer is recorded with its caller, the request (secrets replaced by `***`), the
//! answer's status, and what changed: for a group's routes the group's settings before and after;
//! for others what the handler reports ([`Changed`]: a script's diff, an account's role). Listed
//! at `GET /api/v1/audit`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde::Deserialize;
use tracing::error;

use super::groups::SettingsView;
use super::paging::PageQuery;
use super::{ApiError, AppState, Caller, blocking};
use crate::domain::ChatId;
use crate::store::{AuditEntry, AuditFilter};

/// Request fields whose values are credentials: never written to the audit trail.
const SECRET_FIELDS: [&str; 6] = [
    "webhook_url",
    "password",
    "token",
    "access_token",
    "encoding_aes_key",
    "admin_token",
];
/// The longest request kept in an entry, in bytes; longer ones are noted by size.
const MAX_KEPT_REQUEST: usize = 16 * 1024;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/audit", get(list))
}

/// What a change did, as its handler tells the audit (put in the answer's extensions): the
/// state before and after, for routes that are not a group's (whose settings are compared by the
/// layer itself).
#[derive(Debug, Clone)]
pub(in crate::http) struct Changed {
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl Changed {
    /// `response` with `before` → `after` for the audit.
    pub(in crate::http) fn attach(
        mut response: Response,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Response {
        response.extensions_mut().insert(Changed { before, after });
        response
    }
}

/// The layer behind authentication that records every change.
pub(in crate::http) async fn record(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    // Reads change nothing; nor does a simulation, which is a POST only to carry its message.
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || request.uri().path() == "/api/v1/simulate"
    {
        return next.run(request).await;
    }
    let actor = request
        .extensions()
        .get::<Caller>()
        .map_or_else(|| "unknown".to_owned(), Caller::actor);
    let action = format!("{} {}", request.method(), request.uri().path());
    let chat = group_of(request.uri().path());
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::http::MAX_ADMIN_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body could not be read: {e}"),
            )
            .into_response();
        }
    };
    let settings =
        |chat: &ChatId| serde_json::to_value(SettingsView::from(&*state.directory.get(chat))).ok();
    let before = chat.as_ref().and_then(settings);
    let kept = kept_request(&bytes);
    let mut response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    let after = chat.as_ref().and_then(settings);
    let (before, after) = match (
        response.extensions_mut().remove::<Changed>(),
        before == after,
    ) {
        (Some(changed), _) => (changed.before, changed.after),
        (None, true) => (None, None),
        (None, false) => (before, after),
    };
    let entry = AuditEntry {
        id: 0,
        at: Utc::now(),
        actor,
        action,
        status: response.status().as_u16(),
        request: kept,
        before,
        after,
    };
    let store = state.store.clone();
    if let Err(e) = blocking(move || store.audit(&entry)).await {
        // The change stands; its record is what failed, and the log says so loudly.
        error!(error = ?e, "an admin change was made but its audit entry was not written");
    }
    response
}

/// The group a route is about: `/api/v1/groups/{chat_id}…`.
fn group_of(path: &str) -> Option<ChatId> {
    let rest = path.strip_prefix("/api/v1/groups/")?;
    let id = rest.split('/').next().filter(|id| !id.is_empty())?;
    Some(ChatId::new(
        percent_decode(id).unwrap_or_else(|| id.to_owned()),
    ))
}

/// A path segment percent-decoded as the router decodes it (a `+` stays a `+`).
fn percent_decode(s: &str) -> Option<String> {
    let s = s.replace('+', "%2B");
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// The request as kept: its JSON with secrets replaced, or a note of its size.
fn kept_request(bytes: &[u8]) -> Option<serde_json::Value> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() > MAX_KEPT_REQUEST {
        return Some(serde_json::json!({ "bytes": bytes.len() }));
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut value) => {
            redact(&mut value);
            Some(value)
        }
        Err(_) => Some(serde_json::json!({ "bytes": bytes.len(), "json": false })),
    }
}

/// Replaces the values of [`SECRET_FIELDS`] wherever they are.
fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) {
                    *field = serde_json::Value::String("***".into());
                } else {
                    redact(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/audit?actor=&action=&limit=&cursor=`: the changes, newest first, a page at a
/// time (`{"entries", "next_cursor"}`; `limit` 1–500, default 100); `action` keeps those whose
/// action contains it, any case.
async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = page.limit()?;
    let before = page.before_id()?;
    let filter = AuditFilter {
        actor: query.actor.filter(|a| !a.is_empty()),
        action: query.action.filter(|a| !a.trim().is_empty()),
        before,
        // One more than the page: whether another page follows.
        limit: limit + 1,
    };
    let store = state.store.clone();
    let entries = blocking(move || store.audit_log(&filter)).await?;
    let (entries, next_cursor) = super::paging::trim_page(entries, limit, |e| e.id.to_string());
    Ok(Json(serde_json::json!({"entries": entries, "next_cursor": next_cursor})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_wherever_they_are_and_groups_are_found_in_paths() {
        let kept = kept_request(
            br#"{"webhook_url": "https://x/send?key=SECRET", "name": "g", "bots": [{"token": "t0ken"}]}"#,
        )
        .unwrap();
        let text = kept.to_string();
        assert!(
            !text.contains("SECRET") && !text.contains("t0ken"),
            "{text}"
        );
        assert_eq!(kept["name"], "g");
        assert_eq!(kept["webhook_url"], "***");
        assert_eq!(kept_request(b"not json").unwrap()["json"], false);
        assert!(kept_request(b"").is_none());
        assert_eq!(
            group_of("/api/v1/groups/wr%40chat/tags"),
            Some(ChatId::new("wr@chat"))
        );
        assert_eq!(group_of("/api/v1/groups/a+b"), Some(ChatId::new("a+b")));
        assert_eq!(group_of("/api/v1/groups"), None);
        assert_eq!(group_of("/api/v1/runs/x/resend"), None);
    }
}
