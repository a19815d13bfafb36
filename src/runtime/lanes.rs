//! Per-conversation ordering: events of one group are decided and applied one at a time, in the
//! order they arrive, while different groups proceed concurrently. The lane also keeps what only
//! its holder touches: the group's recent messages, for the engine's view.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

use crate::engine::RecentMessage;

/// How many conversations may be remembered before idle ones are forgotten.
const PRUNE_AT: usize = 4096;
/// Messages kept per conversation.
pub const RECENT: usize = 20;
/// The longest text kept per recent message, in characters.
const RECENT_TEXT_CHARS: usize = 500;

/// One conversation's lane: held while its event is handled.
#[derive(Debug, Default)]
pub struct Lane {
    recent: VecDeque<RecentMessage>,
}

impl Lane {
    /// The conversation's last messages, oldest first.
    pub fn recent(&mut self) -> &[RecentMessage] {
        self.recent.make_contiguous()
    }

    /// Remembers a message (the oldest goes once there are [`RECENT`]).
    pub fn remember(&mut self, mut message: RecentMessage) {
        if let Some((cut, _)) = message.text.char_indices().nth(RECENT_TEXT_CHARS) {
            message.text.truncate(cut);
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(message);
    }
}

/// One lane per conversation key.
#[derive(Default)]
pub struct Lanes {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Lane>>>>,
}

impl Lanes {
    /// Waits for `key`'s lane; the lane is held until the guard drops.
    pub async fn enter(&self, key: &str) -> OwnedMutexGuard<Lane> {
        let lane = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() >= PRUNE_AT && !locks.contains_key(key) {
                // Lanes nobody holds or waits for are forgotten, with their (recent) history.
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

    #[tokio::test]
    async fn a_lane_keeps_the_last_messages_in_order() {
        let lanes = Lanes::default();
        for i in 0..RECENT + 5 {
            lanes.enter("g").await.remember(RecentMessage {
                user_id: format!("u{i}"),
                text: "长".repeat(if i == 0 { 10 } else { 2 * RECENT_TEXT_CHARS }),
                at: chrono::DateTime::from_timestamp(i as i64, 0).unwrap(),
            });
        }
        let mut lane = lanes.enter("g").await;
        let recent = lane.recent();
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].user_id, "u5");
        assert_eq!(recent[RECENT - 1].user_id, format!("u{}", RECENT + 4));
        assert_eq!(recent[0].text.chars().count(), RECENT_TEXT_CHARS);
    }
}
