//! The admin API (`/api/v1`, bearer token) and the unauthenticated health check: one router per
//! resource, each in its own module, behind one authentication layer ([`require_admin`]).

mod audit;
mod envelopes;
mod feeds;
mod group_changes;
mod group_settings;
mod groups;
mod health;
mod jobs;
mod mass_tasks;
mod moderation;
mod operators;
mod overview;
mod paging;
mod scripts;
pub(super) mod session;
mod simulate;
mod status;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::{error, warn};

use super::AppState;

/// `GET /healthz`: 200 while the service is serving.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Every refusal the admin API gives: a status and a reason, answered as `{"error": reason}`.
/// An internal failure logs its cause and answers only "internal error".
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    status: StatusCode,
    reason: String,
    /// More for the client to act on (`running_id` of the test in the way), beside `error`.
    details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds `key` beside `error` in the body.
    pub(super) fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.details.insert(key.to_owned(), value);
        self
    }

    pub(super) fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub(super) fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }

    pub(super) fn conflict(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, reason)
    }

    /// A failure inside the service: the cause goes to the log, not to the client.
    pub(super) fn internal(cause: impl std::fmt::Display) -> Self {
        error!(error = %cause, "admin API failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.details;
        body.insert("error".into(), self.reason.into());
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(e)
    }
}

/// Who called the admin API (put in the request's extensions by [`require_admin`]); the audit
/// trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The bearer `admin.token` (automation).
    AdminToken,
    /// An operator signed in to the console (a session cookie).
    Operator {
        name: String,
        role: crate::domain::OperatorRole,
    },
}

impl Caller {
    /// As the audit trail names the caller: `admin-token`, `operator:NAME`.
    pub fn actor(&self) -> String {
        match self {
            Caller::AdminToken => "admin-token".into(),
            Caller::Operator { name, .. } => format!("operator:{name}"),
        }
    }

    /// As the moderation log and red-envelope tests record who did something: `admin-api` for
    /// the token (as they always have), `operator:NAME` for a signed-in operator.
    pub fn by(&self) -> String {
        match self {
            Caller::AdminToken => "admin-api".into(),
            operator => operator.actor(),
        }
    }
}

/// The layer in front of every admin route: `Authorization: Bearer <admin.token>`, or a console
/// session cookie — whose changes (any method but GET) also need the session's `X-CSRF-Token`
/// and a role that may change things (a viewer reads only) — or 401.
pub(super) async fn require_admin(
    State(state): State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let caller = if authorized(&state, request.headers()) {
        Caller::AdminToken
    } else {
        let Some(session) = session::of(&state, request.headers()) else {
            warn!("admin API: no valid bearer token or console session");
            return unauthorized();
        };
        let reading = matches!(
            *request.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if !reading {
            let csrf = request
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !bool::from(csrf.as_bytes().ct_eq(session.csrf.as_bytes())) {
                return ApiError::new(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token")
                    .into_response();
            }
            if !session.role.can_change() {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("a {} reads only", session.role),
                )
                .into_response();
            }
        }
        Caller::Operator {
            name: session.name,
            role: session.role,
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Checks `Authorization: Bearer <admin.token>` in constant time. With no token configured,
/// nobody is let in.
fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.admin_token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::channels::bearer_token);
    given.is_some_and(|token| bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())))
}

/// Runs `read` (blocking store work) off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(read).await??)
}

/// Runs `read` (blocking store work) off the async threads and answers its value as JSON, or
/// 500 when it failed.
pub(super) async fn blocking_json<T: serde::Serialize + Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Response {
    match blocking(read).await {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) fn internal_error(e: impl std::fmt::Display) -> Response {
    ApiError::internal(e).into_response()
}

pub(super) fn bad_request(reason: impl Into<String>) -> Response {
    ApiError::bad_request(reason).into_response()
}

pub(super) use audit::record as audit_changes;

/// The JSON body, or the answer refusing the request (the token was checked by the layer).
pub(super) fn admit<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Box<Response>> {
    body.map(|Json(b)| b)
        .map_err(|e| Box::new(crate::channels::body_refusal(e.status(), &e, e.body_text())))
}

/// Every admin route (the layer is added by the caller).
pub(super) fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .merge(groups::routes())
        .merge(group_changes::routes())
        .merge(group_settings::routes())
        .merge(envelopes::routes())
        .merge(health::routes())
        .merge(moderation::routes())
        .merge(status::routes())
        .merge(jobs::routes())
        .merge(mass_tasks::routes())
        .merge(feeds::routes())
        .merge(simulate::routes())
        .merge(audit::routes())
        .merge(operators::routes())
        .merge(overview::routes())
        .merge(scripts::routes())
}
