//! Moderation through the admin API: the log (`GET /api/v1/moderation` with filters), the
//! operator-wide blacklist and pardons (`GET` / `DELETE /api/v1/moderation/blacklist/…`), and
//! trusting a member in a group (`PUT /api/v1/groups/{chat_id}/approved/{user_id}`), admins'
//! judgements of findings, and a moderation file tried on the log before it is switched on
//! (`POST /api/v1/moderation/rejudge`).

use axum::Router;
use axum::routing::{delete, get, post, put};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::AppState;
use super::paging::PageQuery;
use super::{ApiError, admit, blocking, blocking_json, internal_error};
use crate::domain::ChatId;
use crate::runtime::moderation::requests;
use crate::store::LogFilter;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/moderation", get(list_log))
        .route("/api/v1/moderation/blacklist", get(list_blacklist))
        .route("/api/v1/moderation/blacklist/{user_id}", delete(pardon))
        .route("/api/v1/moderation/approved", get(list_approved))
        .route("/api/v1/moderation/labels", get(list_labels))
        .route("/api/v1/moderation/{id}/review", post(review))
        .route("/api/v1/moderation/rejudge", post(rejudge))
        .route(
            "/api/v1/groups/{chat_id}/approved/{user_id}",
            put(put_approved),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    chat_id: Option<String>,
    user_id: Option<String>,
    /// The check (rule) id, or `report`, `appeal`, `pardon`, `approve`, `blacklist`, `raid`.
    check: Option<String>,
    /// RFC 3339 times.
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    format!("{name} must be an RFC 3339 time like 2026-11-23T09:00:00+08:00: {e}")
                })
        })
        .transpose()
}

/// `GET /api/v1/moderation?chat_id=&user_id=&check=&since=&until=&limit=&cursor=`: the
/// moderation log, newest first, a page at a time (`{"entries", "next_cursor"}`; `limit` 1–500,
/// default 100).
pub async fn list_log(
    State(state): State<Arc<AppState>>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = time("since", query.since.as_deref()).map_err(ApiError::bad_request)?;
    let until = time("until", query.until.as_deref()).map_err(ApiError::bad_request)?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let limit = page.limit()?;
    let before = page.before_id()?;
    let filter = LogFilter {
        chat_id: query.chat_id.map(ChatId::new),
        user_id: query.user_id,
        check: query.check,
        since,
        until,
        before,
        // One more than the page: whether another page follows.
        limit: limit + 1,
    };
    let store = state.store.clone();
    let entries = blocking(move || store.moderation_log(&filter)).await?;
    let (entries, next_cursor) = super::paging::trim_page(entries, limit, |e| e.id.to_string());
    Ok(Json(serde_json::json!({"entries": entries, "next_cursor": next_cursor})).into_response())
}

/// `GET /api/v1/moderation/blacklist`: members kept out of every adopted group.
pub async fn list_blacklist(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    blocking_json(move || store.blacklist()).await
}

