//! Remembering handled message ids, so that a WeCom retry of a message that was already handled
//! gets the same reply and triggers nothing a second time (WeCom retries an unanswered callback up to three times).
//!
//! Memory holds only what the check needs: 8 bytes an id — 48 bits of a digest of it (keyed per
//! process, so nobody outside can aim for collisions), a pending flag and the 10-minute slot it
//! was handled in — instead of the id and its reply. The reply lives in the store, written with
//! the event's batch; the rare retry reads it from there, and a digest that matches an id the
//! store does not know is a collision (one in tens of millions at a million ids) and handled as
//! new.
//!
//! An id is *pending* from the moment its event is handed to the pipeline until the pipeline
//! has committed (or failed to commit) the batch that holds it; a retry arriving meanwhile waits
//! for that outcome ([`Dedupe::wait_settled`]) instead of answering with a promise not yet kept.
//!
//! The set is bounded ([`Dedupe::with_capacity`]): past its capacity the oldest ids are dropped
//! from memory, and until every dropped id has outlived the de-duplication window a miss is
//! checked against the store as well ([`Dedupe::must_ask_store`]).

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::watch;

use crate::domain::BotId;

const SHARDS: usize = 16;
/// The low 16 bits of a [`Packed`] id: the pending flag and the slot.
const MARK_BITS: u64 = 0xffff;
/// The mark's flag: the id's batch is not committed yet.
const PENDING: u64 = 1 << 15;
/// Slots are 10 minutes, numbered modulo 2^15 (227 days, far beyond any window).
const SLOT_SECS: i64 = 600;
const SLOTS: i64 = 1 << 15;

/// Ids kept in memory when no capacity is configured: about 19 MB at the most.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// A handled id in memory: the digest's high 48 bits (what it is found by) and the mark.
#[derive(Clone, Copy)]
struct Packed(u64);

impl Packed {
    fn new(digest: u64, pending: bool, slot: i64) -> Self {
        let flag = if pending { PENDING } else { 0 };
        Packed((digest & !MARK_BITS) | flag | (slot.rem_euclid(SLOTS) as u64))
    }

    fn pending(self) -> bool {
        self.0 & PENDING != 0
    }

    fn slot(self) -> i64 {
        (self.0 & (PENDING - 1)) as i64
    }

    /// Slots between this id's and `now_slot`.
    fn age(self, now_slot: i64) -> i64 {
        (now_slot - self.slot()).rem_euclid(SLOTS)
    }
}

impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        self.0 & !MARK_BITS == other.0 & !MARK_BITS
    }
}

impl Eq for Packed {}

impl Hash for Packed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed digest: its bits, rotated so that both ends of the hash are random.
        state.write_u64((self.0 & !MARK_BITS).rotate_left(32));
    }
}

/// Passes a digest through as its own hash.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashSet<Packed, BuildHasherDefault<Identity>>;

fn slot_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(SLOT_SECS)
}

/// The key of a handled message: its bot and its id.
pub fn dedupe_key(bot: &BotId, msg_id: &str) -> String {
    let mut key = String::with_capacity(bot.as_str().len() + msg_id.len() + 1);
    key.push_str(bot.as_str());
    key.push('\u{1f}');
    key.push_str(msg_id);
    key
}

/// What memory knows of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not seen (within what memory covers: see [`Dedupe::must_ask_store`]).
    Unseen,
    /// Handed to the pipeline, its batch not committed yet.
    Pending,
    /// Committed: its reply is in the store.
    Handled,
}

/// The in-memory set of handled ids.
pub struct Dedupe {
    hasher: std::hash::RandomState,
    shards: Vec<Mutex<Shard>>,
    /// Ids per shard before the oldest are dropped.
    shard_capacity: usize,
    /// Unix seconds until which a miss must be checked against the store (ids were dropped for
    /// room and may still be retried until then).
    ask_store_until: AtomicI64,
    /// How long an id is remembered, in seconds.
    ttl_secs: i64,
    /// Bumped whenever pending ids settle, for [`Dedupe::wait_settled`].
    settled: watch::Sender<u64>,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, 48 * 3600)
    }
}

