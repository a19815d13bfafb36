//! Channels: the only code that knows a wire format. Each turns what a peer sends into domain
//! [`Event`](crate::domain::Event)s and delivers domain messages back.

pub mod onebot;
pub mod wecom;
