//! Trumpet (会计小喇叭): a WeCom / WeChat group bot for community operators.
//!
//! Events flow one way: a channel turns what a peer sends into domain events, they are
//! de-duplicated and handed to the pipeline, the engine decides what to say, and pushes go out
//! through the rate-limited outbox.
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the `trumpet` command: `serve`, `check`, `keygen`, `credentials` |
//! | [`config`] | layered settings, validation, secrets that never print |
//! | [`telemetry`] | log setup (human or JSON) |
//! | [`app`] | building the service from settings; graceful shutdown |
//! | [`domain`] | ids, events, replies and messages shared by every part |
//! | [`channels`] | wire formats: WeCom crypto, the group robot's callbacks and webhook |
//! | [`engine`] | pure rules: event + group view + scripts + now → actions; the loaded scripts' types (messages, templates, jobs, content) |
//! | [`schedule`] | planning a job's slot into sends for the outbox |
//! | [`runtime`] | stateful services around the engine: the scheduler (more to come, issue 17) |
//! | [`scripts`] | reading, checking and hot-reloading the operator's bot-scripts into the engine's types |
//! | [`dedupe`] | handled message ids, so WeCom's retries trigger nothing twice |
//! | [`groups`] | group settings (roles, tags, rules switched off) held in memory, stored first |
//! | [`lanes`] | one event at a time per group, groups side by side |
//! | [`welcomer`] | batching reported joins into welcomes, recording who was welcomed |
//! | [`cooldowns`] | when keyword rules last answered in each conversation |
//! | [`pipeline`] | the ordered path from an accepted event to the store and the outbox |
//! | [`outbound`] | where the service may fetch from: listed media hosts, public feeds |
//! | [`outbox`] | the durable send queue: rate limits, retries, outcomes, resume after a restart |
//! | [`store`] | the redb file: tables, schema version, typed accessors |
//! | [`http`] | the axum router: callbacks, admin API, health |

#![forbid(unsafe_code)]

pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod cooldowns;
pub mod dedupe;
pub mod domain;
pub mod engine;
pub mod feeds;
pub mod groups;
pub mod health;
pub mod http;
pub mod inbound;
pub mod lanes;
pub mod moderator;
pub mod outbound;
pub mod outbox;
pub mod pipeline;
pub mod red_envelopes;
pub mod roster;
pub mod runtime;
pub mod schedule;
pub mod scripts;
pub mod store;
pub mod telemetry;
pub mod welcomer;
