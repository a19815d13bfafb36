//! Between OneBot 12 and the domain: events of a bot account become domain
//! [`Event`](crate::domain::Event)s (the account's own joins and leaves become adoption and
//! release), and the messages the bot sends become segments. Pure.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

use super::protocol::{self, EventBody, GroupMessage, Segment};
use crate::domain::{
    BotId, ChatId, Conversation, Event, EventKind, JoinScene, MixedItem, OutMessage, Reply, Sender,
};

/// A OneBot event turned into a domain event, or why it is not one.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    Domain(Box<Event>),
    /// Meta events and kinds the service does not act on (the reason is for the log).
    NotDomain(&'static str),
}

/// How a OneBot join sub-type maps to a join scene: `invite` is an invitation by a member;
/// `join` is a member joining on their own, which on WeChat means scanning the group's QR code.
pub fn join_scene(sub_type: &str) -> JoinScene {
    match sub_type {
        "invite" => JoinScene::Invited,
        "join" => JoinScene::Qrcode,
        _ => JoinScene::Unknown,
    }
}

fn member(user_id: &str) -> Sender {
    Sender {
        user_id: user_id.to_owned(),
        name: String::new(),
        alias: String::new(),
    }
}

/// Converts `event` (received for `bot` at `received_at`).
pub fn to_domain(bot: &BotId, event: &protocol::Event, received_at: DateTime<Utc>) -> Converted {
    let Some(account) = &event.self_id else {
        return Converted::NotDomain("meta event");
    };
    let me = account.user_id.as_str();
    let message_id = match &event.body {
        EventBody::GroupMessage(message) => Some(message.message_id.clone()),
        _ => None,
    };
    let (group, from, kind, mentioned) = match &event.body {
        EventBody::GroupMessage(message) => (
            &message.group_id,
            member(&message.user_id),
            message_kind(message, me),
            message.mentions(me),
        ),
        EventBody::MemberIncrease {
            group_id,
            user_id,
            operator_id,
            ..
        } if user_id == me => {
            // The account was added: whoever added it adopts the group.
            (group_id, member(operator_id), EventKind::BotAdded, false)
        }
        EventBody::MemberIncrease {
            group_id,
            user_id,
            operator_id,
            sub_type,
        } => (
            group_id,
            member(user_id),
            EventKind::MemberJoined {
                scene: join_scene(sub_type),
                operator: operator_id.clone(),
            },
            false,
        ),
        EventBody::MemberDecrease {
            group_id,
            user_id,
            operator_id,
            ..
        } if user_id == me => (group_id, member(operator_id), EventKind::BotRemoved, false),
        EventBody::MemberDecrease {
            group_id,
            user_id,
            operator_id,
            sub_type,
        } => (
            group_id,
            member(user_id),
            EventKind::MemberLeft {
                kicked: sub_type == "kick",
                operator: operator_id.clone(),
            },
            false,
        ),
        EventBody::MessageDelete {
            group_id,
            message_id,
            user_id,
            operator_id,
        } => (
            group_id,
            member(user_id),
            EventKind::MessageDeleted {
                message_id: message_id.clone(),
                operator: operator_id.clone(),
            },
            false,
        ),
        EventBody::EnvelopeGrab {
            group_id,
            user_id,
            user_name,
            amount_fen,
        } => (
            group_id,
            Sender {
                name: user_name.clone(),
                ..member(user_id)
            },
            EventKind::EnvelopeGrabbed {
                amount_fen: *amount_fen,
            },
            false,
        ),
        EventBody::Connect { .. }
        | EventBody::Heartbeat { .. }
        | EventBody::StatusUpdate { .. } => {
            return Converted::NotDomain("meta event");
        }
        EventBody::Other { .. } => return Converted::NotDomain("event kind not handled"),
    };
    Converted::Domain(Box::new(Event {
        bot: bot.clone(),
        msg_id: event.id.clone(),
        conversation: Conversation::Group(ChatId::new(group.clone())),
        from,
        webhook_url: None,
        account: Some(me.to_owned()),
        message_id,
        kind,
        mentioned,
        received_at,
    }))
}

