//! The feeds of the admin API: `GET /api/v1/feeds` shows every declared feed's health (its last
//! good copy, the last error, when it is fetched next); `POST /api/v1/feeds/refresh` fetches
//! them all now, e.g. after editing `content/feeds.toml`, and answers with the same list.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::admin::{authorized, unauthorized};

/// `GET /api/v1/feeds`.
pub async fn list_feeds(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let scripts = state.scripts.current();
    Json(state.scheduler.feeds.statuses(&scripts.content.feeds)).into_response()
}

/// `POST /api/v1/feeds/refresh`: every declared feed fetched now (each within its timeout).
pub async fn refresh_feeds(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let scripts = state.scripts.current();
    let feeds = &state.scheduler.feeds;
    feeds.refresh_all(&scripts.content.feeds).await;
    Json(feeds.statuses(&scripts.content.feeds)).into_response()
}
