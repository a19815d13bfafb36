//! Keeping a self-built app's customer groups in step with WeCom: at start and every
//! `sync_interval_minutes`, every group the app can see (`groupchat/list`, all pages) is read
//! (`groupchat/get`, a few at a time) and adopted (`adopted_via = "groupchat_list"`), with its
//! owner (WeCom's 群主 is the group's owner here), its admins, its name (unless an operator gave
//! one) and its member list; leaves nobody reported are found by comparing lists and handled as
//! leaves. A group no longer listed is released; a group an operator released stays released.
//!
//! Groups are read and written in chunks: a corp with 5,000 groups of 200 members never holds
//! every member list at once. A group whose read fails is adopted from the list alone and read
//! again next time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tracing::{info, warn};

use super::{CustomerGroups, DISMISSED_REASON};
use crate::domain::{
    BotId, ChatId, Conversation, Event, EventKind, JoinScene, Role, Sender, SettingsChange,
};
use crate::runtime::Services;
use crate::store::{AdoptedVia, GroupRecord, GroupStatus, StoreError};
use crate::wire::wecom::app::{ApiError, CAPABILITIES, GroupChat};

/// `groupchat/get` calls in flight at once.
const READ_CONCURRENCY: usize = 8;

/// Groups written per store transaction.
const CHUNK: usize = 100;

/// Why a group the app no longer lists is released.
pub const UNLISTED_REASON: &str =
    "no longer in the app's customer-group list (dismissed, or its owner left the corp)";

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub listed: usize,
    pub read: usize,
    pub adopted: usize,
    pub released: usize,
    /// Groups whose `groupchat/get` failed (kept from the list alone).
    pub failed: usize,
}

/// Syncs every `settings.sync_interval_secs` until the service stops.
pub async fn run(app: Arc<CustomerGroups>) {
    let every = Duration::from_secs(app.settings.sync_interval_secs);
    loop {
        sync_all(&app).await;
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = app.stop.cancelled() => return,
        }
    }
}

/// Reads every customer group of the app and brings the store up to date; `None` when the list
/// could not be read (nothing is released then).
pub async fn sync_all(app: &CustomerGroups) -> Option<SyncReport> {
    let started = std::time::Instant::now();
    let ids = match app.api(app.client.group_chat_ids()).await {
        Ok(ids) => ids,
        Err(e) => {
            warn!(bot = %app.bot, error = %e, class = e.class(),
                "groupchat/list failed: the customer groups are not synced now");
            return None;
        }
    };
    let mut report = SyncReport {
        listed: ids.len(),
        ..SyncReport::default()
    };
    let listed: HashSet<String> = ids.iter().cloned().collect();
    let mut reads = futures_util::stream::iter(ids)
        .map(|id| async move {
            let read = app.api(app.client.group_chat(&id)).await;
            (id, read)
        })
        .buffer_unordered(READ_CONCURRENCY)
        .chunks(CHUNK);
    while let Some(chunk) = reads.next().await {
        if app.stop.is_cancelled() {
            return None;
        }
        let counted = apply(app, chunk, None).await;
        report.read += counted.read;
        report.adopted += counted.adopted;
        report.failed += counted.failed;
    }
    report.released = release_unlisted(&app.services, &app.bot, listed).await;
    info!(bot = %app.bot, listed = report.listed, read = report.read, adopted = report.adopted,
        released = report.released, failed = report.failed,
        ms = started.elapsed().as_millis() as u64, "customer groups synced");
    Some(report)
}

/// Reads `chat` again (after a callback) and brings the store up to date.
/// With `unlisted_joins`, the event said members joined without naming them: those the new
/// list shows and the last did not are handled as joins (with that scene).
pub async fn refresh_group(app: &CustomerGroups, chat: &ChatId, unlisted_joins: Option<JoinScene>) {
    let read = app.api(app.client.group_chat(chat.as_str())).await;
    if app.stop.is_cancelled() {
        return;
    }
    apply(app, vec![(chat.as_str().to_owned(), read)], unlisted_joins).await;
}

/// What the store learned of one group.
struct Learned {
    chat: ChatId,
    group: Option<GroupChat>,
    /// Members on the last list who are not on this one (none on a first list).
    left: Vec<String>,
    /// Members on this list who were not on the last one, when they are to be handled as joins.
    joined: Vec<(String, String)>,
}

