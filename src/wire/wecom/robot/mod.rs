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

pub use callback::{CallbackError, CallbackQuery, Opened, RobotEndpoint, parse_query};

/// The WeCom group robot: hears only @-mentions, answers passively, pushes through its
/// webhook, cannot see joins or remove anyone (WeCom gives the robot no API for either).
pub const CAPABILITIES: crate::domain::Capabilities = crate::domain::Capabilities {
    sees_every_message: false,
    reports_joins: false,
    passive_reply: true,
    can_post: true,
    can_remove_members: false,
    can_delete_messages: false,
    can_message_privately: false,
    // WeCom's limits for a text and a markdown message.
    reply_max_bytes: crate::domain::ReplyLimits {
        text: 2048,
        markdown: 4096,
    },
};
