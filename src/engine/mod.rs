//! The rules that decide what the bot says. Pure: given an event, the loaded scripts, the time
//! and which keyword rules are cooling down in the group, it returns the reply — no I/O, no
//! clock of its own.
//!
//! Order: a help trigger, then the keyword replies ([`keywords`]), then the fallback answer.
//! Welcome and moderation rules grow here.

pub mod keywords;
pub mod normalize;

use chrono::{DateTime, Timelike, Utc};

use crate::domain::{Event, EventKind, MixedItem, Reply};
use crate::scripts::Scripts;
use keywords::MatchInput;

/// Operators' local time: China Standard Time (UTC+8, no DST).
const LOCAL_OFFSET_SECS: i64 = 8 * 3600;

/// What the engine decided to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub reply: Reply,
    /// The keyword rule that answered, when one did, and its cooldown in seconds (so the caller
    /// can start it).
    pub rule: Option<(String, u64)>,
}

/// Minutes after local midnight.
fn local_minute_of_day(now: DateTime<Utc>) -> u16 {
    let local = now + chrono::Duration::seconds(LOCAL_OFFSET_SECS);
    (local.hour() * 60 + local.minute()) as u16
}

/// The passive reply for `event`, if any. `cooling(rule_id)` says whether a keyword rule is in
/// its cooldown in this conversation: a matching rule that is cooling keeps the bot silent
/// rather than answering with something else. Events that change state (the bot being added or
/// removed) get no passive reply: their effects are pushed after the store has recorded them.
pub fn passive_reply(
    event: &Event,
    scripts: &Scripts,
    now: DateTime<Utc>,
    cooling: impl Fn(&str) -> bool,
) -> Option<Answer> {
    let asker = event.from.user_id.as_str();
    let text = match &event.kind {
        EventKind::Text { text } => text.clone(),
        EventKind::Mixed { items } => items
            .iter()
            .filter_map(|item| match item {
                MixedItem::Text(t) => Some(t.as_str()),
                MixedItem::Image(_) => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        // A member opening a one-to-one chat is greeted with what the bot can do.
        EventKind::EnterChat => {
            return Some(Answer {
                reply: scripts.help.reply_to(asker),
                rule: None,
            });
        }
        EventKind::Image { .. }
        | EventKind::Attachment { .. }
        | EventKind::BotAdded
        | EventKind::BotRemoved
        | EventKind::Unknown { .. } => return None,
    };
    if scripts.is_help(&text) {
        return Some(Answer {
            reply: scripts.help.reply_to(asker),
            rule: None,
        });
    }
    let normalized = normalize::normalize(&text);
    let input = MatchInput {
        text: &normalized,
        mentioned: event.mentioned,
        minute_of_day: local_minute_of_day(now),
    };
    if let Some(rule) = scripts.keywords.find(&input) {
        if cooling(&rule.id) {
            return None;
        }
        return Some(Answer {
            reply: rule.reply.reply_to(asker),
            rule: Some((rule.id.clone(), rule.cooldown.as_secs())),
        });
    }
    if !event.mentioned {
        return None;
    }
    scripts.fallback.as_ref().map(|m| Answer {
        reply: m.reply_to(asker),
        rule: None,
    })
}

#[cfg(test)]
mod tests;
