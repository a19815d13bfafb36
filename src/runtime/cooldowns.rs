//! When keyword rules last answered in each conversation, so that a rule with a cooldown does
//! not answer the same question over and over in one group. In memory: after a restart every
//! rule may answer once more, which is harmless.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Entries beyond this many trigger a sweep of expired ones.
const SWEEP_ABOVE: usize = 10_000;

/// Cooldowns per (conversation, rule).
#[derive(Default)]
pub struct Cooldowns {
    until: Mutex<HashMap<(String, String), DateTime<Utc>>>,
}

impl Cooldowns {
    /// Whether `rule` is cooling down in `conversation` at `now`.
    pub fn is_cooling(&self, conversation: &str, rule: &str, now: DateTime<Utc>) -> bool {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until
            .get(&(conversation.to_owned(), rule.to_owned()))
            .is_some_and(|&end| now < end)
    }

    /// Starts `rule`'s cooldown of `secs` seconds in `conversation`.
    pub fn start(&self, conversation: &str, rule: &str, now: DateTime<Utc>, secs: u64) {
        if secs == 0 {
            return;
        }
        // Checked: an out-of-range length (the loader refuses them, but this must not panic on
        // the request path either) cools down for as long as a date can say.
        let end = i64::try_from(secs)
            .ok()
            .and_then(Duration::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if until.len() > SWEEP_ABOVE {
            until.retain(|_, &mut end| end > now);
        }
        until.insert((conversation.to_owned(), rule.to_owned()), end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cooldown_lasts_its_seconds_in_its_conversation_only() {
        let c = Cooldowns::default();
        let t0 = Utc::now();
        c.start("g1", "invoice", t0, 60);
        assert!(c.is_cooling("g1", "invoice", t0 + Duration::seconds(59)));
        assert!(!c.is_cooling("g1", "invoice", t0 + Duration::seconds(60)));
        assert!(!c.is_cooling("g2", "invoice", t0));
        assert!(!c.is_cooling("g1", "tax", t0));
        c.start("g1", "tax", t0, 0);
        assert!(!c.is_cooling("g1", "tax", t0));
    }
}

#[cfg(test)]
mod overflow {
    use super::*;

    #[test]
    fn an_absurd_cooldown_saturates_instead_of_panicking() {
        let c = Cooldowns::default();
        let now = Utc::now();
        c.start("g", "r", now, u64::MAX);
        assert!(c.is_cooling("g", "r", now));
    }
}
