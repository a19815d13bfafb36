//! The runtime: stateful services that do I/O on the engine's behalf — taking in events
//! ([`inbound`]), one at a time per group ([`lanes`]), once each ([`dedupe`]), committing them in
//! order ([`pipeline`]); and each feature's state around its pure rules in `engine` (same name
//! there): [`welcome`] batches, [`moderation`]'s standings, [`red_envelope`] timers, [`health`]
//! and its digest, keyword [`cooldowns`], [`feeds`] fetched for reports, the [`scheduler`] that
//! plans each job's slot, and the operators' [`alerts`]. Group settings in memory are
//! [`groups`]; the operators' own accounts are [`operators`].

pub mod accounts;
pub mod alerts;
pub mod cooldowns;
pub mod dedupe;
pub mod feeds;
pub mod groups;
pub mod health;
pub mod inbound;
pub mod lanes;
pub mod moderation;
pub mod operators;
pub mod pipeline;
pub mod red_envelope;
pub mod scheduler;
pub mod sessions;
pub mod simulate;
pub mod welcome;

use std::sync::Arc;

/// The runtime's services, shared by every channel's handlers and the admin API.
pub struct Services {
    /// Where replies that could not go out at once are queued.
    pub outbox: crate::outbox::Outbox,
    pub dedupe: Arc<dedupe::Dedupe>,
    /// One event at a time per conversation.
    pub lanes: lanes::Lanes,
    /// Group settings: roles, tags, rules switched off.
    pub directory: Arc<groups::Directory>,
    pub cooldowns: cooldowns::Cooldowns,
    /// Welcomes reported joins.
    pub welcomer: welcome::Welcomer,
    /// Plans broadcast runs (also on demand).
    pub scheduler: scheduler::Scheduler,
    pub pipeline: pipeline::PipelineHandle,
    pub scripts: Arc<crate::scripts::live::LiveScripts>,
    pub store: crate::store::Store,
    /// Moderation's state: standings, recent activity, the blacklist.
    pub moderator: Arc<moderation::Moderator>,
    /// Who spoke, counted by the pipeline and not written yet (health reads it).
    pub speakers: crate::store::SharedTally,
    /// Red-envelope tests while they run.
    pub envelopes: Arc<red_envelope::Envelopes>,
    /// The operators' staff group, for what members must not see.
    pub alerts: alerts::Alerts,
    /// The bot accounts, through whichever channel carries them.
    pub accounts: Arc<dyn accounts::BotAccounts>,
    /// The service's background tasks (loops, roster syncs, group-name reads): shutdown waits
    /// for each of them before the pipeline drains.
    pub tasks: tokio_util::task::TaskTracker,
    /// The health ranking the console's lists read (kept for a minute; the health task puts
    /// its daily ranking there too).
    pub health: Arc<health::cache::RankingCache>,
}
