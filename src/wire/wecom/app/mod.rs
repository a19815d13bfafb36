//! A WeCom self-built app (自建应用) with customer-contact rights: the server API it calls
//! ([`client`]: the access token, customer groups, mass-send tasks, welcome templates) and the
//! customer-group change events WeCom sends to its callback URL ([`event`]).
//!
//! Capabilities in customer groups (客户群): sees members join and leave (with the join scene),
//! cannot see messages, cannot post without the owner confirming a mass-send task in the WeCom
//! client, cannot remove anyone. Welcomes are WeCom's own: templates the owner attaches to the
//! group, sent by WeCom to each newcomer.

pub mod client;
pub mod event;
#[cfg(test)]
mod tests;

pub use client::{
    ApiError, AppClient, GroupChat, GroupMember, MassSendResult, MassTaskOwner, SentMassMessage,
    until_stopped,
};
pub use event::{
    AppEvent, ChatChange, ChatChangeKind, EventError, parse_app_event, parse_chat_change,
};

/// What the app can do in a customer group. `can_post` is false: the engine's posts (welcomes,
/// replies, notices) degrade visibly; broadcasts go out as mass-send tasks instead, which the
/// owner confirms.
pub const CAPABILITIES: crate::domain::Capabilities = crate::domain::Capabilities {
    sees_every_message: false,
    reports_joins: true,
    passive_reply: false,
    can_post: false,
    can_remove_members: false,
    can_delete_messages: false,
    can_message_privately: false,
    reply_max_bytes: crate::domain::ReplyLimits::NONE,
};

/// WeCom's server API.
pub const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";

/// The longest text of a mass-send task, in bytes (WeCom's limit).
pub const MASS_TEXT_MAX_BYTES: usize = 4000;

/// The most customer groups one mass-send task may name (`chat_id_list`).
pub const MASS_MAX_GROUPS: usize = 2000;

/// The longest text of a group welcome template, in bytes.
pub const WELCOME_TEXT_MAX_BYTES: usize = crate::engine::welcome::WECOM_WELCOME_MAX_BYTES;

/// How often an owner may be reminded of one task per day (`remind_groupmsg_send`).
pub const MAX_REMINDERS_PER_DAY: usize = 3;

/// The text of a mass-send task for `message`: WeCom's mass sends take plain text (markdown is
/// sent as the text a member would read, news as title, description and link). An image, or a
/// text longer than [`MASS_TEXT_MAX_BYTES`], is refused with the reason.
pub fn mass_text(message: &crate::domain::OutMessage) -> Result<String, String> {
    use crate::domain::OutMessage;
    use crate::wire::onebot::convert::markdown_to_text;
    let text = match message {
        OutMessage::Text { content, .. } => content.clone(),
        OutMessage::Markdown { content } => markdown_to_text(content),
        OutMessage::News { articles } => articles
            .iter()
            .map(|a| {
                [a.title.as_str(), a.description.as_str(), a.url.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        OutMessage::Image { .. } => {
            return Err("an image cannot go out in a customer group's mass-send task yet".into());
        }
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err("the message has no text for a mass-send task".into());
    }
    if text.len() > MASS_TEXT_MAX_BYTES {
        return Err(format!(
            "the text is {} bytes; a mass-send task takes at most {MASS_TEXT_MAX_BYTES}",
            text.len()
        ));
    }
    Ok(text)
}

/// One `wecom-app` bot: its corp, the app's secret and where its API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    /// The corp id (`ww…`): the receive id of its callbacks too.
    pub corp_id: String,
    /// The app's Secret (a credential: never logged).
    pub secret: crate::domain::Secret,
    /// Where the server API is (tests point it at a local fake).
    pub api_base: String,
    /// How often every customer group is read again (list, names, members).
    pub sync_interval_secs: u64,
    /// How often the results of unfinished mass-send tasks are read.
    pub result_poll_secs: u64,
    /// An owner who has not confirmed a task this long after it was created is reminded.
    pub remind_after_secs: u64,
    /// Calls per minute to any one API path (WeCom limits each per corp).
    pub api_per_minute: u32,
}
