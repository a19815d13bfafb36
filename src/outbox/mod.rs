//! Everything the bot sends on its own initiative: the [`governor`] (rate limits and back-off),
//! the durable [`sender`] that delivers outbox entries through robot webhooks in order per
//! key, recording every outcome in the store, and the [`mass_send`] tasks that carry broadcasts
//! to WeCom customer groups.

pub mod governor;
pub mod mass_send;
pub mod sender;

pub use sender::{
    MAX_IN_FLIGHT, MAX_RUNNING_LANES, Outbox, OutboxOptions, OutboxStats, SendSettings,
};

use crate::store::{Destination, GroupRecord};
use crate::wire::wecom::robot::webhook::WebhookUrl;

/// What a group's channel can do when the bot speaks unprompted (posting; removal and deletion
/// are for the event paths, which know the implementation's actions).
pub fn posting_capabilities(group: &GroupRecord) -> crate::domain::Capabilities {
    match group.account {
        Some(_) => crate::wire::onebot::capabilities(false, false),
        None if group.customer => crate::wire::wecom::app::CAPABILITIES,
        None if group.aibot => crate::wire::wecom::aibot::CAPABILITIES,
        None => crate::wire::wecom::robot::CAPABILITIES,
    }
}

/// Where `group`'s posts go: its bot account, or its robot's webhook URL when that URL points
/// at an allowed host. The error says why there is nowhere to post — a customer group takes
/// only broadcasts, as mass-send tasks (see the scheduler).
pub fn group_destination(
    group: &GroupRecord,
    webhook_hosts: &[String],
) -> Result<Destination, String> {
    match Destination::of_group(group) {
        Some(Destination::CustomerGroup { .. }) => Err(
            "a WeCom customer group takes no posts: only broadcasts, as mass-send tasks its owner confirms".into(),
        ),
        Some(Destination::Webhook { url }) => match WebhookUrl::parse(&url, webhook_hosts) {
            Ok(_) => Ok(Destination::Webhook { url }),
            Err(e) => Err(format!("the webhook URL is refused: {e}")),
        },
        Some(account) => Ok(account),
        None => Err("no webhook URL or bot account is known for this group".into()),
    }
}

/// The durable outbox, whatever the channel.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Minutes after which a send that could not go out yet (its account offline, its limit
    /// reached) is pointless and is recorded as expired instead of sent late, by purpose:
    /// `welcome`, `reply`, `adoption_greeting`, `notify_admins`, and `broadcast` for every
    /// scheduled job. A purpose not listed never expires. Fractions are allowed (`0.5`).
    pub expire_after_minutes: std::collections::BTreeMap<String, f64>,
}

/// Every purpose a send can have (`broadcast` standing for every scheduled job's sends): the
/// keys `[outbox.expire_after_minutes]` accepts.
pub const SEND_PURPOSES: [&str; 10] = [
    "welcome",
    "reply",
    "adoption_greeting",
    "notify_admins",
    "broadcast",
    "red_envelope",
    "red_envelope_report",
    "report",
    "moderation_warning",
    "health_digest",
];

impl OutboxConfig {
    /// How long a send of `purpose` (`broadcast` when it belongs to a run) stays worth sending.
    pub fn expiry(&self, purpose: &str, broadcast: bool) -> Option<std::time::Duration> {
        let key = if broadcast { "broadcast" } else { purpose };
        self.expire_after_minutes
            .get(key)
            .and_then(|m| std::time::Duration::try_from_secs_f64(m * 60.0).ok())
    }
}
