//! The WeCom AI bot (智能机器人) over its long connection: the JSON frames of the WebSocket the
//! service dials (`{cmd, headers: {req_id}, body}`), what WeCom sends on it turned into domain
//! events, and the frames the service sends back — the subscription, heartbeats, stream replies
//! on a callback's `req_id`, the welcome on `enter_chat`, and unprompted markdown posts.
//!
//! Acks carry no `cmd`: they are matched to what they answer by `req_id`. Callbacks arrive only
//! for messages that @-mention the bot in a group (and for one-to-one chats with it); the
//! channel learns of a group the first time it is spoken to there. It cannot see joins, remove
//! anyone or delete a message.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{
    BotId, ChatId, Conversation, Event, EventKind, MixedItem, OutMessage, Reply, Sender,
};
use crate::wire::wecom::robot::xml::strip_robot_mention;

pub mod callback;
pub mod link;
#[cfg(test)]
mod tests;

pub use link::{AckError, AiBotLinks, Session};

/// What the AI bot can do on its long connection: hears @-mentions only, answers on the
/// callback's `req_id` (the channel's "passive" reply, sent as a finished stream), cannot see
/// joins, remove members or delete messages. Posts unprompted through the outbox
/// (`aibot_send_msg`, markdown).
pub const CAPABILITIES: crate::domain::Capabilities = crate::domain::Capabilities {
    sees_every_message: false,
    reports_joins: false,
    passive_reply: true,
    can_post: true,
    can_remove_members: false,
    can_delete_messages: false,
    can_message_privately: false,
    // A longer answer is split into several stream messages by [`reply_contents`].
    reply_max_bytes: crate::domain::ReplyLimits::NONE,
};

/// The longest content of one stream message, in bytes (WeCom's limit).
pub const MAX_STREAM_BYTES: usize = 20_480;

/// The longest frame accepted from WeCom: callbacks are a few kilobytes, a quoted mixed message
/// a little more.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// The long connections of `wecom-aibot` bots (`[aibot]` in the configuration).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiBotConfig {
    /// A heartbeat goes out this often; two unanswered ones mean the link is dead.
    pub ping_interval_secs: u64,
    /// How long a reply or the subscription waits for WeCom's ack.
    pub ack_timeout_secs: u64,
    /// The longest wait between reconnection attempts (they start at 1 s and double).
    pub reconnect_max_secs: u64,
}

/// One AI bot's long connection: its BotID and Secret from the WeCom admin console, and the
/// WebSocket URL it dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiBotSettings {
    pub bot_id: String,
    pub secret: crate::domain::Secret,
    pub ws_url: String,
}

/// Where WeCom's AI bots take long connections.
pub const DEFAULT_AIBOT_WS_URL: &str = "wss://openws.work.weixin.qq.com";

/// Commands of the protocol.
pub mod cmd {
    pub const SUBSCRIBE: &str = "aibot_subscribe";
    pub const PING: &str = "ping";
    pub const RESPOND: &str = "aibot_respond_msg";
    pub const RESPOND_WELCOME: &str = "aibot_respond_welcome_msg";
    pub const SEND: &str = "aibot_send_msg";
    pub const MESSAGE: &str = "aibot_msg_callback";
    pub const EVENT: &str = "aibot_event_callback";
}

/// Why a frame from WeCom could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a JSON frame: {0}")]
    Json(String),
    #[error("the frame has no headers.req_id")]
    NoReqId,
    #[error("the {0} frame has no body")]
    NoBody(&'static str),
    #[error("a group message without a chatid")]
    GroupWithoutChatId,
    #[error("the message has no msgid")]
    NoMsgId,
}

/// One frame from WeCom, sorted by what it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// The answer to something the service sent with this `req_id` (subscribe, ping, a reply or
    /// a post): `errcode` 0 means done.
    Ack {
        req_id: String,
        errcode: i64,
        errmsg: String,
    },
    /// A message that @-mentions the bot, or a one-to-one message; answered on `req_id`.
    Message { req_id: String, body: Callback },
    /// An event (`enter_chat`, `template_card_event`, `feedback_event`,
    /// `disconnected_event`); answered on `req_id` where it can be.
    Event { req_id: String, body: Callback },
    /// A frame with a command this client does not know: logged, not answered.
    Other { cmd: String },
}

