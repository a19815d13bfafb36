//! WeCom customer groups (客户群) through a self-built app (`channel = "wecom-app"`): the app's
//! customer-contact callbacks at `/wecom/app/{bot_id}` (URL verification and encrypted XML
//! events, receive id = the corp id) and the groups kept in step with WeCom ([`sync`]: every
//! group the app can see adopted, with its name, owner, admins and members), and the groups'
//! welcomes kept in WeCom as templates ([`templates`]).
//!
//! A join or leave in a callback is handled as the member's event (committed before WeCom is
//! answered: welcomes' bookkeeping, activity, churn, raid detection), then the group is read
//! again for names and the member list; other changes (owner, name, creation) are read in the
//! background; a dismissal releases the group. The app cannot see messages or remove members:
//! the engine's degraded paths apply ([`crate::wire::wecom::app::CAPABILITIES`]). Broadcasts
//! reach these groups as mass-send tasks the owners confirm.

pub mod sync;
pub mod templates;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use tracing::{error, info, warn};

use super::untrusted::Untrusted;
use crate::domain::{BotId, ChatId, Conversation, Event, EventKind, JoinScene, Sender};
use crate::runtime::Services;
use crate::runtime::inbound;
use crate::runtime::pipeline::NotRecorded;
use crate::wire::wecom::app::{
    AppClient, AppEvent, AppSettings, CAPABILITIES, ChatChange, ChatChangeKind, parse_app_event,
    until_stopped,
};
use crate::wire::wecom::robot::{CallbackError, RobotEndpoint, parse_query};

/// One `wecom-app` bot: its callback endpoint, its API client and settings.
pub struct CustomerGroups {
    pub bot: BotId,
    pub endpoint: RobotEndpoint,
    pub client: Arc<AppClient>,
    pub settings: AppSettings,
    pub services: Arc<Services>,
    /// The service stopping: background reads give up.
    pub stop: tokio_util::sync::CancellationToken,
}

/// The apps' state for the routes.
pub struct AppChannel {
    pub apps: HashMap<String, Arc<CustomerGroups>>,
}

/// The routes, with their state.
pub fn router(state: Arc<AppChannel>) -> Router {
    Router::new()
        .route("/wecom/app/{bot_id}", get(verify_url).post(callback))
        .with_state(state)
}

fn app<'a>(state: &'a AppChannel, bot_id: &str) -> Option<&'a Arc<CustomerGroups>> {
    let found = state.apps.get(bot_id);
    if found.is_none() {
        warn!(bot = %Untrusted(bot_id), "app callback for an unknown bot");
    }
    found
}

/// `GET /wecom/app/{bot_id}`: the bare plaintext of `echostr`.
async fn verify_url(
    State(state): State<Arc<AppChannel>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(app) = app(&state, &bot_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let verified = parse_query(query.as_deref(), true)
        .and_then(|q| app.endpoint.verify_url(&q, Utc::now().timestamp()));
    super::verification_answer(&bot_id, verified)
}

/// `POST /wecom/app/{bot_id}`: verify, decrypt, read the event, keep what it says, answer 200
/// with an empty body (the app's events take no reply).
async fn callback(
    State(state): State<Arc<AppChannel>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(app) = app(&state, &bot_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (query, body) = match super::callback_input(&bot_id, query.as_deref(), body) {
        Ok(input) => input,
        Err(refused) => return *refused,
    };
    let plaintext = match app.endpoint.open_plaintext(&query, &body, Utc::now()) {
        Ok(plaintext) => plaintext,
        Err(e) => return super::refuse_callback(&bot_id, &e),
    };
    let change = match parse_app_event(&plaintext) {
        Ok(AppEvent::ChatChange(change)) => change,
        Ok(AppEvent::Other { msg_type, event }) => {
            info!(bot = %bot_id, msg_type = %Untrusted(&msg_type), event = %Untrusted(&event),
                "app event not handled; acknowledged");
            return StatusCode::OK.into_response();
        }
        Err(e) => {
            return super::refuse_callback(&bot_id, &CallbackError::Event(e.to_string()));
        }
    };
    match app.take_change(change).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            error!(bot = %bot_id, error = %e, "app event not accepted");
            super::not_accepted(&e)
        }
    }
}

