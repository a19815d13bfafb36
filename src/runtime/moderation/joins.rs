//! Moderation of joins: a member joining counts toward raid detection (the admins are told when
//! a raid starts — in the group, or, where the bot cannot post there (a WeCom customer group),
//! in the operators' alert group), and a blacklisted member is removed again before being
//! welcomed.

use chrono::{DateTime, Utc};
use tracing::warn;

use super::{Screened, blacklist_finding, carry_out, system_entry};
use crate::domain::{Action, Capabilities, Event};
use crate::engine;
use crate::engine::moderation::Severity;
use crate::runtime::Services;
use crate::store::{ModerationWrite, NewSend};

/// Queues `send` for the operators' alert group (nothing without one: the moderation log keeps
/// the finding either way).
async fn alert_operators(state: &Services, send: Option<NewSend>) {
    let Some(send) = send else {
        return;
    };
    let store = state.store.clone();
    let queued =
        tokio::task::spawn_blocking(move || store.write(|tx| tx.enqueue(send, Utc::now()))).await;
    match queued {
        Ok(Ok(entry)) => {
            if let Some(entry) = entry {
                state.outbox.dispatch(entry);
            }
        }
        Ok(Err(e)) => warn!(error = %e, "the operators' alert was not queued"),
        Err(e) => warn!(error = %e, "alert task failed"),
    }
}

/// A member joined: counts toward raid detection (the admins are told when a raid starts) and
/// keeps blacklisted members out (`acted`: they are not welcomed).
pub async fn screen_join(
    state: &Services,
    event: &Event,
    caps: Capabilities,
    now: DateTime<Utc>,
) -> Screened {
    let Some(chat) = event.chat_id() else {
        return Screened::default();
    };
    let scripts = state.scripts.current();
    let rules = &scripts.moderation;
    let moderator = &state.moderator;
    let mut posts = Vec::new();
    let mut writes = Vec::new();
    let raid = moderator
        .tracker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .join(chat, rules.raid, now);
    if let (Some(joins), Some(r)) = (raid, rules.raid) {
        let text = format!(
            "⚠️ 冲群警报：{} 秒内有 {joins} 人入群。接下来 {} 分钟，所有未受信任成员的消息按新成员标准从严检查。",
            r.within.as_secs(),
            r.lasts.as_secs() / 60
        );
        warn!(chat = %chat, joins, "raid mode");
        match crate::runtime::inbound::notice_post(state, chat, text.clone(), caps) {
            Some(post) => posts.push(post),
            // The group cannot be told: the operators are.
            None => {
                let key = format!("raid:{}:{chat}:{}", event.bot, now.timestamp_millis());
                alert_operators(
                    state,
                    state.alerts.send(key, chat, "notify_admins", text, now),
                )
                .await;
            }
        }
        let entry = system_entry(
            chat,
            &event.from.user_id,
            "raid",
            now,
            format!("{joins} joins"),
        );
        writes.push(ModerationWrite::entry(chat, &event.from.user_id, entry));
    }
    let user = event.from.user_id.as_str();
    let settings = state.directory.get(chat);
    let trusted = scripts.commands.role_of(&settings, user) > crate::domain::Role::Member
        || rules.approved.contains(user);
    if let Some(ban) = moderator.blacklisted(user)
        && !trusted
    {
        let finding = blacklist_finding(state, &ban);
        let reason = format!("黑名单成员：{}", finding.evidence);
        let (actions, _) = engine::degrade(
            vec![Action::RemoveMember {
                user_id: user.to_owned(),
                name: event.from.name.clone(),
                reason: reason.clone(),
            }],
            caps,
            &settings,
        );
        let (done, removal_posts) = carry_out(state, event, actions, caps, "").await;
        posts.extend(removal_posts);
        let mut member = moderator.member(&state.store, chat, user).await;
        member.blacklist_checked = true;
        moderator.keep(chat, user, member);
        let mut entry = system_entry(chat, user, "blacklist", now, finding.evidence);
        entry.name = event.from.name.clone();
        entry.reason = finding.reason;
        entry.action = Severity::Remove.as_str().into();
        entry.outcome = done;
        writes.push(ModerationWrite::entry(chat, user, entry));
        return Screened {
            posts,
            acted: true,
            writes,
        };
    }
    Screened {
        posts,
        acted: false,
        writes,
    }
}
