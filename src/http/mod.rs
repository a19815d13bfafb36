//! The HTTP surface: the channels' routes (their own handlers and state, [`crate::channels`]),
//! the admin API and the health check, on one axum router. Handlers never leak internals:
//! clients get a status and an opaque body, the log gets the cause.

mod api;
pub mod console;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::channels::MAX_CALLBACK_BODY;
use crate::channels::onebot::OneBotChannel;
use crate::channels::robot::RobotChannel;
use crate::domain::Secret;
use crate::runtime::Services;
use crate::wire::onebot::hub::Hub;

/// Largest admin API body accepted (a profile, a list of joiners, tags).
pub const MAX_ADMIN_BODY: usize = 256 * 1024;

/// What the handlers share: the runtime's services, the channels (each with its own state) and
/// the admin token.
pub struct AppState {
    pub services: Arc<Services>,
    pub robot: Arc<RobotChannel>,
    pub onebot: Arc<OneBotChannel>,
    /// The AI bots in URL-callback mode.
    pub aibot_callback: Arc<crate::channels::aibot_callback::AiBotCallbackChannel>,
    /// The self-built apps' customer-group events.
    pub app: Arc<crate::channels::app::AppChannel>,
    /// The connected bot accounts (the admin API lists them).
    pub hub: Arc<Hub>,
    pub admin_token: Option<Secret>,
    /// The first configured bot: a simulation of a group the store does not know runs as it.
    pub default_bot: crate::domain::BotId,
    /// Operators signed in to the console.
    pub sessions: Arc<crate::runtime::sessions::Sessions>,
    /// Session cookies are marked `Secure` (the service is reached over TLS: `server.public_url`
    /// is https).
    pub secure_cookies: bool,
}

/// Handlers reach the services as if they were the state's own fields (`state.store`).
impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

/// Builds the router; a request body must arrive within `body_timeout` (408 otherwise).
pub fn router(state: Arc<AppState>, body_timeout: Duration) -> Router {
    let callbacks = crate::channels::robot::router(Arc::clone(&state.robot))
        .merge(crate::channels::onebot::router(Arc::clone(&state.onebot)))
        .merge(crate::channels::aibot_callback::router(Arc::clone(
            &state.aibot_callback,
        )))
        .merge(crate::channels::app::router(Arc::clone(&state.app)))
        .layer(DefaultBodyLimit::max(MAX_CALLBACK_BODY));
    // Route layers run outermost last: authentication first, then the audit of changes.
    let admin = api::routes()
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            api::audit_changes,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            api::require_admin,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY));
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(console::routes())
        .merge(api::session::routes().layer(DefaultBodyLimit::max(MAX_ADMIN_BODY)))
        .merge(admin)
        .with_state(state)
        .merge(callbacks)
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
}
