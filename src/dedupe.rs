//! Remembering handled message ids, so that a WeCom retry of a message that was already handled
//! gets the same reply and triggers nothing a second time (PROTOCOL.md §6).
//!
//! The set lives in memory (sharded maps, checked on the request path) and is persisted by the
//! pipeline in batches, together with the rest of each batch's changes; on start it is loaded
//! back from the store, so it survives restarts.

use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use crate::domain::BotId;
use crate::store::DedupeRecord;

const SHARDS: usize = 16;

/// The key of a handled message: its bot and its id.
pub fn dedupe_key(bot: &BotId, msg_id: &str) -> String {
    let mut key = String::with_capacity(bot.as_str().len() + msg_id.len() + 1);
    key.push_str(bot.as_str());
    key.push('\u{1f}');
    key.push_str(msg_id);
    key
}

/// What [`Dedupe::insert_if_new`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// First time: the record was stored; handle the message.
    New,
    /// Handled before: answer with the record's reply and do nothing else.
    Before(DedupeRecord),
}

/// The in-memory set of handled ids.
pub struct Dedupe {
    shards: Vec<Mutex<HashMap<String, DedupeRecord>>>,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Dedupe {
    /// Builds the set from stored records.
    pub fn from_records(records: impl IntoIterator<Item = (String, DedupeRecord)>) -> Self {
        let dedupe = Self::default();
        for (key, record) in records {
            dedupe.shard(&key).insert(key, record);
        }
        dedupe
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, HashMap<String, DedupeRecord>> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = (hasher.finish() as usize) % SHARDS;
        // A panic while holding the lock cannot leave a map half-updated: insert is atomic.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Atomically records `key` unless it is already there.
    pub fn insert_if_new(&self, key: &str, record: DedupeRecord) -> Seen {
        match self.shard(key).entry(key.to_owned()) {
            Entry::Occupied(seen) => Seen::Before(seen.get().clone()),
            Entry::Vacant(slot) => {
                slot.insert(record);
                Seen::New
            }
        }
    }

    /// The record of `key`, when it was handled before.
    pub fn get(&self, key: &str) -> Option<DedupeRecord> {
        self.shard(key).get(key).cloned()
    }

    /// Forgets `key` (when handling it could not even be queued, so a retry must be handled).
    pub fn forget(&self, key: &str) {
        self.shard(key).remove(key);
    }

    /// Drops records first seen before `before` (unix seconds); returns how many.
    pub fn prune(&self, before: i64) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
                let len = map.len();
                map.retain(|_, r| r.at >= before);
                len - map.len()
            })
            .sum()
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_insert_returns_the_first_record() {
        let d = Dedupe::default();
        let bot = BotId::parse("b").unwrap();
        let key = dedupe_key(&bot, "m1");
        let first = DedupeRecord {
            at: 10,
            reply: None,
        };
        assert_eq!(d.insert_if_new(&key, first.clone()), Seen::New);
        let second = DedupeRecord {
            at: 11,
            reply: None,
        };
        assert_eq!(d.insert_if_new(&key, second), Seen::Before(first));
        assert_eq!(d.prune(11), 1);
        assert!(d.is_empty());
    }

    #[test]
    fn same_msg_id_on_two_bots_is_two_messages() {
        let a = dedupe_key(&BotId::parse("a").unwrap(), "m");
        let b = dedupe_key(&BotId::parse("b").unwrap(), "m");
        assert_ne!(a, b);
    }
}
