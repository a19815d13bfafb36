//! Group health through the admin API: the ranking (`GET /api/v1/health`) and one group
//! (`GET /api/v1/groups/{chat_id}/health`).

use axum::Router;
use axum::routing::get;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;

use super::AppState;
use super::group_changes::load_group;
use super::{bad_request, blocking_json};
use crate::domain::ChatId;
use crate::engine::health::Stage;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/health", get(ranking))
        .route("/api/v1/groups/{chat_id}/health", get(of_group))
        .route("/api/v1/groups/{chat_id}/activity", get(activity))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankingQuery {
    /// Only groups at this stage: `new`, `steady`, `declining`, `dead`.
    stage: Option<String>,
    limit: Option<usize>,
}

pub(super) fn stage_named(name: &str) -> Option<Stage> {
    match name {
        "new" => Some(Stage::New),
        "steady" => Some(Stage::Steady),
        "declining" => Some(Stage::Declining),
        "dead" => Some(Stage::Dead),
        _ => None,
    }
}

/// `GET /api/v1/health?stage=&limit=`: every adopted group's health, lowest score first (the
/// groups that need attention), optionally of one stage; at most `limit` (default all).
pub async fn ranking(
    State(state): State<Arc<AppState>>,
    query: Result<Query<RankingQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let stage = match query.stage.as_deref().map(|s| (s, stage_named(s))) {
        None => None,
        Some((_, Some(stage))) => Some(stage),
        Some((name, None)) => {
            return bad_request(format!(
                "stage {name:?} must be new, steady, declining or dead"
            ));
        }
    };
    let store = state.store.clone();
    let directory = Arc::clone(&state.directory);
    let speakers = Arc::clone(&state.speakers);
    let limit = query.limit.unwrap_or(usize::MAX);
    blocking_json(move || {
        let ranked = crate::runtime::health::ranking(&store, &directory, &speakers, Utc::now())?;
        Ok(ranked
            .into_iter()
            .filter(|g| stage.is_none_or(|s| g.stage == s))
            .take(limit)
            .collect::<Vec<_>>())
    })
    .await
}

/// `GET /api/v1/groups/{chat_id}/health`: one group's health (404 for an unknown group).
pub async fn of_group(State(state): State<Arc<AppState>>, Path(chat_id): Path<String>) -> Response {
    let chat = ChatId::new(chat_id);
    let group = match load_group(&state, &chat).await {
        Ok(group) => group,
        Err(refusal) => return *refusal,
    };
    let store = state.store.clone();
    let name = state.directory.get(&chat).name.clone();
    let pending = state
        .speakers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .of_chat(chat.as_str());
    blocking_json(move || {
        crate::runtime::health::group_health(&store, &group, &name, &pending, Utc::now())
    })
    .await
}

/// The most days an activity series covers.
const MAX_ACTIVITY_DAYS: u32 = 90;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    days: Option<u32>,
}

/// `GET /api/v1/groups/{chat_id}/activity?days=30`: the group's local days, oldest first, each
/// with its messages, the members who spoke, joins and leaves (`days` 1–90, default 30; speakers
/// counted in the last minute are written a little later).
pub async fn activity(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    query: Result<Query<ActivityQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return bad_request(e.body_text()),
    };
    let days = query.days.unwrap_or(30);
    if !(1..=MAX_ACTIVITY_DAYS).contains(&days) {
        return bad_request(format!("days {days} must be 1 to {MAX_ACTIVITY_DAYS}"));
    }
    let chat = ChatId::new(chat_id);
    if let Err(refusal) = load_group(&state, &chat).await {
        return *refusal;
    }
    let store = state.store.clone();
    blocking_json(move || {
        Ok(serde_json::json!({ "days": store.daily_series(&chat, Utc::now(), days)? }))
    })
    .await
}
