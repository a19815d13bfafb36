//! Parsing the group robot's XML: the encrypted callback envelope and the decrypted message
//! into a [`RobotMessage`], then into a domain [`Event`].
//!
//! A streaming parse over a small fixed vocabulary of element names: no DOM, no entity
//! expansion beyond XML's predefined ones, no DTDs, bounded depth.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

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

/// Maps an element name to its tag. Grouped by length first: a plain `match` on byte strings
/// compares against every name in turn, and this runs for every element of every callback.
fn tag_of(name: &[u8]) -> Tag {
    match name.len() {
        4 => match name {
            b"From" => Tag::From,
            b"Name" => Tag::Name,
            b"Text" => Tag::Text,
            b"Type" => Tag::Type,
            _ => Tag::Other,
        },
        5 => match name {
            b"MsgId" => Tag::MsgId,
            b"Alias" => Tag::Alias,
            b"Image" => Tag::Image,
            b"Event" => Tag::Event,
            b"Value" => Tag::Value,
            _ => Tag::Other,
        },
        6 => match name {
            b"ChatId" => Tag::ChatId,
            b"UserId" => Tag::UserId,
            b"PostId" => Tag::PostId,
            _ => Tag::Other,
        },
        7 => match name {
            b"Encrypt" => Tag::Encrypt,
            b"MsgType" => Tag::MsgType,
            b"Content" => Tag::Content,
            b"MsgItem" => Tag::MsgItem,
            b"Actions" => Tag::Actions,
            _ => Tag::Other,
        },
        8 => match name {
            b"ChatType" => Tag::ChatType,
            b"ImageUrl" => Tag::ImageUrl,
            _ => Tag::Other,
        },
        9 => match name {
            b"EventType" => Tag::EventType,
            _ => Tag::Other,
        },
        10 => match name {
            b"WebhookUrl" => Tag::WebhookUrl,
            b"Attachment" => Tag::Attachment,
            b"CallbackId" => Tag::CallbackId,
            _ => Tag::Other,
        },
        12 => match name {
            b"MixedMessage" => Tag::MixedMessage,
            _ => Tag::Other,
        },
        14 => match name {
            b"GetChatInfoUrl" => Tag::GetChatInfoUrl,
            _ => Tag::Other,
        },
        _ => Tag::Other,
    }
}

/// Walks `xml`, calling `on_text(path, text)` for every piece of character data (text, trimmed
/// and unescaped, or CDATA, as is). `path` starts at the root element, which may have any name.
///
/// A strict scanner for the XML WeCom sends: elements (attributes skipped), text with XML's
/// entities, CDATA, comments and the `<?xml …?>` declaration. End tags must match their start
/// tag; DTDs are refused, so no entity can be defined, let alone expanded. It exists because a
/// general parser's per-event cost was most of the callback budget (docs/decisions.md); the
/// tests check it against quick-xml on generated documents.
fn walk<'a>(xml: &'a str, mut on_text: impl FnMut(&[Tag], Cow<'a, str>)) -> Result<(), XmlError> {
    let bad = |what: &str| Err(XmlError::Malformed(what.to_owned()));
    let bytes = xml.as_bytes();
    let mut open = Open::default();
    let mut root_done = false;
    let mut i = 0;
    while i < bytes.len() {
        let Some(lt) = find_byte(b'<', &bytes[i..]).map(|off| i + off) else {
            if !trim_xml_space(&xml[i..]).is_empty() {
                return bad("text outside the root element");
            }
            break;
        };
        let text = trim_xml_space(&xml[i..lt]);
        if !text.is_empty() {
            if open.is_empty() {
                return bad("text outside the root element");
            }
            if text.contains('&') {
                // The error would quote the text: the log gets what went wrong, not the message.
                let text = quick_xml::escape::unescape(text)
                    .map_err(|_| XmlError::Malformed("an unknown or malformed entity".into()))?;
                on_text(open.tags(), Cow::Owned(text.into_owned()));
            } else {
                on_text(open.tags(), Cow::Borrowed(text));
            }
        }
        let rest = &xml[lt..];
        if let Some(body) = rest.strip_prefix("<![CDATA[") {
            let Some(end) = find_cdata_end(body.as_bytes()) else {
                return bad("unterminated CDATA section");
            };
            if open.is_empty() {
                return bad("CDATA outside the root element");
            }
            on_text(open.tags(), Cow::Borrowed(&body[..end]));
            i = lt + 9 + end + 3;
        } else if let Some(body) = rest.strip_prefix("<!--") {
            let Some(end) = body.find("-->") else {
                return bad("unterminated comment");
            };
            i = lt + 4 + end + 3;
        } else if let Some(body) = rest.strip_prefix("<?") {
            let Some(end) = body.find("?>") else {
                return bad("unterminated processing instruction");
            };
            i = lt + 2 + end + 2;
        } else if rest.starts_with("<!") {
            return bad("DTDs and declarations are not accepted");
        } else if let Some(body) = rest.strip_prefix("</") {
            let Some(gt) = find_byte(b'>', body.as_bytes()) else {
                return bad("unterminated end tag");
            };
            let name = body[..gt].trim_end();
            open.close(name)?;
            if open.is_empty() {
                root_done = true;
            }
            i = lt + 2 + gt + 1;
        } else {
            let Some((name_len, gt)) = start_tag(&bytes[lt + 1..]) else {
                return bad("unterminated start tag");
            };
            let self_closing = bytes[lt + gt] == b'/';
            let name = &xml[lt + 1..lt + 1 + name_len];
            if !name.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == ':') {
                return bad("invalid element name");
            }
            if root_done {
                return bad("more than one root element");
            }
            if self_closing {
                root_done = open.is_empty();
            } else {
                open.push(name)?;
            }
            i = lt + 1 + gt + 1;
        }
    }
    if !open.is_empty() {
        return bad("unclosed element");
    }
    if !root_done {
        return bad("no root element");
    }
    Ok(())
}

