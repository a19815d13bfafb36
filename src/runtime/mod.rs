//! The runtime: stateful services that do I/O on the engine's behalf — taking in events
//! ([`inbound`]), one at a time per group ([`lanes`]), once each ([`dedupe`]), committing them in
//! order ([`pipeline`]); and each feature's state around its pure rules in `engine` (same name
//! there): [`welcome`] batches, [`moderation`]'s standings, [`red_envelope`] timers, [`health`]
//! and its digest, keyword [`cooldowns`], [`feeds`] fetched for reports, the [`scheduler`] that
//! plans each job's slot, and the operators' [`alerts`]. Group settings in memory are
//! [`groups`].

pub mod alerts;
pub mod cooldowns;
pub mod dedupe;
pub mod feeds;
pub mod groups;
pub mod health;
pub mod inbound;
pub mod lanes;
pub mod moderation;
pub mod pipeline;
pub mod red_envelope;
pub mod scheduler;
pub mod welcome;
