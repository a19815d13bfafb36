//! The index of adopted groups by the robot they post through: the SHA-1 of the webhook key
//! (never the key itself) → chat ids, kept up to date by every [`WriteTx::put_group`], so that
//! adopting a group checks "is this robot already in use" in one lookup instead of a scan of
//! every group. Stores written before the index existed get it built on open.

use redb::{ReadableTable, TableDefinition};
use sha1::{Digest, Sha1};

use super::{GROUPS, GroupRecord, GroupStatus, META, StoreError, WriteTx, decode};
use crate::domain::ChatId;

/// (robot digest, chat) → (): the adopted groups posting through each robot.
pub(super) const ROBOT_GROUPS: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("robot_groups");
/// chat → robot digest: what the index holds for a group, so an update needs no old record.
pub(super) const GROUP_ROBOT: TableDefinition<&str, &str> = TableDefinition::new("group_robot");
/// Set in `meta` once the index covers every group.
const BUILT_FLAG: &str = "index:robot_groups";

/// The digest identifying the robot of a webhook URL: the hex SHA-1 of its `key` parameter.
/// `None` when the URL has no key (whatever its host: the same key on another WeCom host is the
/// same robot).
pub fn robot_digest(webhook_url: &str) -> Option<String> {
    let parsed = url::Url::parse(webhook_url.trim()).ok()?;
    let key = parsed
        .query_pairs()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .filter(|k| !k.is_empty())?;
    Some(hex::encode(Sha1::digest(key.as_bytes())))
}

/// The digest `group` is indexed under: adopted groups with a webhook URL only.
fn indexed_digest(group: &GroupRecord) -> Option<String> {
    if group.status != GroupStatus::Adopted {
        return None;
    }
    group.webhook_url.as_deref().and_then(robot_digest)
}

impl WriteTx<'_> {
    /// Brings the index in line with `group` (called by `put_group`).
    pub(super) fn index_robot(&mut self, group: &GroupRecord) -> Result<(), StoreError> {
        let chat = group.chat_id.as_str();
        let new = indexed_digest(group);
        let old = self.group_robot.get(chat)?.map(|v| v.value().to_owned());
        if old == new {
            return Ok(());
        }
        if let Some(old) = old {
            self.robot_groups.remove((old.as_str(), chat))?;
            self.group_robot.remove(chat)?;
        }
        if let Some(new) = new {
            self.robot_groups.insert((new.as_str(), chat), ())?;
            self.group_robot.insert(chat, new.as_str())?;
        }
        Ok(())
    }

    /// The adopted groups posting through the robot of `webhook_url`, in chat id order.
    pub fn groups_with_robot(&self, webhook_url: &str) -> Result<Vec<ChatId>, StoreError> {
        let Some(digest) = robot_digest(webhook_url) else {
            return Ok(Vec::new());
        };
        let mut chats = Vec::new();
        for entry in self.robot_groups.range((digest.as_str(), "")..)? {
            let (key, _) = entry?;
            let (d, chat) = key.value();
            if d != digest {
                break;
            }
            chats.push(ChatId::new(chat));
        }
        Ok(chats)
    }
}

/// Builds the index from every group when the store does not have it yet (a store written by
/// an earlier version). Runs inside the transaction that opens the store.
pub(super) fn build_if_missing(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META)?;
    if meta.get(BUILT_FLAG)?.is_some() {
        return Ok(());
    }
    let groups = tx.open_table(GROUPS)?;
    let mut robot_groups = tx.open_table(ROBOT_GROUPS)?;
    let mut group_robot = tx.open_table(GROUP_ROBOT)?;
    for entry in groups.iter()? {
        let (_, value) = entry?;
        let group: GroupRecord = decode(value.value())?;
        if let Some(digest) = indexed_digest(&group) {
            let chat = group.chat_id.as_str();
            robot_groups.insert((digest.as_str(), chat), ())?;
            group_robot.insert(chat, digest.as_str())?;
        }
    }
    meta.insert(BUILT_FLAG, [1u8].as_slice())?;
    Ok(())
}
