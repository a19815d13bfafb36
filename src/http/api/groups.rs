//! Reading groups: the list, one group with its settings, its last sends and its members.

use axum::Router;
use axum::routing::get;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::paging::{PageQuery, page};
use super::{ApiError, AppState, blocking};
use crate::domain::{ChatId, GroupSettings, Role};
use crate::store::{GroupRecord, GroupStatus};

/// The routes of this resource.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/groups", get(list_groups))
        .route("/api/v1/groups/{chat_id}", get(get_group))
        .route("/api/v1/groups/{chat_id}/sends", get(list_sends))
        .route("/api/v1/groups/{chat_id}/members", get(list_members))
}

/// One group as the API shows it (without the webhook key, which is a credential).
#[derive(Serialize)]
pub(super) struct GroupView {
    chat_id: String,
    bot: String,
    status: GroupStatus,
    adopter: Option<String>,
    adopter_name: Option<String>,
    adopted_at: Option<DateTime<Utc>>,
    adopted_via: Option<crate::store::AdoptedVia>,
    released_at: Option<DateTime<Utc>>,
    release_reason: Option<String>,
    members_seen: u64,
    messages: u64,
    last_message_at: Option<DateTime<Utc>>,
    /// The bot account that serves the group (bot-account channels).
    account: Option<String>,
    /// `wecom-robot`, `wecom-aibot`, `wecom-app` (a customer group), `onebot12` or `push-only`.
    channel: &'static str,
    can_push: bool,
    /// Its health from the ranking the lists share (adopted groups; absent on a released one).
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthBrief>,
    #[serde(flatten)]
    settings: SettingsView,
}

/// A group's health as a list shows it.
#[derive(Serialize)]
pub(super) struct HealthBrief {
    score: u32,
    stage: crate::engine::health::Stage,
    stage_text: &'static str,
    /// False for a push-only group (nothing to measure).
    measured: bool,
    /// Members now where a bot account lists them.
    members: Option<u64>,
}

impl From<&crate::runtime::health::GroupHealth> for HealthBrief {
    fn from(h: &crate::runtime::health::GroupHealth) -> Self {
        Self {
            score: h.score,
            stage: h.stage,
            stage_text: h.stage_text,
            measured: h.measured,
            members: h.members,
        }
    }
}

/// A group's settings as the API shows them.
#[derive(Serialize)]
pub(super) struct SettingsView {
    owner: Option<String>,
    name: String,
    timezone: Option<String>,
    tags: Vec<String>,
    roles: Vec<RoleView>,
    disabled_rules: Vec<String>,
}

#[derive(Serialize)]
struct RoleView {
    user_id: String,
    name: String,
    role: Role,
}

impl From<&GroupSettings> for SettingsView {
    fn from(s: &GroupSettings) -> Self {
        Self {
            owner: s.owner.clone(),
            name: s.name.clone(),
            timezone: s.timezone.clone(),
            tags: s.tags.iter().cloned().collect(),
            roles: s
                .roles
                .iter()
                .map(|(id, h)| RoleView {
                    user_id: id.clone(),
                    name: h.name.clone(),
                    role: h.role,
                })
                .collect(),
            disabled_rules: s.disabled_rules.iter().cloned().collect(),
        }
    }
}

impl GroupView {
    pub(super) fn new(g: GroupRecord, settings: &GroupSettings) -> Self {
        Self {
            settings: settings.into(),
            channel: channel_of(&g),
            chat_id: g.chat_id.to_string(),
            bot: g.bot.to_string(),
            status: g.status,
            adopter: g.adopter.as_ref().map(|a| a.user_id.clone()),
            adopter_name: g.adopter.map(|a| a.name),
            adopted_at: g.adopted_at,
            adopted_via: g.adopted_via,
            released_at: g.released_at,
            release_reason: g.release_reason,
            members_seen: g.members_seen,
            messages: g.messages,
            last_message_at: g.last_message_at,
            can_push: (g.webhook_url.is_some() || g.account.is_some() || g.customer || g.aibot)
                && g.status == GroupStatus::Adopted,
            account: g.account,
            health: None,
        }
    }

    fn with_health(mut self, health: Option<&crate::runtime::health::GroupHealth>) -> Self {
        self.health = health.map(HealthBrief::from);
        self
    }

