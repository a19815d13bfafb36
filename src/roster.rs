//! Keeping the store's view of a bot account's groups true: when an account comes online (and
//! every `onebot.sync_interval_minutes` while it stays), the groups it is in are read with
//! `get_group_list`. A group the service has never seen is adopted (`adopted_via =
//! "group_list"`, without a greeting: the account was there already), a group released because
//! the account had left is adopted again, and a group's name fills in the name operators see when
//! they have not given one. Groups an operator released stay released.
//!
//! The member list of each of the account's adopted groups is read too
//! (`get_group_member_list`): leaves the implementation never reported are found by comparing it
//! with the last list and handled as leaves. Removing a member (`wx.delete_groupmember`, only
//! where the implementation lists it) is confirmed by reading the list again, never by trusting
//! `status: ok`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::channels::onebot::hub::{AccountKey, CallError};
use crate::domain::{Capabilities, ChatId, Conversation, Event, EventKind, Sender, SettingsChange};
use crate::http::AppState;
use crate::store::{GroupRecord, GroupStatus, StoreError};

/// The removal extension, used only when the implementation lists it.
pub const REMOVE_ACTION: &str = "wx.delete_groupmember";

/// Why a group is released when its bot leaves (the pipeline writes it; a sync undoes it).
pub const LEFT_REASON: &str = "the robot was removed from the group";

/// A group as `get_group_list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub id: ChatId,
    pub name: String,
}

/// Reads `get_group_list`'s answer; entries without a `group_id` are skipped.
pub fn listed_groups(answer: &Value) -> Vec<ListedGroup> {
    answer
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter_map(|g| {
                    let id = g.get("group_id")?.as_str()?;
                    let name = g.get("group_name").and_then(Value::as_str).unwrap_or("");
                    Some(ListedGroup {
                        id: ChatId::new(id),
                        name: name.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Starts keeping `key`'s groups in sync while the account stays on its current connection.
pub fn account_online(state: Arc<AppState>, key: AccountKey) {
    let Some((connection, _)) = state.hub.route(&key) else {
        return;
    };
    let connection_id = connection.id;
    drop(connection);
    let every = Duration::from_secs(state.onebot_config.sync_interval_minutes.saturating_mul(60));
    tokio::spawn(async move {
        loop {
            sync_groups(&state, &key).await;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                // The state must be let go of for the service to stop.
                () = state.hub.stopping().cancelled() => return,
            }
            let still_here = state
                .hub
                .route(&key)
                .is_some_and(|(c, _)| c.id == connection_id);
            if !still_here {
                return;
            }
        }
    });
}

/// Reads the account's groups and brings the store up to date.
pub async fn sync_groups(state: &AppState, key: &AccountKey) {
    let answer = match state.hub.call(key, "get_group_list", json!({})).await {
        Ok(answer) => answer,
        Err(e) => {
            warn!(bot = %key.bot, account = %key.user_id, error = %e,
                "get_group_list failed: the account's groups are not synced now");
            return;
        }
    };
    let listed = listed_groups(&answer);
    let store = state.store.clone();
    let (bot, account) = (key.bot.clone(), key.user_id.clone());
    let groups = listed.clone();
    let adopted = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let now = Utc::now();
            let mut adopted = Vec::new();
            let mut ours = Vec::new();
            for listed in &groups {
                let existing = tx.group(&listed.id)?;
                let back = existing.as_ref().is_none_or(|g| {
                    g.status == GroupStatus::Released
                        && g.release_reason.as_deref() == Some(LEFT_REASON)
                });
                let mut group = existing
                    .clone()
                    .unwrap_or_else(|| GroupRecord::new(listed.id.clone(), bot.clone()));
                if back {
                    group.status = GroupStatus::Adopted;
                    group.adopted_at = Some(now);
                    group.adopted_via = Some("group_list".into());
                    group.released_at = None;
                    group.release_reason = None;
                    adopted.push(listed.id.clone());
                }
                if group.status == GroupStatus::Adopted {
                    group.bot = bot.clone();
                    group.account = Some(account.clone());
                    ours.push(listed.id.clone());
                }
                if existing.as_ref() != Some(&group) {
                    tx.put_group(&group)?;
                }
            }
            Ok::<_, StoreError>((adopted, ours))
        })
    })
    .await;
    let ours = match adopted {
        Ok(Ok((adopted, ours))) => {
            info!(bot = %key.bot, account = %key.user_id, groups = listed.len(),
                adopted = adopted.len(), "groups of the account synced");
            ours
        }
        Ok(Err(e)) => {
            warn!(bot = %key.bot, account = %key.user_id, error = %e, "groups not synced: the store failed");
            return;
        }
        Err(e) => {
            warn!(error = %e, "group sync task failed");
            return;
        }
    };
    for group in listed.into_iter().filter(|g| !g.name.is_empty()) {
        if state.directory.get(&group.id).name.is_empty()
            && let Err(e) = state
                .directory
                .change(&group.id, vec![SettingsChange::SetName(group.name)])
                .await
        {
            warn!(chat = %group.id, error = %e, "group name not saved");
        }
    }
    for chat in &ours {
        sync_members(state, key, chat).await;
    }
}

