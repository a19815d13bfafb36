//! The OneBot 12 wire: the protocol's frames, events and actions ([`protocol`]), the mapping to
//! and from the domain ([`convert`]) and the live connections with their pending actions
//! ([`hub`]). The channel's handlers (authentication, the socket's read and write loops, the
//! roster sync) are [`crate::channels::onebot`].

pub mod convert;
pub mod hub;
pub mod protocol;

/// The bot-account channel (OneBot 12 implementations connecting to Trumpet).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneBotConfig {
    /// Hosts where an implementation serves `get_file` URLs (`host`, `host:port` or `*.domain`);
    /// empty: files are read only as data.
    #[serde(default)]
    pub file_hosts: Vec<String>,
    /// WebSocket connections one bot may have open at once; more are refused with 503.
    pub max_connections_per_bot: usize,
    /// How long an action may take before it counts as failed (and is retried where it may be).
    pub action_timeout_secs: u64,
    /// Trumpet pings each connection this often; a connection silent for `heartbeat_misses`
    /// heartbeat intervals (the implementation's own, or this one when it sends none) is closed.
    pub ping_interval_secs: u64,
    pub heartbeat_misses: u32,
    /// How often group names and member lists are read again (they are also read on connect).
    pub sync_interval_minutes: u64,
    /// First back-off after the platform refused an action (34xxx) or the implementation was
    /// busy (36xxx); doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// Attempts per action before it is recorded as failed.
    pub max_attempts: u32,
}

/// A bot account (OneBot 12): hears everything and sees joins; the reply goes out at once
/// on the connection the event came in on; removal and deletion only where the
/// implementation offers them; private messages through the standard `send_message`.
pub const fn capabilities(
    can_remove_members: bool,
    can_delete_messages: bool,
) -> crate::domain::Capabilities {
    crate::domain::Capabilities {
        sees_every_message: true,
        reports_joins: true,
        passive_reply: true,
        can_post: true,
        can_remove_members,
        can_delete_messages,
        can_message_privately: true,
        // The reply is a message like any other, split by the sender.
        reply_max_bytes: crate::domain::ReplyLimits::NONE,
    }
}