    /// The key a list sorted by `sort` orders by, ascending (the cursor of its pages).
    fn sort_key(&self, sort: Sort) -> String {
        // Numbers padded to one width, then the chat id after a separator that sorts first.
        let tail = |n: u64| format!("{n:020}\u{1}{}", self.chat_id);
        match sort {
            Sort::ChatId => self.chat_id.clone(),
            Sort::Name => format!("{}\u{1}{}", self.settings.name.to_lowercase(), self.chat_id),
            Sort::Health => tail(self.health.as_ref().map_or(u64::MAX, |h| match h.measured {
                true => u64::from(h.score),
                false => u64::MAX - 1,
            })),
            Sort::Members => tail(u64::MAX - self.members()),
            Sort::Messages => tail(u64::MAX - self.messages),
            Sort::LastMessage => tail(
                u64::MAX
                    - self
                        .last_message_at
                        .map_or(0, |t| u64::try_from(t.timestamp()).unwrap_or(0)),
            ),
        }
    }

    /// Members now where a bot account lists them, else the members seen speaking.
    fn members(&self) -> u64 {
        self.health
            .as_ref()
            .and_then(|h| h.members)
            .unwrap_or(self.members_seen)
    }
}

/// How the group list is ordered: `chat_id` (the default), `name`, `health` (lowest score
/// first), `members`, `messages`, `last_message` (most, or latest, first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    #[default]
    ChatId,
    Name,
    Health,
    Members,
    Messages,
    LastMessage,
}

/// `?status=&tag=&channel=&stage=&q=` of the group list, with its page.
#[derive(Debug, Default, Deserialize)]
pub struct GroupsQuery {
    status: Option<String>,
    tag: Option<String>,
    channel: Option<String>,
    stage: Option<String>,
    q: Option<String>,
    #[serde(default)]
    sort: Sort,
    // Not a flattened `PageQuery`: a flattened struct reads numbers from a query string as
    // strings and refuses them.
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The channel a group is served through, as the API names it.
fn channel_of(g: &GroupRecord) -> &'static str {
    if g.account.is_some() {
        "onebot12"
    } else if g.customer {
        "wecom-app"
    } else if g.aibot {
        "wecom-aibot"
    } else if g.is_push_only() {
        "push-only"
    } else {
        "wecom-robot"
    }
}

/// What a group list request asks for, checked.
struct GroupFilter {
    status: Option<GroupStatus>,
    tag: Option<String>,
    channel: Option<&'static str>,
    stage: Option<crate::engine::health::Stage>,
    /// Lower-cased; matched against the name and the chat id.
    q: Option<String>,
}

impl GroupFilter {
    fn new(query: &GroupsQuery) -> Result<Self, ApiError> {
        let status = match query.status.as_deref() {
            None | Some("") => None,
            Some("adopted") => Some(GroupStatus::Adopted),
            Some("released") => Some(GroupStatus::Released),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "status {other:?} must be adopted or released"
                )));
            }
        };
        let channel = match query.channel.as_deref() {
            None | Some("") => None,
            Some(name) => Some(
                ["wecom-robot", "wecom-aibot", "wecom-app", "onebot12", "push-only"]
                    .into_iter()
                    .find(|c| *c == name)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "channel {name:?} must be wecom-robot, wecom-aibot, wecom-app, onebot12 or push-only"
                        ))
                    })?,
            ),
        };
        let stage = match query.stage.as_deref() {
            None | Some("") => None,
            Some(name) => Some(super::health::stage_named(name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "stage {name:?} must be new, steady, declining or dead"
                ))
            })?),
        };
        let tag = match query.tag.as_deref() {
            None | Some("") => None,
            Some(tag) => {
                Some(crate::engine::scope::validate_tag(tag).map_err(ApiError::bad_request)?)
            }
        };
        let q = query
            .q
            .as_deref()
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty());
        Ok(Self {
            status,
            tag,
            channel,
            stage,
            q,
        })
    }

    fn keeps(&self, g: &GroupRecord, settings: &GroupSettings) -> bool {
        self.status.is_none_or(|s| g.status == s)
            && self.channel.is_none_or(|c| channel_of(g) == c)
            && self.tag.as_ref().is_none_or(|t| settings.tags.contains(t))
            && self.q.as_ref().is_none_or(|q| {
                settings.name.to_lowercase().contains(q.as_str())
                    || g.chat_id.as_str().to_lowercase().contains(q.as_str())
            })
    }
}

