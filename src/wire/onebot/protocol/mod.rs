//! OneBot 12 on the wire: the frames an implementation sends
//! (events and action responses) parsed into [`Incoming`], message segments into [`Segment`]
//! (unknown and `wx.`-prefixed ones kept as raw JSON, never an error), action requests built as
//! JSON, and retcodes turned into [`ActionError`]. Pure: no sockets here.

use serde::Deserialize;
use serde_json::{Value, json};

/// What one text frame from an implementation carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Event(Event),
    /// The answer to an action request, matched by `echo`.
    Response(ActionResponse),
}

/// An event: the common envelope and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    /// Seconds since the epoch (OneBot 12 sends a float).
    pub time: f64,
    /// The bot account the event is for (`None` on meta events).
    pub self_id: Option<SelfId>,
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SelfId {
    pub platform: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// `meta.connect`: the first event on every connection.
    Connect {
        implementation: String,
        version: String,
    },
    /// `meta.heartbeat`: the next one is due within `interval_ms`.
    Heartbeat {
        interval_ms: u64,
    },
    /// `meta.status_update`: which accounts this connection carries, and whether they are online.
    StatusUpdate {
        good: bool,
        bots: Vec<(SelfId, bool)>,
    },
    GroupMessage(GroupMessage),
    /// `notice.group_member_increase`; `sub_type` is `join`, `invite` or "".
    MemberIncrease {
        group_id: String,
        user_id: String,
        operator_id: String,
        sub_type: String,
    },
    /// `notice.group_member_decrease`; `sub_type` is `leave`, `kick` or "".
    MemberDecrease {
        group_id: String,
        user_id: String,
        operator_id: String,
        sub_type: String,
    },
    /// `notice.group_message_delete`; `sub_type` is `recall` or `delete`.
    MessageDelete {
        group_id: String,
        message_id: String,
        user_id: String,
        operator_id: String,
    },
    /// A member grabbed a share of a real WeChat red envelope the account posted: a `wx.` notice
    /// whose type names a red packet (`wx.red_packet_grabbed`, `wx.hongbao`, …: implementations name it differently). The
    /// amount is given by some implementations, as `amount_fen` or `amount` in yuan.
    EnvelopeGrab {
        group_id: String,
        user_id: String,
        user_name: String,
        amount_fen: Option<u64>,
    },
    /// Any other event: kept for the log, never an error.
    Other {
        kind: String,
        detail_type: String,
    },
}

/// A group message.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMessage {
    pub message_id: String,
    pub group_id: String,
    pub user_id: String,
    pub segments: Vec<Segment>,
    /// The implementation's plain-text rendering.
    pub alt_message: String,
}

impl GroupMessage {
    /// The text of the message: its text segments in order, trimmed (mentions left out).
    pub fn text(&self) -> String {
        let mut text = String::new();
        for segment in &self.segments {
            if let Segment::Text(t) = segment {
                text.push_str(t);
            }
        }
        text.trim().to_owned()
    }

    /// Whether the message @-mentions `account` (a mention of everyone does not count).
    pub fn mentions(&self, account: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Mention(user) if user == account))
    }
}

/// One segment of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Text(String),
    Mention(String),
    MentionAll,
    Image {
        file_id: String,
    },
    Reply {
        message_id: String,
    },
    /// Anything else (`voice`, `file`, `wx.link`, `wx.app`, …), as it came.
    Other {
        kind: String,
        data: Value,
    },
}

impl Segment {
    fn from_json(value: Value) -> Segment {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let data = value.get("data").cloned().unwrap_or(Value::Null);
        let field = |name: &str| data.get(name).and_then(Value::as_str).map(str::to_owned);
        let known = match kind.as_str() {
            "text" => field("text").map(Segment::Text),
            "mention" => field("user_id").map(Segment::Mention),
            "mention_all" => Some(Segment::MentionAll),
            "image" => field("file_id").map(|file_id| Segment::Image { file_id }),
            "reply" => field("message_id").map(|message_id| Segment::Reply { message_id }),
            _ => None,
        };
        // A known type with missing fields is kept whole rather than guessed at.
        known.unwrap_or(Segment::Other { kind, data })
    }

