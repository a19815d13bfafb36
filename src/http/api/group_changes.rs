//! Adopting and releasing groups through the admin API: push-only groups adopted by their robot
//! webhook URL (`POST /api/v1/groups`), a group's name and time zone (`PATCH`), and releasing
//! any group (`DELETE`), and removing a member through a group's bot account (`POST
//! .../removals`). Push-only groups exist because not every corp is offered the robot's
//! receive callback: such a group never sends Trumpet an event, but gets broadcasts like any
//! other.

use axum::Router;
use axum::routing::{patch, post};
use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use tracing::info;

use super::AppState;
use super::groups::GroupView;
use super::{ApiError, admit, bad_request, blocking, internal_error};
use crate::channels::onebot::accounts::REMOVE_ACTION;
use crate::domain::AccountKey;
use crate::domain::{BotId, ChatId, SettingsChange};
use crate::engine::scope::validate_tag;
use crate::runtime::accounts::{self, Removal};
use crate::store::{AdoptedVia, GroupRecord, GroupStatus, StoreError};
use crate::wire::wecom::robot::webhook::WebhookUrl;

use crate::store::PUSH_ONLY_BOT;

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/groups", post(adopt_by_webhook))
        .route(
            "/api/v1/groups/{chat_id}",
            patch(patch_profile).delete(release),
        )
        .route("/api/v1/groups/{chat_id}/removals", post(remove_member))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroupBody {
    webhook_url: String,
    /// Absent: unchanged (empty for a new group).
    #[serde(default)]
    name: Option<String>,
    /// Absent: unchanged (none for a new group).
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// Chosen by the operator; derived from the webhook key when absent.
    #[serde(default)]
    chat_id: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    #[serde(default)]
    name: Option<String>,
    /// `""` goes back to each job's own time zone.
    #[serde(default)]
    timezone: Option<String>,
}

/// A stable chat id for a push-only group: the same URL always gives the same id, so that
/// posting it twice adopts one group, and the key itself (a credential) does not show.
fn derived_chat_id(key: &str) -> ChatId {
    let digest = Sha1::digest(key.as_bytes());
    ChatId::new(format!("push-{}", hex::encode(&digest[..8])))
}

fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err("name must be at most 64 characters, without control characters".into());
    }
    Ok(name.to_owned())
}

fn check_timezone(zone: &str) -> Result<Option<String>, String> {
    let zone = zone.trim();
    if zone.is_empty() {
        return Ok(None);
    }
    chrono_tz::Tz::from_str(zone)
        .map(|tz| Some(tz.name().to_owned()))
        .map_err(|_| {
            format!("timezone {zone:?} is not an IANA time zone such as \"Asia/Shanghai\"")
        })
}

fn check_chat_id(id: &str) -> Result<ChatId, String> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err("chat_id must be 1 to 128 characters without spaces or '/'".into());
    }
    Ok(ChatId::new(id))
}

fn conflict(reason: String) -> Response {
    ApiError::conflict(reason).into_response()
}

/// The settings changes a new push-only group starts with.
fn initial_settings(body: &NewGroupBody) -> Result<Vec<SettingsChange>, String> {
    let mut changes = Vec::new();
    if let Some(name) = &body.name {
        changes.push(SettingsChange::SetName(check_name(name)?));
    }
    if let Some(given) = &body.tags {
        let mut tags = Vec::with_capacity(given.len());
        for tag in given {
            tags.push(validate_tag(tag)?);
        }
        changes.push(SettingsChange::ReplaceTags(tags));
    }
    if let Some(zone) = &body.timezone {
        changes.push(SettingsChange::SetTimezone(check_timezone(zone)?));
    }
    Ok(changes)
}

/// The settings of an adoption request that differ from the adopted group's: its `name`,
/// `tags` (as a set) or `timezone`.
fn differing_settings(
    changes: &[SettingsChange],
    settings: &crate::domain::GroupSettings,
) -> Vec<&'static str> {
    let mut differs = Vec::new();
    for change in changes {
        match change {
            SettingsChange::SetName(name) if *name != settings.name => differs.push("name"),
            SettingsChange::ReplaceTags(tags) => {
                let wanted: std::collections::BTreeSet<&String> = tags.iter().collect();
                let current: std::collections::BTreeSet<&String> = settings.tags.iter().collect();
                if wanted != current {
                    differs.push("tags");
                }
            }
            SettingsChange::SetTimezone(zone) if *zone != settings.timezone => {
                differs.push("timezone")
            }
            _ => {}
        }
    }
    differs
}

/// What adopting by URL found in the store.
enum Adoption {
    Created(GroupRecord),
    /// The same group posted again: nothing new.
    Existing(GroupRecord),
    Conflict(String),
}