/// After the account joined `chat`: its name (`get_group_info`) and its members.
pub async fn sync_group(state: &AppState, key: &AccountKey, chat: &ChatId) {
    match state
        .hub
        .call(key, "get_group_info", json!({"group_id": chat.as_str()}))
        .await
    {
        Ok(info) => {
            let name = info.get("group_name").and_then(Value::as_str).unwrap_or("");
            if !name.is_empty()
                && state.directory.get(chat).name.is_empty()
                && let Err(e) = state
                    .directory
                    .change(chat, vec![SettingsChange::SetName(name.to_owned())])
                    .await
            {
                warn!(chat = %chat, error = %e, "group name not saved");
            }
        }
        Err(e) => info!(chat = %chat, error = %e, "group name not read"),
    }
    sync_members(state, key, chat).await;
}

/// A member as `get_group_member_list` reports it: id and the name to show.
fn listed_members(answer: &Value) -> Option<Vec<(String, String)>> {
    let members = answer.as_array()?;
    Some(
        members
            .iter()
            .filter_map(|m| {
                let id = m.get("user_id")?.as_str()?;
                let name = ["user_displayname", "user_name"]
                    .iter()
                    .filter_map(|k| m.get(*k).and_then(Value::as_str))
                    .find(|n| !n.is_empty())
                    .unwrap_or("");
                Some((id.to_owned(), name.to_owned()))
            })
            .collect(),
    )
}

/// Reads `chat`'s member list through `key`; `None` when it could not be read.
async fn read_members(
    state: &AppState,
    key: &AccountKey,
    chat: &ChatId,
) -> Option<Vec<(String, String)>> {
    match state
        .hub
        .call(
            key,
            "get_group_member_list",
            json!({"group_id": chat.as_str()}),
        )
        .await
    {
        Ok(answer) => {
            let members = listed_members(&answer);
            if members.is_none() {
                warn!(chat = %chat, "get_group_member_list gave no list");
            }
            members
        }
        Err(e) => {
            warn!(chat = %chat, error = %e, "member list not read");
            None
        }
    }
}