/// `DELETE /api/v1/moderation/blacklist/{user_id}`: pardons a member — off the blacklist, their
/// warnings cleared in every group. 404 when there was nothing to pardon.
pub async fn pardon(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path(user_id): Path<String>,
) -> Response {
    match requests::pardon(&state, &user_id, None, &caller.by(), Utc::now()).await {
        Ok(p) if !p.was_blacklisted && p.warnings_cleared_in.is_empty() => {
            ApiError::not_found(format!("{user_id} is not blacklisted and has no warnings"))
                .into_response()
        }
        Ok(p) => Json(p).into_response(),
        Err(e) => internal_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedBody {
    approved: bool,
}

/// `PUT /api/v1/groups/{chat_id}/approved/{user_id}` with `{"approved": true|false}`: trusts a
/// member in a group (content checks skip them) or stops trusting them.
pub async fn put_approved(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path((chat_id, user_id)): Path<(String, String)>,
    body: Result<Json<ApprovedBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(b) => b,
        Err(refusal) => return *refusal,
    };
    let chat = ChatId::new(chat_id);
    if let Err(refusal) = super::group_changes::load_group(&state, &chat).await {
        return *refusal;
    }
    match requests::approve(
        &state,
        &chat,
        &user_id,
        body.approved,
        &caller.by(),
        Utc::now(),
    )
    .await
    {
        Ok(()) => Json(serde_json::json!({
            "chat_id": chat,
            "user_id": user_id,
            "approved": body.approved,
        }))
        .into_response(),
        Err(e) => internal_error(e),
    }
}

/// `GET /api/v1/moderation/approved`: every member trusted in a group
/// (`[{"chat_id", "user_id"}]`).
pub async fn list_approved(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    blocking_json(move || {
        Ok(store
            .approved_members()?
            .into_iter()
            .map(|(chat, user)| serde_json::json!({"chat_id": chat, "user_id": user}))
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /api/v1/moderation/labels`: the messages admins labelled by judging findings
/// (`{"labels": [{"entry_id", "label": "spam"|"ham", "text", "normalized", "chat_id", "check",
/// "by", "at"}]}`).
pub async fn list_labels(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    blocking_json(move || Ok(serde_json::json!({ "labels": store.labels()? }))).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    verdict: crate::store::ReviewVerdict,
}

/// `POST /api/v1/moderation/{id}/review` with `{"verdict": "wrong"|"right"}`: an admin's
/// judgement of a finding. `wrong` (误判) keeps the message as an ordinary one for the learned
/// layer and pardons the member (warnings cleared, off the blacklist); `right` keeps it as spam.
/// Answers `{"entry", "pardon"}`; 404 for an unknown entry, 409 for one that is not a finding.
pub async fn review(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<super::Caller>,
    Path(id): Path<u64>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = match admit(body) {
        Ok(b) => b,
        Err(refusal) => return Ok(*refusal),
    };
    let by = caller.by();
    let review = crate::store::Review {
        verdict: body.verdict,
        by: by.clone(),
        at: Utc::now(),
    };
    let store = state.store.clone();
    let entry = tokio::task::spawn_blocking(move || store.review_finding(id, &review))
        .await?
        .map_err(|e| match e {
            crate::store::ReviewError::NoSuchEntry(_) => ApiError::not_found(e.to_string()),
            crate::store::ReviewError::NotAFinding(..) => ApiError::conflict(e.to_string()),
            crate::store::ReviewError::Store(e) => ApiError::internal(e),
        })?;
    let pardon = match body.verdict {
        crate::store::ReviewVerdict::Wrong => Some(
            requests::pardon(
                &state,
                &entry.user_id,
                Some(&entry.chat_id),
                &by,
                Utc::now(),
            )
            .await?,
        ),
        crate::store::ReviewVerdict::Right => None,
    };
    tracing::info!(entry = id, verdict = ?body.verdict, by = %by, "a moderation finding was judged");
    // The label is kept whatever happens here; a training that fails is retried by the next
    // judgement and at the next start.
    if let Err(e) = state
        .services
        .moderator
        .teacher
        .retrain(&state.services.store, &state.services.scripts)
        .await
    {
        tracing::error!(error = %e, "the learned layer could not be trained with the new label");
    }
    Ok(Json(serde_json::json!({"entry": entry, "pardon": pardon})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RejudgeBody {
    /// A whole `moderation.toml` to try; absent: the file in force.
    moderation: Option<String>,
}

/// `POST /api/v1/moderation/rejudge` with `{"moderation": "<a moderation.toml>"}` (or `{}` for
/// the file in force): what those rules would have done with the findings and reports logged so
/// far and with the admins' labels (`runtime::moderation::rejudge::Report`). A file that does
/// not load is refused (422) with `file:line:column` and the reason. Changes nothing.
pub async fn rejudge(
    State(state): State<Arc<AppState>>,
    body: Result<Json<RejudgeBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = match admit(body) {
        Ok(b) => b,
        Err(refusal) => return Ok(*refusal),
    };
    let live = state.services.scripts.current();
    let candidate = match &body.moderation {
        Some(text) => {
            let rules = crate::scripts::moderation::parse_file(
                text,
                std::path::Path::new("moderation.toml"),
            )
            .map_err(|e| {
                ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            })?;
            // The candidate weighs the learned layer the service uses (with the labels).
            rules.learned.set(live.moderation.learned.current());
            Some(rules)
        }
        None => None,
    };
    let store = state.store.clone();
    Ok(blocking_json(move || {
        let rules = candidate.as_ref().unwrap_or(&live.moderation);
        crate::runtime::moderation::rejudge::report(&store, rules, Utc::now())
    })
    .await)
}
