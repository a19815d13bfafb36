//! The feeds of the admin API: `GET /api/v1/feeds` shows every declared feed's health (its last
//! good copy, the last error, when it is fetched next); `POST /api/v1/feeds/refresh` fetches
//! them all now, e.g. after editing `content/feeds.toml`, and answers with the same list.

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/feeds", get(list_feeds))
        .route("/api/v1/feeds/refresh", post(refresh_feeds))
}

/// `GET /api/v1/feeds`.
pub async fn list_feeds(State(state): State<Arc<AppState>>) -> Response {
    let scripts = state.scripts.current();
    Json(state.scheduler.feeds.statuses(&scripts.content.feeds)).into_response()
}

/// `POST /api/v1/feeds/refresh`: every declared feed fetched now (each within its timeout).
pub async fn refresh_feeds(State(state): State<Arc<AppState>>) -> Response {
    let scripts = state.scripts.current();
    let feeds = &state.scheduler.feeds;
    feeds.refresh_all(&scripts.content.feeds).await;
    Json(feeds.statuses(&scripts.content.feeds)).into_response()
}
