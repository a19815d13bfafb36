//! The bot-account channel at `/onebot/v12/{bot_id}`: OneBot 12 implementations (an automation
//! program driving a WeChat account) connect over a reverse WebSocket (GET, upgraded after the
//! token is checked) or post events to the HTTP webhook (POST: one event in, 204 or a JSON list
//! of actions out). The socket's life is in [`session`], the account's groups and members are
//! kept true by [`roster`], and the hub serves the runtime as its bot accounts ([`accounts`]).
//! The wire protocol and the hub are [`crate::wire::onebot`].

pub mod accounts;
pub mod roster;
pub mod session;

use std::collections::HashMap;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use super::untrusted::Untrusted;
use crate::domain::Secret;
use crate::domain::{BotId, Reply};
use crate::runtime::Services;
use crate::runtime::inbound::{self, Handled};
use crate::wire::onebot::OneBotConfig;
use crate::wire::onebot::convert::{Converted, reply_segments, to_domain};
use crate::wire::onebot::hub::Hub;
use crate::wire::onebot::protocol::{Incoming, Segment, parse_frame};

/// The OneBot channel's state.
pub struct OneBotChannel {
    pub services: Arc<Services>,
    /// Bots served on this channel, by id.
    pub bots: HashMap<String, OneBotBot>,
    pub config: OneBotConfig,
    /// The connected accounts.
    pub hub: Arc<Hub>,
}

/// The channel's routes, with their state.
pub fn router(state: Arc<OneBotChannel>) -> Router {
    Router::new()
        .route("/onebot/v12/{bot_id}", get(connect).post(webhook))
        .with_state(state)
}

/// A bot served on this channel.
#[derive(Debug, Clone)]
pub struct OneBotBot {
    pub id: BotId,
    pub access_token: Secret,
    /// Its open WebSocket connections (capped by `onebot.max_connections_per_bot`).
    pub connections: Arc<AtomicUsize>,
}

/// Holds one of a bot's connection places until dropped (the socket closed, or the upgrade
/// never happened).
struct ConnectionPlace(Arc<AtomicUsize>);

impl Drop for ConnectionPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-connection buffers: frames from an implementation are small (an event, an action's
/// answer), so a few kilobytes do; a rare large frame grows them up to `MAX_FRAME`.
const SOCKET_BUFFER: usize = 8 * 1024;

/// The token the request presents: `Authorization: Bearer …`, else `?access_token=…`.
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
    {
        let token = crate::channels::bearer_token(value).unwrap_or(value.trim());
        return Some(token.to_owned());
    }
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// The answer to a request that may not go on: 404 for an unknown bot, 401 for a bad token.
fn refusal(status: StatusCode) -> Response {
    if status == StatusCode::UNAUTHORIZED {
        (status, [(header::WWW_AUTHENTICATE, "Bearer")]).into_response()
    } else {
        status.into_response()
    }
}

/// The bot if the request presents its token; otherwise the status to refuse with.
fn authorise<'a>(
    state: &'a OneBotChannel,
    bot_id: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<&'a OneBotBot, StatusCode> {
    let Some(bot) = state.bots.get(bot_id) else {
        // The path is anyone's to write: escaped and cut in the log.
        warn!(bot = %Untrusted(bot_id), "OneBot connection for an unknown bot");
        return Err(StatusCode::NOT_FOUND);
    };
    let presented = presented_token(headers, query);
    let good = presented
        .as_deref()
        .is_some_and(|t| bool::from(t.as_bytes().ct_eq(bot.access_token.expose().as_bytes())));
    if !good {
        warn!(bot = %bot_id, token = if presented.is_some() { "wrong" } else { "missing" },
            "OneBot request refused: bad access token");
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(bot)
}

/// `GET /onebot/v12/{bot_id}`: the implementation's reverse WebSocket.
pub async fn connect(
    State(state): State<Arc<OneBotChannel>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (bot, places) = match authorise(&state, &bot_id, &headers, query.as_deref()) {
        Ok(bot) => (bot.id.clone(), Arc::clone(&bot.connections)),
        Err(status) => return refusal(status),
    };
    let cap = state.config.max_connections_per_bot;
    let place = ConnectionPlace(Arc::clone(&places));
    if places.fetch_add(1, Ordering::AcqRel) >= cap {
        drop(place);
        warn!(bot = %bot, cap, "OneBot connection refused: the bot has its most connections open");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "30")],
            format!("this bot already has {cap} connections open (onebot.max_connections_per_bot)"),
        )
            .into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            warn!(bot = %bot_id, error = %rejection, "not a WebSocket upgrade");
            return rejection.into_response();
        }
    };
    // Echo the OneBot 12 sub-protocol the implementation offers (`12.<impl>`).
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| p.starts_with("12."))
        .collect();
    let implementation = offered
        .first()
        .map(|p| p.trim_start_matches("12.").to_owned())
        .unwrap_or_default();
    info!(bot = %bot, implementation = %implementation, "OneBot implementation connecting");
    upgrade
        .protocols(offered)
        .max_message_size(session::MAX_FRAME)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_write_buffer_size(session::MAX_FRAME * 2)
        .on_upgrade(move |socket| async move {
            let _place = place;
            session::run(state, bot, socket).await
        })
}

