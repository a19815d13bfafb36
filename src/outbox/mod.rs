//! Everything the bot sends on its own initiative: the [`governor`] (rate limits and back-off)
//! and the durable [`sender`] that delivers outbox entries through robot webhooks in order per
//! key, recording every outcome in the store.

pub mod governor;
pub mod sender;

pub use sender::{
    MAX_IN_FLIGHT, MAX_RUNNING_LANES, Outbox, OutboxOptions, OutboxStats, SendSettings,
};

use crate::channels::wecom::robot::webhook::WebhookUrl;
use crate::store::{Destination, GroupRecord};

/// What a group's channel can do when the bot speaks unprompted (posting; removal and deletion
/// are for the event paths, which know the implementation's actions).
pub fn posting_capabilities(group: &GroupRecord) -> crate::domain::Capabilities {
    match group.account {
        Some(_) => crate::domain::Capabilities::bot_account(false, false),
        None => crate::domain::Capabilities::WECOM_ROBOT,
    }
}

/// Where `group`'s sends go: its bot account, or its robot's webhook URL when that URL points
/// at an allowed host. The error says why there is nowhere to send.
pub fn group_destination(
    group: &GroupRecord,
    webhook_hosts: &[String],
) -> Result<Destination, String> {
    match Destination::of_group(group) {
        Some(Destination::Webhook { url }) => match WebhookUrl::parse(&url, webhook_hosts) {
            Ok(_) => Ok(Destination::Webhook { url }),
            Err(e) => Err(format!("the webhook URL is refused: {e}")),
        },
        Some(account) => Ok(account),
        None => Err("no webhook URL or bot account is known for this group".into()),
    }
}
