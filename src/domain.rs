//! The shared vocabulary of the service: ids, inbound [`Event`]s produced by channels, and the
//! outbound messages ([`Reply`], [`OutMessage`]) that channels deliver.
//!
//! Nothing here knows a wire format: channels translate to and from these types.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A configured bot's id: the path segment in `/wecom/robot/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BotId(String);

impl BotId {
    /// 1–64 ASCII letters, digits, `-` or `_`, so that it is safe in a URL path.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 {
            return Err(format!("must be 1 to 64 characters, got {}", s.len()));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "{s:?} may contain only ASCII letters, digits, '-' and '_'"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A group's stable id as the channel reports it (WeCom `ChatId`). Groups are always keyed by
/// this, never by their name, which members can change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChatId(String);

impl ChatId {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
    pub kind: EventKind,
    /// Whether the bot was @-mentioned (or spoken to one-to-one). Always true on the group
    /// robot, which only hears mentions.
    pub mentioned: bool,
    pub received_at: DateTime<Utc>,
}

impl Event {
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
    /// The bot was added to the group.
    BotAdded,
    /// The bot was removed from the group.
    BotRemoved,
    /// A member opened a one-to-one chat with the bot.
    EnterChat,
    /// A message or event kind this build does not know; kept for the log.
    Unknown {
        msg_type: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MixedItem {
    Text(String),
    Image(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentAction {
    pub name: String,
    pub value: String,
    pub kind: String,
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub title: String,
    pub description: String,
    pub url: String,
    pub picurl: String,
}
