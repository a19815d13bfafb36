//! `POST /api/v1/simulate`: what the bot would do with a message, in words, from the running
//! service's own view of the group (see [`crate::runtime::simulate`]). Nothing is changed or sent.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;

use super::{ApiError, AppState, admit, blocking};
use crate::runtime::simulate::{Simulation, Sources, simulate};

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/simulate", post(simulate_message))
}

/// `POST /api/v1/simulate` with `{"group", "from", "text", "mention"}` (`mention` defaults to
/// true): `{"lines": [...]}`, the same text `trumpet simulate` prints.
pub async fn simulate_message(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Simulation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = match admit(body) {
        Ok(request) => request,
        Err(refusal) => return Ok(*refusal),
    };
    if request.group.trim().is_empty() || request.from.trim().is_empty() {
        return Err(ApiError::bad_request("group and from must not be empty"));
    }
    let state = Arc::clone(&state);
    let lines = blocking(move || {
        let now = Utc::now();
        let chat = crate::domain::ChatId::new(request.group.as_str());
        let cooling = |rule: &str| state.cooldowns.is_cooling(chat.as_str(), rule, now);
        let scripts = state.scripts.current();
        let sources = Sources {
            store: Some(&state.store),
            settings: Some((*state.directory.get(&chat)).clone()),
            scripts: &scripts,
            accounts: Some(&*state.accounts),
            cooling: &cooling,
            default_bot: state.default_bot.clone(),
        };
        simulate(&sources, &request, now)
    })
    .await?;
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}