/// Writes one chunk of reads; returns its counts.
async fn apply(
    app: &CustomerGroups,
    chunk: Vec<(String, Result<GroupChat, ApiError>)>,
    unlisted_joins: Option<JoinScene>,
) -> SyncReport {
    let mut report = SyncReport::default();
    let mut reads = Vec::with_capacity(chunk.len());
    for (id, read) in chunk {
        match read {
            Ok(group) => {
                report.read += 1;
                reads.push((ChatId::new(&id), Some(group)));
            }
            Err(e) => {
                report.failed += 1;
                warn!(bot = %app.bot, chat = %id, error = %e, class = e.class(),
                    "groupchat/get failed: the group is kept from the list and read again next time");
                reads.push((ChatId::new(&id), None));
            }
        }
    }
    let store = app.services.store.clone();
    let bot = app.bot.clone();
    let written = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let now = Utc::now();
            let mut adopted = 0;
            let mut learned = Vec::new();
            for (chat, read) in reads {
                let existing = tx.group(&chat)?;
                let back = existing.as_ref().is_none_or(|g| {
                    g.status == GroupStatus::Released
                        && matches!(
                            g.release_reason.as_deref(),
                            Some(UNLISTED_REASON | DISMISSED_REASON)
                        )
                });
                let mut group = existing
                    .clone()
                    .unwrap_or_else(|| GroupRecord::new(chat.clone(), bot.clone()));
                if back {
                    group.customer = true;
                    group.bot = bot.clone();
                    group.adopt(AdoptedVia::GroupchatList, now, None);
                    adopted += 1;
                }
                let ours = group.status == GroupStatus::Adopted && group.bot == bot;
                if existing.as_ref() != Some(&group) {
                    tx.put_group(&group)?;
                }
                let Some(read) = read.filter(|_| ours) else {
                    continue;
                };
                let members: Vec<(String, String)> = read
                    .member_list
                    .iter()
                    .map(|m| (m.userid.clone(), m.display_name().to_owned()))
                    .collect();
                let first = tx.roster_is_empty(&chat)?;
                let diff = tx.roster_replace(&chat, &members)?;
                let joined = match (first, unlisted_joins) {
                    (false, Some(_)) => members
                        .into_iter()
                        .filter(|(id, _)| diff.joined.contains(id))
                        .collect(),
                    _ => Vec::new(),
                };
                learned.push(Learned {
                    chat,
                    left: if first { Vec::new() } else { diff.left },
                    joined,
                    group: Some(read),
                });
            }
            Ok::<_, StoreError>((adopted, learned))
        })
    })
    .await;
    let learned = match written {
        Ok(Ok((adopted, learned))) => {
            report.adopted = adopted;
            learned
        }
        Ok(Err(e)) => {
            warn!(bot = %app.bot, error = %e, "customer groups not stored: the store failed");
            return report;
        }
        Err(e) => {
            warn!(bot = %app.bot, error = %e, "customer group task failed");
            return report;
        }
    };
    save_settings(&app.services, &learned).await;
    for group in &learned {
        handle_moves(app, group, unlisted_joins).await;
    }
    report
}

/// The owner, admins and name WeCom says, where the settings differ: WeCom's 群主 owns the
/// group; its admins are 大当家 (roles an operator gave stay); the name fills an empty one.
async fn save_settings(services: &Services, learned: &[Learned]) {
    let mut each = Vec::new();
    for l in learned {
        let Some(group) = &l.group else { continue };
        let settings = services.directory.get(&l.chat);
        let mut changes = Vec::new();
        let name_of = |user: &str| {
            group
                .member_list
                .iter()
                .find(|m| m.userid == user)
                .map(|m| m.display_name().to_owned())
                .unwrap_or_default()
        };
        if !group.owner.is_empty() && settings.owner.as_deref() != Some(group.owner.as_str()) {
            changes.push(SettingsChange::SetOwner {
                user_id: group.owner.clone(),
                name: name_of(&group.owner),
            });
        }
        for admin in &group.admin_list {
            if admin != &group.owner && settings.role_of(admin) < Role::Admin {
                changes.push(SettingsChange::SetRole {
                    user_id: admin.clone(),
                    name: name_of(admin),
                    role: Role::Admin,
                });
            }
        }
        if settings.name.is_empty() && !group.name.is_empty() {
            changes.push(SettingsChange::SetName(group.name.clone()));
        }
        if !changes.is_empty() {
            each.push((l.chat.clone(), changes));
        }
    }
    if each.is_empty() {
        return;
    }
    if let Err(e) = services.directory.change_each(each).await {
        warn!(error = %e, "customer groups' owners and names not saved");
    }
}

