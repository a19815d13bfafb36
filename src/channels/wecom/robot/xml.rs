//! Parsing the group robot's XML: the encrypted callback envelope and the decrypted message
//! (PROTOCOL.md §1, §3) into a [`RobotMessage`], then into a domain [`Event`].
//!
//! A streaming parse over a small fixed vocabulary of element names: no DOM, no entity
//! expansion beyond XML's predefined ones, no DTDs, bounded depth.

use chrono::{DateTime, Utc};
use quick_xml::Reader;
use quick_xml::events::Event as XmlEvent;

use crate::domain::{
    AttachmentAction, BotId, ChatId, Conversation, Event, EventKind, MixedItem, Sender,
};

/// Nesting deeper than this is not a WeCom message.
const MAX_DEPTH: usize = 16;

/// Why a callback body or decrypted message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("missing element <{0}>")]
    Missing(&'static str),
    #[error("a group message without a ChatId")]
    GroupWithoutChatId,
}

impl XmlError {
    /// The official WXBizMsgCrypt code for parse failures.
    pub fn code(&self) -> i32 {
        -40002
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Root,
    Encrypt,
    WebhookUrl,
    ChatId,
    PostId,
    ChatType,
    GetChatInfoUrl,
    From,
    UserId,
    Name,
    Alias,
    MsgType,
    MsgId,
    Text,
    Content,
    Image,
    ImageUrl,
    MixedMessage,
    MsgItem,
    Event,
    EventType,
    Attachment,
    CallbackId,
    Actions,
    Value,
    Type,
    Other,
}

fn tag_of(name: &[u8]) -> Tag {
    match name {
        b"Encrypt" => Tag::Encrypt,
        b"WebhookUrl" => Tag::WebhookUrl,
        b"ChatId" => Tag::ChatId,
        b"PostId" => Tag::PostId,
        b"ChatType" => Tag::ChatType,
        b"GetChatInfoUrl" => Tag::GetChatInfoUrl,
        b"From" => Tag::From,
        b"UserId" => Tag::UserId,
        b"Name" => Tag::Name,
        b"Alias" => Tag::Alias,
        b"MsgType" => Tag::MsgType,
        b"MsgId" => Tag::MsgId,
        b"Text" => Tag::Text,
        b"Content" => Tag::Content,
        b"Image" => Tag::Image,
        b"ImageUrl" => Tag::ImageUrl,
        b"MixedMessage" => Tag::MixedMessage,
        b"MsgItem" => Tag::MsgItem,
        b"Event" => Tag::Event,
        b"EventType" => Tag::EventType,
        b"Attachment" => Tag::Attachment,
        b"CallbackId" => Tag::CallbackId,
        b"Actions" => Tag::Actions,
        b"Value" => Tag::Value,
        b"Type" => Tag::Type,
        _ => Tag::Other,
    }
}

/// Walks `xml`, calling `on_text(path, text)` for every piece of character data (text or
/// CDATA). `path` starts at the root element, which may have any name.
fn walk(xml: &str, mut on_text: impl FnMut(&[Tag], &str)) -> Result<(), XmlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<Tag> = Vec::with_capacity(8);
    let mut saw_root = false;
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Start(e)) => {
                if path.len() >= MAX_DEPTH {
                    return Err(XmlError::Malformed("nested too deeply".into()));
                }
                if path.is_empty() {
                    if saw_root {
                        return Err(XmlError::Malformed("more than one root element".into()));
                    }
                    saw_root = true;
                    path.push(Tag::Root);
                } else {
                    path.push(tag_of(e.name().as_ref()));
                }
            }
            Ok(XmlEvent::End(_)) => {
                path.pop();
            }
            Ok(XmlEvent::Text(t)) => {
                if path.is_empty() {
                    return Err(XmlError::Malformed("text outside the root element".into()));
                }
                let text = t
                    .unescape()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                on_text(&path, &text);
            }
            Ok(XmlEvent::CData(c)) => {
                if path.is_empty() {
                    return Err(XmlError::Malformed("CDATA outside the root element".into()));
                }
                let bytes = c.into_inner();
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| XmlError::Malformed("CDATA is not UTF-8".into()))?;
                on_text(&path, text);
            }
            Ok(XmlEvent::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(XmlError::Malformed(e.to_string())),
        }
    }
    if !saw_root {
        return Err(XmlError::Malformed("no root element".into()));
    }
    if !path.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    Ok(())
}

/// Extracts `<Encrypt>` from a callback body.
pub fn parse_envelope(body: &str) -> Result<String, XmlError> {
    let mut encrypt: Option<String> = None;
    walk(body, |path, text| {
        if path == [Tag::Root, Tag::Encrypt] {
            encrypt.get_or_insert_with(String::new).push_str(text);
        }
    })?;
    encrypt
        .filter(|e| !e.is_empty())
        .ok_or(XmlError::Missing("Encrypt"))
}

