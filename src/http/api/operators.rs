//! Operator accounts through the admin API, for the console's 账号 page and for scripts: list,
//! add, remove, set a password. Only the admin token or a signed-in `admin` may; passwords are
//! taken in the body (the audit trail replaces them by `***`) and stored as argon2id hashes. An
//! account removed or given a new password is signed out everywhere.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use chrono::Utc;
use serde::Deserialize;

use super::{ApiError, AppState, Caller, admit, blocking};
use crate::domain::OperatorRole;
use crate::runtime::operators::{self, AccountError};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/operators", get(list).post(add))
        .route("/api/v1/operators/{name}", axum::routing::delete(remove))
        .route("/api/v1/operators/{name}/password", put(set_password))
}

/// Accounts are the admins' business: the admin token or a signed-in `admin`.
fn require_administrator(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::AdminToken => Ok(()),
        Caller::Operator { role, .. } if role.can_administer() => Ok(()),
        Caller::Operator { role, .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("accounts are managed by admins; you are a {role}"),
        )),
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Store(e) => ApiError::internal(e),
            AccountError::Hash(e) => ApiError::internal(e),
            AccountError::Exists(_) | AccountError::LastAdmin(_) => {
                ApiError::conflict(e.to_string())
            }
            AccountError::NoSuch(_) => ApiError::not_found(e.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// Runs an account change (store work, password hashing) on the blocking pool.
async fn off_the_async_threads<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(work).await??)
}

/// `GET /api/v1/operators`: every account (`name`, `role`, `created_at`, `updated_at`), never a
/// hash.
async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    require_administrator(&caller)?;
    let store = state.store.clone();
    let accounts = blocking(move || store.operators()).await?;
    let accounts: Vec<serde_json::Value> = accounts
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "name": a.name,
                "role": a.role,
                "created_at": a.created_at,
                "updated_at": a.updated_at,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "operators": accounts })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOperator {
    name: String,
    role: OperatorRole,
    password: String,
}

/// `POST /api/v1/operators` with `{"name", "role", "password"}`: 201, 409 when the name is taken,
/// 400 for a bad name or a short password.
async fn add(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewOperator>, JsonRejection>,
) -> Result<Response, ApiError> {
    require_administrator(&caller)?;
    let body = match admit(body) {
        Ok(body) => body,
        Err(refusal) => return Ok(*refusal),
    };
    let store = state.store.clone();
    let added = off_the_async_threads(move || {
        operators::add(&store, &body.name, body.role, &body.password, Utc::now())
    })
    .await?;
    let answer = serde_json::json!({"name": added.name, "role": added.role});
    Ok(super::audit::Changed::attach(
        (StatusCode::CREATED, Json(answer.clone())).into_response(),
        None,
        Some(answer),
    ))
}

/// `DELETE /api/v1/operators/{name}`: 204; 409 for the last admin, 404 for no such account.
async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_administrator(&caller)?;
    let store = state.store.clone();
    let who = name.clone();
    let role = off_the_async_threads(move || operators::remove(&store, &who)).await?;
    state.sessions.sign_out_everywhere(&name);
    Ok(super::audit::Changed::attach(
        StatusCode::NO_CONTENT.into_response(),
        Some(serde_json::json!({"name": name, "role": role})),
        None,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

/// `PUT /api/v1/operators/{name}/password` with `{"password"}`: 204; the account's sessions end.
async fn set_password(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> Result<Response, ApiError> {
    require_administrator(&caller)?;
    let body = match admit(body) {
        Ok(body) => body,
        Err(refusal) => return Ok(*refusal),
    };
    let store = state.store.clone();
    let who = name.clone();
    off_the_async_threads(move || {
        operators::reset_password(&store, &who, &body.password, Utc::now())
    })
    .await?;
    state.sessions.sign_out_everywhere(&name);
    Ok(super::audit::Changed::attach(
        StatusCode::NO_CONTENT.into_response(),
        None,
        Some(serde_json::json!({"name": name, "password": "changed; sessions ended"})),
    ))
}
