//! The runtime: stateful services that do I/O on the engine's behalf — today the scheduler that
//! wakes for each job's slot and plans it into the outbox. The rest of the runtime (inbound
//! handling, lanes, de-duplication, cooldowns, the commit pipeline, welcomes, moderation's state,
//! envelope timers, digests, feeds) moves here as issue 17 goes on; the pure rules stay in
//! `engine`, the plans in `schedule`.

pub mod alerts;
pub mod scheduler;