/// `GET /api/v1/groups?status=&tag=&channel=&stage=&q=&sort=&limit=&cursor=`: the groups the
/// bot has been in, a page at a time: `{"groups", "next_cursor", "total", "health_computed_at"}`.
/// `q` matches the name or the id; `stage` (a health stage) keeps adopted groups of that stage;
/// `sort` orders by `chat_id` (the default), `name`, `health`, `members`, `messages` or
/// `last_message`. Each adopted group carries its `health` from the ranking the console shares
/// (at most a minute old; `health_computed_at` says when).
pub async fn list_groups(
    State(state): State<Arc<AppState>>,
    query: Result<Query<GroupsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = GroupFilter::new(&query)?;
    let store = state.store.clone();
    let groups = blocking(move || store.groups()).await?;
    let ranked = health_ranking(&state, &groups).await?;
    let mut kept: Vec<GroupView> = groups
        .into_iter()
        .filter_map(|g| {
            let settings = state.directory.get(&g.chat_id);
            let health = ranked.of(&g.chat_id);
            let stage_ok = filter
                .stage
                .is_none_or(|stage| health.is_some_and(|h| h.stage == stage));
            (stage_ok && filter.keeps(&g, &settings))
                .then(|| GroupView::new(g, &settings).with_health(health))
        })
        .collect();
    let mut keyed: Vec<(String, GroupView)> = match query.sort {
        // The store's order already.
        Sort::ChatId => kept.drain(..).map(|v| (v.chat_id.clone(), v)).collect(),
        sort => {
            let mut keyed: Vec<_> = kept.drain(..).map(|v| (v.sort_key(sort), v)).collect();
            keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            keyed
        }
    };
    let page_query = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    };
    let page = page(keyed.drain(..), |(key, _)| key.clone(), &page_query)?;
    let groups: Vec<GroupView> = page.items.into_iter().map(|(_, v)| v).collect();
    Ok(Json(serde_json::json!({
        "groups": groups,
        "next_cursor": page.next_cursor,
        "total": page.total,
        "health_computed_at": ranked.computed_at,
    }))
    .into_response())
}

/// The health ranking the lists share: the cached one, or a new one when an adopted group is
/// missing from it (adopted since it was made).
pub(super) async fn health_ranking(
    state: &Arc<AppState>,
    groups: &[GroupRecord],
) -> Result<Arc<crate::runtime::health::cache::Ranked>, ApiError> {
    let compute = {
        let (store, directory, speakers) = (
            state.store.clone(),
            Arc::clone(&state.directory),
            Arc::clone(&state.speakers),
        );
        move || {
            let now = Utc::now();
            let groups = crate::runtime::health::ranking(&store, &directory, &speakers, now)?;
            Ok(crate::runtime::health::cache::Ranked::new(groups, now))
        }
    };
    let cache = Arc::clone(&state.health);
    let ranked = blocking({
        let (cache, compute) = (Arc::clone(&cache), compute.clone());
        move || cache.get(compute)
    })
    .await?;
    let missing = groups
        .iter()
        .any(|g| g.status == GroupStatus::Adopted && ranked.of(&g.chat_id).is_none());
    if !missing {
        return Ok(ranked);
    }
    cache.invalidate();
    blocking(move || cache.get(compute)).await
}

/// `GET /api/v1/groups/{chat_id}`: one group with its settings.
pub async fn get_group(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
) -> Response {
    let chat = ChatId::new(chat_id);
    let store = state.store.clone();
    let key = chat.clone();
    match blocking(move || store.group(&key)).await {
        Ok(Some(group)) => {
            let settings = state.directory.get(&chat);
            // What the group's channel can do there: what the bot may do, said plainly (a
            // customer group's app sees no messages and cannot remove anyone).
            let capabilities = crate::outbox::posting_capabilities(&group);
            let mut view = serde_json::to_value(GroupView::new(group, &settings))
                .unwrap_or(serde_json::Value::Null);
            view["capabilities"] = serde_json::json!(capabilities);
            Json(view).into_response()
        }
        Ok(None) => ApiError::not_found("no such group")
            .with("settings", SettingsView::from(&*state.directory.get(&chat)))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `?limit=&cursor=` of a list (a flattened struct would refuse numbers in a query string).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    /// Members only: part of the name or user id, any case.
    q: Option<String>,
    /// Members only: `messages` lists the most talkative first (default: by user id).
    sort: Option<String>,
}

impl ListQuery {
    fn page(&self) -> PageQuery {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

/// `GET /api/v1/groups/{chat_id}/sends?limit=&cursor=`: the sends to a group, newest first, a
/// page at a time (`{"sends", "next_cursor"}`) — what went out, what waits, what failed or
/// expired, and why. The destination (a webhook URL is a credential) is not shown.
pub async fn list_sends(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = query.page();
    let limit = page.limit()?;
    let before = page.before_id()?;
    let chat = ChatId::new(chat_id);
    // An unknown group is a 404, not an empty list that looks like "nothing was sent".
    if let Err(refusal) = super::group_changes::load_group(&state, &chat).await {
        return Ok(*refusal);
    }
    let store = state.store.clone();
    // One more than the page: whether another page follows.
    let sends = blocking(move || store.sends_to(&chat, limit + 1, before)).await?;
    let (sends, next_cursor) = super::paging::trim_page(sends, limit, |e| e.id.to_string());
    let sends: Vec<serde_json::Value> = sends
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "purpose": e.purpose,
                "state": e.state,
                "attempts": e.attempts,
                "last_error": e.last_error,
                "run": e.run,
                "created_at": e.created_at,
                "updated_at": e.updated_at,
                "via": match e.to {
                    crate::store::Destination::Webhook { .. } => "webhook",
                    crate::store::Destination::Account { .. } => "account",
                    crate::store::Destination::Private { .. } => "private",
                    crate::store::Destination::AiBot { .. } => "aibot",
                    crate::store::Destination::CustomerGroup { .. } => "mass_send",
                },
                // A private message about the group (a report to an admin): to whom.
                "recipient": match &e.to {
                    crate::store::Destination::Private { user_id, .. } => Some(user_id),
                    _ => None,
                },
            })
        })
        .collect();
    Ok(Json(serde_json::json!({"sends": sends, "next_cursor": next_cursor})).into_response())
}

