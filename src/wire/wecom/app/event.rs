//! The customer-group change event (`change_external_chat`) a self-built app's callback URL
//! receives, read from its decrypted XML. Other events of the app (contacts, tags, …) are read
//! far enough to be logged and answered.

use quick_xml::events::Event as XmlEvent;

/// Nesting deeper than this is not a WeCom event.
const MAX_DEPTH: usize = 8;

/// More members than this in one event are not read (WeCom's are small lists).
const MAX_CHANGED_MEMBERS: usize = 10_000;

/// What changed in a customer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatChangeKind {
    /// The group was created (the app may now see it).
    Create,
    /// Members joined (`scene`: 0 invited by a member, 3 by the QR code).
    AddMember {
        scene: u8,
    },
    /// Members left (`quit_scene`: 0 on their own, 1 removed by the owner or an admin).
    DelMember {
        quit_scene: u8,
    },
    ChangeOwner,
    ChangeName,
    ChangeNotice,
    /// An update this build does not know (`UpdateDetail` as sent).
    OtherUpdate(String),
    /// The group was dismissed.
    Dismiss,
}

/// A decrypted `change_external_chat` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatChange {
    pub corp_id: String,
    pub chat_id: String,
    pub kind: ChatChangeKind,
    /// The members who joined or left (employees' userids and customers' external userids).
    pub members: Vec<String>,
    /// How many members changed, as WeCom counts them (the list may be shorter).
    pub member_change_count: u64,
    pub last_member_version: String,
    pub current_member_version: String,
    pub create_time: i64,
}

impl ChatChange {
    /// The id that tells a retry of this event from a new one (WeCom's events carry no MsgId):
    /// the group, the change, its time and the member versions.
    pub fn dedupe_id(&self) -> String {
        format!(
            "app:{}:{}:{:?}:{}:{}",
            self.chat_id,
            self.create_time,
            self.kind,
            self.last_member_version,
            self.current_member_version
        )
    }
}

/// What a decrypted app event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    ChatChange(ChatChange),
    /// Any other event or message: its `MsgType` and `Event`, for the log.
    Other {
        msg_type: String,
        event: String,
    },
}

/// Why an event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("missing <{0}>")]
    Missing(&'static str),
    #[error("unknown ChangeType {0:?}")]
    ChangeType(String),
}

/// The fields of a flat event document: each child of the root by name, and the `Item`s of
/// `MemChangeList`.
#[derive(Default)]
struct Fields {
    values: Vec<(String, String)>,
    items: Vec<String>,
}

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> u64 {
        self.get(name).trim().parse().unwrap_or(0)
    }
}

fn read_fields(xml: &str) -> Result<Fields, EventError> {
    let malformed = |e: &dyn std::fmt::Display| EventError::Malformed(e.to_string());
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut fields = Fields::default();
    loop {
        let text = match reader.read_event().map_err(|e| malformed(&e))? {
            XmlEvent::Start(start) => {
                if path.len() >= MAX_DEPTH {
                    return Err(EventError::Malformed("nested too deep".into()));
                }
                path.push(String::from_utf8_lossy(start.name().as_ref()).into_owned());
                continue;
            }
            XmlEvent::End(_) => {
                path.pop();
                continue;
            }
            XmlEvent::Eof => break,
            XmlEvent::DocType(_) => {
                return Err(EventError::Malformed("DTDs are not accepted".into()));
            }
            XmlEvent::Text(text) => text.unescape().map_err(|e| malformed(&e))?.into_owned(),
            XmlEvent::CData(data) => String::from_utf8_lossy(&data.into_inner()).into_owned(),
            _ => continue,
        };
        match path.as_slice() {
            [_, name] => match fields.values.iter_mut().find(|(n, _)| n == name) {
                Some((_, value)) => value.push_str(&text),
                None => fields.values.push((name.clone(), text)),
            },
            [_, list, item]
                if list == "MemChangeList"
                    && item == "Item"
                    && fields.items.len() < MAX_CHANGED_MEMBERS =>
            {
                fields.items.push(text);
            }
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(EventError::Malformed("unclosed element".into()));
    }
    Ok(fields)
}

/// Reads a decrypted app event.
pub fn parse_app_event(xml: &str) -> Result<AppEvent, EventError> {
    let fields = read_fields(xml)?;
    let event = fields.get("Event");
    if event != "change_external_chat" {
        return Ok(AppEvent::Other {
            msg_type: fields.get("MsgType").to_owned(),
            event: event.to_owned(),
        });
    }
    parse_fields(fields).map(AppEvent::ChatChange)
}

/// Reads a decrypted `change_external_chat` event (an error for any other).
pub fn parse_chat_change(xml: &str) -> Result<ChatChange, EventError> {
    match parse_app_event(xml)? {
        AppEvent::ChatChange(change) => Ok(change),
        AppEvent::Other { .. } => Err(EventError::Missing("Event")),
    }
}

fn parse_fields(fields: Fields) -> Result<ChatChange, EventError> {
    let chat_id = fields.get("ChatId").trim();
    if chat_id.is_empty() {
        return Err(EventError::Missing("ChatId"));
    }
    let small = |name| u8::try_from(fields.number(name)).unwrap_or(u8::MAX);
    let kind = match fields.get("ChangeType").trim() {
        "create" => ChatChangeKind::Create,
        "dismiss" => ChatChangeKind::Dismiss,
        "update" => match fields.get("UpdateDetail").trim() {
            "add_member" => ChatChangeKind::AddMember {
                scene: small("JoinScene"),
            },
            "del_member" => ChatChangeKind::DelMember {
                quit_scene: small("QuitScene"),
            },
            "change_owner" => ChatChangeKind::ChangeOwner,
            "change_name" => ChatChangeKind::ChangeName,
            "change_notice" => ChatChangeKind::ChangeNotice,
            other => ChatChangeKind::OtherUpdate(other.to_owned()),
        },
        "" => return Err(EventError::Missing("ChangeType")),
        other => return Err(EventError::ChangeType(other.to_owned())),
    };
    Ok(ChatChange {
        corp_id: fields.get("ToUserName").trim().to_owned(),
        chat_id: chat_id.to_owned(),
        kind,
        members: fields
            .items
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect(),
        member_change_count: fields.number("MemChangeCnt"),
        last_member_version: fields.get("LastMemVer").trim().to_owned(),
        current_member_version: fields.get("CurMemVer").trim().to_owned(),
        create_time: i64::try_from(fields.number("CreateTime")).unwrap_or(0),
    })
}