/// A join scene as the callback (0 invited, 3 QR code) or `groupchat/get` (1 invited, 2 link,
/// 3 QR code) says it.
pub fn join_scene(code: u8) -> JoinScene {
    match code {
        0 | 1 => JoinScene::Invited,
        2 => JoinScene::Link,
        3 => JoinScene::Qrcode,
        _ => JoinScene::Unknown,
    }
}

/// The reason a customer group is released when WeCom dismisses it.
pub const DISMISSED_REASON: &str = "dismissed in WeCom";

impl CustomerGroups {
    /// `call` to WeCom, given up when the service stops ([`until_stopped`]).
    pub async fn api<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, crate::wire::wecom::app::ApiError>>,
    ) -> Result<T, crate::wire::wecom::app::ApiError> {
        until_stopped(&self.stop, call).await
    }

    /// Keeps what `change` says: a member's join or leave is handled (and committed) as that
    /// member's event before this returns; the group is then read again in the background.
    pub async fn take_change(
        self: &Arc<Self>,
        change: ChatChange,
    ) -> Result<(), inbound::NotAccepted> {
        if change.chat_id.len() > crate::domain::MAX_ID_BYTES {
            warn!(bot = %self.bot, "app event for a chat id longer than WeCom sends; ignored");
            return Ok(());
        }
        let chat = ChatId::new(&change.chat_id);
        let kind = match &change.kind {
            ChatChangeKind::AddMember { scene } => Some(EventKind::MemberJoined {
                scene: join_scene(*scene),
                operator: String::new(),
            }),
            ChatChangeKind::DelMember { quit_scene } => Some(EventKind::MemberLeft {
                kicked: *quit_scene == 1,
                operator: String::new(),
            }),
            // Committed before WeCom is answered: a failure is refused, and WeCom retries.
            ChatChangeKind::Dismiss => {
                return sync::release(&self.services, &self.bot, &chat, DISMISSED_REASON)
                    .await
                    .map_err(|_| inbound::NotAccepted::NotRecorded(NotRecorded));
            }
            _ => None,
        };
        // Members said to have joined without being named: found by reading the group again.
        let unlisted_joins = match (&change.kind, change.members.is_empty()) {
            (ChatChangeKind::AddMember { scene }, true) => Some(join_scene(*scene)),
            _ => None,
        };
        if let Some(kind) = kind {
            info!(bot = %self.bot, chat = %chat, members = change.members.len(),
                change = ?change.kind, "customer group members changed");
            let now = Utc::now();
            for member in change
                .members
                .iter()
                .filter(|m| m.len() <= crate::domain::MAX_ID_BYTES)
            {
                let event = Event {
                    bot: self.bot.clone(),
                    msg_id: format!("{}:{member}", change.dedupe_id()),
                    conversation: Conversation::Group(chat.clone()),
                    from: Sender {
                        user_id: member.clone(),
                        ..Sender::default()
                    },
                    webhook_url: None,
                    account: None,
                    message_id: None,
                    kind: kind.clone(),
                    mentioned: false,
                    received_at: now,
                };
                inbound::handle(&self.services, event, CAPABILITIES).await?;
            }
        } else {
            info!(bot = %self.bot, chat = %chat, change = ?change.kind, "customer group changed");
        }
        // Names, owner, members: read again off the request (WeCom waits 5 s at most).
        let app = Arc::clone(self);
        self.services.tasks.spawn(async move {
            sync::refresh_group(&app, &chat, unlisted_joins).await;
        });
        Ok(())
    }
}