/// The elements open at the current point: their tags (handed to the callback) and names (to
/// match end tags). Fixed-size, since depth is bounded: a parse allocates nothing for it.
struct Open<'a> {
    tags: [Tag; MAX_DEPTH],
    names: [&'a str; MAX_DEPTH],
    len: usize,
}

impl Default for Open<'_> {
    fn default() -> Self {
        Self {
            tags: [Tag::Other; MAX_DEPTH],
            names: [""; MAX_DEPTH],
            len: 0,
        }
    }
}

impl<'a> Open<'a> {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn tags(&self) -> &[Tag] {
        &self.tags[..self.len]
    }

    fn push(&mut self, name: &'a str) -> Result<(), XmlError> {
        if self.len >= MAX_DEPTH {
            return Err(XmlError::Malformed("nested too deeply".into()));
        }
        self.tags[self.len] = if self.len == 0 {
            Tag::Root
        } else {
            tag_of(name.as_bytes())
        };
        self.names[self.len] = name;
        self.len += 1;
        Ok(())
    }

    fn close(&mut self, name: &str) -> Result<(), XmlError> {
        let Some(top) = self.len.checked_sub(1) else {
            return Err(XmlError::Malformed("end tag without a start tag".into()));
        };
        if self.names[top] != name {
            // Not quoted: the names come from the plaintext, which the log must not repeat.
            return Err(XmlError::Malformed(
                "an end tag does not match its start tag".into(),
            ));
        }
        self.len = top;
        Ok(())
    }
}

/// The first `needle` in `haystack`. In WeCom's XML the next `<` or `>` is usually a few bytes
/// away, where setting up a SIMD search costs more than looking: look at a few bytes first.
fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    const NEAR: usize = 16;
    let near = haystack.len().min(NEAR);
    match haystack[..near].iter().position(|&b| b == needle) {
        Some(at) => Some(at),
        None => memchr::memchr(needle, &haystack[near..]).map(|at| at + near),
    }
}

/// Trims XML's white space (space, tab, CR, LF), and nothing else: an ideographic space a
/// member typed is content.
fn trim_xml_space(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// The offset of the `]]>` that ends a CDATA section. (`str::find` with a string pattern
/// builds a searcher per call, which cost more than the rest of the scan.)
fn find_cdata_end(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(off) = memchr::memchr(b']', &bytes[from..]) {
        let at = from + off;
        if bytes[at..].starts_with(b"]]>") {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Reads a start tag after its `<`: the length of the element name, and the offset of the `>`
/// that ends the tag (skipping any `>` inside quoted attribute values).
fn start_tag(bytes: &[u8]) -> Option<(usize, usize)> {
    let name_len = bytes
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'/' || b == b'>' || b == b'<')?;
    let mut quote = None;
    for (at, &b) in bytes.iter().enumerate().skip(name_len) {
        match (quote, b) {
            (None, b'>') => return Some((name_len, at)),
            (None, b'<') => return None,
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            _ => {}
        }
    }
    None
}

/// Extracts `<Encrypt>` from a callback body.
pub fn parse_envelope(body: &str) -> Result<Cow<'_, str>, XmlError> {
    let mut encrypt = Cow::Borrowed("");
    walk(body, |path, text| {
        if path == [Tag::Root, Tag::Encrypt] {
            append(&mut encrypt, text);
        }
    })?;
    if encrypt.is_empty() {
        return Err(XmlError::Missing("Encrypt"));
    }
    Ok(encrypt)
}

/// Adds a piece of character data to a field, borrowing while the field has only one piece.
fn append<'a>(slot: &mut Cow<'a, str>, piece: Cow<'a, str>) {
    if slot.is_empty() {
        *slot = piece;
    } else {
        slot.to_mut().push_str(&piece);
    }
}

/// Who sent a message, as sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RobotSender<'a> {
    pub user_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub alias: Cow<'a, str>,
}

