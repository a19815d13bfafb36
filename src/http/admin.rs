//! The admin API (`/api/v1`, bearer token) and the unauthenticated health check.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tracing::{error, warn};

use super::AppState;
use crate::domain::{ChatId, GroupSettings, JoinScene, Joiner, Role, Sender, SettingsChange};
use crate::engine::scope::validate_tag;
use crate::store::{GroupRecord, GroupStatus, OutboxState};

/// `GET /healthz`: 200 while the service is serving.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

pub(super) fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": "unauthorized"})),
    )
        .into_response()
}

/// Checks `Authorization: Bearer <admin.token>` in constant time. With no token configured,
/// nobody is let in.
pub(super) fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = &state.admin_token else {
        return false;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::channels::bearer_token);
    match given {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes())) => true,
        _ => {
            warn!("admin API: missing or wrong bearer token");
            false
        }
    }
}

/// Runs `read` (blocking store work) off the async threads and answers its value as JSON, or
/// 500 when it failed.
pub(super) async fn blocking_json<T: serde::Serialize + Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(e)) => internal_error(e),
        Err(e) => internal_error(e),
    }
}

pub(super) fn internal_error(e: impl std::fmt::Display) -> Response {
    error!(error = %e, "admin API failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"error": "internal error"})),
    )
        .into_response()
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
    adopted_via: Option<String>,
    released_at: Option<DateTime<Utc>>,
    release_reason: Option<String>,
    members_seen: u64,
    messages: u64,
    last_message_at: Option<DateTime<Utc>>,
    /// The bot account that serves the group (bot-account channels).
    account: Option<String>,
    can_push: bool,
    #[serde(flatten)]
    settings: SettingsView,
}

/// A group's settings as the API shows them.
#[derive(Serialize)]
struct SettingsView {
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
            can_push: (g.webhook_url.is_some() || g.account.is_some())
                && g.status == GroupStatus::Adopted,
            account: g.account,
        }
    }
}

/// `GET /api/v1/groups`: every group the bot has been in.
pub async fn list_groups(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.groups()).await {
        Ok(Ok(groups)) => {
            let views: Vec<GroupView> = groups
                .into_iter()
                .map(|g| {
                    let settings = state.directory.get(&g.chat_id);
                    GroupView::new(g, &settings)
                })
                .collect();
            Json(views).into_response()
        }
        Ok(Err(e)) => internal_error(e),
        Err(e) => internal_error(e),
    }
}

/// One loaded rule as `GET /api/v1/rules` shows it.
#[derive(Serialize)]
struct RuleView {
    id: String,
    kind: &'static str,
    scope: String,
    #[serde(rename = "match")]
    mode: &'static str,
    patterns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cooldown_secs: Option<u64>,
    mentioned_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hours: Vec<String>,
    /// For commands: the lowest role that may use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    /// For moderation checks: what they do, and to whom.
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<&'static str>,
    enabled: bool,
}

/// `GET /api/v1/rules`: the rules in force.
pub async fn list_rules(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let scripts = state.scripts.current();
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let mut rules: Vec<RuleView> = scripts
        .keywords
        .rules()
        .iter()
        .map(|r| RuleView {
            id: r.id.clone(),
            kind: "keyword",
            scope: r.scope.to_string(),
            mode: r.mode.as_str(),
            patterns: r.patterns.clone(),
            priority: Some(r.priority),
            cooldown_secs: Some(r.cooldown.as_secs()),
            mentioned_only: r.mentioned_only,
            hours: r
                .hours
                .iter()
                .map(|w| format!("{}-{}", hm(w.start), hm(w.end)))
                .collect(),
            role: None,
            action: None,
            members: None,
            enabled: r.enabled,
        })
        .collect();
    rules.extend(scripts.commands.commands.iter().map(|c| RuleView {
        id: c.kind.key().to_owned(),
        kind: "command",
        scope: "global".into(),
        mode: "prefix",
        patterns: c.triggers.clone(),
        priority: None,
        cooldown_secs: None,
        mentioned_only: true,
        hours: Vec::new(),
        role: Some(c.role),
        action: None,
        members: None,
        enabled: true,
    }));
    rules.extend(scripts.welcome.templates.iter().map(|w| {
        let scene = w.scene.map_or("any", crate::domain::JoinScene::as_str);
        RuleView {
            id: format!("welcome:{scene}"),
            kind: "welcome",
            scope: w.scope.to_string(),
            mode: "join",
            patterns: vec![scene.to_owned()],
            priority: None,
            cooldown_secs: None,
            mentioned_only: false,
            hours: Vec::new(),
            role: None,
            action: None,
            members: None,
            enabled: w.enabled,
        }
    }));
    rules.extend(scripts.moderation.checks.iter().map(|c| {
        use crate::engine::moderation::{CheckKind, Members};
        RuleView {
            id: c.id.clone(),
            kind: "moderation",
            scope: c.scope.to_string(),
            mode: c.kind.name(),
            patterns: match &c.kind {
                CheckKind::Words(list) => list.words().to_vec(),
                CheckKind::Links { allow } | CheckKind::QrCodes { allow } => allow.clone(),
                CheckKind::Cards { kinds } => kinds.clone(),
                _ => Vec::new(),
            },
            priority: None,
            cooldown_secs: None,
            mentioned_only: false,
            hours: Vec::new(),
            role: None,
            action: Some(c.severity.as_str()),
            members: Some(match c.members {
                Members::All => "all",
                Members::Probation => "probation",
            }),
            enabled: true,
        }
    }));
    Json(rules).into_response()
}