/// Replaces `chat`'s stored member list with the implementation's, and handles the leaves it
/// never reported as leaves.
pub async fn sync_members(state: &AppState, key: &AccountKey, chat: &ChatId) {
    let Some(members) = read_members(state, key, chat).await else {
        return;
    };
    let store = state.store.clone();
    let group = chat.clone();
    let count = members.len();
    let diff = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let first = tx.roster_is_empty(&group)?;
            let diff = tx.roster_replace(&group, &members)?;
            Ok((first, diff))
        })
    })
    .await;
    let (first, diff) = match diff {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            warn!(chat = %chat, error = %e, "member list not stored");
            return;
        }
        Err(e) => {
            warn!(error = %e, "member list task failed");
            return;
        }
    };
    if first || diff.left.is_empty() {
        info!(chat = %chat, members = count, "member list synced");
        return;
    }
    info!(chat = %chat, members = count, left = ?diff.left, "member list synced; leaves nobody reported");
    let now = Utc::now();
    for user in diff.left {
        if user == key.user_id {
            continue;
        }
        let event = Event {
            bot: key.bot.clone(),
            msg_id: format!("sync-left:{chat}:{user}:{}", now.timestamp_millis()),
            conversation: Conversation::Group(chat.clone()),
            from: Sender {
                user_id: user,
                ..Sender::default()
            },
            webhook_url: None,
            account: Some(key.user_id.clone()),
            message_id: None,
            kind: EventKind::MemberLeft {
                kicked: false,
                operator: String::new(),
            },
            mentioned: false,
            received_at: now,
        };
        let caps = Capabilities::bot_account(
            state.hub.supports(key, REMOVE_ACTION),
            state
                .hub
                .supports(key, crate::channels::onebot::hub::DELETE_ACTION),
        );
        if crate::runtime::inbound::handle(state, event, caps)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// What became of a removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Listed before the removal and gone from the list read after it.
    Confirmed,
    /// The implementation said it removed them, but the list still has them.
    StillThere,
    /// The member list could not be read before or after, so nobody can say.
    Unconfirmed,
    /// Not in the group's member list: nothing to remove (nothing was asked).
    NotAMember,
    /// The bot account itself: it does not remove itself (releasing the group is how it leaves).
    OwnAccount,
    /// The implementation does not offer removal.
    Unsupported,
    Failed(CallError),
}

impl Removal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Removal::Confirmed => "confirmed",
            Removal::StillThere => "still_there",
            Removal::Unconfirmed => "unconfirmed",
            Removal::NotAMember => "not_a_member",
            Removal::OwnAccount => "own_account",
            Removal::Unsupported => "unsupported",
            Removal::Failed(_) => "failed",
        }
    }
}

/// Removes `user` from `chat` through `key`, confirmed by the member list read before (they must
/// be in it) and after (they must be gone from it).
pub async fn remove_member(
    state: &AppState,
    key: &AccountKey,
    chat: &ChatId,
    user: &str,
) -> Removal {
    if user == key.user_id {
        return Removal::OwnAccount;
    }
    if !state.hub.supports(key, REMOVE_ACTION) {
        return Removal::Unsupported;
    }
    let listed_before = match read_members(state, key, chat).await {
        Some(members) if !members.iter().any(|(id, _)| id == user) => {
            info!(chat = %chat, user, "not removed: not in the member list");
            return Removal::NotAMember;
        }
        Some(_) => true,
        None => false,
    };
    let params = json!({"group_id": chat.as_str(), "user_list": [user]});
    if let Err(e) = state.hub.call(key, REMOVE_ACTION, params).await {
        return Removal::Failed(e);
    }
    let Some(members) = read_members(state, key, chat).await else {
        return Removal::Unconfirmed;
    };
    if members.iter().any(|(id, _)| id == user) {
        warn!(chat = %chat, user, "the implementation said ok, but the member is still listed");
        return Removal::StillThere;
    }
    let store = state.store.clone();
    let (group, member) = (chat.clone(), user.to_owned());
    let stored = tokio::task::spawn_blocking(move || {
        store.write(|tx| tx.roster_replace(&group, &members).map(|_| ()))
    })
    .await;
    if !matches!(stored, Ok(Ok(()))) {
        warn!(chat = %chat, user = %member, "the removal is confirmed but the member list was not stored");
    }
    if !listed_before {
        warn!(chat = %chat, user, "not listed after the removal, but the list before it was unreadable");
        return Removal::Unconfirmed;
    }
    info!(chat = %chat, user, "member removed (confirmed by the member list)");
    Removal::Confirmed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_list_is_read_leniently() {
        let answer = json!([
            {"group_id": "g1@chatroom", "group_name": "会计交流1群"},
            {"group_id": "g2@chatroom"},
            {"group_name": "no id"},
            "junk"
        ]);
        assert_eq!(
            listed_groups(&answer),
            vec![
                ListedGroup {
                    id: ChatId::new("g1@chatroom"),
                    name: "会计交流1群".into()
                },
                ListedGroup {
                    id: ChatId::new("g2@chatroom"),
                    name: String::new()
                },
            ]
        );
        assert!(listed_groups(&json!({"not": "a list"})).is_empty());
    }
}
