//! Customer groups' mass-send tasks in the admin API: `GET /api/v1/mass-tasks` lists the newest
//! tasks (`?open=true`: only those still creating or waiting for their owners), each with its
//! owner, how many of its groups still wait, how long it has waited and how often its owner was
//! reminded — who is lagging, at a glance.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use serde::Deserialize;

use super::{AppState, blocking_json};
use crate::store::OutboxState;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/mass-tasks", get(list_tasks))
}

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    /// Only tasks still creating or waiting for their owners.
    #[serde(default)]
    open: bool,
    /// At most this many (default 200, at most 2,000).
    limit: Option<usize>,
}

/// `GET /api/v1/mass-tasks?open=&limit=`: newest first, those waiting longest first among the
/// open ones (`{"tasks": [...]}`).
pub async fn list_tasks(
    State(state): State<Arc<AppState>>,
    Query(q): Query<TasksQuery>,
) -> Response {
    let store = state.store.clone();
    let directory = Arc::clone(&state.directory);
    let limit = q.limit.unwrap_or(200).clamp(1, 2000);
    blocking_json(move || {
        let tasks = if q.open {
            let mut open = store.open_mass_tasks()?;
            open.truncate(limit);
            open
        } else {
            store.recent_mass_tasks(limit)?
        };
        let now = Utc::now();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            let mut counts = std::collections::BTreeMap::<&'static str, usize>::new();
            for chat in &task.chats {
                let state = store.send(chat.entry)?.map(|e| e.state);
                let name = match state {
                    Some(OutboxState::AwaitingConfirmation) => "awaiting_confirmation",
                    Some(OutboxState::Delivered) => "delivered",
                    Some(OutboxState::Failed) => "failed",
                    Some(OutboxState::Skipped) => "skipped",
                    Some(OutboxState::TimedOut) => "timed_out",
                    Some(OutboxState::Pending) | None => "pending",
                };
                *counts.entry(name).or_default() += 1;
            }
            // The owner's name as the groups know it (any of their groups).
            let owner_name = task
                .chats
                .iter()
                .map(|c| directory.get(&c.chat))
                .find(|s| s.owner.as_deref() == Some(task.sender.as_str()))
                .map(|s| s.owner_name.clone())
                .unwrap_or_default();
            let waiting_since = task.created_at.unwrap_or(task.planned_at);
            out.push(serde_json::json!({
                "id": task.id,
                "bot": task.bot,
                "owner": task.sender,
                "owner_name": owner_name,
                "msgid": task.msgid,
                "state": task.state,
                "run": task.run,
                "groups": task.chats.len(),
                "sends": counts,
                "planned_at": task.planned_at,
                "created_at": task.created_at,
                "waiting_minutes": task.is_open().then(|| (now - waiting_since).num_minutes()),
                "reminders": task.reminders,
                "last_error": task.last_error,
            }));
        }
        Ok(serde_json::json!({ "tasks": out }))
    })
    .await
}
