//! Signing in to the console: `POST /api/v1/session` with `{"username", "password"}` sets the
//! session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS) and answers the CSRF token
//! the console sends back as `X-CSRF-Token` with every change; `GET` says who is signed in;
//! `DELETE` signs out. Five failed sign-ins for a name in 15 minutes lock it out for 15 minutes
//! (429). These routes are outside the admin layer: they are how a session begins.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use serde::Deserialize;
use tracing::info;

use super::{ApiError, AppState, admit};
use crate::runtime::sessions::{SESSION_LIFETIME, Session, SignInError};

/// The session cookie's name.
pub const COOKIE: &str = "trumpet_session";

pub(in crate::http) fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/api/v1/session",
        post(sign_in).get(whoami).delete(sign_out),
    )
}

/// The session a request's cookie names, if it is live.
pub(super) fn of(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers)?;
    state.sessions.get(&token, Utc::now())
}

/// The value of the session cookie in `headers`.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    username: String,
    password: String,
}

async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refusal) => return Ok(*refusal),
    };
    let (store, sessions) = (state.store.clone(), Arc::clone(&state.sessions));
    let name = body.username.clone();
    // Checks queue for a permit rather than each taking a thread and 19 MiB at once.
    let permit = state
        .sessions
        .checks
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let signed = tokio::task::spawn_blocking(move || {
        sessions.sign_in(&store, &body.username, &body.password, Utc::now())
    })
    .await?;
    drop(permit);
    let session = match signed {
        Ok(session) => session,
        Err(SignInError::Refused) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong name or password",
            ));
        }
        Err(e @ SignInError::LockedOut(_)) => {
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string()));
        }
        Err(SignInError::Store(e)) => return Err(e.into()),
    };
    // A sign-in always begins a new session: one the browser held before (whoever made it)
    // ends here, so a session planted in a browser cannot become the operator's.
    if let Some(old) = cookie(&headers) {
        state.sessions.sign_out(&old);
    }
    info!(name = %name, role = %session.role, "console sign-in");
    let mut cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session.token,
        SESSION_LIFETIME.num_seconds()
    );
    if state.secure_cookies {
        cookie.push_str("; Secure");
    }
    let mut response = Json(serde_json::json!({
        "name": session.name,
        "role": session.role,
        "csrf_token": session.csrf,
        "expires_at": session.expires_at,
    }))
    .into_response();
    let value = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

async fn whoami(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = of(&state, &headers)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "not signed in"))?;
    Ok(Json(serde_json::json!({
        "name": session.name,
        "role": session.role,
        "csrf_token": session.csrf,
        "expires_at": session.expires_at,
    }))
    .into_response())
}

async fn sign_out(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers) {
        state.sessions.sign_out(&token);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("trumpet_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}
