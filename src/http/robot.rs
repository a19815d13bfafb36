//! HTTP handlers for `/wecom/robot/{bot_id}`: URL verification (GET) and message callbacks
//! (POST). Everything slow happens after the answer, in the pipeline.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tracing::{debug, error, info, warn};

use super::AppState;
use crate::channels::wecom::robot::{CallbackError, RobotEndpoint, parse_query};
use crate::dedupe::dedupe_key;
use crate::domain::{Action, Capabilities, ChatId, Event, EventKind, Reply};
use crate::engine::{self, GroupStats, GroupView, MemberBrief, RecentMessage};
use crate::pipeline::{Post, Work, unix_now};
use crate::store::DedupeRecord;

fn endpoint<'a>(state: &'a AppState, bot_id: &str) -> Option<&'a Arc<RobotEndpoint>> {
    let found = state.robots.get(bot_id);
    if found.is_none() {
        warn!(bot = %bot_id, "callback for an unknown bot");
    }
    found
}

fn refuse(bot: &str, e: &CallbackError) -> Response {
    warn!(bot = %bot, class = e.class(), code = ?e.code(), error = %e, "callback refused");
    StatusCode::from_u16(e.status())
        .unwrap_or(StatusCode::BAD_REQUEST)
        .into_response()
}

/// `GET /wecom/robot/{bot_id}`: answers WeCom's URL verification with the bare plaintext.
pub async fn verify_url(
    State(state): State<Arc<AppState>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(endpoint) = endpoint(&state, &bot_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let result = parse_query(query.as_deref(), true)
        .and_then(|q| endpoint.verify_url(&q, Utc::now().timestamp()));
    match result {
        Ok(plaintext) => {
            info!(bot = %bot_id, "callback URL verified");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                plaintext,
            )
                .into_response()
        }
        Err(e) => refuse(&bot_id, &e),
    }
}

