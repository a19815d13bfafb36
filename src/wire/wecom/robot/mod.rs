//! The WeCom group robot channel: callbacks that arrive when a member
//! @-mentions the robot or adds it to a group, passive replies, and pushes through the robot's
//! webhook.
//!
//! Capabilities: learns when it is added to or removed from a group; sees only messages that
//! @-mention it; can post into the group on its own (20 messages a minute per robot); cannot see
//! joins or remove members.

pub mod callback;
pub mod reply;
pub mod webhook;
pub mod xml;

pub use callback::{CallbackError, CallbackQuery, RobotEndpoint, parse_query};
