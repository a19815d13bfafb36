//! Per-conversation ordering: events of one group are decided and applied one at a time, in the
//! order they arrive, while different groups proceed concurrently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// How many conversations may be remembered before idle ones are forgotten.
const PRUNE_AT: usize = 4096;

/// One lock per conversation key.
#[derive(Default)]
pub struct Lanes {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Lanes {
    /// Waits for `key`'s lane; the lane is held until the guard drops.
    pub async fn enter(&self, key: &str) -> OwnedMutexGuard<()> {
        let lane = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() >= PRUNE_AT && !locks.contains_key(key) {
                // Lanes nobody holds or waits for cost nothing to recreate.
                locks.retain(|_, lane| Arc::strong_count(lane) > 1);
            }
            locks.entry(key.to_owned()).or_default().clone()
        };
        lane.lock_owned().await
    }

    /// Lanes currently remembered.
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_lane_is_ordered_and_others_run_alongside() {
        let lanes = Arc::new(Lanes::default());
        let held = lanes.enter("g1").await;
        // Another group is not held up by g1.
        let other = tokio::time::timeout(Duration::from_secs(1), lanes.enter("g2")).await;
        assert!(other.is_ok());
        // g1 itself waits until the first holder is done.
        let l = lanes.clone();
        let waiter = tokio::spawn(async move { drop(l.enter("g1").await) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn idle_lanes_are_forgotten() {
        let lanes = Lanes::default();
        for i in 0..PRUNE_AT + 10 {
            drop(lanes.enter(&format!("g{i}")).await);
        }
        assert!(lanes.len() < PRUNE_AT, "{}", lanes.len());
    }
}
