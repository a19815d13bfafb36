//! Everything the bot sends on its own initiative: the [`governor`] (rate limits and back-off)
//! and the [`pusher`] that delivers messages through robot webhooks in order per key.

pub mod governor;
pub mod pusher;

pub use pusher::{PushJob, PushSettings, PushStats, Pusher};