/// `GET /api/v1/scripts/status`: which version of bot-scripts is in force, and the last
/// refused edit.
pub async fn scripts_status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    Json(state.scripts.status()).into_response()
}

pub(super) fn bad_request(reason: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": reason.into()})),
    )
        .into_response()
}

/// Checks the token, then the JSON body: the body, or the answer refusing the request.
pub(super) fn admit<T>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, Box<Response>> {
    if !authorized(state, headers) {
        return Err(Box::new(unauthorized()));
    }
    body.map(|Json(b)| b)
        .map_err(|e| Box::new(crate::channels::body_refusal(e.status(), &e, e.body_text())))
}

/// `GET /api/v1/groups/{chat_id}`: one group with its settings.
pub async fn get_group(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let chat = ChatId::new(chat_id);
    let store = state.store.clone();
    let key = chat.clone();
    match tokio::task::spawn_blocking(move || store.group(&key)).await {
        Ok(Ok(Some(group))) => {
            let settings = state.directory.get(&chat);
            Json(GroupView::new(group, &settings)).into_response()
        }
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such group", "settings": SettingsView::from(&*state.directory.get(&chat))})),
        )
            .into_response(),
        Ok(Err(e)) => internal_error(e),
        Err(e) => internal_error(e),
    }
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
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    body: Result<Json<TagsBody>, JsonRejection>,
) -> Response {
    let body = match admit(&state, &headers, body) {
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
    headers: HeaderMap,
    Path((chat_id, user_id)): Path<(String, String)>,
    body: Result<Json<RoleBody>, JsonRejection>,
) -> Response {
    let body = match admit(&state, &headers, body) {
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
    headers: HeaderMap,
    Path((chat_id, rule_id)): Path<(String, String)>,
    body: Result<Json<RuleSwitchBody>, JsonRejection>,
) -> Response {
    let body = match admit(&state, &headers, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let scripts = state.scripts.current();
    // Keyword rules, and scheduled jobs (switching one off opts the group out of it).
    let known = scripts.keywords.rules().iter().any(|r| r.id == rule_id)
        || scripts.jobs.iter().any(|j| j.name == rule_id);
    if !known {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no keyword rule or job {rule_id:?}")})),
        )
            .into_response();
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
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    body: Result<Json<JoinsBody>, JsonRejection>,
) -> Response {
    let body = match admit(&state, &headers, body) {
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
    match tokio::task::spawn_blocking(move || store.group(&key)).await {
        Ok(Ok(Some(g))) if g.status == GroupStatus::Adopted => {}
        Ok(Ok(_)) => {
            return (
                StatusCode::CONFLICT,
                Json(serde_json::json!({"error": "the bot has not adopted this group; joins are welcomed only in adopted groups"})),
            )
                .into_response();
        }
        Ok(Err(e)) => return internal_error(e),
        Err(e) => return internal_error(e),
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

/// One job as `GET /api/v1/jobs` shows it.
#[derive(Serialize)]
struct JobView {
    name: String,
    cron: String,
    timezone: String,
    /// `["all"]`, or the scopes targeted.
    targets: Vec<String>,
    quiet_hours: Vec<String>,
    spread_minutes: u64,
    catch_up_within_minutes: u64,
    enabled: bool,
    /// The next three slots, in the job's time zone.
    next: Vec<String>,
}

/// `GET /api/v1/jobs`: the scheduled jobs with their next fire times.
pub async fn list_jobs(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let scripts = state.scripts.current();
    let now = Utc::now();
    let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let jobs: Vec<JobView> = scripts
        .jobs
        .iter()
        .map(|j| JobView {
            name: j.name.clone(),
            cron: j.cron_text.clone(),
            timezone: j.timezone.name().to_owned(),
            targets: targets_view(&j.targets),
            quiet_hours: j
                .quiet_hours
                .iter()
                .map(|w| format!("{}-{}", hm(w.start), hm(w.end)))
                .collect(),
            spread_minutes: j.spread.as_secs() / 60,
            catch_up_within_minutes: j.catch_up_within.as_secs() / 60,
            enabled: j.enabled,
            next: j
                .next_slots(now, 3)
                .into_iter()
                .map(|t| t.with_timezone(&j.timezone).to_rfc3339())
                .collect(),
        })
        .collect();
    Json(jobs).into_response()
}

/// Targets as the API shows them: `["all"]` or the scopes.
pub(super) fn targets_view(targets: &crate::engine::jobs::Targets) -> Vec<String> {
    match targets {
        crate::engine::jobs::Targets::All => vec!["all".to_owned()],
        crate::engine::jobs::Targets::Scopes(scopes) => {
            scopes.iter().map(ToString::to_string).collect()
        }
    }
}

/// `POST /api/v1/jobs/{name}/run`: runs a job now for its current slot (the latest at or before
/// now). Groups already sent that slot are not sent it again. Answers `{"run_id": …, "runs":
/// […], "queued": n, "planned_at": …}` (one run per time zone the job runs in, its own first;
/// `queued` sends were new, each with `created_at` at or after `planned_at`).
pub async fn run_job(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(options): Query<RunOptions>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    if options.dry_run {
        return dry_run(&state, &name, options.slot).await;
    }
    match state.scheduler.run_now(&name, options.slot).await {
        // `run_id` is the run in the job's own time zone; groups with a time zone of their own
        // have their own slot, hence their own run, all listed in `runs`.
        Ok(runs) => {
            let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
            let queued: usize = runs.iter().map(|r| r.queued).sum();
            let planned_at = runs.iter().map(|r| r.at).min();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "run_id": ids.first(),
                    "runs": ids,
                    "queued": queued,
                    "planned_at": planned_at,
                })),
            )
                .into_response()
        }
        Err(e) => run_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    #[serde(default)]
    dry_run: bool,
    /// `current` (default: the latest slot at or before now) or `next` (the coming slot, sent
    /// now — for jobs whose last slot is months ago).
    #[serde(default)]
    slot: crate::runtime::scheduler::SlotChoice,
}

fn run_error(e: crate::runtime::scheduler::RunError) -> Response {
    use crate::runtime::scheduler::RunError;
    match e {
        e @ RunError::UnknownJob(_) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
        e @ (RunError::NoSlot(_) | RunError::NoNextSlot(_)) => bad_request(e.to_string()),
        e => internal_error(e),
    }
}

/// `POST /api/v1/jobs/{name}/run?dry_run=true`: the message every target would get for the
/// current slot, rendered, with the reason a send would be skipped; nothing is sent or recorded.
async fn dry_run(
    state: &AppState,
    name: &str,
    which: crate::runtime::scheduler::SlotChoice,
) -> Response {
    let sends = match state.scheduler.dry_run(name, which).await {
        Ok(sends) => sends,
        Err(e) => return run_error(e),
    };
    let targets: Vec<serde_json::Value> = sends
        .iter()
        .map(|s| {
            serde_json::json!({
                "group": s.chat.as_ref().map(ToString::to_string),
                "run_id": s.run,
                "not_before": s.not_before,
                "skip": s.skip,
                "message": s.message,
            })
        })
        .collect();
    Json(serde_json::json!({
        "job": name,
        "dry_run": true,
        "planned": targets.len(),
        "targets": targets,
    }))
    .into_response()
}

/// Which receipts `GET /api/v1/runs/{run_id}` returns.
#[derive(Deserialize)]
pub struct RunQuery {
    /// Only receipts in this state (`failed`, `pending`, …).
    state: Option<OutboxState>,
    /// Receipts after this one (the `receipts_next` of the previous page).
    after: Option<u64>,
    /// At most this many receipts (default 1,000, at most 10,000).
    limit: Option<usize>,
}

/// `GET /api/v1/runs/{run_id}?state=&after=&limit=`: a run's progress — counts over all its
/// sends (planned = delivered + failed + skipped + timed_out + pending) and a page of receipts,
/// one per group, with `receipts_next` to ask for the next page (`null` on the last).
pub async fn get_run(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(run_id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<RunQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let store = state.store.clone();
    let id = run_id.clone();
    let page = crate::store::ReceiptPage {
        state: query.state,
        after: query.after,
        limit: query.limit.unwrap_or(1000).clamp(1, 10_000),
    };
    let report = match tokio::task::spawn_blocking(move || store.run_report(&id, &page)).await {
        Ok(Ok(Some(report))) => report,
        Ok(Ok(None)) => {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"error": format!("no run {run_id:?}")})),
            )
                .into_response();
        }
        Ok(Err(e)) => return internal_error(e),
        Err(e) => return internal_error(e),
    };
    let (record, counts) = (&report.record, report.counts);
    Json(serde_json::json!({
        "run_id": record.run_id,
        "job": record.job,
        "slot": record.slot,
        "trigger": record.trigger,
        "state": if counts.pending == 0 { "done" } else { "running" },
        "planned": counts.planned,
        "delivered": counts.delivered,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "timed_out": counts.timed_out,
        "pending": counts.pending,
        "receipts": report.receipts.iter().map(|r| serde_json::json!({
            "group": r.chat.as_ref().map(ToString::to_string),
            "state": r.state,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "created_at": r.created_at,
        })).collect::<Vec<_>>(),
        "receipts_next": report.next,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct SendsQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/groups/{chat_id}/sends?limit=N`: the last sends to a group (default 50, at
/// most 500), newest first — what went out, what waits, what failed or expired, and why. The
/// destination (a webhook URL is a credential) is not shown.
pub async fn list_sends(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<SendsQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let chat = ChatId::new(chat_id);
    // An unknown group is a 404, not an empty list that looks like "nothing was sent".
    if let Err(refusal) = super::group_admin::load_group(&state, &chat).await {
        return *refusal;
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.sends_to(&chat, limit)).await {
        Ok(Ok(sends)) => Json(
            sends
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
                        },
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(Err(e)) => internal_error(e),
        Err(e) => internal_error(e),
    }
}

/// `GET /api/v1/accounts`: the bot accounts connected now (OneBot), with what their
/// implementation offers.
pub async fn list_accounts(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    Json(state.hub.accounts()).into_response()
}

/// `GET /api/v1/groups/{chat_id}/members`: the group's member list as its bot account last
/// reported it (`in_group`), merged with the members seen speaking (`messages`, `last_seen`).
/// Robot groups have no member list: only those who spoke appear, with `in_group: null`.
pub async fn list_members(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(chat_id): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let chat = ChatId::new(chat_id);
    let group = match super::group_admin::load_group(&state, &chat).await {
        Ok(group) => group,
        Err(refusal) => return *refusal,
    };
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        Ok((store.roster(&chat)?, store.members(&chat)?))
    })
    .await;
    let (roster, seen) = match read {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return internal_error(e),
        Err(e) => return internal_error(e),
    };
    let listed = group.account.is_some();
    let mut out: Vec<serde_json::Value> = Vec::new();
    for (user_id, name) in &roster {
        let spoke = seen.iter().find(|m| &m.user_id == user_id);
        out.push(serde_json::json!({
            "user_id": user_id,
            "name": if name.is_empty() { spoke.map_or("", |m| m.name.as_str()) } else { name.as_str() },
            "in_group": true,
            "messages": spoke.map_or(0, |m| m.message_count),
            "last_seen": spoke.map(|m| m.last_seen),
        }));
    }
    for member in seen
        .iter()
        .filter(|m| !roster.iter().any(|(id, _)| *id == m.user_id))
    {
        out.push(serde_json::json!({
            "user_id": member.user_id,
            "name": member.name,
            "in_group": if listed { Some(false) } else { None },
            "messages": member.message_count,
            "last_seen": member.last_seen,
        }));
    }
    Json(out).into_response()
}
