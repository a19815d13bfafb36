//! The shared vocabulary of the service: ids, inbound [`Event`]s produced by channels, and the
//! outbound messages ([`Reply`], [`OutMessage`]) that channels deliver.
//!
//! Nothing here knows a wire format: channels translate to and from these types.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod secret;
pub use secret::Secret;

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

/// A bot account (a WeChat or WeCom user a bot implementation is logged in as): the configured
/// bot it belongs to and its user id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountKey {
    pub bot: BotId,
    pub user_id: String,
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
    /// The bot was added to the group.
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

/// A member's standing in a group (the community pyramid), lowest first so that roles compare:
/// `Role::Admin >= Role::Helper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    /// 小当家: helps run the group.
    Helper,
    /// 大当家: runs the group with the owner.
    Admin,
    /// Whoever adopted the group (or an operator, in every group).
    Owner,
}

impl Role {
    /// The name members know the role by.
    pub fn title(self) -> &'static str {
        match self {
            Role::Member => "成员",
            Role::Helper => "小当家",
            Role::Admin => "大当家",
            Role::Owner => "群主",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "member" => Some(Role::Member),
            "helper" => Some(Role::Helper),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Helper => "helper",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// A member who holds a role in a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleHolder {
    pub role: Role,
    /// The display name when the role was given (for lists members read).
    #[serde(default)]
    pub name: String,
}

/// What operators and group admins have set for one group: who holds which role, the group's
/// tags (for scoped rules) and the rules switched off here. Keyed by chat id, never by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    /// The owner (the adopter), by user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// The owner's display name when they became owner.
    #[serde(default)]
    pub owner_name: String,
    /// Admins and helpers by user id (the owner is not listed here).
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, RoleHolder>,
    /// Tags such as `province:广东` or `type:新手群`.
    #[serde(default)]
    pub tags: std::collections::BTreeSet<String>,
    /// Rule ids switched off in this group.
    #[serde(default)]
    pub disabled_rules: std::collections::BTreeSet<String>,
    /// The group's name as the operator gave it (templates: `group.name`). Empty: unknown.
    #[serde(default)]
    pub name: String,
    /// An IANA time zone in which this group's scheduled jobs run, instead of the job's own.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl GroupSettings {
    /// The role `user_id` holds here (operators are owners everywhere: see the engine).
    pub fn role_of(&self, user_id: &str) -> Role {
        if self.owner.as_deref() == Some(user_id) {
            return Role::Owner;
        }
        self.roles.get(user_id).map_or(Role::Member, |h| h.role)
    }

    /// Applies one change; returns whether anything changed.
    pub fn apply(&mut self, change: &SettingsChange) -> bool {
        match change {
            SettingsChange::SetOwner { user_id, name } => {
                let changed =
                    self.owner.as_deref() != Some(user_id.as_str()) || self.owner_name != *name;
                self.owner = Some(user_id.clone());
                self.owner_name = name.clone();
                self.roles.remove(user_id).is_some() || changed
            }
            SettingsChange::SetRole {
                user_id,
                name,
                role,
            } => match role {
                Role::Member => self.roles.remove(user_id).is_some(),
                Role::Owner => self.apply(&SettingsChange::SetOwner {
                    user_id: user_id.clone(),
                    name: name.clone(),
                }),
                role => {
                    let holder = RoleHolder {
                        role: *role,
                        name: name.clone(),
                    };
                    self.roles.insert(user_id.clone(), holder.clone()) != Some(holder)
                }
            },
            // Every tag is applied: no short-circuiting `any`.
            SettingsChange::AddTags(tags) => {
                tags.iter()
                    .map(|t| self.tags.insert(t.clone()))
                    .filter(|&inserted| inserted)
                    .count()
                    > 0
            }
            SettingsChange::RemoveTags(tags) => {
                tags.iter()
                    .map(|t| self.tags.remove(t))
                    .filter(|&removed| removed)
                    .count()
                    > 0
            }
            SettingsChange::ReplaceTags(tags) => {
                let new: std::collections::BTreeSet<String> = tags.iter().cloned().collect();
                let changed = new != self.tags;
                self.tags = new;
                changed
            }
            SettingsChange::SwitchRule { rule, enabled } => {
                if *enabled {
                    self.disabled_rules.remove(rule)
                } else {
                    self.disabled_rules.insert(rule.clone())
                }
            }
            SettingsChange::SetName(name) => {
                let changed = self.name != *name;
                self.name = name.clone();
                changed
            }
            SettingsChange::SetTimezone(zone) => {
                let changed = self.timezone != *zone;
                self.timezone = zone.clone();
                changed
            }
        }
    }
}

/// A change to a group's [`GroupSettings`], from an in-chat command or the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SettingsChange {
    SetOwner {
        user_id: String,
        #[serde(default)]
        name: String,
    },
    /// `Role::Member` takes a role away.
    SetRole {
        user_id: String,
        name: String,
        role: Role,
    },
    AddTags(Vec<String>),
    RemoveTags(Vec<String>),
    ReplaceTags(Vec<String>),
    SwitchRule {
        rule: String,
        enabled: bool,
    },
    SetName(String),
    /// `None` goes back to each job's own time zone.
    SetTimezone(Option<String>),
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

/// A red-envelope test's measurement, as the engine computes it and the store keeps it.
pub mod red_envelope {
    use serde::{Deserialize, Serialize};

    /// How alive a group looks from one test.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Verdict {
        Alive,
        Sluggish,
        Dead,
    }

    /// What a finished (or running) test measured.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Results {
        pub shares: u32,
        /// Claims within the window.
        pub claims: usize,
        pub claimed_fen: u64,
        /// Seconds from the post to the first claim, to half the shares claimed (rounded up), and to
        /// every share claimed; `None` when that did not happen within the window.
        pub first_claim_secs: Option<u64>,
        pub half_claimed_secs: Option<u64>,
        pub all_claimed_secs: Option<u64>,
        /// Claimers ÷ members, when the member count is known.
        pub claimer_ratio: Option<f64>,
        /// Claimers who never otherwise speak in the group.
        pub silent_claimers: usize,
        pub verdict: Verdict,
    }
}
