//! The health ranking as the console's lists read it: computing every group's health takes about
//! 40 µs a group (0.4 s for 10,000), too slow to repeat for each page of the group list or each
//! look at the overview. The last ranking is kept for [`FRESH_FOR`]; an older one is still
//! answered at once while one refresh runs in the background, so a reader waits only for the very
//! first ranking — and not even then after a start, since the health task offers the ranking it
//! computes to record the day's scores. Answers say when their ranking was computed.
//! `GET /api/v1/health` itself always computes afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::GroupHealth;
use crate::domain::ChatId;
use crate::store::StoreError;

/// A ranking this young is answered as it is.
pub const FRESH_FOR: Duration = Duration::from_secs(60);

/// One computed ranking.
#[derive(Debug)]
pub struct Ranked {
    pub computed_at: DateTime<Utc>,
    /// Lowest score first, as [`super::ranking`] orders them.
    pub groups: Vec<GroupHealth>,
    by_chat: HashMap<ChatId, usize>,
    taken: Instant,
}

impl Ranked {
    pub fn new(groups: Vec<GroupHealth>, computed_at: DateTime<Utc>) -> Self {
        let by_chat = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.chat_id.clone(), i))
            .collect();
        Self {
            computed_at,
            groups,
            by_chat,
            taken: Instant::now(),
        }
    }

    /// `chat`'s health in this ranking (adopted groups only).
    pub fn of(&self, chat: &ChatId) -> Option<&GroupHealth> {
        self.by_chat.get(chat).map(|&i| &self.groups[i])
    }
}

/// The last ranking, and whether a refresh is under way.
#[derive(Default)]
pub struct RankingCache {
    latest: Mutex<Option<Arc<Ranked>>>,
    refreshing: Arc<AtomicBool>,
}

impl RankingCache {
    /// The ranking to answer with. Blocking: call it off the async threads. `compute` makes a
    /// new ranking; it runs here when there is none yet, and in the background (at most one at
    /// a time) when the one held is older than [`FRESH_FOR`].
    pub fn get<F>(self: &Arc<Self>, compute: F) -> Result<Arc<Ranked>, StoreError>
    where
        F: FnOnce() -> Result<Ranked, StoreError> + Send + 'static,
    {
        let held = self
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(held) = held else {
            let ranked = Arc::new(compute()?);
            self.put(&ranked);
            return Ok(ranked);
        };
        if held.taken.elapsed() >= FRESH_FOR && !self.refreshing.swap(true, Ordering::AcqRel) {
            let cache = Arc::clone(self);
            let refresh = move || {
                match compute() {
                    Ok(ranked) => cache.put(&Arc::new(ranked)),
                    Err(e) => tracing::warn!(error = %e, "the health ranking was not refreshed"),
                }
                cache.refreshing.store(false, Ordering::Release);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(refresh)),
                Err(_) => refresh(),
            }
        }
        Ok(held)
    }

    /// Keeps a ranking computed elsewhere (the health task's daily one), unless a newer one is
    /// held.
    pub fn offer(&self, ranked: Ranked) {
        self.put(&Arc::new(ranked));
    }

    fn put(&self, ranked: &Arc<Ranked>) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        // A slow refresh never replaces a newer ranking.
        if latest
            .as_ref()
            .is_none_or(|held| held.computed_at <= ranked.computed_at)
        {
            *latest = Some(Arc::clone(ranked));
        }
    }

    /// Forgets the ranking held: the next reader computes a new one (a group was adopted or
    /// released, and lists must show it).
    pub fn invalidate(&self) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(at: i64) -> Ranked {
        Ranked::new(Vec::new(), DateTime::from_timestamp(at, 0).unwrap())
    }

    #[test]
    fn the_first_reader_computes_and_later_ones_reuse() {
        let cache = Arc::new(RankingCache::default());
        let first = cache.get(|| Ok(ranked(1))).unwrap();
        assert_eq!(first.computed_at.timestamp(), 1);
        let again = cache
            .get(|| panic!("a fresh ranking is not computed again"))
            .unwrap();
        assert_eq!(again.computed_at.timestamp(), 1);
        cache.invalidate();
        assert_eq!(
            cache.get(|| Ok(ranked(2))).unwrap().computed_at.timestamp(),
            2
        );
    }

    #[test]
    fn an_old_ranking_is_answered_while_a_new_one_is_made() {
        let cache = Arc::new(RankingCache::default());
        let mut old = ranked(1);
        old.taken = Instant::now() - FRESH_FOR - Duration::from_secs(1);
        cache.put(&Arc::new(old));
        // Outside a runtime the refresh runs in place; the caller still gets the held one.
        let answered = cache.get(|| Ok(ranked(5))).unwrap();
        assert_eq!(answered.computed_at.timestamp(), 1);
        assert_eq!(
            cache
                .get(|| panic!("fresh again"))
                .unwrap()
                .computed_at
                .timestamp(),
            5
        );
        assert!(!cache.refreshing.load(Ordering::Acquire));
    }
}