impl Dedupe {
    /// An empty set holding at most about `capacity` ids, each remembered for `ttl_secs`.
    pub fn with_capacity(capacity: usize, ttl_secs: i64) -> Self {
        Self {
            hasher: std::hash::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: (capacity / SHARDS).max(16),
            ask_store_until: AtomicI64::new(0),
            ttl_secs,
            settled: watch::channel(0).0,
        }
    }

    /// The id as it is looked up (its mark is not part of a comparison).
    fn probe(&self, key: &str) -> Packed {
        Packed::new(self.hasher.hash_one(key), false, 0)
    }

    fn shard(&self, id: Packed) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a set half-updated: each change is one call.
        self.shards[(id.0 >> 60) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers an id handled at `at_unix`, read back from the store at `now_unix` (at start).
    pub fn remember(&self, key: &str, at_unix: i64, now_unix: i64) {
        let id = Packed::new(self.hasher.hash_one(key), false, slot_of(at_unix));
        self.insert(id, slot_of(now_unix));
    }

    fn insert(&self, id: Packed, now_slot: i64) -> bool {
        let mut shard = self.shard(id);
        if shard.contains(&id) {
            return false;
        }
        if shard.len() >= self.shard_capacity {
            self.make_room(&mut shard, now_slot);
        }
        shard.insert(id);
        true
    }

    /// Drops the older half (by slot) of a full shard's settled ids.
    fn make_room(&self, shard: &mut Shard, now_slot: i64) {
        let Some(oldest) = shard
            .iter()
            .filter(|id| !id.pending())
            .map(|id| id.age(now_slot))
            .max()
        else {
            return;
        };
        // Keep the younger half of the ages present; when every id is of the current slot, none.
        let cutoff = (oldest + 1) / 2;
        let before = shard.len();
        shard.retain(|id| id.pending() || id.age(now_slot) < cutoff);
        if shard.len() < before {
            // The dropped ids may be retried until they are older than the window.
            let until = now_slot * SLOT_SECS + self.ttl_secs;
            self.ask_store_until.fetch_max(until, Ordering::Relaxed);
            tracing::warn!(
                dropped = before - shard.len(),
                "handled ids over wecom.dedupe_memory_ids: the oldest are checked in the store now"
            );
        }
    }

    /// What memory knows of `key`.
    pub fn lookup(&self, key: &str) -> Lookup {
        let probe = self.probe(key);
        match self.shard(probe).get(&probe) {
            None => Lookup::Unseen,
            Some(id) if id.pending() => Lookup::Pending,
            Some(_) => Lookup::Handled,
        }
    }

    /// Whether a miss must be confirmed in the store at `now_unix` (ids were dropped for room
    /// within the de-duplication window).
    pub fn must_ask_store(&self, now_unix: i64) -> bool {
        now_unix < self.ask_store_until.load(Ordering::Relaxed)
    }

    /// Marks `key` pending (its event is being handed to the pipeline). False when memory knows
    /// it already.
    pub fn begin(&self, key: &str, now_unix: i64) -> bool {
        let slot = slot_of(now_unix);
        self.insert(Packed::new(self.hasher.hash_one(key), true, slot), slot)
    }

    /// The batch holding `keys` is committed: they are handled.
    pub fn committed<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        for key in keys {
            let probe = self.probe(key);
            let mut shard = self.shard(probe);
            if let Some(id) = shard.get(&probe).copied().filter(|id| id.pending()) {
                shard.replace(Packed(id.0 & !PENDING));
            }
        }
        self.settled.send_modify(|n| *n += 1);
    }

