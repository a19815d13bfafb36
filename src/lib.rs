//! Trumpet (会计小喇叭): a WeCom / WeChat group bot for community operators.
//!
//! Events flow one way: a channel turns what a peer sends into domain events, they are
//! de-duplicated and handed to the pipeline, the engine decides what to say, and pushes go out
//! through the rate-limited outbox.
//!
//! Modules in layers, lowest first; a module uses only lower ones (tests/it/architecture.rs
//! holds this):
//!
//! | module | owns |
//! |---|---|
//! | [`domain`] | ids, events, replies and messages shared by every part; uses nothing |
//! | [`engine`] | pure rules: event + group view + scripts + now → actions; the loaded scripts' types (messages, templates, jobs, content) |
//! | [`scripts`] | reading, checking and hot-reloading the operator's bot-scripts into the engine's types |
//! | [`store`] | the redb file: tables, schema version, typed accessors |
//! | [`outbound`] | where the service may fetch from: listed media hosts, public feeds |
//! | [`wire`] | peers' wire formats and clients: WeCom crypto, the robot's XML and webhook client, OneBot 12 frames and the hub of connected accounts |
//! | [`outbox`] | the durable send queue: rate limits, retries, outcomes, resume after a restart |
//! | [`schedule`] | planning a job's slot into sends for the outbox |
//! | [`runtime`] | stateful services around the engine: inbound handling, lanes, de-duplication, the commit pipeline, and each feature's state (welcome, moderation, red envelopes, health, feeds, the scheduler, alerts) |
//! | [`channels`] | the handlers peers talk to: the robot's callbacks, OneBot's WebSocket and webhook, the bot accounts' roster sync |
//! | [`http`] | the axum router: callbacks, admin API, health |
//! | [`app`], [`config`], [`telemetry`] | building the service from settings; graceful shutdown; log setup |
//! | [`cli`] | the `trumpet` command: `serve`, `check`, `simulate`, `broadcast`, `keygen`, `credentials` |

#![forbid(unsafe_code)]

pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod outbound;
pub mod outbox;
pub mod runtime;
pub mod schedule;
pub mod scripts;
pub mod store;
pub mod telemetry;
pub mod wire;
