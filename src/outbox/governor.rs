//! Rate limiting for pushes: an exact sliding-window limiter (at most `limit` sends in any
//! `window`), the limits shared by every lane (per bot and global: [`SharedLimits`]) and the
//! back-off schedule for retries.
//!
//! WeCom counts 20 messages per minute per robot key, failed sends included. A token bucket with
//! a burst lets up to twice the rate through in some 60-second windows; a sliding window of send
//! times cannot (see docs/decisions.md). Pure: callers pass `now`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::BotId;

/// At most `limit` sends in any interval of length `window`.
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    sent: VecDeque<Instant>,
}

impl SlidingWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1) as usize;
        Self {
            limit,
            window,
            // Grown on use: most keys send once a day, and there may be tens of thousands.
            sent: VecDeque::new(),
        }
    }

    /// Whether no send is within the window any more (the limiter may be forgotten).
    pub fn is_idle(&self, now: Instant) -> bool {
        self.sent
            .back()
            .is_none_or(|&last| now.duration_since(last) >= self.window)
    }

    /// How long to wait before the next send is allowed; `None` when it is allowed now.
    pub fn delay(&mut self, now: Instant) -> Option<Duration> {
        while let Some(&oldest) = self.sent.front() {
            if now.duration_since(oldest) >= self.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.limit {
            return None;
        }
        self.sent
            .front()
            .map(|&oldest| (oldest + self.window).duration_since(now))
    }

    /// Records a send attempt (successful or not: WeCom counts both).
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        if self.sent.len() > self.limit {
            self.sent.pop_front();
        }
    }
}

/// The limits every lane shares: sends per minute per bot (for the bots that have one) and
/// sends per second overall. Each lane keeps its own per-key window; before each attempt it
/// also takes a place here, so that no bot and not the whole service goes over its limit
/// however many keys are busy.
#[derive(Debug)]
pub struct SharedLimits {
    bot_limits: HashMap<BotId, u32>,
    bot_window: Duration,
    bots: Mutex<HashMap<BotId, SlidingWindow>>,
    global: Mutex<SlidingWindow>,
}

impl SharedLimits {
    /// `bot_limits`: sends per `bot_window` (a minute, with a margin) for the bots that have a
    /// limit (others have none); `global_per_second`: sends per second across everything.
    pub fn new(
        bot_limits: HashMap<BotId, u32>,
        bot_window: Duration,
        global_per_second: u32,
    ) -> Self {
        Self {
            bot_window,
            bots: Mutex::new(HashMap::new()),
            bot_limits: bot_limits.into_iter().filter(|(_, l)| *l > 0).collect(),
            global: Mutex::new(SlidingWindow::new(
                global_per_second,
                Duration::from_secs(1),
            )),
        }
    }

    /// How long to wait before a send for `bot` may go; `None` when it may go now, in which
    /// case the send is recorded against the limits.
    pub fn try_take(&self, bot: Option<&BotId>, now: Instant) -> Option<Duration> {
        let mut global = self.global.lock().unwrap_or_else(|e| e.into_inner());
        let mut bots = self.bots.lock().unwrap_or_else(|e| e.into_inner());
        let limited = bot.and_then(|b| self.bot_limits.get(b).map(|&l| (b, l)));
        let mut bot_window = limited.map(|(b, limit)| {
            bots.entry(b.clone())
                .or_insert_with(|| SlidingWindow::new(limit, self.bot_window))
        });
        let wait = global
            .delay(now)
            .max(bot_window.as_mut().and_then(|w| w.delay(now)));
        if wait.is_none() {
            global.record(now);
            if let Some(w) = bot_window {
                w.record(now);
            }
        }
        wait
    }

    /// Waits until a send for `bot` may go, and records it.
    pub async fn take(&self, bot: Option<&BotId>) {
        // Never refused: no wait is longer than the longest duration.
        let _ = self.take_within(bot, Duration::MAX).await;
    }

