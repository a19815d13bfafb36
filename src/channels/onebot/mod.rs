//! The bot-account channel: OneBot 12 implementations (an automation program driving a WeChat
//! account) connect to Trumpet and report every message, join and leave of the groups the
//! account is in: the wire protocol ([`protocol`]), the mapping to and from the domain
//! ([`convert`]) and the live connections with their pending actions ([`hub`]). The HTTP side
//! (authentication, the socket's read and write loops) is in `crate::http::onebot`.

pub mod convert;
pub mod hub;
pub mod protocol;