/// A message's domain kind: plain text when it has only text and mentions, otherwise its parts
/// in order (images by file id, anything else kept raw).
fn message_kind(message: &GroupMessage, me: &str) -> EventKind {
    let plain = message.segments.iter().all(|s| {
        matches!(
            s,
            Segment::Text(_) | Segment::Mention(_) | Segment::MentionAll | Segment::Reply { .. }
        )
    });
    if plain {
        return EventKind::Text {
            text: spoken_text(message, me),
        };
    }
    let items = message
        .segments
        .iter()
        .filter_map(|segment| match segment {
            Segment::Text(t) if t.trim().is_empty() => None,
            Segment::Text(t) => Some(MixedItem::Text(t.trim().to_owned())),
            Segment::Image { file_id } => Some(MixedItem::Image(file_id.clone())),
            Segment::Other { kind, data } => Some(MixedItem::Other {
                kind: kind.clone(),
                data: data.to_string(),
            }),
            Segment::Mention(_) | Segment::MentionAll | Segment::Reply { .. } => None,
        })
        .collect::<Vec<_>>();
    match items.as_slice() {
        [MixedItem::Image(file_id)] => EventKind::Image {
            url: file_id.clone(),
        },
        _ => EventKind::Mixed { items },
    }
}

/// The text of a plain message as the engine reads it: the mention of the bot account left out,
/// other members' mentions kept as `@user_id` (so that commands can name them).
fn spoken_text(message: &GroupMessage, me: &str) -> String {
    let mut text = String::new();
    for segment in &message.segments {
        match segment {
            Segment::Text(t) => text.push_str(t),
            Segment::Mention(user) if user != me => {
                if !text.is_empty() && !text.ends_with(char::is_whitespace) {
                    text.push(' ');
                }
                text.push('@');
                text.push_str(user);
                text.push(' ');
            }
            _ => {}
        }
    }
    text.trim().to_owned()
}

/// What a message becomes on a bot account: segments to send, or an image to upload first.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Segments(Vec<Segment>),
    /// Upload these bytes (`upload_file`), then send the image by its file id.
    Image(Vec<u8>),
}

/// The segments of `message`: mentions first (`@all` is everyone), then the text. WeChat shows
/// no Markdown, so Markdown is sent as its plain text; news articles as title, description and
/// link.
pub fn outgoing(message: &OutMessage) -> Outgoing {
    match message {
        OutMessage::Text {
            content, mentioned, ..
        } => Outgoing::Segments(text_segments(content, mentioned)),
        OutMessage::Markdown { content } => {
            Outgoing::Segments(with_mentions(&markdown_to_text(content)))
        }
        OutMessage::News { articles } => {
            let text = articles
                .iter()
                .map(|a| {
                    [a.title.as_str(), a.description.as_str(), a.url.as_str()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            Outgoing::Segments(vec![Segment::Text(text)])
        }
        OutMessage::Image { bytes } => Outgoing::Image(bytes.clone()),
    }
}

/// The segments of a reply.
pub fn reply_segments(reply: &Reply) -> Vec<Segment> {
    match reply {
        Reply::Text { content, mentioned } => text_segments(content, mentioned),
        Reply::Markdown { content } => with_mentions(&markdown_to_text(content)),
    }
}

/// Mentions first (`@all` is everyone), then the text.
fn text_segments(content: &str, mentioned: &[String]) -> Vec<Segment> {
    let mut segments: Vec<Segment> = mentioned
        .iter()
        .map(|user| match user.as_str() {
            "@all" => Segment::MentionAll,
            user => Segment::Mention(user.to_owned()),
        })
        .collect();
    let text = if segments.is_empty() {
        content.to_owned()
    } else {
        format!(" {content}")
    };
    segments.extend(with_mentions(&text));
    segments
}

static MENTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<@([^<>\s]+)>").unwrap_or_else(|e| unreachable!("mention pattern: {e}"))
});

/// Text in which templates wrote mentions as `<@userid>` (as the group robot's Markdown does),
/// with those turned into mention segments (`<@all>`: everyone).
fn with_mentions(text: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut rest = 0;
    for found in MENTION.captures_iter(text) {
        let (Some(whole), Some(user)) = (found.get(0), found.get(1)) else {
            continue;
        };
        if whole.start() > rest {
            segments.push(Segment::Text(text[rest..whole.start()].to_owned()));
        }
        segments.push(match user.as_str() {
            "all" | "@all" => Segment::MentionAll,
            user => Segment::Mention(user.to_owned()),
        });
        rest = whole.end();
    }
    if rest < text.len() || segments.is_empty() {
        segments.push(Segment::Text(text[rest..].to_owned()));
    }
    segments
}

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[([^\]]*)\]\(([^)\s]*)\)").unwrap_or_else(|e| unreachable!("link pattern: {e}"))
});
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"</?font[^>]*>").unwrap_or_else(|e| unreachable!("tag pattern: {e}"))
});