    /// The segment as OneBot 12 JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Segment::Text(text) => json!({"type": "text", "data": {"text": text}}),
            Segment::Mention(user) => json!({"type": "mention", "data": {"user_id": user}}),
            Segment::MentionAll => json!({"type": "mention_all", "data": {}}),
            Segment::Image { file_id } => json!({"type": "image", "data": {"file_id": file_id}}),
            Segment::Reply { message_id } => {
                json!({"type": "reply", "data": {"message_id": message_id}})
            }
            Segment::Other { kind, data } => json!({"type": kind, "data": data}),
        }
    }
}

/// The answer to an action.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionResponse {
    pub echo: String,
    pub outcome: Result<Value, ActionError>,
}

/// Why an action failed, by retcode class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// 10002: the implementation does not offer the action.
    #[error("unsupported action (retcode {retcode}): {message}")]
    Unsupported { retcode: i64, message: String },
    /// Other 1xxxx: our request was wrong (bad parameter, unsupported segment, unknown account).
    #[error("request refused (retcode {retcode}): {message}")]
    BadRequest { retcode: i64, message: String },
    /// 34xxx: the platform refused, e.g. a rate limit — back off and try again later.
    #[error("the platform refused (retcode {retcode}): {message}")]
    PlatformRefused { retcode: i64, message: String },
    /// 35xxx: a logic error, e.g. the target is gone — retrying will not help.
    #[error("cannot be done (retcode {retcode}): {message}")]
    Logic { retcode: i64, message: String },
    /// 36xxx: the implementation is overloaded — back off.
    #[error("the implementation is busy (retcode {retcode}): {message}")]
    Tired { retcode: i64, message: String },
    /// Anything else that is not `ok`.
    #[error("failed (retcode {retcode}): {message}")]
    Failed { retcode: i64, message: String },
}

impl ActionError {
    pub fn from_retcode(retcode: i64, message: String) -> ActionError {
        match retcode {
            10002 => ActionError::Unsupported { retcode, message },
            10000..=19999 => ActionError::BadRequest { retcode, message },
            34000..=34999 => ActionError::PlatformRefused { retcode, message },
            35000..=35999 => ActionError::Logic { retcode, message },
            36000..=36999 => ActionError::Tired { retcode, message },
            _ => ActionError::Failed { retcode, message },
        }
    }

    /// Whether trying again later may work (after backing off).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ActionError::PlatformRefused { .. } | ActionError::Tired { .. }
        )
    }
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("neither an event nor an action response (no `type` and no `echo`)")]
    Unrecognised,
    #[error("event {kind}.{detail_type}: missing or mistyped field `{field}`")]
    MissingField {
        kind: String,
        detail_type: String,
        field: &'static str,
    },
}

/// Parses one text frame.
pub fn parse_frame(text: &str) -> Result<Incoming, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    if value.get("type").is_some() {
        return parse_event(value).map(Incoming::Event);
    }
    if value.get("status").is_some() || value.get("echo").is_some() {
        return Ok(Incoming::Response(parse_response(&value)));
    }
    Err(FrameError::Unrecognised)
}

fn parse_response(value: &Value) -> ActionResponse {
    let echo = match value.get("echo") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let ok = value.get("status").and_then(Value::as_str) == Some("ok");
    let retcode = value.get("retcode").and_then(Value::as_i64).unwrap_or(-1);
    let outcome = if ok && retcode == 0 {
        Ok(value.get("data").cloned().unwrap_or(Value::Null))
    } else {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Err(ActionError::from_retcode(retcode, message))
    };
    ActionResponse { echo, outcome }
}

