//! The directory of group settings (roles, tags, rules switched off) that the request path
//! reads for every event: held in memory, loaded from the store at start, and changed only
//! through [`Directory::change`], which writes the store first.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::{ChatId, GroupSettings, SettingsChange};
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
        let settings = store
            .all_settings()?
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
        let _one_at_a_time = self.writer.lock().await;
        let store = self.store.clone();
        let key = chat.clone();
        let updated = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let mut settings = tx.settings(&key)?;
                let mut changed = false;
                for change in &changes {
                    changed |= settings.apply(change);
                }
                if changed {
                    tx.put_settings(&key, &settings)?;
                }
                Ok(settings)
            })
        })
        .await
        .map_err(|e| StoreError::Db(format!("settings task failed: {e}")))??;
        let updated = Arc::new(updated);
        self.settings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chat.clone(), updated.clone());
        Ok(updated)
    }
}
