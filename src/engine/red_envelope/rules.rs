//! What the operator set for red-envelope tests (`bot-scripts/red_envelope.toml`, loaded by
//! [`crate::scripts`]): the defaults, the verdict thresholds, the claim words, tests on a
//! schedule and what the bot says during a test.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::VerdictRules;
use crate::domain::EnvelopeParams;
use crate::engine::jobs::Targets;
use crate::engine::message::Message;

/// The longest window a test may have: a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The loaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct RedEnvelopeScripts {
    pub total_fen: u64,
    pub shares: u32,
    pub window: Duration,
    pub verdict: VerdictRules,
    /// Claim phrases are one of these and three digits.
    pub claim_words: Vec<String>,
    /// Tests started on a schedule (`[[schedule]]`).
    pub schedules: Vec<EnvelopeSchedule>,
    /// `None` only for scripts parsed without a red-envelope file at all (tests of the messages
    /// file alone); a loaded version always has them.
    pub messages: Option<EnvelopeMessages>,
}

/// Tests started in the targeted groups at each slot of a cron expression.
#[derive(Debug, Clone)]
pub struct EnvelopeSchedule {
    pub name: String,
    pub cron_text: String,
    pub cron: croner::Cron,
    pub timezone: chrono_tz::Tz,
    pub targets: Targets,
    /// The test's values; those left out take `[defaults]`.
    pub params: EnvelopeParams,
    /// A slot missed while the service was down still starts tests this long after it.
    pub catch_up_within: Duration,
    pub enabled: bool,
}

impl PartialEq for EnvelopeSchedule {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.name,
            &self.cron_text,
            self.timezone,
            &self.targets,
            self.params,
            self.catch_up_within,
            self.enabled,
        ) == (
            &other.name,
            &other.cron_text,
            other.timezone,
            &other.targets,
            other.params,
            other.catch_up_within,
            other.enabled,
        )
    }
}

impl EnvelopeSchedule {
    /// The first slot strictly after `after`.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        crate::engine::jobs::next_occurrence(&self.cron, self.timezone, after)
    }

    /// The last slot in `(after, until]`, if any.
    pub fn last_slot_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        crate::engine::jobs::last_occurrence_between(&self.cron, self.timezone, after, until)
    }
}

/// What the bot says during a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeMessages {
    /// The envelope, posted to the group.
    pub envelope: Message,
    /// The answer to a claim that got a share.
    pub claimed: Message,
    /// The answer to a member claiming twice.
    pub already_claimed: Message,
    /// The answer to a claim after every share is taken.
    pub empty: Message,
    /// The answer to a claim after the window.
    pub closed: Message,
    /// Posted to the group when the envelope is empty or the window ends.
    pub finished: Message,
    /// The results, to the group's admins (text: it @-mentions them).
    pub report: Message,
    /// The answer to a start the bot refused (`reason`).
    pub not_started: Message,
    /// Posted to the group when a test is cancelled, and the answer to a claim after that.
    pub cancelled: Message,
}

impl EnvelopeMessages {
    pub(crate) fn all(&self) -> [&Message; 9] {
        [
            &self.envelope,
            &self.claimed,
            &self.already_claimed,
            &self.empty,
            &self.closed,
            &self.finished,
            &self.report,
            &self.not_started,
            &self.cancelled,
        ]
    }
}

impl Default for RedEnvelopeScripts {
    fn default() -> Self {
        Self {
            total_fen: 2000,
            shares: 20,
            window: Duration::from_secs(2 * 3600),
            verdict: VerdictRules::default(),
            claim_words: vec!["财税好运".into()],
            schedules: Vec::new(),
            messages: None,
        }
    }
}

impl RedEnvelopeScripts {
    /// Every message (for `trumpet check`).
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().flat_map(EnvelopeMessages::all)
    }
}

/// Checks a test's parameters (also those given through a command or the API).
pub fn check_test(total_fen: u64, shares: u32, window: Duration) -> Result<(), String> {
    super::check(total_fen, shares).map_err(|e| e.to_string())?;
    if window.is_zero() || window > MAX_WINDOW {
        return Err(format!(
            "the window must be 1 second to {} hours",
            MAX_WINDOW.as_secs() / 3600
        ));
    }
    Ok(())
}
