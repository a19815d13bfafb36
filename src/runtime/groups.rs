//! The directory of group settings (roles, tags, rules switched off) that the request path
//! reads for every event: held in memory, loaded from the store at start, and changed only
//! through [`Directory::change`], which writes the store first.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tracing::{info, warn};

use crate::domain::{ChatId, GroupSettings, SettingsChange};
use crate::engine::scope::validate_tag;
use crate::store::{Store, StoreError};

/// Group settings by chat id; cheap to share.
pub struct Directory {
    store: Store,
    settings: RwLock<HashMap<ChatId, Arc<GroupSettings>>>,
    /// Changes are rare; one at a time keeps the memory copy in the store's commit order.
    writer: tokio::sync::Mutex<()>,
    empty: Arc<GroupSettings>,
}

impl Directory {
    /// Loads every group's settings from `store`.
    pub fn load(store: Store) -> Result<Self, StoreError> {
        let mut all = store.all_settings()?;
        fold_stored_tags(&store, &mut all)?;
        let settings = all
            .into_iter()
            .map(|(chat, s)| (chat, Arc::new(s)))
            .collect();
        Ok(Self {
            store,
            settings: RwLock::new(settings),
            writer: tokio::sync::Mutex::new(()),
            empty: Arc::new(GroupSettings::default()),
        })
    }

    /// The settings of `chat` (empty when nothing was ever set).
    pub fn get(&self, chat: &ChatId) -> Arc<GroupSettings> {
        let map = self.settings.read().unwrap_or_else(|p| p.into_inner());
        map.get(chat).cloned().unwrap_or_else(|| self.empty.clone())
    }

    /// Every group with settings, in chat id order.
    pub fn all(&self) -> Vec<(ChatId, Arc<GroupSettings>)> {
        let map = self.settings.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = map.iter().map(|(c, s)| (c.clone(), s.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Applies `changes` to `chat`'s settings: durably first, then in memory. Returns the new
    /// settings.
    pub async fn change(
        &self,
        chat: &ChatId,
        changes: Vec<SettingsChange>,
    ) -> Result<Arc<GroupSettings>, StoreError> {
        let mut changed = self.change_many(vec![chat.clone()], changes).await?;
        Ok(changed.pop().map_or_else(|| self.get(chat), |(_, s)| s))
    }

    /// Applies the same `changes` to each of `chats` in one transaction (bulk tagging): durably
    /// first, then in memory. Returns each group's new settings, in the order given.
    pub async fn change_many(
        &self,
        chats: Vec<ChatId>,
        changes: Vec<SettingsChange>,
    ) -> Result<Vec<(ChatId, Arc<GroupSettings>)>, StoreError> {
        let each = chats.into_iter().map(|c| (c, changes.clone())).collect();
        self.change_each(each).await
    }

    /// Applies each group's own changes, all in one transaction (a roster sync of many groups):
    /// durably first, then in memory. Returns each group's new settings, in the order given.
    pub async fn change_each(
        &self,
        each: Vec<(ChatId, Vec<SettingsChange>)>,
    ) -> Result<Vec<(ChatId, Arc<GroupSettings>)>, StoreError> {
        let _one_at_a_time = self.writer.lock().await;
        let store = self.store.clone();
        let updated = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let mut out = Vec::with_capacity(each.len());
                for (chat, changes) in each {
                    let mut settings = tx.settings(&chat)?;
                    let mut changed = false;
                    for change in &changes {
                        changed |= settings.apply(change);
                    }
                    if changed {
                        tx.put_settings(&chat, &settings)?;
                    }
                    out.push((chat, Arc::new(settings)));
                }
                Ok(out)
            })
        })
        .await
        .map_err(|e| StoreError::Db(format!("settings task failed: {e}")))??;
        let mut map = self.settings.write().unwrap_or_else(|p| p.into_inner());
        for (chat, settings) in &updated {
            map.insert(chat.clone(), Arc::clone(settings));
        }
        Ok(updated)
    }
}

/// Tags stored before they were folded where they enter (typed with a Chinese input method,
/// with an invisible character) are folded once, here, and written back, so that tag scopes
/// match them; one that is still not a valid tag is dropped with a warning.
fn fold_stored_tags(store: &Store, all: &mut [(ChatId, GroupSettings)]) -> Result<(), StoreError> {
    let mut changed = Vec::new();
    for (chat, settings) in all.iter_mut() {
        let folded = settings
            .tags
            .iter()
            .filter_map(|tag| match validate_tag(tag) {
                Ok(tag) => Some(tag),
                Err(e) => {
                    warn!(chat = %chat, tag = %tag, reason = %e, "stored tag dropped: not a valid tag");
                    None
                }
            })
            .collect();
        if folded != settings.tags {
            settings.tags = folded;
            changed.push((chat.clone(), settings.clone()));
        }
    }
    if !changed.is_empty() {
        store.write(|tx| {
            for (chat, settings) in &changed {
                tx.put_settings(chat, settings)?;
            }
            Ok(())
        })?;
        info!(
            groups = changed.len(),
            "stored tags folded to their plain form"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_stored_as_typed_are_folded_once_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.redb")).unwrap();
        let chat = ChatId::new("g1");
        let mut typed = GroupSettings::default();
        // An input method's full-width colon and letters, a zero-width space, and a tag that
        // is only invisible characters.
        typed.tags.insert("province：广东".into());
        typed.tags.insert("ｔｙｐｅ:新手群".into());
        typed.tags.insert("新手群\u{200b}".into());
        typed.tags.insert("\u{200b}".into());
        store.write(|tx| tx.put_settings(&chat, &typed)).unwrap();

        let directory = Directory::load(store.clone()).unwrap();
        let expected: std::collections::BTreeSet<String> =
            ["province:广东", "type:新手群", "新手群"]
                .map(String::from)
                .into();
        assert_eq!(directory.get(&chat).tags, expected);
        assert_eq!(
            store.settings(&chat).unwrap().tags,
            expected,
            "written back"
        );
    }
}
