//! The callbacks a run sends: distinct, correctly signed and encrypted group text callbacks, each
//! sent once, from senders that behave like a mode's members.
//!
//! - **ordinary**: many members (100,000 by default) spread over the groups, each speaking
//!   rarely — member `k` speaks again only after every other member has spoken once, so at
//!   20,000 callbacks/s a member says something every few seconds at most (no flood, no repeat).
//! - **flood**: ordinary traffic with every other callback from one of a few members (500 by
//!   default) posting many times a second — moderation's flood check fires for each of them, and
//!   its warnings, removals and admin notices must not take the service down with them.

use std::fmt::Write as _;

use chrono::Utc;
use trumpet::domain::BotId;
use trumpet::wire::wecom::crypto::{CallbackCrypto, EncodingAesKey};
use trumpet::wire::wecom::robot::RobotEndpoint;

pub const TOKEN: &str = "LoadTestToken123";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// Who sends a callback, for reporting latencies per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ordinary,
    Flood,
}

/// One prepared request: its URI (parsed once, here, not while measuring), body and class.
pub struct Prepared {
    pub uri: hyper::Uri,
    pub body: bytes::Bytes,
    pub class: Class,
}

/// The shape of the traffic.
pub struct Shape {
    pub messages: usize,
    pub groups: usize,
    pub members: usize,
    /// Members who flood, and one callback in how many is theirs (0: no flood).
    pub flooders: usize,
    pub flood_every: usize,
    pub bot: String,
    /// A webhook URL for group `n` (the groups' robots post there).
    pub webhook: Box<dyn Fn(usize) -> String + Send + Sync>,
}

/// Questions of the kind members @-mention the bot with; none matches a shipped keyword rule, so
/// every callback is normalised, matched and answered with the fallback (no cooldown makes later
/// callbacks cheaper), and the number at the end keeps each one distinct.
const ORDINARY: [&str; 4] = [
    "请问这张单据应该怎么处理",
    "老师好，这个月的报表什么时候交",
    "想问一下这笔费用记在哪个科目",
    "这个情况需要补充什么材料吗",
];

/// Prepares `shape.messages` callbacks. Their URIs are origin-form (path and query): the same
/// requests can be sent to any server.
pub fn prepare(shape: &Shape) -> Result<Vec<Prepared>, String> {
    let crypto = CallbackCrypto::new(
        TOKEN,
        EncodingAesKey::parse(AES_KEY).map_err(|e| e.to_string())?,
        "",
    );
    let bot = BotId::parse(&shape.bot).map_err(|e| e.to_string())?;
    let endpoint = RobotEndpoint::new(bot, crypto, 86_400);
    let ts = Utc::now().timestamp().to_string();
    let run = rand::random::<u32>();
    let groups = shape.groups.max(1);
    let members = shape.members.max(1);
    let mut plaintext = String::with_capacity(1024);
    (0..shape.messages)
        .map(|i| {
            let flood = shape.flood_every > 0 && shape.flooders > 0 && i % shape.flood_every == 0;
            let (member, class) = if flood {
                (i / shape.flood_every % shape.flooders, Class::Flood)
            } else {
                // Member k lives in group k % groups; consecutive callbacks come from members
                // far apart, and each member comes round again only after all the others.
                (i % members, Class::Ordinary)
            };
            let (user, group) = match class {
                Class::Flood => (format!("flooder{member:04}"), member % groups),
                Class::Ordinary => (format!("member{member:06}"), member % groups),
            };
            let chat = format!("wrkLoad{group:05}");
            let text = match class {
                Class::Flood => format!("大家快来看看 {i}"),
                Class::Ordinary => format!("{} {i}", ORDINARY[i % ORDINARY.len()]),
            };
            plaintext.clear();
            let _ = write!(
                plaintext,
                "<xml><WebhookUrl><![CDATA[{webhook}]]></WebhookUrl>\
                 <ChatId><![CDATA[{chat}]]></ChatId><ChatType>group</ChatType>\
                 <From><UserId>{user}</UserId><Name><![CDATA[成员{user}]]></Name></From>\
                 <MsgType>text</MsgType><Text><Content><![CDATA[@会计小喇叭 {text}]]></Content></Text>\
                 <MsgId>load-{run}-{i}</MsgId></xml>",
                webhook = (shape.webhook)(group),
            );
            let (query, body) = endpoint
                .forge_callback(&plaintext, &ts, &format!("n{i}"), rand::random())
                .map_err(|e| e.to_string())?;
            let uri = format!("/wecom/robot/{}?{query}", shape.bot)
                .parse::<hyper::Uri>()
                .map_err(|e| e.to_string())?;
            Ok(Prepared {
                uri,
                body: bytes::Bytes::from(body),
                class,
            })
        })
        .collect()
}