/// `POST /api/v1/groups` with `{"webhook_url", "name", "tags", "chat_id"?, "timezone"?}`:
/// adopts a push-only group. 201 with the group; 200 when the same URL was already adopted under
/// the same id with the same settings (or none given); 409 when it was with another name, tags
/// or time zone (PATCH changes those), when another adopted group already uses that robot, or
/// the id is taken by another robot; 400 for a URL whose host is not in `wecom.webhook_hosts`.
pub async fn adopt_by_webhook(
    State(state): State<Arc<AppState>>,
    body: Result<Json<NewGroupBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let url = match WebhookUrl::parse(&body.webhook_url, &state.scheduler.webhook_hosts) {
        Ok(url) => url,
        Err(e) => return bad_request(format!("webhook_url: {e}")),
    };
    let changes = match initial_settings(&body) {
        Ok(changes) => changes,
        Err(e) => return bad_request(e),
    };
    let chat = match body.chat_id.as_deref().map(str::trim) {
        Some(id) => match check_chat_id(id) {
            Ok(chat) => chat,
            Err(e) => return bad_request(e),
        },
        None => derived_chat_id(url.key()),
    };
    let store = state.store.clone();
    let raw_url = body.webhook_url.trim().to_owned();
    let for_tx = chat.clone();
    let adoption = blocking(move || -> Result<Adoption, StoreError> {
        store.write(|tx| {
            // Another adopted group posting through the same robot would get every broadcast
            // twice. One index lookup, in the same transaction as the adoption.
            let users = tx.groups_with_robot(&raw_url)?;
            if let Some(other) = users.iter().find(|c| **c != for_tx) {
                return Ok(Adoption::Conflict(format!(
                    "the adopted group {other} already posts through this robot"
                )));
            }
            let same_robot = users.contains(&for_tx);
            match tx.group(&for_tx)? {
                Some(g) if g.status == GroupStatus::Adopted && same_robot => {
                    Ok(Adoption::Existing(g))
                }
                Some(g) if g.status == GroupStatus::Adopted => Ok(Adoption::Conflict(format!(
                    "the group {for_tx} is already adopted with another robot; release it first"
                ))),
                existing => {
                    let bot = existing.as_ref().map_or_else(
                        || BotId::parse(PUSH_ONLY_BOT).expect("a valid bot id"),
                        |g| g.bot.clone(),
                    );
                    let mut group =
                        existing.unwrap_or_else(|| GroupRecord::new(for_tx.clone(), bot));
                    group.webhook_url = Some(raw_url.clone());
                    group.adopt(AdoptedVia::Api, Utc::now(), None);
                    tx.put_group(&group)?;
                    Ok(Adoption::Created(group))
                }
            }
        })
    })
    .await;
    let (status, group) = match adoption {
        Ok(Adoption::Created(g)) => (StatusCode::CREATED, g),
        Ok(Adoption::Existing(g)) => {
            // Posting an adopted robot again changes nothing: a different name, tags or zone
            // would silently rename or retag a group someone already runs.
            let settings = state.directory.get(&chat);
            let differs = differing_settings(&changes, &settings);
            if !differs.is_empty() {
                return conflict(format!(
                    "the group {chat} is already adopted with this robot and another {}; change it with PATCH /api/v1/groups/{chat} (name, timezone) or PUT /api/v1/groups/{chat}/tags",
                    differs.join(", ")
                ));
            }
            let view = GroupView::new(g, &settings);
            return (StatusCode::OK, Json(view)).into_response();
        }
        Ok(Adoption::Conflict(reason)) => return conflict(reason),
        Err(e) => return e.into_response(),
    };
    let settings = match state.directory.change(&chat, changes).await {
        Ok(settings) => settings,
        Err(e) => return internal_error(e),
    };
    if status == StatusCode::CREATED {
        info!(chat = %chat, key = %url.key_hint(), "push-only group adopted through the admin API");
    }
    (status, Json(GroupView::new(group, &settings))).into_response()
}

/// `PATCH /api/v1/groups/{chat_id}` with `{"name"?, "timezone"?}`: the group's name (templates:
/// `group.name`) and the time zone its scheduled jobs run in (`""`: each job's own).
pub async fn patch_profile(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    body: Result<Json<ProfileBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let mut changes = Vec::new();
    if let Some(name) = &body.name {
        match check_name(name) {
            Ok(name) => changes.push(SettingsChange::SetName(name)),
            Err(e) => return bad_request(e),
        }
    }
    if let Some(zone) = &body.timezone {
        match check_timezone(zone) {
            Ok(zone) => changes.push(SettingsChange::SetTimezone(zone)),
            Err(e) => return bad_request(e),
        }
    }
    if changes.is_empty() {
        return bad_request("give name, timezone or both");
    }
    let chat = ChatId::new(chat_id);
    let group = match load_group(&state, &chat).await {
        Ok(group) => group,
        Err(refusal) => return *refusal,
    };
    match state.directory.change(&chat, changes).await {
        Ok(settings) => Json(GroupView::new(group, &settings)).into_response(),
        Err(e) => internal_error(e),
    }
}

