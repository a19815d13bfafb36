//! The rules that decide what the bot says. Pure: given an event and the loaded scripts it
//! returns the reply, with no I/O and no clock.
//!
//! For now this answers help requests and @-messages nothing else handles; the keyword,
//! welcome and moderation rules grow here.

use crate::domain::{Event, EventKind, MixedItem, Reply};
use crate::scripts::Scripts;

/// The passive reply for `event`, if any. Events that change state (the bot being added or
/// removed) get no passive reply: their effects are pushed after the store has recorded them.
pub fn passive_reply(event: &Event, scripts: &Scripts) -> Option<Reply> {
    let asker = event.from.user_id.as_str();
    match &event.kind {
        EventKind::Text { text } => Some(answer_text(text, asker, scripts)?),
        EventKind::Mixed { items } => {
            let text: Vec<&str> = items
                .iter()
                .filter_map(|item| match item {
                    MixedItem::Text(t) => Some(t.as_str()),
                    MixedItem::Image(_) => None,
                })
                .collect();
            answer_text(&text.join(" "), asker, scripts)
        }
        // A member opening a one-to-one chat is greeted with what the bot can do.
        EventKind::EnterChat => Some(scripts.help.reply_to(asker)),
        EventKind::Image { .. }
        | EventKind::Attachment { .. }
        | EventKind::BotAdded
        | EventKind::BotRemoved
        | EventKind::Unknown { .. } => None,
    }
}

fn answer_text(text: &str, asker: &str, scripts: &Scripts) -> Option<Reply> {
    if scripts.is_help(text) {
        return Some(scripts.help.reply_to(asker));
    }
    scripts.fallback.as_ref().map(|m| m.reply_to(asker))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BotId, ChatId, Conversation, Sender};
    use crate::scripts::EMBEDDED_MESSAGES;
    use chrono::Utc;
    use std::path::Path;

    fn event(kind: EventKind) -> Event {
        Event {
            bot: BotId::parse("b").unwrap(),
            msg_id: "1".into(),
            conversation: Conversation::Group(ChatId::new("c")),
            from: Sender {
                user_id: "zhangsan".into(),
                ..Sender::default()
            },
            webhook_url: None,
            kind,
            received_at: Utc::now(),
        }
    }

    #[test]
    fn help_is_answered_with_a_mention_and_other_text_with_the_fallback() {
        let scripts = Scripts::parse(EMBEDDED_MESSAGES, Path::new("m")).unwrap();
        let help = passive_reply(
            &event(EventKind::Text {
                text: "帮助".into(),
            }),
            &scripts,
        );
        assert_eq!(help, Some(scripts.help.reply_to("zhangsan")));
        let Some(Reply::Text { mentioned, .. }) = help else {
            panic!("help is text")
        };
        assert_eq!(mentioned, vec!["zhangsan".to_owned()]);
        let other = passive_reply(
            &event(EventKind::Text {
                text: "你好".into(),
            }),
            &scripts,
        );
        assert_eq!(
            other,
            scripts.fallback.as_ref().map(|m| m.reply_to("zhangsan"))
        );
        assert_eq!(passive_reply(&event(EventKind::BotAdded), &scripts), None);
    }

    #[test]
    fn silent_without_a_fallback() {
        let mut scripts = Scripts::parse(EMBEDDED_MESSAGES, Path::new("m")).unwrap();
        scripts.fallback = None;
        assert_eq!(
            passive_reply(
                &event(EventKind::Text {
                    text: "你好".into()
                }),
                &scripts
            ),
            None
        );
    }
}
