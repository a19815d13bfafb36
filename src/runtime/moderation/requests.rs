//! What people ask of moderation, in the chat (commands) or through the admin API: pardon a
//! member (off the blacklist, warnings cleared everywhere), trust or stop trusting a member in a
//! group, report a member's recent messages to the admins, appeal a decision. Each is written
//! to the moderation log with who asked.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{persist, shorten, system_entry};
use crate::domain::{Capabilities, ChatId, Event, ModerationRequest};
use crate::engine::RecentMessage;
use crate::runtime::Services;
use crate::runtime::pipeline::Post;
use crate::store::{LogFilter, StoreError};

/// How many of a reported member's recent messages the admins are shown.
const REPORTED_MESSAGES: usize = 3;

/// What a pardon changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pardoned {
    pub user_id: String,
    /// They were on the blacklist.
    pub was_blacklisted: bool,
    /// Groups where their warnings were cleared.
    pub warnings_cleared_in: Vec<ChatId>,
}

/// Takes `user` off the blacklist and clears their warnings in every group; logged in `chat`
/// (where it was asked, or the group they were banned from) as done `by`.
pub async fn pardon(
    state: &Services,
    user: &str,
    chat: Option<&ChatId>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Pardoned, StoreError> {
    let store = state.store.clone();
    let u = user.to_owned();
    let (was_blacklisted, cleared) = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let was = tx.blacklist_remove(&u)?;
            let cleared = tx.clear_warnings_everywhere(&u)?;
            Ok((was, cleared))
        })
    })
    .await
    .map_err(|e| StoreError::Db(e.to_string()))??;
    let moderator = &state.moderator;
    let banned_in = moderator
        .blacklist
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(user)
        .map(|e| e.chat_id);
    moderator
        .members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(_, u), _| u != user);
    info!(
        user,
        by,
        was_blacklisted,
        groups = cleared.len(),
        "pardoned"
    );
    if let Some(chat) = chat
        .cloned()
        .or(banned_in)
        .or_else(|| cleared.first().cloned())
    {
        let mut entry = system_entry(&chat, user, "pardon", now, String::new());
        entry.by = by.to_owned();
        entry.action = "pardon".into();
        entry.outcome = vec![format!(
            "{}warnings cleared in {} groups",
            if was_blacklisted {
                "off the blacklist; "
            } else {
                ""
            },
            cleared.len()
        )];
        persist(state, &chat, user, None, entry, None).await;
    }
    Ok(Pardoned {
        user_id: user.to_owned(),
        was_blacklisted,
        warnings_cleared_in: cleared,
    })
}

/// Trusts (or stops trusting) `user` in `chat`.
pub async fn approve(
    state: &Services,
    chat: &ChatId,
    user: &str,
    approved: bool,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let store = state.store.clone();
    let (c, u) = (chat.clone(), user.to_owned());
    tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let mut record = tx.standing(&c, &u)?;
            record.approved = approved;
            tx.put_standing(&c, &u, &record)
        })
    })
    .await
    .map_err(|e| StoreError::Db(e.to_string()))??;
    state.moderator.forget(chat, user);
    let check = if approved { "approve" } else { "unapprove" };
    info!(chat = %chat, user, by, approved, "trust changed");
    let mut entry = system_entry(chat, user, check, now, String::new());
    entry.by = by.to_owned();
    entry.action = check.into();
    persist(state, chat, user, None, entry, None).await;
    Ok(())
}

