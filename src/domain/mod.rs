//! The shared vocabulary of the service: ids, inbound [`Event`]s produced by channels, and the
//! outbound messages ([`Reply`], [`OutMessage`]) that channels deliver.
//!
//! Nothing here knows a wire format: channels translate to and from these types. The ids are
//! here; what channels hear in [`event`], what the bot does in [`action`], a group's settings in
//! [`group`].

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod action;
mod event;
mod group;
mod operator;
mod secret;

pub use action::*;
pub use event::*;
pub use group::*;
pub use operator::OperatorRole;

pub use secret::Secret;

/// A configured bot's id: the path segment in `/wecom/robot/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BotId(String);

impl BotId {
    /// 1–64 ASCII letters, digits, `-` or `_`, so that it is safe in a URL path.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!("must be 1 to 64 characters, got {}", s.len()));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{s:?} may contain only ASCII letters, digits, '-' and '_'"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A group's stable id as the channel reports it (WeCom `ChatId`). Groups are always keyed by
/// this, never by their name, which members can change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatId(String);

impl ChatId {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bot account (a WeChat or WeCom user a bot implementation is logged in as): the configured
/// bot it belongs to and its user id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountKey {
    pub bot: BotId,
    pub user_id: String,
}

/// A red-envelope test's measurement, as the engine computes it and the store keeps it.
pub mod red_envelope {
    use serde::{Deserialize, Serialize};

    /// How alive a group looks from one test.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Verdict {
        Alive,
        Sluggish,
        Dead,
    }

    /// What a finished (or running) test measured.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Results {
        pub shares: u32,
        /// Claims within the window.
        pub claims: usize,
        pub claimed_fen: u64,
        /// Seconds from the post to the first claim, to half the shares claimed (rounded up), and to
        /// every share claimed; `None` when that did not happen within the window.
        pub first_claim_secs: Option<u64>,
        pub half_claimed_secs: Option<u64>,
        pub all_claimed_secs: Option<u64>,
        /// Claimers ÷ members, when the member count is known.
        pub claimer_ratio: Option<f64>,
        /// Claimers who never otherwise speak in the group.
        pub silent_claimers: usize,
        pub verdict: Verdict,
    }
}