/// `POST /onebot/v12/{bot_id}`: one event over the HTTP webhook. The answer is the reply as a
/// `send_message` action (the implementation performs it), or 204.
pub async fn webhook(
    State(state): State<Arc<OneBotChannel>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bot = match authorise(&state, &bot_id, &headers, query.as_deref()) {
        Ok(bot) => bot.id.clone(),
        Err(status) => return refusal(status),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            warn!(bot = %bot_id, error = %e, "OneBot webhook body not read");
            return crate::channels::body_refusal(e.status(), &e, e.body_text());
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad_request(&bot_id, "the body is not UTF-8".into());
    };
    let event = match parse_frame(text) {
        Ok(Incoming::Event(event)) => event,
        Ok(Incoming::Response(_)) => {
            return bad_request(&bot_id, "an action response is not an event".into());
        }
        Err(e) => return bad_request(&bot_id, e.to_string()),
    };
    let domain = match to_domain(&bot, &event, Utc::now()) {
        Converted::Domain(event) => event,
        Converted::NotDomain(_) => return StatusCode::NO_CONTENT.into_response(),
    };
    if let Some(field) = domain.oversized_id() {
        return bad_request(&bot_id, format!("{field} too long"));
    }
    let group = domain.chat_id().map(|c| c.as_str().to_owned());
    // Over the webhook nothing tells which actions the implementation offers: no removals.
    match inbound::handle(
        &state.services,
        *domain,
        crate::wire::onebot::capabilities(false, false),
    )
    .await
    {
        // A repeated event id gets the reply its first delivery got (the implementation may
        // have lost that answer: that is why it sends again).
        Ok(
            Handled::New(Some(reply))
            | Handled::NotSaved(Some(reply))
            | Handled::Duplicate(Some(reply)),
        ) => {
            let Some(group) = group else {
                return StatusCode::NO_CONTENT.into_response();
            };
            let action = json!({
                "action": "send_message",
                "params": reply_params(&group, &reply),
            });
            Json(vec![action]).into_response()
        }
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            warn!(bot = %bot_id, error = %e, "OneBot webhook event not accepted");
            crate::channels::not_accepted(&e)
        }
    }
}

fn bad_request(bot_id: &str, reason: String) -> Response {
    warn!(bot = %bot_id, reason = %Untrusted(&reason), "OneBot webhook request refused");
    (StatusCode::BAD_REQUEST, reason).into_response()
}

/// `send_message` parameters for `reply` in `group_id`.
pub fn reply_params(group_id: &str, reply: &Reply) -> serde_json::Value {
    let message: Vec<serde_json::Value> =
        reply_segments(reply).iter().map(Segment::to_json).collect();
    json!({"detail_type": "group", "group_id": group_id, "message": message})
}