fn parse_event(value: Value) -> Result<Event, FrameError> {
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    let kind = text(&value, "type").unwrap_or_default();
    let detail_type = text(&value, "detail_type").unwrap_or_default();
    let sub_type = text(&value, "sub_type").unwrap_or_default();
    let missing = |field: &'static str| FrameError::MissingField {
        kind: kind.clone(),
        detail_type: detail_type.clone(),
        field,
    };
    let required = |name: &'static str| text(&value, name).ok_or_else(|| missing(name));
    // Ids are strings in OneBot 12; an implementation sending a number is tolerated.
    let id = match value.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(missing("id")),
    };
    let time = value
        .get("time")
        .and_then(Value::as_f64)
        .unwrap_or_default();
    let self_id = value.get("self").and_then(|s| SelfId::deserialize(s).ok());
    let body = match (kind.as_str(), detail_type.as_str()) {
        ("meta", "connect") => {
            let version = value.get("version").cloned().unwrap_or(Value::Null);
            EventBody::Connect {
                implementation: text(&version, "impl").unwrap_or_default(),
                version: text(&version, "version").unwrap_or_default(),
            }
        }
        ("meta", "heartbeat") => EventBody::Heartbeat {
            interval_ms: value
                .get("interval")
                .and_then(Value::as_u64)
                .ok_or_else(|| missing("interval"))?,
        },
        ("meta", "status_update") => {
            let status = value.get("status").cloned().unwrap_or(Value::Null);
            let bots = status
                .get("bots")
                .and_then(Value::as_array)
                .map(|bots| {
                    bots.iter()
                        .filter_map(|b| {
                            let account = SelfId::deserialize(b.get("self")?).ok()?;
                            Some((account, b.get("online")?.as_bool()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            EventBody::StatusUpdate {
                good: status.get("good").and_then(Value::as_bool).unwrap_or(false),
                bots,
            }
        }
        ("message", "group") => {
            let segments = match value.get("message") {
                Some(Value::Array(items)) => {
                    items.iter().cloned().map(Segment::from_json).collect()
                }
                // Some implementations send a plain string; it is the message's text.
                Some(Value::String(s)) => vec![Segment::Text(s.clone())],
                _ => return Err(missing("message")),
            };
            EventBody::GroupMessage(GroupMessage {
                message_id: required("message_id")?,
                group_id: required("group_id")?,
                user_id: required("user_id")?,
                segments,
                alt_message: text(&value, "alt_message").unwrap_or_default(),
            })
        }
        ("notice", "group_member_increase") => EventBody::MemberIncrease {
            group_id: required("group_id")?,
            user_id: required("user_id")?,
            operator_id: text(&value, "operator_id").unwrap_or_default(),
            sub_type,
        },
        ("notice", "group_member_decrease") => EventBody::MemberDecrease {
            group_id: required("group_id")?,
            user_id: required("user_id")?,
            operator_id: text(&value, "operator_id").unwrap_or_default(),
            sub_type,
        },
        ("notice", "group_message_delete") => EventBody::MessageDelete {
            group_id: required("group_id")?,
            message_id: required("message_id")?,
            user_id: text(&value, "user_id").unwrap_or_default(),
            operator_id: text(&value, "operator_id").unwrap_or_default(),
        },
        ("notice", detail) if is_envelope_grab(detail) => EventBody::EnvelopeGrab {
            group_id: required("group_id")?,
            user_id: required("user_id")?,
            user_name: text(&value, "user_name")
                .or_else(|| text(&value, "nickname"))
                .unwrap_or_default(),
            amount_fen: grab_amount(&value),
        },
        _ => EventBody::Other {
            kind: kind.clone(),
            detail_type: detail_type.clone(),
        },
    };
    Ok(Event {
        id,
        time,
        self_id,
        body,
    })
}

/// Whether a notice type reports a red-envelope grab: WeChat extensions only (`wx.`), named
/// for a red packet in one of the spellings implementations use.
fn is_envelope_grab(detail_type: &str) -> bool {
    let Some(name) = detail_type.strip_prefix("wx.") else {
        return false;
    };
    let name = name.to_ascii_lowercase().replace(['_', '-', '.'], "");
    ["redpacket", "redenvelope", "hongbao", "luckymoney"]
        .iter()
        .any(|word| name.contains(word))
}

/// The amount a grab reports: `amount_fen` (integer), else `amount` in yuan (a number or a
/// decimal string); `None` when absent or unreadable.
fn grab_amount(value: &Value) -> Option<u64> {
    if let Some(fen) = value.get("amount_fen").and_then(Value::as_u64) {
        return Some(fen);
    }
    let yuan = match value.get("amount")? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (yuan.is_finite() && (0.0..1e7).contains(&yuan)).then(|| (yuan * 100.0).round() as u64)
}

/// An action request as JSON: `self` is named when the connection carries several accounts.
pub fn action_request(action: &str, params: Value, echo: &str, account: Option<&SelfId>) -> Value {
    let mut request = json!({"action": action, "params": params, "echo": echo});
    if let Some(account) = account {
        request["self"] = json!({"platform": account.platform, "user_id": account.user_id});
    }
    request
}

#[cfg(test)]
mod tests;