    /// Like [`take`](Self::take), but only waits that are each at most `most`: a longer one is
    /// returned instead (nothing recorded), for the caller to come back after it.
    pub async fn take_within(&self, bot: Option<&BotId>, most: Duration) -> Result<(), Duration> {
        while let Some(wait) = self.try_take(bot, Instant::now()) {
            if wait > most {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// Exponential back-off: `base × 2^(attempt-1)`, capped at one minute, scaled by `jitter`
/// (a factor the caller draws, typically in 0.8..1.2, so that retries do not synchronise).
pub fn backoff(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exp.min(Duration::from_secs(60))
        .mul_f64(jitter.clamp(0.5, 1.5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// With tokio's clock paused, waiting costs no real time: the limits are checked against
    /// the virtual clock the way they run against the real one.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_shared_limits_spaces_sends_on_a_paused_clock() {
        let bot = BotId::parse("limited").unwrap();
        let limits = SharedLimits::new([(bot.clone(), 3)].into(), Duration::from_secs(60), 2);
        let start = Instant::now();
        let mut times = Vec::new();
        // Global: two a second; this bot: three a minute.
        for _ in 0..4 {
            limits.take(None).await;
            times.push(start.elapsed());
        }
        assert_eq!(
            times,
            [0, 0, 1, 1].map(Duration::from_secs),
            "the third send waits for the first to leave its second"
        );
        let start = Instant::now();
        for _ in 0..4 {
            limits.take(Some(&bot)).await;
        }
        // The fourth send of the bot waits for the first of its three to leave the minute.
        assert!(
            start.elapsed() >= Duration::from_secs(59),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() <= Duration::from_secs(61),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn shared_limits_hold_per_bot_and_overall() {
        let a = BotId::parse("a").unwrap();
        let b = BotId::parse("b").unwrap();
        let limits = SharedLimits::new(
            HashMap::from([(a.clone(), 2), (b.clone(), 0)]),
            Duration::from_secs(60),
            5,
        );
        let t = Instant::now();
        // Bot a: two a minute.
        assert_eq!(limits.try_take(Some(&a), t), None);
        assert_eq!(limits.try_take(Some(&a), t), None);
        let wait = limits.try_take(Some(&a), t).expect("a third send waits");
        assert!(wait > Duration::from_secs(59), "{wait:?}");
        // Bot b (limit 0: none) and sends without a bot share only the global five a second.
        assert_eq!(limits.try_take(Some(&b), t), None);
        assert_eq!(limits.try_take(None, t), None);
        assert_eq!(limits.try_take(None, t), None);
        assert_eq!(limits.try_take(Some(&b), t), Some(Duration::from_secs(1)));
        // A refused send is not counted: a second later the global window has room again.
        let later = t + Duration::from_secs(1);
        assert_eq!(limits.try_take(Some(&b), later), None);
        assert!(
            limits.try_take(Some(&a), later).is_some(),
            "a is still over its minute"
        );
    }

    #[test]
    fn allows_limit_then_waits_for_the_oldest_to_leave_the_window() {
        let start = Instant::now();
        let mut w = SlidingWindow::new(3, Duration::from_secs(60));
        for i in 0..3 {
            assert_eq!(w.delay(start + Duration::from_secs(i)), None);
            w.record(start + Duration::from_secs(i));
        }
        assert_eq!(
            w.delay(start + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(w.delay(start + Duration::from_secs(60)), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(base, 3, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(base, 30, 1.0), Duration::from_secs(60));
    }

    proptest! {
        /// Whatever the arrival pattern, sends made when `delay` allows them never exceed the
        /// limit in any window.
        #[test]
        fn never_more_than_limit_in_any_window(gaps in proptest::collection::vec(0u64..5_000, 1..200)) {
            let limit = 20usize;
            let window = Duration::from_secs(60);
            let start = Instant::now();
            let mut w = SlidingWindow::new(limit as u32, window);
            let mut now = start;
            let mut sends = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                if let Some(wait) = w.delay(now) {
                    now += wait;
                    prop_assert_eq!(w.delay(now), None);
                }
                w.record(now);
                sends.push(now);
            }
            for (i, &t) in sends.iter().enumerate() {
                let in_window = sends[i..].iter().take_while(|&&s| s < t + window).count();
                prop_assert!(in_window <= limit, "{} sends within a minute", in_window);
            }
        }
    }
}