#[derive(Debug, Deserialize)]
struct RawFrame {
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    headers: Option<RawHeaders>,
    #[serde(default)]
    body: Option<Callback>,
    #[serde(default)]
    errcode: Option<i64>,
    #[serde(default)]
    errmsg: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawHeaders {
    #[serde(default)]
    req_id: Option<String>,
}

/// The body of a message or event callback, as much of it as the service reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Callback {
    pub msgid: String,
    pub aibotid: String,
    pub chatid: String,
    /// `single` or `group`.
    pub chattype: String,
    pub from: From,
    pub msgtype: String,
    pub text: Option<Content>,
    pub voice: Option<Content>,
    pub mixed: Option<Mixed>,
    pub event: Option<EventBody>,
    pub create_time: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct From {
    pub userid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Content {
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Mixed {
    pub msg_item: Vec<MixedPart>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MixedPart {
    pub msgtype: String,
    pub text: Option<Content>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EventBody {
    pub eventtype: String,
}

/// What the AI bot can do in URL-callback mode: as on the long connection, except posting
/// unprompted (there is no socket to post on; `response_url` allows one late answer per message,
/// which Trumpet does not use).
pub const CALLBACK_CAPABILITIES: crate::domain::Capabilities = crate::domain::Capabilities {
    can_post: false,
    ..CAPABILITIES
};

/// Reads one text frame from WeCom.
pub fn parse_frame(text: &str) -> Result<Inbound, FrameError> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let req_id = raw
        .headers
        .and_then(|h| h.req_id)
        .filter(|r| !r.is_empty())
        .ok_or(FrameError::NoReqId)?;
    match raw.cmd.as_deref() {
        None | Some("") => Ok(Inbound::Ack {
            req_id,
            // WeCom's acks carry an errcode; one without is read as 0.
            errcode: raw.errcode.unwrap_or(0),
            errmsg: raw.errmsg.unwrap_or_default(),
        }),
        Some(cmd::MESSAGE) => Ok(Inbound::Message {
            req_id,
            body: raw.body.ok_or(FrameError::NoBody(cmd::MESSAGE))?,
        }),
        Some(cmd::EVENT) => Ok(Inbound::Event {
            req_id,
            body: raw.body.ok_or(FrameError::NoBody(cmd::EVENT))?,
        }),
        Some(other) => Ok(Inbound::Other {
            cmd: other.to_owned(),
        }),
    }
}

impl Callback {
    /// The event type of an event callback (empty for a message).
    pub fn event_type(&self) -> &str {
        self.event.as_ref().map_or("", |e| e.eventtype.as_str())
    }

    /// This callback as a domain event of `bot`. Messages of a kind the engine does not read
    /// (images and files, which arrive encrypted; template-card and feedback events) become
    /// [`EventKind::Unknown`], which the channel acknowledges and logs.
    pub fn into_event(self, bot: &BotId, received_at: DateTime<Utc>) -> Result<Event, FrameError> {
        if self.msgid.is_empty() {
            return Err(FrameError::NoMsgId);
        }
        let conversation = if self.chattype == "group" || !self.chatid.is_empty() {
            if self.chatid.is_empty() {
                return Err(FrameError::GroupWithoutChatId);
            }
            Conversation::Group(ChatId::new(self.chatid.clone()))
        } else {
            Conversation::Direct
        };
        let in_group = matches!(conversation, Conversation::Group(_));
        let text_of =
            |c: &Option<Content>| c.as_ref().map_or("", |c| c.content.as_str()).to_owned();
        let kind = match self.msgtype.as_str() {
            "text" => EventKind::Text {
                text: strip_robot_mention(&text_of(&self.text), in_group).to_owned(),
            },
            // WeCom transcribes a voice message: read as what was said.
            "voice" => EventKind::Text {
                text: strip_robot_mention(&text_of(&self.voice), in_group).to_owned(),
            },
            "mixed" => EventKind::Mixed {
                items: self
                    .mixed
                    .iter()
                    .flat_map(|m| &m.msg_item)
                    .filter(|part| part.msgtype == "text")
                    .map(|part| {
                        MixedItem::Text(
                            strip_robot_mention(&text_of(&part.text), in_group).to_owned(),
                        )
                    })
                    .collect(),
            },
            "event" => match self.event_type() {
                "enter_chat" => EventKind::EnterChat,
                other => EventKind::Unknown {
                    msg_type: format!("event:{other}"),
                },
            },
            other => EventKind::Unknown {
                msg_type: other.to_owned(),
            },
        };
        Ok(Event {
            bot: bot.clone(),
            msg_id: self.msgid,
            conversation,
            from: Sender {
                user_id: self.from.userid,
                name: String::new(),
                alias: String::new(),
            },
            webhook_url: None,
            account: None,
            message_id: None,
            kind,
            // WeCom calls the AI bot only for messages that mention it, or one-to-one.
            mentioned: true,
            received_at,
        })
    }
}

/// `{"cmd": "aibot_subscribe", …}`: the first frame on a new connection.
pub fn subscribe(req_id: &str, bot_id: &str, secret: &str) -> String {
    json!({
        "cmd": cmd::SUBSCRIBE,
        "headers": { "req_id": req_id },
        "body": { "bot_id": bot_id, "secret": secret },
    })
    .to_string()
}

/// `{"cmd": "ping", …}`: the heartbeat.
pub fn ping(req_id: &str) -> String {
    json!({ "cmd": cmd::PING, "headers": { "req_id": req_id } }).to_string()
}

/// One finished stream message on the callback's `req_id`.
pub fn respond_stream(req_id: &str, stream_id: &str, content: &str) -> String {
    json!({
        "cmd": cmd::RESPOND,
        "headers": { "req_id": req_id },
        "body": {
            "msgtype": "stream",
            "stream": { "id": stream_id, "finish": true, "content": content },
        },
    })
    .to_string()
}

/// The welcome text on an `enter_chat` event's `req_id` (within 5 s of the event).
pub fn respond_welcome(req_id: &str, content: &str) -> String {
    json!({
        "cmd": cmd::RESPOND_WELCOME,
        "headers": { "req_id": req_id },
        "body": { "msgtype": "text", "text": { "content": content } },
    })
    .to_string()
}

/// An unprompted markdown post into `chat_id` (a group's chatid, or a user's id one-to-one).
pub fn send_markdown(req_id: &str, chat_id: &str, content: &str) -> String {
    json!({
        "cmd": cmd::SEND,
        "headers": { "req_id": req_id },
        "body": { "chatid": chat_id, "msgtype": "markdown", "markdown": { "content": content } },
    })
    .to_string()
}

/// What `reply` says as stream contents (markdown), each at most [`MAX_STREAM_BYTES`]: a longer
/// answer is cut at line ends where it can be, else at a character boundary. A text reply's
/// mentions become `<@userid>` in front of it.
pub fn reply_contents(reply: &Reply) -> Vec<String> {
    let whole = match reply {
        Reply::Text { content, mentioned } => with_mentions(content, mentioned),
        Reply::Markdown { content } => content.clone(),
    };
    split_at_most(&whole, MAX_STREAM_BYTES)
}

/// What an unprompted post says as `aibot_send_msg` markdown contents (WeCom takes no plain
/// text there), each at most [`MAX_STREAM_BYTES`]: a text's mentions become `<@userid>`, a news
/// message a list of links. An image cannot be posted this way yet: an error says so.
pub fn post_contents(message: &OutMessage) -> Result<Vec<String>, String> {
    let whole = match message {
        OutMessage::Text {
            content, mentioned, ..
        } => with_mentions(content, mentioned),
        OutMessage::Markdown { content } => content.clone(),
        OutMessage::News { articles } => articles
            .iter()
            .map(|a| {
                let mut line = format!("[{}]({})", a.title, a.url);
                if !a.description.is_empty() {
                    line.push('\n');
                    line.push_str(&a.description);
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n\n"),
        OutMessage::Image { .. } => {
            return Err("an image cannot be posted through a WeCom AI bot (only markdown)".into());
        }
    };
    Ok(split_at_most(&whole, MAX_STREAM_BYTES))
}

/// `content` with `<@userid>` in front for each of `mentioned` (`@all` as it is).
fn with_mentions(content: &str, mentioned: &[String]) -> String {
    let mut out = String::new();
    for user in mentioned {
        if user == "@all" {
            out.push_str("@all ");
        } else {
            out.push_str(&format!("<@{user}> "));
        }
    }
    out.push_str(content);
    out
}

/// `text` in pieces of at most `max` bytes, each ending at a line end where one falls in its
/// second half, else at the last character boundary that fits.
pub fn split_at_most(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(newline) = rest[..cut].rfind('\n')
            && newline >= cut / 2
        {
            cut = newline + 1;
        }
        pieces.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// A `req_id` for a frame the service starts: the command, then a random part (the SDK's shape).
pub fn new_req_id(command: &str) -> String {
    format!("{command}_{:016x}", rand::random::<u64>())
}
