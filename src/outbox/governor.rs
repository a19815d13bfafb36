//! Rate limiting for pushes: an exact sliding-window limiter (at most `limit` sends in any
//! `window`) and the back-off schedule for retries.
//!
//! WeCom counts 20 messages per minute per robot key, failed sends included. A token bucket with
//! a burst lets up to twice the rate through in some 60-second windows; a sliding window of send
//! times cannot (see docs/decisions.md). Pure: callers pass `now`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

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
            sent: VecDeque::with_capacity(limit),
        }
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