/// Handles the leaves a list showed and no callback reported (the service was down, WeCom
/// dropped the event) as leaves — and, after an event that said members joined without naming
/// them, the new members as joins.
async fn handle_moves(app: &CustomerGroups, learned: &Learned, join_scene: Option<JoinScene>) {
    if !learned.left.is_empty() {
        info!(bot = %app.bot, chat = %learned.chat, left = ?learned.left,
            "member list synced; leaves nobody reported");
    }
    let now = Utc::now();
    let leaves = learned.left.iter().map(|user| {
        let kind = EventKind::MemberLeft {
            kicked: false,
            operator: String::new(),
        };
        (
            format!(
                "sync-left:{}:{user}:{}",
                learned.chat,
                now.timestamp_millis()
            ),
            user.clone(),
            String::new(),
            kind,
        )
    });
    let joins = learned.joined.iter().map(|(user, name)| {
        let kind = EventKind::MemberJoined {
            scene: join_scene.unwrap_or(JoinScene::Unknown),
            operator: String::new(),
        };
        (
            format!(
                "sync-joined:{}:{user}:{}",
                learned.chat,
                now.timestamp_millis()
            ),
            user.clone(),
            name.clone(),
            kind,
        )
    });
    for (msg_id, user_id, name, kind) in leaves.chain(joins) {
        let event = Event {
            bot: app.bot.clone(),
            msg_id,
            conversation: Conversation::Group(learned.chat.clone()),
            from: Sender {
                user_id,
                name,
                ..Sender::default()
            },
            webhook_url: None,
            account: None,
            message_id: None,
            kind,
            mentioned: false,
            received_at: now,
        };
        if crate::runtime::inbound::handle(&app.services, event, CAPABILITIES)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Releases `chat` (a customer group of `bot`) for `reason`, when it is adopted; an error when
/// that could not be stored (the caller must not say it was done).
pub async fn release(
    services: &Services,
    bot: &BotId,
    chat: &ChatId,
    reason: &str,
) -> Result<(), StoreError> {
    let store = services.store.clone();
    let (bot_id, chat_id, why) = (bot.clone(), chat.clone(), reason.to_owned());
    let released = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let Some(mut group) = tx.group(&chat_id)? else {
                return Ok(false);
            };
            if group.status != GroupStatus::Adopted || group.bot != bot_id {
                return Ok(false);
            }
            group.release(Utc::now(), why);
            tx.put_group(&group)?;
            Ok(true)
        })
    })
    .await;
    match released {
        Ok(Ok(true)) => {
            info!(bot = %bot, chat = %chat, reason, "customer group released");
            Ok(())
        }
        Ok(Ok(false)) => Ok(()),
        Ok(Err(e)) => {
            warn!(bot = %bot, chat = %chat, error = %e, "customer group not released: the store failed");
            Err(e)
        }
        Err(e) => {
            warn!(error = %e, "release task failed");
            Err(StoreError::Db(format!("release task failed: {e}")))
        }
    }
}

/// Releases every adopted customer group of `bot` that is not in `listed`; returns how many.
async fn release_unlisted(services: &Services, bot: &BotId, listed: HashSet<String>) -> usize {
    let store = services.store.clone();
    let bot_id = bot.clone();
    let released = tokio::task::spawn_blocking(move || {
        let gone: Vec<GroupRecord> = store
            .groups()?
            .into_iter()
            .filter(|g| {
                g.customer
                    && g.bot == bot_id
                    && g.status == GroupStatus::Adopted
                    && !listed.contains(g.chat_id.as_str())
            })
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        store.write(|tx| {
            let now = Utc::now();
            for mut group in gone.iter().cloned() {
                group.release(now, UNLISTED_REASON);
                tx.put_group(&group)?;
            }
            Ok::<_, StoreError>(gone.len())
        })
    })
    .await;
    match released {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            warn!(bot = %bot, error = %e, "unlisted customer groups not released: the store failed");
            0
        }
        Err(e) => {
            warn!(error = %e, "release task failed");
            0
        }
    }
}
