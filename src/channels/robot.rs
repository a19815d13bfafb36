//! The WeCom group robot's callbacks at `/wecom/robot/{bot_id}`: URL verification (GET) and
//! message callbacks (POST). What happens to an event is [`crate::runtime::inbound`]'s;
//! everything slow happens after the answer, in the pipeline.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tracing::{error, info, warn};

use super::untrusted::Untrusted;
use crate::domain::{EventKind, Reply};
use crate::runtime::Services;
use crate::runtime::inbound::{self, Handled};
use crate::wire::wecom::robot::{Opened, RobotEndpoint, parse_query};

/// The robot channel's state: the runtime's services and each robot bot's endpoint.
pub struct RobotChannel {
    pub services: Arc<Services>,
    /// Configured robot bots by id.
    pub endpoints: HashMap<String, Arc<RobotEndpoint>>,
    /// Learns the names of groups that have none from the callbacks' chat-info links.
    pub names: Arc<super::group_names::GroupNames>,
}

/// The robot's routes, with their state.
pub fn router(state: Arc<RobotChannel>) -> Router {
    Router::new()
        .route("/wecom/robot/{bot_id}", get(verify_url).post(callback))
        .with_state(state)
}

fn endpoint<'a>(state: &'a RobotChannel, bot_id: &str) -> Option<&'a Arc<RobotEndpoint>> {
    let found = state.endpoints.get(bot_id);
    if found.is_none() {
        // The path is anyone's to write: escaped and cut in the log.
        warn!(bot = %Untrusted(bot_id), "callback for an unknown bot");
    }
    found
}

/// `GET /wecom/robot/{bot_id}`: answers WeCom's URL verification with the bare plaintext.
pub async fn verify_url(
    State(state): State<Arc<RobotChannel>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(endpoint) = endpoint(&state, &bot_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let verified = parse_query(query.as_deref(), true)
        .and_then(|q| endpoint.verify_url(&q, Utc::now().timestamp()));
    super::verification_answer(&bot_id, verified)
}

/// `POST /wecom/robot/{bot_id}`: verify, decrypt, parse, de-duplicate, queue, answer.
pub async fn callback(
    State(state): State<Arc<RobotChannel>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(endpoint) = endpoint(&state, &bot_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (query, body) = match super::callback_input(&bot_id, query.as_deref(), body) {
        Ok(input) => input,
        Err(refused) => return *refused,
    };
    let Opened {
        event,
        chat_info_url,
    } = match endpoint.open(&query, &body, Utc::now()) {
        Ok(opened) => opened,
        Err(e) => return super::refuse_callback(&bot_id, &e),
    };
    if let Some(field) = event.oversized_id() {
        warn!(bot = %bot_id, field, "callback refused: an id longer than a channel sends");
        return (StatusCode::BAD_REQUEST, format!("{field} too long")).into_response();
    }
    if let EventKind::Unknown { msg_type } = &event.kind {
        info!(bot = %bot_id, msg_id = %event.msg_id, msg_type = %msg_type,
            "message kind not handled; acknowledged");
        return StatusCode::OK.into_response();
    }
    if let (Some(url), Some(chat)) = (chat_info_url, event.chat_id()) {
        state.names.learn(&state.services, chat, url);
    }
    match inbound::handle(
        &state.services,
        event,
        crate::wire::wecom::robot::CAPABILITIES,
    )
    .await
    {
        Ok(Handled::Duplicate(reply) | Handled::New(reply) | Handled::NotSaved(reply)) => {
            respond(endpoint, &query, reply.as_ref(), &bot_id)
        }
        Err(e) => {
            // Not recorded: WeCom's retry is handled as new.
            error!(bot = %bot_id, error = %e, "callback not accepted");
            super::not_accepted(&e)
        }
    }
}

fn respond(
    endpoint: &RobotEndpoint,
    query: &crate::wire::wecom::robot::CallbackQuery,
    reply: Option<&Reply>,
    bot_id: &str,
) -> Response {
    let Some(reply) = reply else {
        return StatusCode::OK.into_response();
    };
    match endpoint.seal(reply, query, rand::random()) {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            // Nothing the member sent causes this; an empty answer is better than a retry storm.
            error!(bot = %bot_id, error = %e, "could not seal the passive reply");
            StatusCode::OK.into_response()
        }
    }
}
