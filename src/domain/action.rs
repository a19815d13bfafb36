//! What the bot does: the engine's [`Action`]s, the [`Reply`] and [`OutMessage`] channels
//! deliver, and the [`Capabilities`] a channel declares, which actions are fitted to.

use super::*;

/// A reply given inline, in the HTTP response to a callback (WeCom's "passive reply").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Reply {
    Text {
        content: String,
        /// User ids to @-mention (`@all` for everyone).
        mentioned: Vec<String>,
    },
    Markdown {
        content: String,
    },
}

/// A message the bot sends on its own initiative (pushed, not in a callback's response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msgtype", rename_all = "snake_case")]
pub enum OutMessage {
    Text {
        content: String,
        mentioned: Vec<String>,
        mentioned_mobiles: Vec<String>,
    },
    Markdown {
        content: String,
    },
    News {
        articles: Vec<Article>,
    },
    Image {
        bytes: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub title: String,
    pub description: String,
    pub url: String,
    pub picurl: String,
}

/// What a channel can do; the engine's actions are degraded to fit (see
/// [`crate::engine::degrade`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Hears every message in the group, not only the ones that @-mention the bot.
    pub sees_every_message: bool,
    /// Reports members joining the group.
    pub reports_joins: bool,
    /// Can answer in the response to the event (WeCom's passive reply).
    pub passive_reply: bool,
    /// Can post to the group unprompted.
    pub can_post: bool,
    /// Can remove a member from the group.
    pub can_remove_members: bool,
    /// Can delete a member's message from the group.
    pub can_delete_messages: bool,
    /// Can send a person a private message (a bot account to its contacts): reports reach the
    /// owner and admins there, not in the group.
    pub can_message_privately: bool,
    /// The longest passive reply, in bytes, as text and as markdown: a longer one is cut there,
    /// and the rest goes out as posts.
    #[serde(skip)]
    pub reply_max_bytes: ReplyLimits,
}

/// How long a passive reply may be, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    pub text: usize,
    pub markdown: usize,
}

impl ReplyLimits {
    /// No limit beyond what the channel's sends split themselves.
    pub const NONE: ReplyLimits = ReplyLimits {
        text: usize::MAX,
        markdown: usize::MAX,
    };
}

/// Something the engine decided the bot should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer in the response to the event.
    Reply(Reply),
    /// Post to the group unprompted.
    Post {
        message: OutMessage,
        purpose: &'static str,
    },
    /// Tell the group's owner and admins (for example: what the bot could not do itself).
    NotifyAdmins { text: String },
    /// Remove a member from the group.
    /// `name` is how people know the member (empty when unknown): notices say it, not the id.
    RemoveMember {
        user_id: String,
        name: String,
        reason: String,
    },
    /// Delete (recall) a message from the group, by the platform's message id.
    DeleteMessage { message_id: String },
    /// A moderation request from a command (the caller performs it and tells the admins).
    Moderation(ModerationRequest),
    /// Start a red-envelope test in this group (the caller starts it and posts the envelope).
    StartEnvelopeTest(EnvelopeParams),
    /// Cancel the red-envelope test running in this group (the caller answers when none is).
    CancelEnvelopeTest,
    /// Change the group's settings.
    Settings(SettingsChange),
    /// Start a keyword rule's cooldown in this conversation.
    StartCooldown { rule: String, secs: u64 },
}

/// What a red-envelope test is asked to be; a value left out takes the default of
/// `red_envelope.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeParams {
    pub total_fen: Option<u64>,
    pub shares: Option<u32>,
    pub window_secs: Option<u64>,
}

/// What members and admins ask of moderation in the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModerationRequest {
    /// Lift a ban: off the operator-wide blacklist, warnings cleared in every group.
    Pardon { user_id: String },
    /// Trust (or stop trusting) a member in this group: they skip the content checks.
    Approve { user_id: String, approved: bool },
    /// A member reports another member's recent messages to the admins.
    Report { user_id: String, reason: String },
    /// A member appeals a warning or removal to the admins.
    Appeal { reason: String },
}
