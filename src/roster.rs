//! Keeping the store's view of a bot account's groups true: when an account comes online (and
//! every `onebot.sync_interval_minutes` while it stays), the groups it is in are read with
//! `get_group_list`. A group the service has never seen is adopted (`adopted_via =
//! "group_list"`, without a greeting: the account was there already), a group released because
//! the account had left is adopted again, and a group's name fills in the name operators see when
//! they have not given one. Groups an operator released stay released.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::channels::onebot::hub::AccountKey;
use crate::domain::{ChatId, SettingsChange};
use crate::http::AppState;
use crate::store::{GroupRecord, GroupStatus, StoreError};

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
            tokio::time::sleep(every).await;
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
                }
                if existing.as_ref() != Some(&group) {
                    tx.put_group(&group)?;
                }
            }
            Ok::<_, StoreError>(adopted)
        })
    })
    .await;
    match adopted {
        Ok(Ok(adopted)) => {
            info!(bot = %key.bot, account = %key.user_id, groups = listed.len(),
                adopted = adopted.len(), "groups of the account synced");
        }
        Ok(Err(e)) => {
            warn!(bot = %key.bot, account = %key.user_id, error = %e, "groups not synced: the store failed");
            return;
        }
        Err(e) => {
            warn!(error = %e, "group sync task failed");
            return;
        }
    }
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
