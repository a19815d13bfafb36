//! The bot-scripts through the admin API: each file as in force, an edit checked like `trumpet
//! check` before it is written (refused with `file:line:column`, nothing changed), and the
//! history of edits with their diffs. Reading is for every role; editing is the admins'.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde::Deserialize;

use super::paging::PageQuery;
use super::{ApiError, AppState, Caller, admit, blocking};
use crate::scripts::edit::{self, EditError};
use crate::store::ScriptEdit;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/scripts/files", get(list_files))
        .route(
            "/api/v1/scripts/files/{*name}",
            get(read_file).put(write_file),
        )
        .route("/api/v1/scripts/history", get(history))
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::UnknownFile(_) => ApiError::not_found(e.to_string()),
            EditError::Stale { ref current } => {
                let current = current.clone();
                ApiError::conflict(e.to_string()).with("sha", current)
            }
            EditError::Invalid(script) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, script.to_string())
                    .with("file", script.file.display().to_string())
                    .with("line", script.line)
                    .with("column", script.column)
                    .with("reason", script.reason)
            }
            EditError::Io(reason) => ApiError::internal(reason),
        }
    }
}

/// `GET /api/v1/scripts/files`: every file (`name`, `sha`, `from_dir`, `bytes`).
async fn list_files(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let live = Arc::clone(&state.scripts);
    let files = blocking(move || Ok(edit::files(&live))).await?;
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name, "sha": f.sha, "from_dir": f.from_dir, "bytes": f.content.len(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "files": files })).into_response())
}

/// `GET /api/v1/scripts/files/{name}`: one file as in force (`name`, `content`, `sha`,
/// `from_dir`); 404 for a name that is not a bot-scripts file.
async fn read_file(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let live = Arc::clone(&state.scripts);
    let file = tokio::task::spawn_blocking(move || edit::read(&live, &name)).await??;
    Ok(Json(file).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewText {
    content: String,
    /// The `sha` the edit started from.
    #[serde(default)]
    base_sha: Option<String>,
}

/// `PUT /api/v1/scripts/files/{name}` with `{"content", "base_sha"}`: checks every script with
/// this text in place; 422 with `file`, `line`, `column`, `reason` when they do not pass (nothing
/// is written), 409 when the file changed since `base_sha`; else writes it, loads it at once and
/// answers the diff and the version now in force. Admins only.
async fn write_file(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Json<NewText>, JsonRejection>,
) -> Result<Response, ApiError> {
    if let Caller::Operator { role, .. } = &caller
        && !role.can_administer()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("bot-scripts are edited by admins; you are a {role}"),
        ));
    }
    let body = match admit(body) {
        Ok(body) => body,
        Err(refusal) => return Ok(*refusal),
    };
    let live = Arc::clone(&state.scripts);
    let file = name.clone();
    let edited = tokio::task::spawn_blocking(move || {
        edit::write(&live, &file, &body.content, body.base_sha.as_deref())
    })
    .await??;
    let record = ScriptEdit {
        id: 0,
        at: Utc::now(),
        by: caller.actor(),
        file: edited.name.clone(),
        sha_before: edited.sha_before.clone(),
        sha: edited.sha.clone(),
        diff: edited.diff.clone(),
        lines_added: edited.lines_added,
        lines_removed: edited.lines_removed,
    };
    let store = state.store.clone();
    blocking(move || store.add_script_edit(&record)).await?;
    tracing::info!(file = %name, by = %caller.actor(), added = edited.lines_added,
        removed = edited.lines_removed, "bot-scripts edited through the admin API");
    let answer = Json(serde_json::json!({
        "name": edited.name,
        "sha": edited.sha,
        "diff": edited.diff,
        "lines_added": edited.lines_added,
        "lines_removed": edited.lines_removed,
        "version": state.scripts.status().version,
    }))
    .into_response();
    Ok(super::audit::Changed::attach(
        answer,
        Some(serde_json::json!({"file": edited.name, "sha": edited.sha_before})),
        Some(serde_json::json!({"file": edited.name, "sha": edited.sha, "diff": edited.diff})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    file: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/scripts/history?file=&limit=&cursor=`: the edits made through the API, newest
/// first (`{"edits": [{"id", "at", "by", "file", "sha_before", "sha", "diff", "lines_added",
/// "lines_removed"}], "next_cursor"}`).
async fn history(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let (limit, before) = (page.limit()?, page.before_id()?);
    let store = state.store.clone();
    let file = query.file.filter(|f| !f.is_empty());
    let edits = blocking(move || store.script_edits(file.as_deref(), before, limit + 1)).await?;
    let (edits, next_cursor) = super::paging::trim_page(edits, limit, |e| e.id.to_string());
    Ok(Json(serde_json::json!({"edits": edits, "next_cursor": next_cursor})).into_response())
}
