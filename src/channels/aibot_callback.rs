//! The WeCom AI bot's URL-callback mode at `/wecom/aibot/{bot_id}`: URL verification (GET) and
//! encrypted JSON callbacks (POST) for corps that give the bot a public URL instead of the long
//! connection. Each callback is decided and committed through [`crate::runtime::inbound`] and
//! answered in the response with a finished stream (a text for `enter_chat`); a stream refresh
//! is answered with the stream finished. In this mode the bot cannot post unprompted: what the
//! engine would post is degraded, and broadcasts record the group's send as failed with the
//! reason. The wire format is [`crate::wire::wecom::aibot::callback`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use tracing::{error, info, warn};

use super::untrusted::Untrusted;
use crate::domain::EventKind;
use crate::runtime::Services;
use crate::runtime::inbound::{self, Handled};
use crate::wire::wecom::aibot::CALLBACK_CAPABILITIES;
use crate::wire::wecom::aibot::callback::{AiBotEndpoint, OpenedCallback};
use crate::wire::wecom::robot::parse_query;

/// The URL-mode AI bots' state.
pub struct AiBotCallbackChannel {
    pub services: Arc<Services>,
    pub endpoints: HashMap<String, Arc<AiBotEndpoint>>,
}

/// The routes, with their state.
pub fn router(state: Arc<AiBotCallbackChannel>) -> Router {
    Router::new()
        .route("/wecom/aibot/{bot_id}", get(verify_url).post(callback))
        .with_state(state)
}

fn endpoint<'a>(state: &'a AiBotCallbackChannel, bot_id: &str) -> Option<&'a Arc<AiBotEndpoint>> {
    let found = state.endpoints.get(bot_id);
    if found.is_none() {
        warn!(bot = %Untrusted(bot_id), "AI bot callback for an unknown bot");
    }
    found
}

/// `GET /wecom/aibot/{bot_id}`: the bare plaintext of `echostr`.
async fn verify_url(
    State(state): State<Arc<AiBotCallbackChannel>>,
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

/// `POST /wecom/aibot/{bot_id}`: verify, decrypt, decide and commit, answer.
async fn callback(
    State(state): State<Arc<AiBotCallbackChannel>>,
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
    let event = match endpoint.open(&query, &body, Utc::now()) {
        Ok(OpenedCallback::Event(event)) => *event,
        Ok(OpenedCallback::StreamRefresh { stream_id }) => {
            return sealed(
                endpoint.seal_finished(&stream_id, &query, rand::random()),
                &bot_id,
            );
        }
        Err(e) => return super::refuse_callback(&bot_id, &e),
    };
    if let Some(field) = event.oversized_id() {
        warn!(bot = %bot_id, field, "AI bot callback refused: an id longer than a channel sends");
        return (StatusCode::BAD_REQUEST, format!("{field} too long")).into_response();
    }
    if let EventKind::Unknown { msg_type } = &event.kind {
        info!(bot = %bot_id, msg_id = %event.msg_id, msg_type = %msg_type, "AI bot message kind not handled; acknowledged");
        return StatusCode::OK.into_response();
    }
    let welcome = event.kind == EventKind::EnterChat;
    let stream_id = event.msg_id.clone();
    match inbound::handle(&state.services, event, CALLBACK_CAPABILITIES).await {
        Ok(Handled::Duplicate(reply) | Handled::New(reply) | Handled::NotSaved(reply)) => {
            match reply {
                Some(reply) => sealed(
                    endpoint.seal(&reply, welcome, &stream_id, &query, rand::random()),
                    &bot_id,
                ),
                None => StatusCode::OK.into_response(),
            }
        }
        Err(e) => {
            error!(bot = %bot_id, error = %e, "AI bot callback not accepted");
            super::not_accepted(&e)
        }
    }
}

fn sealed(body: Result<String, crate::wire::wecom::crypto::CryptoError>, bot_id: &str) -> Response {
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            // Nothing the member sent causes this; an empty answer is better than a retry storm.
            error!(bot = %bot_id, error = %e, "could not seal the AI bot's answer");
            StatusCode::OK.into_response()
        }
    }
}
