//! The bot-account channel: OneBot 12 implementations (an automation program driving a WeChat
//! account) connect to Trumpet and report every message, join and leave of the groups the
//! account is in. This step holds the wire protocol ([`protocol`]); the endpoints come next.

pub mod protocol;