/// `GET /api/v1/groups/{chat_id}/members?q=&sort=&limit=&cursor=`: the group's member list as
/// its bot account or WeCom (customer groups) last reported it (`in_group`), merged with the members seen speaking
/// (`messages`, `last_seen`), in user-id order (`sort=messages`: the most talkative first, the
/// silent last), a page at a time (`{"members", "next_cursor", "total"}`).
/// Robot groups have no member list: only those who spoke appear, with `in_group: null`.
pub async fn list_members(
    State(state): State<Arc<AppState>>,
    Path(chat_id): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let chat = ChatId::new(chat_id);
    let group = match super::group_changes::load_group(&state, &chat).await {
        Ok(group) => group,
        Err(refusal) => return Ok(*refusal),
    };
    let store = state.store.clone();
    let (roster, seen) =
        blocking(move || Ok((store.roster(&chat)?, store.members(&chat)?))).await?;
    let listed = group.account.is_some() || group.customer;
    let mut seen: std::collections::HashMap<String, crate::store::MemberRecord> =
        seen.into_iter().map(|m| (m.user_id.clone(), m)).collect();
    let mut members: Vec<serde_json::Value> = Vec::with_capacity(roster.len() + seen.len());
    for (user_id, name) in roster {
        let spoke = seen.remove(&user_id);
        let name = match (name.is_empty(), &spoke) {
            (true, Some(m)) => m.name.clone(),
            _ => name,
        };
        members.push(serde_json::json!({
            "user_id": user_id,
            "name": name,
            "in_group": true,
            "messages": spoke.as_ref().map_or(0, |m| m.message_count),
            "last_seen": spoke.map(|m| m.last_seen),
        }));
    }
    for member in seen.into_values() {
        members.push(serde_json::json!({
            "user_id": member.user_id,
            "name": member.name,
            "in_group": if listed { Some(false) } else { None },
            "messages": member.message_count,
            "last_seen": member.last_seen,
        }));
    }
    let by_messages = match query.sort.as_deref() {
        None | Some("" | "user_id") => false,
        Some("messages") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort {other:?} must be user_id or messages"
            )));
        }
    };
    // The order's key, also the cursor: most messages first pads the count's complement.
    let key = |m: &serde_json::Value| {
        let user = m["user_id"].as_str().unwrap_or_default();
        match by_messages {
            false => user.to_owned(),
            true => format!(
                "{:020}\u{1}{user}",
                u64::MAX - m["messages"].as_u64().unwrap_or(0)
            ),
        }
    };
    members.sort_by_key(key);
    let q = query
        .q
        .as_deref()
        .map(str::to_lowercase)
        .filter(|q| !q.trim().is_empty());
    let kept = members.into_iter().filter(|m| {
        q.as_deref().is_none_or(|q| {
            ["user_id", "name"]
                .iter()
                .any(|k| m[*k].as_str().is_some_and(|v| v.to_lowercase().contains(q)))
        })
    });
    let page = page(kept, key, &query.page())?;
    Ok(Json(serde_json::json!({
        "members": page.items,
        "next_cursor": page.next_cursor,
        "total": page.total,
    }))
    .into_response())
}
