//! The records the store keeps, serialised as JSON values inside redb tables so that fields can
//! be added without a migration (unknown fields are ignored, missing ones take defaults).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{BotId, ChatId, Reply};

/// Whether the bot currently serves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Adopted,
    Released,
}

/// Who adopted a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopter {
    pub user_id: String,
    pub name: String,
}

/// One group the bot has been in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub chat_id: ChatId,
    pub bot: BotId,
    pub status: GroupStatus,
    /// The robot webhook URL (a credential: never shown by the API).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// The bot account (OneBot `self` user id) through which the group is reached; `None` for
    /// groups of a group robot.
    #[serde(default)]
    pub account: Option<String>,
    /// Reached through its bot's long connection, a WeCom AI bot's (`aibot_send_msg`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aibot: bool,
    /// A WeCom customer group (客户群) seen through a self-built app: reached only by mass-send
    /// tasks its owner confirms.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub customer: bool,
    #[serde(default)]
    pub adopter: Option<Adopter>,
    #[serde(default)]
    pub adopted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub released_at: Option<DateTime<Utc>>,
    /// Why the group was last released (`removed from the group`, `errcode 93000`, …).
    #[serde(default)]
    pub release_reason: Option<String>,
    /// How the group was last adopted.
    #[serde(default)]
    pub adopted_via: Option<AdoptedVia>,
    #[serde(default)]
    pub members_seen: u64,
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub last_message_at: Option<DateTime<Utc>>,
    /// Posts waiting for a way to reach the group (the adoption greeting of a group whose
    /// webhook URL is not known yet): queued when one is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_posts: Vec<HeldPost>,
}

/// How a group came to be adopted (stored and shown as the snake_case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoptedVia {
    /// The bot was added to the group (the robot's `add_to_chat`, a bot account's join).
    AddToChat,
    /// The robot was in the group before Trumpet saw it being added: its first message did.
    FirstMessage,
    /// Found in a bot account's group list (the account was there already: no greeting).
    GroupList,
    /// An operator adopted it by its robot's webhook URL through the admin API (push-only).
    Api,
    /// Found in a self-built app's customer-group list (`groupchat/list`, or a `create` event).
    GroupchatList,
}

impl GroupRecord {
    /// Adopts the group (`via`, at `at`; `adopter` when someone is known to have added the
    /// bot). The one transition every way of adoption goes through.
    pub fn adopt(&mut self, via: AdoptedVia, at: DateTime<Utc>, adopter: Option<Adopter>) {
        self.status = GroupStatus::Adopted;
        self.adopted_at = Some(at);
        self.adopted_via = Some(via);
        self.released_at = None;
        self.release_reason = None;
        if adopter.is_some() {
            self.adopter = adopter;
        }
    }

    /// Releases the group at `at` for `reason`; posts held for it go (nobody will read them).
    pub fn release(&mut self, at: DateTime<Utc>, reason: impl Into<String>) {
        self.status = GroupStatus::Released;
        self.released_at = Some(at);
        self.release_reason = Some(reason.into());
        self.held_posts.clear();
    }
}

/// A post kept on the group until it can be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPost {
    /// The outbox key it is queued under (the event's), so that it is queued once.
    pub key: String,
    pub message: crate::domain::OutMessage,
    pub purpose: String,
    pub held_at: DateTime<Utc>,
}

/// The bot id recorded for groups adopted by webhook URL: they belong to no callback bot.
pub const PUSH_ONLY_BOT: &str = "push-only";

impl GroupRecord {
    /// Adopted by its webhook URL alone: the bot posts there but hears nothing from it.
    pub fn is_push_only(&self) -> bool {
        self.account.is_none() && self.bot.as_str() == PUSH_ONLY_BOT
    }

    /// A group seen for the first time: released until an adoption says otherwise.
    pub fn new(chat_id: ChatId, bot: BotId) -> Self {
        Self {
            chat_id,
            bot,
            status: GroupStatus::Released,
            webhook_url: None,
            account: None,
            aibot: false,
            customer: false,
            adopter: None,
            adopted_at: None,
            released_at: None,
            release_reason: None,
            adopted_via: None,
            members_seen: 0,
            messages: 0,
            last_message_at: None,
            held_posts: Vec::new(),
        }
    }
}

/// One member seen in one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub user_id: String,
    pub name: String,
    pub alias: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub message_count: u64,
}

/// A handled message id and the passive reply it got, so that a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupeRecord {
    /// Unix seconds when it was first handled.
    pub at: i64,
    pub reply: Option<Reply>,
}

/// Per-group counters for one local day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCounters {
    pub messages: u64,
    pub speakers: u64,
}