/// `POST /wecom/robot/{bot_id}`: verify, decrypt, parse, de-duplicate, queue, answer.
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Path(bot_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(endpoint) = endpoint(&state, &bot_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let query = match parse_query(query.as_deref(), false) {
        Ok(q) => q,
        Err(e) => return refuse(&bot_id, &e),
    };
    let event = match endpoint.open(&query, &body, Utc::now()) {
        Ok(event) => event,
        Err(e) => return refuse(&bot_id, &e),
    };
    if let EventKind::Unknown { msg_type } = &event.kind {
        info!(bot = %bot_id, msg_id = %event.msg_id, msg_type = %msg_type,
            "message kind not handled; acknowledged");
        return StatusCode::OK.into_response();
    }

    let now = Utc::now();
    let conversation = match event.chat_id() {
        Some(chat) => chat.to_string(),
        None => format!("direct:{}", event.from.user_id),
    };
    // One event of a conversation at a time, in arrival order: a command's change is in force
    // for the next message, and a retry waits for the original to finish.
    let mut lane = state.lanes.enter(&conversation).await;
    let key = dedupe_key(&event.bot, &event.msg_id);
    if let Some(earlier) = state.dedupe.get(&key) {
        info!(bot = %bot_id, msg_id = %event.msg_id, "retry of a handled message; same answer");
        return respond(endpoint, &query, earlier.reply.as_ref(), &bot_id);
    }
    let decided = decide(&state, &event, &conversation, lane.recent(), now).await;
    if let Some(text) = engine::heard_text(&event) {
        lane.remember(RecentMessage {
            user_id: event.from.user_id.clone(),
            text,
            at: now,
        });
    }
    let mut reply = None;
    let mut posts = Vec::new();
    let mut changes = Vec::new();
    for action in decided {
        match action {
            Action::Reply(r) => reply = Some(r),
            Action::Post { message, purpose } => posts.push(Post { message, purpose }),
            Action::Settings(change) => changes.push(change),
            Action::StartCooldown { rule, secs } => {
                debug!(bot = %bot_id, msg_id = %event.msg_id, rule = %rule, "keyword reply");
                state.cooldowns.start(&conversation, &rule, now, secs);
            }
            // `degrade` turned these into posts for this channel.
            other @ (Action::NotifyAdmins { .. } | Action::RemoveMember { .. }) => {
                warn!(bot = %bot_id, action = ?other, "action not performed by the group robot")
            }
        }
    }
    if let (Some(chat), false) = (event.chat_id(), changes.is_empty()) {
        match state.directory.change(chat, changes).await {
            Ok(_) => {
                info!(bot = %bot_id, chat = %chat, by = %event.from.user_id, "group settings changed")
            }
            Err(e) => {
                error!(bot = %bot_id, chat = %chat, error = %e, "group settings not saved");
                // Tell the member, and let a retry of this message try again.
                let scripts = state.scripts.current();
                let failed = scripts.commands.replies.as_ref().map(|r| &r.failed);
                let settings = state.directory.get(chat);
                let vars = || {
                    let role = scripts.commands.role_of(&settings, &event.from.user_id);
                    engine::vars::base(&event.from, role, Some(chat), &settings, now)
                };
                let reply = failed.and_then(|m| {
                    m.reply(&scripts.templates, vars, &event.from.user_id)
                        .map_err(|e| error!(error = %e, "the failure answer did not render"))
                        .ok()
                });
                return respond(endpoint, &query, reply.as_ref(), &bot_id);
            }
        }
    }
    let record = DedupeRecord {
        at: unix_now(),
        reply,
    };
    state.dedupe.insert_if_new(&key, record.clone());
    debug!(bot = %bot_id, msg_id = %event.msg_id, chat = ?event.chat_id(), "accepted");
    let reply = record.reply.clone();
    let work = Work::Event {
        event: Box::new(event),
        dedupe_key: key.clone(),
        dedupe: record,
        posts,
    };
    if state.pipeline.submit(work).await.is_err() {
        // Not recorded: let WeCom's retry be handled as new once we are back.
        state.dedupe.forget(&key);
        error!(bot = %bot_id, "pipeline stopped; callback not accepted");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    respond(endpoint, &query, reply.as_ref(), &bot_id)
}

/// Runs the engine on `event` with the group's view, and fits the actions to the group robot.
async fn decide(
    state: &AppState,
    event: &Event,
    conversation: &str,
    recent: &[RecentMessage],
    now: chrono::DateTime<Utc>,
) -> Vec<Action> {
    let scripts = state.scripts.current();
    let settings = event
        .chat_id()
        .map(|chat| state.directory.get(chat))
        .unwrap_or_default();
    // Commands may name members and show counters: only they pay for reading the store.
    let (members, stats) = match event.chat_id() {
        Some(chat) if engine::is_command(event, &scripts) => group_facts(state, chat, now).await,
        _ => (Vec::new(), None),
    };
    let cooling = |rule: &str| state.cooldowns.is_cooling(conversation, rule, now);
    let view = GroupView {
        settings: &settings,
        recent,
        stats: stats.as_ref(),
        members: &members,
        cooling: &cooling,
    };
    let decision = engine::decide(event, &view, &scripts, now);
    for problem in &decision.problems {
        error!(bot = %event.bot, msg_id = %event.msg_id, error = %problem,
            "a template failed to render; that message is not sent");
    }
    let (actions, notes) = engine::degrade(decision.actions, Capabilities::WECOM_ROBOT, &settings);
    for note in notes {
        warn!(bot = %event.bot, chat = ?event.chat_id(), "{note}");
    }
    actions
}

/// The group's members and counters from the store (for commands).
async fn group_facts(
    state: &AppState,
    chat: &ChatId,
    now: chrono::DateTime<Utc>,
) -> (Vec<MemberBrief>, Option<GroupStats>) {
    let store = state.store.clone();
    let chat = chat.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let members = store.members(&chat)?;
        let group = store.group(&chat)?;
        let today = store.daily(&chat, now)?;
        Ok((members, group, today))
    })
    .await;
    match read {
        Ok(Ok((members, group, today))) => {
            let members = members
                .into_iter()
                .map(|m| MemberBrief {
                    user_id: m.user_id,
                    name: m.name,
                })
                .collect();
            let stats = GroupStats {
                members_seen: group.as_ref().map_or(0, |g| g.members_seen),
                messages: group.as_ref().map_or(0, |g| g.messages),
                today_messages: today.messages,
                today_speakers: today.speakers,
            };
            (members, Some(stats))
        }
        Ok(Err(e)) => {
            warn!(error = %e, "group facts unreadable; the command runs without them");
            (Vec::new(), None)
        }
        Err(e) => {
            warn!(error = %e, "group facts task failed");
            (Vec::new(), None)
        }
    }
}

fn respond(
    endpoint: &RobotEndpoint,
    query: &crate::channels::wecom::robot::CallbackQuery,
    reply: Option<&Reply>,
    bot_id: &str,
) -> Response {
    let Some(reply) = reply else {
        return StatusCode::OK.into_response();
    };
    match endpoint.seal(reply, query, rand::random()) {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            // Nothing the member sent causes this; an empty answer is better than a retry storm.
            error!(bot = %bot_id, error = %e, "could not seal the passive reply");
            StatusCode::OK.into_response()
        }
    }
}
