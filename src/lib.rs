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
//! | [`engine`] | pure rules: normalisation, keyword replies, what to answer |
//! | [`scripts`] | loading the operator's bot-scripts |
//! | [`dedupe`] | handled message ids, so WeCom's retries trigger nothing twice |
//! | [`cooldowns`] | when keyword rules last answered in each conversation |
//! | [`pipeline`] | the ordered path from an accepted event to the store and the pusher |
//! | [`outbox`] | rate limits and pushes through robot webhooks |
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
pub mod http;
pub mod outbox;
pub mod pipeline;
pub mod scripts;
pub mod store;
pub mod telemetry;
