//! The member list of each bot-account group, as its implementation last reported it (member
//! joins and leaves as they happen, the whole list on each sync). Unlike `members` (who has
//! spoken), this says who is in the group now: the sync finds leaves nobody reported by
//! comparing lists, and a removal is confirmed against it.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, WriteTx};
use crate::domain::ChatId;

/// (chat id, user id) → display name.
pub(super) const ROSTER: TableDefinition<(&str, &str), &str> = TableDefinition::new("roster");

/// What replacing a group's list changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterDiff {
    /// In the new list, not in the old one.
    pub joined: Vec<String>,
    /// In the old list, not in the new one.
    pub left: Vec<String>,
}

impl WriteTx<'_> {
    /// Records `user` (named `name`, empty: unknown) as a member of `chat`.
    pub fn roster_add(&mut self, chat: &ChatId, user: &str, name: &str) -> Result<(), StoreError> {
        let keep = match self.roster.get((chat.as_str(), user))? {
            Some(old) if name.is_empty() => old.value().to_owned(),
            _ => name.to_owned(),
        };
        self.roster.insert((chat.as_str(), user), keep.as_str())?;
        Ok(())
    }

    /// Records that `user` is no longer in `chat`; returns whether they were listed.
    pub fn roster_remove(&mut self, chat: &ChatId, user: &str) -> Result<bool, StoreError> {
        Ok(self.roster.remove((chat.as_str(), user))?.is_some())
    }

    /// Whether no member list of `chat` is stored.
    pub fn roster_is_empty(&mut self, chat: &ChatId) -> Result<bool, StoreError> {
        let mut range = self.roster.range((chat.as_str(), "")..)?;
        Ok(match range.next() {
            Some(entry) => entry?.0.value().0 != chat.as_str(),
            None => true,
        })
    }

    /// Replaces `chat`'s list with `members` (user id, name) and says what changed.
    pub fn roster_replace(
        &mut self,
        chat: &ChatId,
        members: &[(String, String)],
    ) -> Result<RosterDiff, StoreError> {
        let mut old = std::collections::BTreeSet::new();
        for entry in self.roster.range((chat.as_str(), "")..)? {
            let (key, _) = entry?;
            let (c, user) = key.value();
            if c != chat.as_str() {
                break;
            }
            old.insert(user.to_owned());
        }
        let new: std::collections::BTreeSet<&str> =
            members.iter().map(|(id, _)| id.as_str()).collect();
        let mut diff = RosterDiff::default();
        for user in &old {
            if !new.contains(user.as_str()) {
                self.roster.remove((chat.as_str(), user.as_str()))?;
                diff.left.push(user.clone());
            }
        }
        for (user, name) in members {
            if !old.contains(user) {
                diff.joined.push(user.clone());
            }
            self.roster_add(chat, user, name)?;
        }
        Ok(diff)
    }
}

impl Store {
    /// `chat`'s member list (user id, name), in user id order; empty when never read.
    pub fn roster(&self, chat: &ChatId) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ROSTER)?;
        let mut out = Vec::new();
        for entry in table.range((chat.as_str(), "")..)? {
            let (key, name) = entry?;
            let (c, user) = key.value();
            if c != chat.as_str() {
                break;
            }
            out.push((user.to_owned(), name.value().to_owned()));
        }
        Ok(out)
    }

    /// A member's name on `chat`'s member list, if listed.
    pub fn roster_name(&self, chat: &ChatId, user: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ROSTER)?;
        Ok(table
            .get((chat.as_str(), user))?
            .map(|name| name.value().to_owned()))
    }

    /// How many members `group`'s member list has, leaving out the bot account itself; 0 when
    /// no list was read (the group robot cannot read one).
    pub fn members_listed(&self, group: &super::GroupRecord) -> Result<u64, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ROSTER)?;
        let chat = group.chat_id.as_str();
        let mut count = 0;
        for entry in table.range((chat, "")..)? {
            let (key, _) = entry?;
            let (c, user) = key.value();
            if c != chat {
                break;
            }
            if group.account.as_deref() != Some(user) {
                count += 1;
            }
        }
        Ok(count)
    }
}