/// Performs a request made by a command in `event`'s group; returns the posts to make (the
/// notices of reports and appeals). `recent` is the conversation's last messages.
pub async fn perform(
    state: &Services,
    event: &Event,
    request: ModerationRequest,
    recent: &[RecentMessage],
    caps: Capabilities,
    now: DateTime<Utc>,
) -> Vec<Post> {
    let Some(chat) = event.chat_id() else {
        return Vec::new();
    };
    let by = event.from.user_id.as_str();
    let who = crate::engine::vars::display_name(&event.from);
    // Who asked, as a notice names them: 张三（zhangsan）.
    let asker = crate::engine::vars::name_and_id(&event.from.name, by);
    let failed = |e: StoreError| {
        tracing::error!(chat = %chat, error = %e, "moderation request not saved");
        let text = format!("{who} 的群管理操作没有保存成功，请稍后再试或在管理后台处理。");
        crate::runtime::inbound::notice_post(state, chat, text, caps)
            .into_iter()
            .collect()
    };
    match request {
        ModerationRequest::Pardon { user_id } => {
            match pardon(state, &user_id, Some(chat), by, now).await {
                Ok(_) => Vec::new(),
                Err(e) => failed(e),
            }
        }
        ModerationRequest::Approve { user_id, approved } => {
            match approve(state, chat, &user_id, approved, by, now).await {
                Ok(()) => Vec::new(),
                Err(e) => failed(e),
            }
        }
        ModerationRequest::Report { user_id, reason } => {
            let reported = member_name(state, chat, &user_id).await;
            let reported_as = crate::engine::vars::name_and_id(&reported, &user_id);
            let said: Vec<String> = recent
                .iter()
                .rev()
                .filter(|m| m.user_id == user_id)
                .take(REPORTED_MESSAGES)
                .map(|m| format!("· {}", shorten(&m.text, 80)))
                .collect();
            let evidence = if said.is_empty() {
                "（最近没有看到 TA 的消息）".to_owned()
            } else {
                said.join("\n")
            };
            // Never into the group: that would name the reporter in front of everyone. Neither
            // the robot nor a bot account posting into the group reaches admins privately, so
            // the report goes to the operators' alert target and the moderation log.
            let settings = state.directory.get(chat);
            let group = match settings.name.trim() {
                "" => String::new(),
                name => format!("群「{name}」里，"),
            };
            let text = format!(
                "📣 {group}{asker} 举报了 {reported_as}{}。TA 最近的消息：\n{evidence}",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!("（{reason}）")
                }
            );
            let alert = state.alerts.send(
                format!("report:{}:{}:{user_id}", event.bot, event.msg_id),
                chat,
                "report",
                text,
                now,
            );
            let mut entry = system_entry(chat, &user_id, "report", now, evidence);
            entry.name = reported;
            entry.by = by.to_owned();
            entry.reason = reason;
            entry.action = "notify".into();
            entry.outcome = vec![match alert {
                Some(_) => "queued for the operators' alert group".into(),
                None => "logged only (no [alerts] webhook_url)".into(),
            }];
            // The log entry and the alert in one transaction: both are kept, or neither.
            let store = state.store.clone();
            let written = tokio::task::spawn_blocking(move || {
                store.write(|tx| {
                    tx.log_moderation(&entry)?;
                    match alert {
                        Some(send) => tx.enqueue(send, now),
                        None => Ok(None),
                    }
                })
            })
            .await;
            match written {
                Ok(Ok(queued)) => {
                    if let Some(entry) = queued {
                        state.outbox.dispatch(entry);
                    }
                    Vec::new()
                }
                Ok(Err(e)) => failed(e),
                Err(e) => failed(StoreError::Db(e.to_string())),
            }
        }
        ModerationRequest::Appeal { reason } => {
            let last = last_decision(state, chat, by).await;
            let text = format!(
                "🙋 {asker} 申诉：{}。{}",
                if reason.is_empty() {
                    "（未写理由）"
                } else {
                    &reason
                },
                last.map_or(String::new(), |l| format!("最近一次处理：{l}。"))
            );
            let mut entry = system_entry(chat, by, "appeal", now, String::new());
            entry.name = event.from.name.clone();
            entry.by = by.to_owned();
            entry.reason = reason;
            entry.action = "notify".into();
            entry.outcome = vec!["admins told".into()];
            persist(state, chat, by, None, entry, None).await;
            crate::runtime::inbound::notice_post(state, chat, text, caps)
                .into_iter()
                .collect()
        }
    }
}

/// The latest finding about `user` in `chat`, described for an appeal.
async fn last_decision(state: &Services, chat: &ChatId, user: &str) -> Option<String> {
    let store = state.store.clone();
    let filter = LogFilter {
        chat_id: Some(chat.clone()),
        user_id: Some(user.to_owned()),
        before: None,
        limit: 20,
        ..LogFilter::default()
    };
    let entries = tokio::task::spawn_blocking(move || store.moderation_log(&filter))
        .await
        .ok()?
        .ok()?;
    entries
        .into_iter()
        .find(|e| e.by.is_empty() && !e.text.is_empty())
        .map(|e| format!("{}（{}，{}）", e.reason, e.check, e.action))
}

/// The name `user` goes by in `chat`: as last seen speaking, else as the bot account's member
/// list has it (empty when the store knows neither).
pub(super) async fn member_name(state: &Services, chat: &ChatId, user: &str) -> String {
    let store = state.store.clone();
    let (chat, user) = (chat.clone(), user.to_owned());
    tokio::task::spawn_blocking(move || -> Result<String, StoreError> {
        let spoke = store.member(&chat, &user)?.map(|m| m.name);
        match spoke.filter(|name| !name.is_empty()) {
            Some(name) => Ok(name),
            None => Ok(store.roster_name(&chat, &user)?.unwrap_or_default()),
        }
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default()
}