/// Markdown as a member would read it in plain text: emphasis marks, heading and quote markers
/// and `<font>` tags gone, links as "text (url)".
pub fn markdown_to_text(markdown: &str) -> String {
    let text = LINK.replace_all(markdown, |c: &regex::Captures<'_>| {
        if c[1].is_empty() || c[1] == c[2] {
            c[2].to_owned()
        } else {
            format!("{} ({})", &c[1], &c[2])
        }
    });
    let text = TAG.replace_all(&text, "");
    text.lines()
        .map(|line| {
            let stripped = line.trim_start_matches(['#', '>']);
            let line = if stripped.len() == line.len() {
                line
            } else {
                stripped.trim_start()
            };
            line.replace("**", "").replace("__", "").replace('`', "")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::onebot::protocol::{Incoming, parse_frame};

    fn event(frame: &str) -> protocol::Event {
        match parse_frame(frame) {
            Ok(Incoming::Event(e)) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    fn convert(frame: &str) -> Event {
        let bot = BotId::parse("ob").unwrap();
        match to_domain(&bot, &event(frame), Utc::now()) {
            Converted::Domain(e) => *e,
            other => panic!("not converted: {other:?}"),
        }
    }

    const SELF: &str = r#""self":{"platform":"wechat","user_id":"wxid_bot"}"#;

    #[test]
    fn a_group_message_with_a_mention_of_the_account_is_text_addressed_to_the_bot() {
        let e = convert(&format!(
            r#"{{"id":"e1","time":1.5,"type":"message","detail_type":"group","sub_type":"",{SELF},
            "message_id":"m1","group_id":"g1@chatroom","user_id":"wxid_a",
            "message":[{{"type":"mention","data":{{"user_id":"wxid_bot"}}}},{{"type":"text","data":{{"text":" 发票怎么开"}}}}]}}"#
        ));
        assert_eq!(
            e.kind,
            EventKind::Text {
                text: "发票怎么开".into()
            }
        );
        assert!(e.mentioned);
        assert_eq!(e.account.as_deref(), Some("wxid_bot"));
        assert_eq!(e.chat_id().map(ChatId::as_str), Some("g1@chatroom"));
        assert_eq!(e.from.user_id, "wxid_a");
        assert_eq!(e.msg_id, "e1");
    }

    #[test]
    fn unknown_and_wx_segments_are_kept_raw_and_a_mention_of_someone_else_is_not_for_the_bot() {
        let e = convert(&format!(
            r#"{{"id":"e2","time":1,"type":"message","detail_type":"group",{SELF},
            "message_id":"m2","group_id":"g1","user_id":"wxid_a",
            "message":[{{"type":"mention","data":{{"user_id":"wxid_c"}}}},{{"type":"text","data":{{"text":"看这个"}}}},
            {{"type":"wx.link","data":{{"title":"广告","url":"http://x"}}}}]}}"#
        ));
        assert!(!e.mentioned);
        let command = convert(&format!(
            r#"{{"id":"e3","time":1,"type":"message","detail_type":"group",{SELF},
            "message_id":"m3","group_id":"g1","user_id":"wxid_a",
            "message":[{{"type":"mention","data":{{"user_id":"wxid_bot"}}}},{{"type":"text","data":{{"text":" 设置大当家"}}}},
            {{"type":"mention","data":{{"user_id":"wxid_c"}}}}]}}"#
        ));
        assert_eq!(
            command.kind,
            EventKind::Text {
                text: "设置大当家 @wxid_c".into()
            }
        );
        let EventKind::Mixed { items } = &e.kind else {
            panic!("{:?}", e.kind)
        };
        assert_eq!(items[0], MixedItem::Text("看这个".into()));
        let MixedItem::Other { kind, data } = &items[1] else {
            panic!("{items:?}")
        };
        assert_eq!(kind, "wx.link");
        assert!(data.contains("广告"), "{data}");
    }

    #[test]
    fn joins_and_leaves_of_members_and_of_the_account_itself() {
        let notice = |detail: &str, sub: &str, user: &str| {
            convert(&format!(
                r#"{{"id":"n-{detail}-{sub}-{user}","time":1,"type":"notice","detail_type":"{detail}","sub_type":"{sub}",{SELF},
                "group_id":"g1","user_id":"{user}","operator_id":"wxid_op"}}"#
            ))
        };
        let joined = notice("group_member_increase", "invite", "wxid_new");
        assert_eq!(
            joined.kind,
            EventKind::MemberJoined {
                scene: JoinScene::Invited,
                operator: "wxid_op".into()
            }
        );
        assert_eq!(joined.from.user_id, "wxid_new");
        let scanned = notice("group_member_increase", "join", "wxid_new");
        assert!(matches!(
            scanned.kind,
            EventKind::MemberJoined {
                scene: JoinScene::Qrcode,
                ..
            }
        ));
        let kicked = notice("group_member_decrease", "kick", "wxid_x");
        assert_eq!(
            kicked.kind,
            EventKind::MemberLeft {
                kicked: true,
                operator: "wxid_op".into()
            }
        );
        let adopted = notice("group_member_increase", "invite", "wxid_bot");
        assert_eq!(adopted.kind, EventKind::BotAdded);
        assert_eq!(
            adopted.from.user_id, "wxid_op",
            "the adopter is who added the account"
        );
        let released = notice("group_member_decrease", "kick", "wxid_bot");
        assert_eq!(released.kind, EventKind::BotRemoved);
    }

    #[test]
    fn meta_events_are_not_domain_events() {
        let bot = BotId::parse("ob").unwrap();
        let hb = event(
            r#"{"id":"h","time":1,"type":"meta","detail_type":"heartbeat","sub_type":"","interval":5000}"#,
        );
        assert_eq!(
            to_domain(&bot, &hb, Utc::now()),
            Converted::NotDomain("meta event")
        );
    }

    #[test]
    fn outgoing_text_puts_mentions_first_and_markdown_becomes_plain_text() {
        let Outgoing::Segments(segments) = outgoing(&OutMessage::Text {
            content: "欢迎".into(),
            mentioned: vec!["wxid_a".into(), "@all".into()],
            mentioned_mobiles: vec![],
        }) else {
            panic!()
        };
        assert_eq!(
            segments,
            vec![
                Segment::Mention("wxid_a".into()),
                Segment::MentionAll,
                Segment::Text(" 欢迎".into())
            ]
        );
        assert_eq!(
            with_mentions("欢迎 <@wxid_a> <@wxid_b>！"),
            vec![
                Segment::Text("欢迎 ".into()),
                Segment::Mention("wxid_a".into()),
                Segment::Text(" ".into()),
                Segment::Mention("wxid_b".into()),
                Segment::Text("！".into())
            ]
        );
        assert_eq!(
            markdown_to_text(
                "# 早报\n**今日**要点：[财政部](https://mof.gov.cn)\n> <font color=\"info\">提示</font>"
            ),
            "早报\n今日要点：财政部 (https://mof.gov.cn)\n提示"
        );
    }
}
