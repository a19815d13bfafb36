//! A group's settings through the API: tags, roles, rules switched off, and joins reported by
//! an operator (welcomed like joins the channel reports).

use axum::Router;
use axum::routing::{post, put};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::groups::SettingsView;
use super::{ApiError, AppState, admit, bad_request, blocking, internal_error};
use crate::domain::{ChatId, JoinScene, Joiner, Role, Sender, SettingsChange};
use crate::engine::scope::validate_tag;
use crate::store::GroupStatus;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/groups/{chat_id}/tags", put(put_tags))
        .route("/api/v1/bulk/tags", post(bulk_tags))
        .route("/api/v1/groups/{chat_id}/joins", post(post_joins))
        .route("/api/v1/groups/{chat_id}/roles/{user_id}", put(put_role))
        .route(
            "/api/v1/groups/{chat_id}/rules/{rule_id}",
            put(put_rule_switch),
        )
}

/// Applies settings changes and answers with the group's new settings.
async fn change(state: &AppState, chat: &ChatId, changes: Vec<SettingsChange>) -> Response {
    match state.directory.change(chat, changes).await {
        Ok(settings) => {
            tracing::info!(chat = %chat, "group settings changed through the admin API");
            Json(SettingsView::from(&*settings)).into_response()
        }
        Err(e) => internal_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    tags: Vec<String>,
}

/// `PUT /api/v1/groups/{chat_id}/tags` with `{"tags": [...]}`: replaces the group's tags.
pub async fn put_tags(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    body: Result<Json<TagsBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let mut tags = Vec::with_capacity(body.tags.len());
    for tag in &body.tags {
        match validate_tag(tag) {
            Ok(t) => tags.push(t),
            Err(e) => return bad_request(e),
        }
    }
    change(
        &state,
        &ChatId::new(chat_id),
        vec![SettingsChange::ReplaceTags(tags)],
    )
    .await
}

/// Groups one bulk change may name.
const MAX_BULK_GROUPS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkTagsBody {
    chat_ids: Vec<String>,
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// Each tag checked and folded as tags are stored, or the reason one is refused.
fn valid_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    tags.iter()
        .map(|t| validate_tag(t).map_err(ApiError::bad_request))
        .collect()
}

/// `POST /api/v1/bulk/tags` with `{"chat_ids": [...], "add": [...], "remove": [...]}`: adds and
/// removes tags on up to 500 groups in one transaction; answers each group's tags. 404 (naming
/// them) when a group is unknown, and then nothing changes.
pub async fn bulk_tags(
    State(state): State<Arc<AppState>>,
    body: Result<Json<BulkTagsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return Ok(*refused),
    };
    if body.chat_ids.is_empty() || body.chat_ids.len() > MAX_BULK_GROUPS {
        return Err(ApiError::bad_request(format!(
            "chat_ids must name 1 to {MAX_BULK_GROUPS} groups"
        )));
    }
    let (add, remove) = (valid_tags(&body.add)?, valid_tags(&body.remove)?);
    if add.is_empty() && remove.is_empty() {
        return Err(ApiError::bad_request("add or remove at least one tag"));
    }
    let chats: Vec<ChatId> = body.chat_ids.into_iter().map(ChatId::new).collect();
    let store = state.store.clone();
    let asked = chats.clone();
    let unknown: Vec<String> = blocking(move || {
        let mut unknown = Vec::new();
        for chat in &asked {
            if store.group(chat)?.is_none() {
                unknown.push(chat.to_string());
            }
        }
        Ok(unknown)
    })
    .await?;
    if !unknown.is_empty() {
        return Err(ApiError::not_found("no such groups").with("unknown", unknown));
    }
    let changed = state
        .directory
        .change_many(
            chats,
            vec![
                SettingsChange::AddTags(add),
                SettingsChange::RemoveTags(remove),
            ],
        )
        .await?;
    tracing::info!(
        groups = changed.len(),
        "tags changed in bulk through the admin API"
    );
    let groups: Vec<serde_json::Value> = changed
        .iter()
        .map(|(chat, s)| serde_json::json!({"chat_id": chat, "tags": s.tags}))
        .collect();
    Ok(Json(serde_json::json!({ "groups": groups })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: Role,
    #[serde(default)]
    name: String,
}

/// `PUT /api/v1/groups/{chat_id}/roles/{user_id}` with `{"role": "admin", "name": "张三"}`:
/// gives a member a role (`member` takes it away; `owner` makes them the owner).
pub async fn put_role(
    State(state): State<Arc<AppState>>,
    Path((chat_id, user_id)): Path<(String, String)>,
    body: Result<Json<RoleBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    if user_id.trim().is_empty() || user_id.len() > 128 {
        return bad_request("user_id must be 1 to 128 characters");
    }
    let change_role = SettingsChange::SetRole {
        user_id,
        name: body.name,
        role: body.role,
    };
    change(&state, &ChatId::new(chat_id), vec![change_role]).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSwitchBody {
    enabled: bool,
}

/// `PUT /api/v1/groups/{chat_id}/rules/{rule_id}` with `{"enabled": false}`: switches a
/// keyword rule off (or back on) for one group.
pub async fn put_rule_switch(
    State(state): State<Arc<AppState>>,
    Path((chat_id, rule_id)): Path<(String, String)>,
    body: Result<Json<RuleSwitchBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let scripts = state.scripts.current();
    // Keyword rules, and scheduled jobs (switching one off opts the group out of it).
    let known = scripts.keywords.rules().iter().any(|r| r.id == rule_id)
        || scripts.jobs.iter().any(|j| j.name == rule_id);
    if !known {
        return ApiError::not_found(format!("no keyword rule or job {rule_id:?}")).into_response();
    }
    let switch = SettingsChange::SwitchRule {
        rule: rule_id,
        enabled: body.enabled,
    };
    change(&state, &ChatId::new(chat_id), vec![switch]).await
}

/// The most members one report may carry.
const MAX_JOINERS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinsBody {
    members: Vec<JoinedMember>,
    #[serde(default = "unknown_scene")]
    scene: JoinScene,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinedMember {
    user_id: String,
    #[serde(default)]
    name: String,
}

fn unknown_scene() -> JoinScene {
    JoinScene::Unknown
}

/// `POST /api/v1/groups/{chat_id}/joins` with `{"members": [{"user_id", "name"}], "scene"}`:
/// reports members who joined a group (for channels that cannot see joins themselves, such as
/// the group robot); they are welcomed like joins a channel reports. Answers 202.
pub async fn post_joins(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    body: Result<Json<JoinsBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    if body.members.is_empty() || body.members.len() > MAX_JOINERS {
        return bad_request(format!("members must list 1 to {MAX_JOINERS} members"));
    }
    if body
        .members
        .iter()
        .any(|m| m.user_id.trim().is_empty() || m.user_id.len() > 128)
    {
        return bad_request("every member needs a user_id of 1 to 128 characters");
    }
    let chat = ChatId::new(chat_id);
    // Only adopted groups are welcomed: say so now rather than accept and drop the report.
    let store = state.store.clone();
    let key = chat.clone();
    match blocking(move || store.group(&key)).await {
        Ok(Some(g)) if g.status == GroupStatus::Adopted => {}
        Ok(_) => {
            return ApiError::conflict(
                "the bot has not adopted this group; joins are welcomed only in adopted groups",
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    }
    let queued = body.members.len();
    let joiners = body
        .members
        .into_iter()
        .map(|m| Joiner {
            member: Sender {
                user_id: m.user_id.trim().to_owned(),
                name: m.name,
                alias: String::new(),
            },
            scene: body.scene,
        })
        .collect();
    match state.welcomer.joined(chat, joiners, Utc::now()).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"queued": queued})),
        )
            .into_response(),
        Err(e) => internal_error(e),
    }
}
