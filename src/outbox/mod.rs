//! Everything the bot sends on its own initiative: the [`governor`] (rate limits and back-off)
//! and the durable [`sender`] that delivers outbox entries through robot webhooks in order per
//! key, recording every outcome in the store.

pub mod governor;
pub mod sender;

pub use sender::{MAX_IN_FLIGHT, Outbox, OutboxStats, SendSettings};
