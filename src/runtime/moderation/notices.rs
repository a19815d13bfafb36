//! Coalescing moderation's notices to the admins, so that spam cannot turn the bot into a
//! spammer: one notice per member, check and outcome within [`WINDOW`]; the findings in between
//! are folded — still logged, still counted toward warnings and removal — and the next notice
//! after the window says how many were folded. (Warnings to the member need no folding: after
//! `warn_limit` of them the outcome is removal.) On the group robot, which cannot remove anyone,
//! a member firing 300 spam @-mentions used to queue 300 「请管理员将成员…移出本群」 posts that took
//! the robot's 20 a minute for a quarter of an hour; now the owner is asked once.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::ChatId;
use crate::engine::moderation::NoticeWindow;

/// How long one post stands for the same member, check and outcome.
pub const WINDOW: TimeDelta = TimeDelta::minutes(10);
/// Windows remembered at once; past this, ended ones are dropped first, then all (a bound, not a
/// figure reached in practice: it is one entry per member acted on in ten minutes).
const MAX_WINDOWS: usize = 50_000;

/// Whether a finding's posts go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Post; `folded` findings were folded into the window before this one.
    Post { folded: u32 },
    /// Fold into the post made at `since`; this is the `nth` folded finding of that window.
    Fold { since: DateTime<Utc>, nth: u32 },
}

impl Admit {
    /// The engine's view of this: whether the admins are told, and of how many folded before.
    pub fn window(self) -> NoticeWindow {
        match self {
            Admit::Post { folded } => NoticeWindow::Open {
                folded_before: folded,
            },
            Admit::Fold { .. } => NoticeWindow::Folded,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    since: DateTime<Utc>,
    folded: u32,
}

/// (group, member, check, outcome).
type WindowKey = (ChatId, String, String, &'static str);

/// The windows open per group, member, check and outcome.
#[derive(Default)]
pub struct Coalescer {
    windows: Mutex<HashMap<WindowKey, Window>>,
}

impl Coalescer {
    /// Decides for a finding of `check` with `outcome` about `user` in `chat` at `now`.
    pub fn admit(
        &self,
        chat: &ChatId,
        user: &str,
        check: &str,
        outcome: &'static str,
        now: DateTime<Utc>,
    ) -> Admit {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let key = (chat.clone(), user.to_owned(), check.to_owned(), outcome);
        if let Some(window) = windows.get_mut(&key) {
            if now - window.since < WINDOW {
                window.folded += 1;
                return Admit::Fold {
                    since: window.since,
                    nth: window.folded,
                };
            }
            let folded = window.folded;
            *window = Window {
                since: now,
                folded: 0,
            };
            return Admit::Post { folded };
        }
        if windows.len() >= MAX_WINDOWS {
            windows.retain(|_, w| now - w.since < WINDOW);
            if windows.len() >= MAX_WINDOWS {
                windows.clear();
            }
        }
        windows.insert(
            key,
            Window {
                since: now,
                folded: 0,
            },
        );
        Admit::Post { folded: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_post_per_window_and_the_next_counts_what_was_folded() {
        let c = Coalescer::default();
        let chat = ChatId::new("g");
        let t0 = Utc::now();
        assert_eq!(
            c.admit(&chat, "u", "flood", "warn", t0),
            Admit::Post { folded: 0 }
        );
        for n in 1..=299 {
            let at = t0 + TimeDelta::seconds(n);
            assert_eq!(
                c.admit(&chat, "u", "flood", "warn", at),
                Admit::Fold {
                    since: t0,
                    nth: n as u32
                }
            );
        }
        // Another outcome (the removal notice), member or group is a window of its own.
        assert_eq!(
            c.admit(&chat, "u", "flood", "remove", t0),
            Admit::Post { folded: 0 }
        );
        assert_eq!(
            c.admit(&chat, "v", "flood", "warn", t0),
            Admit::Post { folded: 0 }
        );
        assert_eq!(
            c.admit(&chat, "u", "repeat", "warn", t0),
            Admit::Post { folded: 0 }
        );
        let later = t0 + WINDOW + TimeDelta::seconds(1);
        assert_eq!(
            c.admit(&chat, "u", "flood", "warn", later),
            Admit::Post { folded: 299 }
        );
    }
}