/// The fields of a decrypted group-robot message, as sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RobotMessage {
    pub webhook_url: String,
    pub chat_id: String,
    pub post_id: String,
    pub chat_type: String,
    pub get_chat_info_url: String,
    pub from: Sender,
    pub msg_type: String,
    pub msg_id: String,
    pub text: String,
    pub image_url: String,
    pub mixed: Vec<MixedItem>,
    pub event_type: String,
    pub callback_id: String,
    pub actions: Vec<AttachmentAction>,
}

/// Parses a decrypted group-robot message.
pub fn parse_message(xml: &str) -> Result<RobotMessage, XmlError> {
    use Tag::*;
    let mut m = RobotMessage::default();
    walk(xml, |path, text| match &path[1..] {
        [WebhookUrl] => m.webhook_url.push_str(text),
        [ChatId] => m.chat_id.push_str(text),
        [PostId] => m.post_id.push_str(text),
        [ChatType] => m.chat_type.push_str(text),
        [GetChatInfoUrl] => m.get_chat_info_url.push_str(text),
        [From, UserId] => m.from.user_id.push_str(text),
        [From, Name] => m.from.name.push_str(text),
        [From, Alias] => m.from.alias.push_str(text),
        [MsgType] => m.msg_type.push_str(text),
        [MsgId] => m.msg_id.push_str(text),
        [Text, Content] => m.text.push_str(text),
        [Image, ImageUrl] => m.image_url.push_str(text),
        [MixedMessage, MsgItem, Text, Content] => m.mixed.push(MixedItem::Text(text.to_owned())),
        [MixedMessage, MsgItem, Image, ImageUrl] => m.mixed.push(MixedItem::Image(text.to_owned())),
        [Event, EventType] => m.event_type.push_str(text),
        [Attachment, CallbackId] => m.callback_id.push_str(text),
        [Attachment, Actions, field @ (Name | Value | Type)] => {
            // A field that is already set on the last action starts the next <Actions> element.
            let starts_new = match m.actions.last() {
                None => true,
                Some(a) => !action_field(a, *field).is_empty(),
            };
            if starts_new {
                m.actions.push(AttachmentAction {
                    name: String::new(),
                    value: String::new(),
                    kind: String::new(),
                });
            }
            if let Some(action) = m.actions.last_mut() {
                action_field_mut(action, *field).push_str(text);
            }
        }
        _ => {}
    })?;
    Ok(m)
}

fn action_field(action: &AttachmentAction, field: Tag) -> &String {
    match field {
        Tag::Name => &action.name,
        Tag::Value => &action.value,
        _ => &action.kind,
    }
}

fn action_field_mut(action: &mut AttachmentAction, field: Tag) -> &mut String {
    match field {
        Tag::Name => &mut action.name,
        Tag::Value => &mut action.value,
        _ => &mut action.kind,
    }
}

/// Removes the leading `@Name` of a robot mention and the white space after it (WeCom separates
/// a mention with U+2005 FOUR-PER-EM SPACE; ordinary spaces occur too).
pub fn strip_leading_mention(text: &str) -> &str {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('@') {
        return trimmed.trim_end();
    }
    match trimmed.find(|c: char| c.is_whitespace()) {
        Some(at) => trimmed[at..].trim(),
        None => "",
    }
}

impl RobotMessage {
    /// Turns the message into a domain event. Events without a MsgId get a stable fallback id
    /// from `fallback_id` (WeCom retries resend the same plaintext).
    pub fn into_event(
        self,
        bot: &BotId,
        received_at: DateTime<Utc>,
        fallback_id: impl FnOnce() -> String,
    ) -> Result<Event, XmlError> {
        if self.msg_type.is_empty() {
            return Err(XmlError::Missing("MsgType"));
        }
        let conversation = if self.chat_type == "single" {
            Conversation::Direct
        } else if self.chat_id.is_empty() {
            return Err(XmlError::GroupWithoutChatId);
        } else {
            Conversation::Group(ChatId::new(self.chat_id))
        };
        let kind = match self.msg_type.as_str() {
            "text" => EventKind::Text {
                text: strip_leading_mention(&self.text).to_owned(),
            },
            "image" => EventKind::Image {
                url: self.image_url,
            },
            "mixed" => EventKind::Mixed {
                items: self
                    .mixed
                    .into_iter()
                    .map(|item| match item {
                        MixedItem::Text(t) => MixedItem::Text(t.trim().to_owned()),
                        other => other,
                    })
                    .collect(),
            },
            "attachment" => EventKind::Attachment {
                callback_id: self.callback_id,
                actions: self.actions,
            },
            "event" => match self.event_type.as_str() {
                "add_to_chat" => EventKind::BotAdded,
                "delete_from_chat" => EventKind::BotRemoved,
                "enter_chat" => EventKind::EnterChat,
                other => EventKind::Unknown {
                    msg_type: format!("event:{other}"),
                },
            },
            other => EventKind::Unknown {
                msg_type: other.to_owned(),
            },
        };
        let msg_id = if self.msg_id.is_empty() {
            fallback_id()
        } else {
            self.msg_id
        };
        Ok(Event {
            bot: bot.clone(),
            msg_id,
            conversation,
            from: self.from,
            webhook_url: (!self.webhook_url.is_empty()).then_some(self.webhook_url),
            kind,
            received_at,
        })
    }
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
