//! The HTTP surface: the WeCom robot callbacks, the admin API and the health check, on one axum
//! router. Handlers never leak internals: clients get a status and an opaque body, the log gets
//! the cause.

mod admin;
mod envelope_admin;
mod feed_admin;
mod group_admin;
mod health_admin;
mod moderation_admin;
pub mod onebot;
mod onebot_session;
mod robot;
pub mod serve;
pub mod untrusted;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::channels::onebot::OneBotConfig;
use crate::channels::onebot::hub::Hub;
use crate::channels::wecom::robot::RobotEndpoint;
use crate::domain::Secret;
use crate::runtime::Services;

/// Largest callback body accepted; WeCom's are a few kilobytes.
pub const MAX_CALLBACK_BODY: usize = 64 * 1024;
/// Largest admin API body accepted (a profile, a list of joiners, tags).
pub const MAX_ADMIN_BODY: usize = 256 * 1024;

/// Whether `error`, or what caused it, is a request body that did not arrive in time.
fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The answer to a request whose body could not be read: 408 when it did not arrive in time,
/// 413 when it was too large (`status` says so), else 400 with `reason`.
pub(crate) fn body_refusal(
    status: axum::http::StatusCode,
    error: &(dyn std::error::Error + 'static),
    reason: String,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let (status, reason) = if is_body_timeout(error) {
        (
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time".to_owned(),
        )
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, reason)
    };
    (status, axum::Json(serde_json::json!({ "error": reason }))).into_response()
}

/// The answer to an event that was not accepted (nothing of it kept): 503, with `Retry-After`
/// when the service was only too busy to keep it in time.
pub(crate) fn not_accepted(e: &crate::runtime::inbound::NotAccepted) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match e {
        crate::runtime::inbound::NotAccepted::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
        )
            .into_response(),
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235: `bearer`, `BEARER`), the token is what follows it, trimmed.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// What the handlers share: the runtime's services, and the transports' own state.
pub struct AppState {
    pub services: Arc<Services>,
    pub robots: HashMap<String, Arc<RobotEndpoint>>,
    /// Bots served on the OneBot channel, by id.
    pub onebot: HashMap<String, onebot::OneBotBot>,
    pub onebot_config: OneBotConfig,
    /// The connected bot accounts.
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
    let callbacks = Router::new()
        .route(
            "/wecom/robot/{bot_id}",
            get(robot::verify_url).post(robot::callback),
        )
        .route(
            "/onebot/v12/{bot_id}",
            get(onebot::connect).post(onebot::webhook),
        )
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
        .merge(callbacks)
        .merge(admin)
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .with_state(state)
}