/// The fields of a decrypted group-robot message, as sent, borrowed from the plaintext where
/// possible: only what the domain event keeps is copied.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RobotMessage<'a> {
    pub webhook_url: Cow<'a, str>,
    pub chat_id: Cow<'a, str>,
    pub post_id: Cow<'a, str>,
    pub chat_type: Cow<'a, str>,
    pub get_chat_info_url: Cow<'a, str>,
    pub from: RobotSender<'a>,
    pub msg_type: Cow<'a, str>,
    pub msg_id: Cow<'a, str>,
    pub text: Cow<'a, str>,
    pub image_url: Cow<'a, str>,
    pub mixed: Vec<MixedItem>,
    pub event_type: Cow<'a, str>,
    pub callback_id: Cow<'a, str>,
    pub actions: Vec<AttachmentAction>,
}

/// Parses a decrypted group-robot message.
pub fn parse_message(xml: &str) -> Result<RobotMessage<'_>, XmlError> {
    use Tag::*;
    let mut m = RobotMessage::default();
    walk(xml, |path, text| match &path[1..] {
        [WebhookUrl] => append(&mut m.webhook_url, text),
        [ChatId] => append(&mut m.chat_id, text),
        [PostId] => append(&mut m.post_id, text),
        [ChatType] => append(&mut m.chat_type, text),
        [GetChatInfoUrl] => append(&mut m.get_chat_info_url, text),
        [From, UserId] => append(&mut m.from.user_id, text),
        [From, Name] => append(&mut m.from.name, text),
        [From, Alias] => append(&mut m.from.alias, text),
        [MsgType] => append(&mut m.msg_type, text),
        [MsgId] => append(&mut m.msg_id, text),
        [Text, Content] => append(&mut m.text, text),
        [Image, ImageUrl] => append(&mut m.image_url, text),
        [MixedMessage, MsgItem, Text, Content] => m.mixed.push(MixedItem::Text(text.into_owned())),
        [MixedMessage, MsgItem, Image, ImageUrl] => {
            m.mixed.push(MixedItem::Image(text.into_owned()))
        }
        [Event, EventType] => append(&mut m.event_type, text),
        [Attachment, CallbackId] => append(&mut m.callback_id, text),
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
                action_field_mut(action, *field).push_str(&text);
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

/// Removes the robot's own `@Name` and the white space around it (WeCom separates a mention with
/// U+2005 FOUR-PER-EM SPACE; ordinary spaces occur too). WeCom puts it first when the member
/// starts with it; typed after the words (`帮助 @会计小喇叭`, `设置小当家 @张三 @会计小喇叭`) it comes
/// last. In a group the robot hears only messages that mention it, so a text that does not start
/// with a mention ends with the robot's; in a one-to-one chat there is no mention to remove.
pub fn strip_robot_mention(text: &str, in_group: bool) -> &str {
    let trimmed = text.trim();
    if trimmed.starts_with('@') {
        return match trimmed.find(char::is_whitespace) {
            Some(at) => trimmed[at..].trim(),
            None => "",
        };
    }
    if in_group
        && let Some(at) = trimmed.rfind(char::is_whitespace)
        && trimmed[at..].trim_start().starts_with('@')
    {
        return trimmed[..at].trim_end();
    }
    trimmed
}

impl RobotMessage<'_> {
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
            Conversation::Group(ChatId::new(self.chat_id.into_owned()))
        };
        let in_group = matches!(conversation, Conversation::Group(_));
        let kind = match self.msg_type.as_ref() {
            "text" => EventKind::Text {
                text: strip_robot_mention(&self.text, in_group).to_owned(),
            },
            "image" => EventKind::Image {
                url: self.image_url.into_owned(),
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
                callback_id: self.callback_id.into_owned(),
                actions: self.actions,
            },
            "event" => match self.event_type.as_ref() {
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
            self.msg_id.into_owned()
        };
        Ok(Event {
            bot: bot.clone(),
            msg_id,
            conversation,
            from: Sender {
                user_id: self.from.user_id.into_owned(),
                name: self.from.name.into_owned(),
                alias: self.from.alias.into_owned(),
            },
            webhook_url: (!self.webhook_url.is_empty()).then(|| self.webhook_url.into_owned()),
            account: None,
            message_id: None,
            kind,
            // The robot is only called for messages that @-mention it, or in one-to-one chats.
            mentioned: true,
            received_at,
        })
    }
}

#[cfg(test)]
mod tests;
