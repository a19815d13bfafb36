//! What channels hear: an [`Event`] (a message, a join, a removal, a grab) from a [`Sender`] in
//! a conversation, in the channel-independent shape the engine reads.

use super::*;

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sender {
    pub user_id: String,
    pub name: String,
    pub alias: String,
}

/// Where a message was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A group chat.
    Group(ChatId),
    /// A one-to-one chat with the bot.
    Direct,
}

/// One inbound event, normalised from whatever channel it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub bot: BotId,
    /// The channel's message id (used for de-duplication).
    pub msg_id: String,
    pub conversation: Conversation,
    pub from: Sender,
    /// The group robot's push URL for this conversation, as the channel reported it (unchecked).
    pub webhook_url: Option<String>,
    /// The bot account the event came through (bot-account channels: the OneBot `self`).
    pub account: Option<String>,
    /// The platform's id of the message, where the channel gives one that it can later act on
    /// (OneBot `message_id`, used to delete it). `msg_id` identifies the event instead.
    pub message_id: Option<String>,
    pub kind: EventKind,
    /// Whether the bot was @-mentioned (or spoken to one-to-one). Always true on the group
    /// robot, which only hears mentions.
    pub mentioned: bool,
    pub received_at: DateTime<Utc>,
}

/// The longest group or member id accepted from a channel, in bytes (as in the admin API).
pub const MAX_ID_BYTES: usize = 128;

/// The longest event or message id accepted from a channel, in bytes.
pub const MAX_MSG_ID_BYTES: usize = 256;

impl Event {
    /// The first id that is longer than a channel may send (nothing of such an event is kept:
    /// a 10,000-character chat id would otherwise be stored and shown everywhere).
    pub fn oversized_id(&self) -> Option<&'static str> {
        let over = |s: &str, max: usize| s.len() > max;
        if self
            .chat_id()
            .is_some_and(|c| over(c.as_str(), MAX_ID_BYTES))
        {
            Some("chat id")
        } else if over(&self.from.user_id, MAX_ID_BYTES) {
            Some("user id")
        } else if self
            .account
            .as_deref()
            .is_some_and(|a| over(a, MAX_ID_BYTES))
        {
            Some("account")
        } else if over(&self.msg_id, MAX_MSG_ID_BYTES) {
            Some("message id")
        } else if self
            .message_id
            .as_deref()
            .is_some_and(|m| over(m, MAX_MSG_ID_BYTES))
        {
            Some("platform message id")
        } else {
            None
        }
    }

    pub fn chat_id(&self) -> Option<&ChatId> {
        match &self.conversation {
            Conversation::Group(id) => Some(id),
            Conversation::Direct => None,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A text message, with the leading @-mention of the bot removed.
    Text {
        text: String,
    },
    Image {
        url: String,
    },
    /// Text and images in one message, in order.
    Mixed {
        items: Vec<MixedItem>,
    },
    /// A member pressed a button on one of the bot's interactive messages.
    Attachment {
        callback_id: String,
        actions: Vec<AttachmentAction>,
    },
    /// The bot was added to the group (`from` is who added it). With an empty `from`, nobody
    /// is known to have: a channel that learns of a group only when it is first spoken to there
    /// (the WeCom AI bot) reports this just before that message — the group is adopted as
    /// `first_message`, greeted, and has no owner yet.
    BotAdded,
    /// The bot was removed from the group.
    BotRemoved,
    /// A member joined the group (`from` is the member).
    MemberJoined {
        scene: JoinScene,
        /// Who added them, when the channel says.
        operator: String,
    },
    /// A member left the group (`from` is the member).
    MemberLeft {
        /// Removed by someone (`operator`), rather than left on their own.
        kicked: bool,
        operator: String,
    },
    /// A message was recalled or deleted.
    MessageDeleted {
        message_id: String,
        operator: String,
    },
    /// A member grabbed a share of a real red envelope the bot account posted (`from` is the
    /// member; the amount when the channel says).
    EnvelopeGrabbed {
        amount_fen: Option<u64>,
    },
    /// A member opened a one-to-one chat with the bot.
    EnterChat,
    /// A message or event kind this build does not know; kept for the log.
    Unknown {
        msg_type: String,
    },
}

impl EventKind {
    /// Whether a member said something or pressed a button (as opposed to joining, leaving,
    /// adopting, …): what counts as a member's message in the group's counters.
    pub fn is_message(&self) -> bool {
        matches!(
            self,
            EventKind::Text { .. }
                | EventKind::Image { .. }
                | EventKind::Mixed { .. }
                | EventKind::Attachment { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MixedItem {
    Text(String),
    Image(String),
    /// A part the domain has no word for (a link card, a mini-program, a `wx.` extension),
    /// kept as the channel sent it: its type and its data as JSON.
    Other {
        kind: String,
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentAction {
    pub name: String,
    pub value: String,
    pub kind: String,
}

/// How a member came into a group (WeCom `JoinScene`, OneBot `sub_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinScene {
    /// Added by another member.
    Invited,
    /// Scanned the group's QR code.
    Qrcode,
    /// Followed an invitation link.
    Link,
    /// The channel did not say.
    Unknown,
}

impl JoinScene {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinScene::Invited => "invited",
            JoinScene::Qrcode => "qrcode",
            JoinScene::Link => "link",
            JoinScene::Unknown => "unknown",
        }
    }
}

/// A member who joined a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joiner {
    pub member: Sender,
    pub scene: JoinScene,
}
