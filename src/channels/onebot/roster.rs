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

use crate::domain::{AccountKey, ChatId, Conversation, Event, EventKind, Sender, SettingsChange};
use crate::runtime::Services;
use crate::runtime::accounts::{Ability, BotAccounts};
use crate::runtime::pipeline::LEFT_REASON;
use crate::store::{AdoptedVia, GroupRecord, GroupStatus, StoreError};
use crate::wire::onebot::hub::Hub;

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
pub fn account_online(services: Arc<Services>, hub: Arc<Hub>, key: AccountKey, every: Duration) {
    let Some((connection, _)) = hub.route(&key) else {
        return;
    };
    let connection_id = connection.id;
    drop(connection);
    let tasks = services.tasks.clone();
    tasks.spawn(async move {
        loop {
            sync_groups(&services, &hub, &key).await;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                // The state must be let go of for the service to stop.
                () = hub.stopping().cancelled() => return,
            }
            let still_here = hub.route(&key).is_some_and(|(c, _)| c.id == connection_id);
            if !still_here {
                return;
            }
        }
    });
}

/// Reads the account's groups and brings the store up to date.
pub async fn sync_groups(state: &Services, hub: &Hub, key: &AccountKey) {
    let answer = match hub.call(key, "get_group_list", json!({})).await {
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
                    group.adopt(AdoptedVia::GroupList, now, None);
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
        sync_members(state, hub, key, chat).await;
    }
}

/// After the account joined `chat`: its name (`get_group_info`) and its members.
pub async fn sync_group(state: &Services, hub: &Hub, key: &AccountKey, chat: &ChatId) {
    match hub
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
    sync_members(state, hub, key, chat).await;
}

/// Replaces `chat`'s stored member list with the implementation's, and handles the leaves it
/// never reported as leaves.
pub async fn sync_members(state: &Services, hub: &Hub, key: &AccountKey, chat: &ChatId) {
    let members = match BotAccounts::members(hub, key, chat).await {
        Ok(Some(members)) => members,
        Ok(None) => {
            warn!(chat = %chat, "get_group_member_list gave no list");
            return;
        }
        Err(e) => {
            warn!(chat = %chat, error = %e, "member list not read");
            return;
        }
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
        let caps = crate::wire::onebot::capabilities(
            hub.offers(key, Ability::RemoveMember),
            hub.offers(key, Ability::DeleteMessage),
        );
        if crate::runtime::inbound::handle(state, event, caps)
            .await
            .is_err()
        {
            return;
        }
    }
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