    /// The batch holding `keys` was not committed: they are forgotten, so a retry is new.
    pub fn abandoned<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        for key in keys {
            let probe = self.probe(key);
            let mut shard = self.shard(probe);
            if shard.get(&probe).is_some_and(|id| id.pending()) {
                shard.remove(&probe);
            }
        }
        self.settled.send_modify(|n| *n += 1);
    }

    /// Waits until `key` is no longer pending; returns what it became.
    pub async fn wait_settled(&self, key: &str) -> Lookup {
        loop {
            // Subscribed before looking, so that a change between the two is not missed.
            let mut changes = self.settled.subscribe();
            let now = self.lookup(key);
            if now != Lookup::Pending {
                return now;
            }
            if changes.changed().await.is_err() {
                return self.lookup(key);
            }
        }
    }

    /// Drops settled ids first seen before `before` (unix seconds, as of `now`); returns how
    /// many.
    pub fn prune(&self, before: i64, now: i64) -> usize {
        let now_slot = slot_of(now);
        let max_age = now_slot - slot_of(before);
        self.shards
            .iter()
            .map(|shard| {
                let mut set = shard.lock().unwrap_or_else(|p| p.into_inner());
                let len = set.len();
                set.retain(|id| id.pending() || id.age(now_slot) <= max_age);
                len - set.len()
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
    use std::sync::Arc;

    #[test]
    fn an_id_is_pending_until_committed_and_forgotten_when_abandoned() {
        let d = Dedupe::default();
        let bot = BotId::parse("b").unwrap();
        let (k1, k2) = (dedupe_key(&bot, "m1"), dedupe_key(&bot, "m2"));
        assert_eq!(d.lookup(&k1), Lookup::Unseen);
        assert!(d.begin(&k1, 600));
        assert!(!d.begin(&k1, 601), "a second begin of the same id");
        assert!(d.begin(&k2, 600));
        assert_eq!(d.lookup(&k1), Lookup::Pending);
        d.committed([k1.as_str()]);
        d.abandoned([k2.as_str()]);
        assert_eq!(d.lookup(&k1), Lookup::Handled);
        assert_eq!(d.lookup(&k2), Lookup::Unseen);
    }

    #[test]
    fn same_msg_id_on_two_bots_is_two_messages() {
        let a = dedupe_key(&BotId::parse("a").unwrap(), "m");
        let b = dedupe_key(&BotId::parse("b").unwrap(), "m");
        assert_ne!(a, b);
    }

    #[test]
    fn prune_drops_old_settled_ids_only() {
        let d = Dedupe::default();
        d.remember("old", 60, 3600);
        d.begin("pending", 60);
        d.remember("new", 3600, 3600);
        assert_eq!(d.prune(1800, 3600), 1);
        assert_eq!(d.lookup("old"), Lookup::Unseen);
        assert_eq!(d.lookup("pending"), Lookup::Pending);
        assert_eq!(d.lookup("new"), Lookup::Handled);
    }

    #[test]
    fn past_its_capacity_the_set_drops_the_oldest_and_asks_the_store_for_misses() {
        let ttl = 48 * 3600;
        let d = Dedupe::with_capacity(16 * SHARDS, ttl);
        for i in 0..10_000i64 {
            let at = 1_000_000 + i * 60;
            d.remember(&format!("id{i}"), at, at);
        }
        assert!(d.len() >= 8 * SHARDS, "{} ids kept", d.len());
        assert!(d.len() <= 16 * SHARDS, "{} ids kept", d.len());
        // The newest are still known; some old ones were dropped, so misses go to the store
        // until the dropped ones are past the window.
        assert_eq!(d.lookup("id9999"), Lookup::Handled);
        assert!(d.must_ask_store(1_000_000 + 10_000 * 60));
        assert!(!d.must_ask_store(1_000_000 + 10_000 * 60 + ttl + 60));
        let fresh = Dedupe::default();
        assert!(!fresh.must_ask_store(0));
    }

    #[tokio::test]
    async fn a_retry_waits_for_the_batch_of_the_original() {
        let d = Arc::new(Dedupe::default());
        d.begin("k", 60);
        let waiter = tokio::spawn({
            let d = Arc::clone(&d);
            async move { d.wait_settled("k").await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.committed(["k"]);
        assert_eq!(waiter.await.unwrap(), Lookup::Handled);
        d.begin("j", 60);
        let waiter = tokio::spawn({
            let d = Arc::clone(&d);
            async move { d.wait_settled("j").await }
        });
        d.abandoned(["j"]);
        assert_eq!(waiter.await.unwrap(), Lookup::Unseen);
    }
}
