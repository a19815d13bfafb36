//! What people ask of moderation, in the chat (commands) or through the admin API: pardon a
//! member (off the blacklist, warnings cleared everywhere), trust or stop trusting a member in a
//! group, report a member's recent messages to the admins, appeal a decision. Each is written
//! to the moderation log with who asked.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{persist, shorten, system_entry};
use crate::domain::{AccountKey, Capabilities, ChatId, Event, ModerationRequest};
use crate::engine::RecentMessage;
use crate::runtime::Services;
use crate::runtime::alerts::private_message;
use crate::runtime::pipeline::Post;
use crate::store::{LogFilter, NewSend, StoreError};

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

/// A member's report of another, as filed.
struct Report<'a> {
    user_id: &'a str,
    reason: String,
    /// The reporter, as a notice names them.
    asker: &'a str,
    /// The conversation's last messages (the reported member's are quoted).
    recent: &'a [RecentMessage],
}

impl Report<'_> {
    /// Files the report: in the moderation log, to the operators' alert target, and — where the
    /// channel can message people privately — to the group's owner and admins (not the reporter
    /// nor the reported), all queued in one transaction with the log entry. Never into the
    /// group: that would name the reporter in front of everyone.
    async fn file(
        self,
        state: &Services,
        event: &Event,
        chat: &ChatId,
        caps: Capabilities,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let user_id = self.user_id;
        let reported = member_name(state, chat, user_id).await;
        let reported_as = crate::engine::vars::name_and_id(&reported, user_id);
        let said: Vec<String> = self
            .recent
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
        let settings = state.directory.get(chat);
        let group = match settings.name.trim() {
            "" => String::new(),
            name => format!("群「{name}」里，"),
        };
        let text = format!(
            "📣 {group}{} 举报了 {reported_as}{}。TA 最近的消息：\n{evidence}",
            self.asker,
            if self.reason.is_empty() {
                String::new()
            } else {
                format!("（{}）", self.reason)
            }
        );
        let key = format!("report:{}:{}:{user_id}", event.bot, event.msg_id);
        let alert = state
            .alerts
            .send(key.clone(), chat, "report", text.clone(), now);
        let by = event.from.user_id.as_str();
        let recipients = match (&event.account, caps.can_message_privately) {
            (Some(_), true) => settings.report_recipients(&[by, user_id]),
            _ => Vec::new(),
        };
        let private: Vec<NewSend> = match &event.account {
            Some(account) => {
                let via = AccountKey {
                    bot: event.bot.clone(),
                    user_id: account.clone(),
                };
                let text = match group.is_empty() {
                    true => format!("{text}\n（群：{chat}）"),
                    false => text,
                };
                recipients
                    .iter()
                    .map(|to| {
                        let key = format!("{key}:to:{to}");
                        private_message(&via, chat, to, key, "report", text.clone(), now)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        let mut entry = system_entry(chat, user_id, "report", now, evidence);
        entry.name = reported;
        entry.by = by.to_owned();
        entry.reason = self.reason;
        entry.action = "notify".into();
        if !private.is_empty() {
            entry.outcome.push(format!(
                "queued as a private message to {}",
                recipients.join(", ")
            ));
        }
        entry.outcome.push(match alert {
            Some(_) => "queued for the operators' alert group".into(),
            None => "no [alerts] webhook_url: not sent to the operators".into(),
        });
        // The log entry and the messages in one transaction: all are kept, or none.
        let store = state.store.clone();
        let sends: Vec<NewSend> = alert.into_iter().chain(private).collect();
        let queued = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                tx.log_moderation(&entry)?;
                let mut queued = Vec::new();
                for send in sends {
                    queued.extend(tx.enqueue(send, now)?);
                }
                Ok(queued)
            })
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
        for entry in queued {
            state.outbox.dispatch(entry);
        }
        Ok(())
    }
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
            let report = Report {
                user_id: &user_id,
                reason,
                asker: &asker,
                recent,
            };
            match report.file(state, event, chat, caps, now).await {
                Ok(()) => Vec::new(),
                Err(e) => failed(e),
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
