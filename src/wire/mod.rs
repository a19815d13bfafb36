//! Wire formats and clients: the only code that knows how a peer encodes things — WeCom's
//! callback crypto, the group robot's XML and webhook client ([`wecom`]), OneBot 12's frames and
//! the hub of connected accounts ([`onebot`]). Each maps a peer's messages to domain
//! [`Event`](crate::domain::Event)s and domain messages back. The handlers peers talk to are
//! [`crate::channels`]; the outbox sends through these clients.

pub mod onebot;
pub mod wecom;
