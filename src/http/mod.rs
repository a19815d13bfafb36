//! The HTTP surface: the channels' routes (their own handlers and state, [`crate::channels`]),
//! the admin API and the health check, on one axum router. Handlers never leak internals:
//! clients get a status and an opaque body, the log gets the cause.

mod admin;
mod envelope_admin;
mod feed_admin;
mod group_admin;
mod health_admin;
mod moderation_admin;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
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
    /// The connected bot accounts (the admin API lists them).
    pub hub: Arc<Hub>,
    pub admin_token: Option<Secret>,
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
        .layer(DefaultBodyLimit::max(MAX_CALLBACK_BODY));
    let admin = Router::new()
        .route(
            "/api/v1/groups",
            get(admin::list_groups).post(group_admin::adopt_by_webhook),
        )
        .route(
            "/api/v1/groups/{chat_id}",
            get(admin::get_group)
                .patch(group_admin::patch_profile)
                .delete(group_admin::release),
        )
        .route("/api/v1/groups/{chat_id}/tags", put(admin::put_tags))
        .route("/api/v1/groups/{chat_id}/sends", get(admin::list_sends))
        .route("/api/v1/groups/{chat_id}/members", get(admin::list_members))
        .route(
            "/api/v1/groups/{chat_id}/removals",
            post(group_admin::remove_member),
        )
        .route("/api/v1/groups/{chat_id}/joins", post(admin::post_joins))
        .route(
            "/api/v1/groups/{chat_id}/roles/{user_id}",
            put(admin::put_role),
        )
        .route(
            "/api/v1/groups/{chat_id}/rules/{rule_id}",
            put(admin::put_rule_switch),
        )
        .route(
            "/api/v1/groups/{chat_id}/approved/{user_id}",
            put(moderation_admin::put_approved),
        )
        .route(
            "/api/v1/groups/{chat_id}/red-envelope-tests",
            get(envelope_admin::list_of_group).post(envelope_admin::start),
        )
        .route(
            "/api/v1/red-envelope-schedules",
            get(envelope_admin::list_schedules),
        )
        .route(
            "/api/v1/red-envelope-tests/{id}",
            get(envelope_admin::get_test),
        )
        .route(
            "/api/v1/red-envelope-tests/{id}/claims.csv",
            get(envelope_admin::claims_csv),
        )
        .route(
            "/api/v1/red-envelope-tests/{id}/cancel",
            post(envelope_admin::cancel),
        )
        .route("/api/v1/health", get(health_admin::ranking))
        .route(
            "/api/v1/groups/{chat_id}/health",
            get(health_admin::of_group),
        )
        .route("/api/v1/moderation", get(moderation_admin::list_log))
        .route(
            "/api/v1/moderation/blacklist",
            get(moderation_admin::list_blacklist),
        )
        .route(
            "/api/v1/moderation/blacklist/{user_id}",
            delete(moderation_admin::pardon),
        )
        .route("/api/v1/rules", get(admin::list_rules))
        .route("/api/v1/accounts", get(admin::list_accounts))
        .route("/api/v1/jobs", get(admin::list_jobs))
        .route("/api/v1/jobs/{name}/run", post(admin::run_job))
        .route("/api/v1/runs/{run_id}", get(admin::get_run))
        .route("/api/v1/scripts/status", get(admin::scripts_status))
        .route("/api/v1/feeds", get(feed_admin::list_feeds))
        .route("/api/v1/feeds/refresh", post(feed_admin::refresh_feeds))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY));
    Router::new()
        .route("/healthz", get(admin::healthz))
        .merge(admin)
        .with_state(state)
        .merge(callbacks)
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
}