/// The group's record, or the answer to give: 404 when the bot has never seen it, 500 when the
/// store cannot be read.
pub(super) async fn load_group(
    state: &AppState,
    chat: &ChatId,
) -> Result<GroupRecord, Box<Response>> {
    let store = state.store.clone();
    let key = chat.clone();
    match blocking(move || store.group(&key)).await {
        Ok(Some(group)) => Ok(group),
        Ok(None) => Err(Box::new(not_found(chat))),
        Err(e) => Err(Box::new(e.into_response())),
    }
}

pub(super) fn not_found(chat: &ChatId) -> Response {
    ApiError::not_found(format!("no group {chat}")).into_response()
}

/// `DELETE /api/v1/groups/{chat_id}`: releases a group (push-only or not). It gets no more
/// broadcasts, its sends still waiting in the outbox are skipped, and its running red-envelope
/// test is cancelled. Releasing a released group
/// changes nothing. The record and settings are kept, so adopting it again restores them.
pub async fn release(State(state): State<Arc<AppState>>, Path(chat_id): Path<String>) -> Response {
    let chat = ChatId::new(chat_id);
    let store = state.store.clone();
    let key = chat.clone();
    let now = Utc::now();
    let released = blocking(move || {
        store.write(|tx| {
            let Some(mut group) = tx.group(&key)? else {
                return Ok(None);
            };
            if group.status == GroupStatus::Adopted {
                group.release(now, "released by an operator through the admin API");
                tx.put_group(&group)?;
            }
            Ok(Some(group))
        })
    })
    .await;
    match released {
        Ok(Some(group)) => {
            state.scheduler.outbox.release(&chat, now);
            state.envelopes.group_released(&chat).await;
            info!(chat = %chat, "group released through the admin API");
            let settings = state.directory.get(&chat);
            Json(GroupView::new(group, &settings)).into_response()
        }
        Ok(None) => not_found(&chat),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovalBody {
    user_id: String,
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/groups/{chat_id}/removals` with `{"user_id": …, "reason": …}`: removes a member
/// through the group's bot account and answers once the member list confirms it (200
/// `confirmed`: listed before, gone after). 400 for the bot account's own id, 404
/// (`not_a_member`) for someone the member list does not hold, 409 for a group without a bot
/// account (the group robot cannot remove anyone), 503 while the account is offline, 422 when its
/// implementation offers no removal, 502 when the implementation refused, the member is still
/// listed afterwards, or the list could not be read (`unconfirmed`).
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    body: Result<Json<RemovalBody>, JsonRejection>,
) -> Response {
    let body = match admit(body) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let user = body.user_id.trim().to_owned();
    if user.is_empty() {
        return bad_request("user_id must not be empty");
    }
    let chat = ChatId::new(chat_id);
    let group = match load_group(&state, &chat).await {
        Ok(group) => group,
        Err(refusal) => return *refusal,
    };
    let account = match (&group.account, group.status) {
        (Some(account), GroupStatus::Adopted) => account.clone(),
        _ => {
            return conflict(
                "the group is not adopted through a bot account; only a bot account can remove members".into(),
            );
        }
    };
    let key = AccountKey {
        bot: group.bot.clone(),
        user_id: account,
    };
    if !state.accounts.is_connected(&key) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bot account is not connected",
        )
        .into_response();
    }
    let outcome = accounts::remove_member(&state.store, &*state.accounts, &key, &chat, &user).await;
    info!(chat = %chat, user = %user, reason = %body.reason, outcome = outcome.as_str(),
        "removal through the admin API");
    let status = match &outcome {
        Removal::Confirmed => StatusCode::OK,
        Removal::OwnAccount => StatusCode::BAD_REQUEST,
        Removal::NotAMember => StatusCode::NOT_FOUND,
        Removal::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
        Removal::StillThere | Removal::Unconfirmed | Removal::Failed(_) => StatusCode::BAD_GATEWAY,
    };
    let error = match &outcome {
        Removal::Failed(e) => Some(e.to_string()),
        Removal::StillThere => Some("the member is still in the member list".into()),
        Removal::Unconfirmed => {
            Some("the member list could not be read, so the removal is not confirmed".into())
        }
        Removal::NotAMember => Some(format!("{user} is not in the group's member list")),
        Removal::OwnAccount => {
            Some("that is the bot account itself; release the group to make the bot leave".into())
        }
        Removal::Unsupported => Some(format!("the implementation does not offer {REMOVE_ACTION}")),
        Removal::Confirmed => None,
    };
    (
        status,
        Json(serde_json::json!({"outcome": outcome.as_str(), "error": error})),
    )
        .into_response()
}
