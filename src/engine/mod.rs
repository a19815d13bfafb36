//! The rules that decide what the bot does. Pure: given an event, a view of the group (its
//! settings, members, counters, which keyword rules are cooling down), the loaded scripts and
//! `now`, [`decide`] returns [`Action`]s — no I/O, no clock of its own. [`degrade`] then fits
//! the actions to what the channel can do, visibly: an action the channel cannot perform
//! becomes a note to the group's admins, never a silent drop.
//!
//! Order for a message: a help trigger, an in-chat command ([`commands`]), the keyword replies
//! ([`keywords`]), then the fallback answer.

pub mod commands;
pub mod content;
pub mod health;
pub mod jobs;
pub mod keywords;
pub mod message;
pub mod moderation;
pub mod normalize;
pub mod pieces;
pub mod red_envelope;
pub mod rules;
pub mod scope;
pub mod simulate;
pub mod template;
pub mod vars;
pub mod welcome;

use chrono::{DateTime, Timelike, Utc};
use minijinja::Value;

use crate::domain::{
    Action, Capabilities, Event, EventKind, GroupSettings, MixedItem, OutMessage, Reply, Role,
    SettingsChange,
};
use crate::engine::message::Message;
use crate::engine::template::RenderError;
use commands::CommandKind;
use keywords::MatchInput;
pub use rules::Scripts;
use scope::Place;
pub use vars::GroupStats;

/// A member as the engine knows them (for resolving names in commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberBrief {
    pub user_id: String,
    pub name: String,
}

/// A message recently said in the conversation (what the bot heard: on the group robot, the
/// @-mentions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMessage {
    pub user_id: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// What the engine knows about the group an event happened in.
pub struct GroupView<'a> {
    pub settings: &'a GroupSettings,
    /// The conversation's last messages before this one, oldest first.
    pub recent: &'a [RecentMessage],
    /// Counters, when the caller has them (commands that show statistics).
    pub stats: Option<&'a GroupStats>,
    /// Members seen in the group, when the caller loaded them (commands that name members).
    pub members: &'a [MemberBrief],
    /// Whether a keyword rule is in its cooldown in this conversation.
    pub cooling: &'a dyn Fn(&str) -> bool,
    /// The channel can remove members (a bot account offering it); otherwise a removal asks the
    /// admins, and the answer to `移出` says so.
    pub can_remove_members: bool,
    /// The channel can message people privately (a bot account): a report's answer says the
    /// owner and admins were told privately.
    pub can_message_privately: bool,
}

impl GroupView<'_> {
    /// A group nothing is known about.
    pub fn empty() -> GroupView<'static> {
        static EMPTY: std::sync::LazyLock<GroupSettings> =
            std::sync::LazyLock::new(GroupSettings::default);
        GroupView {
            settings: &EMPTY,
            recent: &[],
            stats: None,
            members: &[],
            cooling: &|_| false,
            can_remove_members: false,
            can_message_privately: false,
        }
    }
}

/// Why the engine decided what it did (for logs and `trumpet simulate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// Nothing applies: the bot stays silent.
    Nothing,
    Help,
    Keyword {
        rule: String,
    },
    /// A keyword rule matched but is cooling down in this group: silence.
    Cooling {
        rule: String,
    },
    Command {
        kind: CommandKind,
        refused: bool,
    },
    Fallback,
    Adoption,
    Release,
}

impl std::fmt::Display for By {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            By::Nothing => f.write_str("nothing applies"),
            By::Help => f.write_str("help"),
            By::Keyword { rule } => write!(f, "keyword rule {rule:?}"),
            By::Cooling { rule } => write!(f, "keyword rule {rule:?}, cooling down: silent"),
            By::Command { kind, refused } => {
                write!(f, "command {:?}", kind.key())?;
                if *refused {
                    f.write_str(", refused: the sender's role is too low")?;
                }
                Ok(())
            }
            By::Fallback => f.write_str("the fallback answer"),
            By::Adoption => f.write_str("adoption"),
            By::Release => f.write_str("release"),
        }
    }
}

/// The engine's answer to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub by: By,
    /// Templates that failed to render (their actions are left out; the caller logs these).
    pub problems: Vec<RenderError>,
}

impl Decision {
    fn nothing(by: By) -> Self {
        Self {
            actions: Vec::new(),
            by,
            problems: Vec::new(),
        }
    }

    fn failed(by: By, problem: RenderError) -> Self {
        Self {
            actions: Vec::new(),
            by,
            problems: vec![problem],
        }
    }

    /// The passive reply, if the decision has one.
    pub fn reply(&self) -> Option<&Reply> {
        self.actions.iter().find_map(|a| match a {
            Action::Reply(r) => Some(r),
            _ => None,
        })
    }
}

/// Everything a decision about one event reads.
pub(crate) struct Ctx<'a> {
    event: &'a Event,
    view: &'a GroupView<'a>,
    scripts: &'a Scripts,
    now: DateTime<Utc>,
    role: Role,
}

impl Ctx<'_> {
    fn place(&self) -> Place<'_> {
        Place {
            chat: self.event.chat_id(),
            settings: self.view.settings,
        }
    }

    /// The variables every template sees.
    fn vars(&self) -> Value {
        vars::base(
            &self.event.from,
            self.role,
            self.event.chat_id(),
            self.view.settings,
            self.now,
        )
    }

    /// A decision answering with `message`, plus `actions` after the reply.
    fn answer(
        &self,
        message: &Message,
        vars: impl FnOnce() -> Value,
        by: By,
        mut actions: Vec<Action>,
    ) -> Decision {
        match message.reply(&self.scripts.templates, vars, &self.event.from.user_id) {
            Ok(reply) => {
                actions.insert(0, Action::Reply(reply));
                Decision {
                    actions,
                    by,
                    problems: Vec::new(),
                }
            }
            Err(e) => Decision::failed(by, e),
        }
    }
}

/// Minutes after local midnight.
fn local_minute_of_day(now: DateTime<Utc>) -> u16 {
    let local = now + chrono::Duration::seconds(vars::LOCAL_OFFSET_SECS);
    (local.hour() * 60 + local.minute()) as u16
}

/// The text of a message event (text parts of a mixed message joined by spaces).
fn message_text(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::Text { text } => Some(text.clone()),
        EventKind::Mixed { items } => Some(
            items
                .iter()
                .filter_map(|item| match item {
                    MixedItem::Text(t) => Some(t.as_str()),
                    MixedItem::Image(_) | MixedItem::Other { .. } => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

/// The text of a message event, as the conversation's history keeps it.
pub fn heard_text(event: &Event) -> Option<String> {
    message_text(&event.kind)
}

/// Whether `event` is an in-chat command, so that the caller can load what commands need (the
/// group's members and counters) before calling [`decide`].
pub fn is_command(event: &Event, scripts: &Scripts) -> bool {
    event.mentioned
        && event.chat_id().is_some()
        && message_text(&event.kind)
            .is_some_and(|t| scripts.commands.recognise(as_asked(&t)).is_some())
}

/// A command or a call for help as it was meant: `帮助！`, `帮助?` and `群规。` are `帮助` and
/// `群规` — members end what they type with punctuation, full-width or not.
fn as_asked(text: &str) -> &str {
    text.trim()
        .trim_end_matches(['!', '?', '.', '~', '！', '？', '。', '～', '…', '，', ','])
        .trim_end()
}

/// Decides what the bot does about `event`.
pub fn decide(
    event: &Event,
    view: &GroupView<'_>,
    scripts: &Scripts,
    now: DateTime<Utc>,
) -> Decision {
    let ctx = Ctx {
        event,
        view,
        scripts,
        now,
        role: scripts.commands.role_of(view.settings, &event.from.user_id),
    };
    let text = match &event.kind {
        // A member opening a one-to-one chat is greeted with what the bot can do.
        EventKind::EnterChat => return ctx.answer(&scripts.help, || ctx.vars(), By::Help, vec![]),
        EventKind::BotAdded => {
            let adopter = &event.from.user_id;
            let mut actions = Vec::new();
            if !adopter.is_empty() {
                actions.push(Action::Settings(SettingsChange::SetOwner {
                    user_id: adopter.clone(),
                    name: event.from.name.clone(),
                }));
            }
            let mention: Vec<String> = (!adopter.is_empty())
                .then(|| adopter.clone())
                .into_iter()
                .collect();
            // The adopter is the owner from now on; the greeting's variables say so. Nobody
            // (a group adopted on its first message): no owner yet.
            let mut settings = view.settings.clone();
            if !adopter.is_empty() {
                settings.owner = Some(adopter.clone());
                settings.owner_name = event.from.name.clone();
            }
            let vars = || vars::base(&event.from, Role::Owner, event.chat_id(), &settings, now);
            return match scripts.adoption.push(&scripts.templates, vars, &mention) {
                Ok(message) => {
                    actions.push(Action::Post {
                        message,
                        purpose: "adoption_greeting",
                    });
                    Decision {
                        actions,
                        by: By::Adoption,
                        problems: Vec::new(),
                    }
                }
                Err(e) => Decision {
                    actions,
                    by: By::Adoption,
                    problems: vec![e],
                },
            };
        }
        EventKind::BotRemoved => return Decision::nothing(By::Release),
        kind => match message_text(kind) {
            Some(text) => text,
            None => return Decision::nothing(By::Nothing),
        },
    };
    let asked = as_asked(&text);
    if scripts.is_help(asked) {
        return ctx.answer(&scripts.help, || ctx.vars(), By::Help, vec![]);
    }
    // Commands act on a group: in a one-to-one chat the words are just words.
    if event.mentioned
        && event.chat_id().is_some()
        && let Some((command, args)) = scripts.commands.recognise(asked)
    {
        let trigger = &asked[..asked.len() - args.len()];
        return commands::run(command, trigger.trim(), args, &ctx);
    }
    let normalized = normalize::normalize(&text);
    let input = MatchInput {
        text: &normalized,
        mentioned: event.mentioned,
        minute_of_day: local_minute_of_day(now),
    };
    if let Some(rule) = scripts.keywords.find(&input, ctx.place()) {
        if (view.cooling)(&rule.id) {
            return Decision::nothing(By::Cooling {
                rule: rule.id.clone(),
            });
        }
        let cooldown = Action::StartCooldown {
            rule: rule.id.clone(),
            secs: rule.cooldown.as_secs(),
        };
        let by = By::Keyword {
            rule: rule.id.clone(),
        };
        return ctx.answer(&rule.reply, || ctx.vars(), by, vec![cooldown]);
    }
    match (&scripts.fallback, event.mentioned) {
        (Some(fallback), true) => ctx.answer(fallback, || ctx.vars(), By::Fallback, vec![]),
        _ => Decision::nothing(By::Nothing),
    }
}

/// Fits `actions` to what a channel with `caps` can do. Returns the actions to perform and
/// notes on what had to change (the caller logs them); nothing is dropped without a note.
pub fn degrade(
    actions: Vec<Action>,
    caps: Capabilities,
    settings: &GroupSettings,
) -> (Vec<Action>, Vec<String>) {
    let mut out = Vec::with_capacity(actions.len());
    let mut notes = Vec::new();
    let has_reply = actions.iter().any(|a| matches!(a, Action::Reply(_)));
    for action in actions {
        match action {
            Action::RemoveMember {
                user_id,
                name,
                reason,
            } if !caps.can_remove_members => {
                notes.push(format!(
                    "cannot remove {user_id} on this channel; the admins are told instead"
                ));
                out.push(Action::NotifyAdmins {
                    text: format!(
                        "请管理员将成员 {} 移出本群。原因：{reason}",
                        vars::name_and_id(&name, &user_id)
                    ),
                });
            }
            Action::DeleteMessage { message_id } if !caps.can_delete_messages => {
                notes.push(format!(
                    "cannot delete message {message_id} on this channel; the admins are told instead"
                ));
                out.push(Action::NotifyAdmins {
                    text: "机器人无法撤回这条消息，请管理员处理。".into(),
                });
            }
            Action::Reply(reply) if caps.passive_reply && too_long(&reply, caps) => {
                let (first, rest) = split_reply(reply, caps);
                out.push(Action::Reply(first));
                if caps.can_post {
                    notes.push(format!(
                        "the reply is longer than a passive reply may be: {} more piece(s) posted",
                        rest.len()
                    ));
                    out.extend(rest.into_iter().map(|message| Action::Post {
                        message,
                        purpose: "reply",
                    }));
                } else {
                    notes.push("the reply is longer than a passive reply may be: cut".into());
                }
            }
            Action::Reply(reply) if !caps.passive_reply => {
                if caps.can_post {
                    out.push(Action::Post {
                        message: reply_as_post(reply),
                        purpose: "reply",
                    });
                } else {
                    notes.push("this channel can neither reply nor post: answer dropped".into());
                }
            }
            Action::Post { message, purpose } if !caps.can_post => {
                if caps.passive_reply && !has_reply {
                    notes.push(format!(
                        "{purpose}: sent as the reply (the channel cannot post)"
                    ));
                    if let Some(reply) = post_as_reply(&message) {
                        out.push(Action::Reply(reply));
                        continue;
                    }
                }
                notes.push(format!("{purpose}: the channel cannot post; not sent"));
            }
            other => out.push(other),
        }
    }
    // Notices to the admins go out as one post that @-mentions the owner and admins.
    let mut notices: Vec<String> = Vec::new();
    out.retain(|action| match action {
        Action::NotifyAdmins { text } => {
            if !notices.contains(text) {
                notices.push(text.clone());
            }
            false
        }
        _ => true,
    });
    if !notices.is_empty() {
        out.push(Action::NotifyAdmins {
            text: notices.join("\n"),
        });
    }
    let mut result = Vec::with_capacity(out.len());
    for action in out {
        match action {
            Action::NotifyAdmins { text } if caps.can_post => {
                let mut mentioned: Vec<String> = settings.owner.iter().cloned().collect();
                mentioned.extend(
                    settings
                        .roles
                        .iter()
                        .filter(|(_, h)| h.role == Role::Admin)
                        .map(|(id, _)| id.clone()),
                );
                result.push(Action::Post {
                    message: OutMessage::Text {
                        content: text,
                        mentioned,
                        mentioned_mobiles: Vec::new(),
                    },
                    purpose: "notify_admins",
                });
            }
            Action::NotifyAdmins { text } => {
                notes.push(format!("cannot reach the admins on this channel: {text}"));
            }
            other => result.push(other),
        }
    }
    (result, notes)
}

/// `reply`'s text and the channel's limit for a passive reply of its format.
fn reply_limit(reply: &Reply, caps: Capabilities) -> (&str, usize) {
    match reply {
        Reply::Text { content, .. } => (content, caps.reply_max_bytes.text),
        Reply::Markdown { content } => (content, caps.reply_max_bytes.markdown),
    }
}

/// Whether `reply` is longer than the channel's passive reply may be.
fn too_long(reply: &Reply, caps: Capabilities) -> bool {
    let (content, limit) = reply_limit(reply, caps);
    content.len() > limit
}

/// `reply` cut to the channel's limit: the first piece as the reply (with its mentions), the
/// rest as messages to post after it.
fn split_reply(reply: Reply, caps: Capabilities) -> (Reply, Vec<OutMessage>) {
    let (content, limit) = reply_limit(&reply, caps);
    let mut pieces = pieces::split_on_lines(content, limit).into_iter();
    let first = pieces.next().unwrap_or_default();
    // The same format for every piece; only the first mentions anyone.
    let piece = |content: String| match &reply {
        Reply::Text { .. } => Reply::Text {
            content,
            mentioned: Vec::new(),
        },
        Reply::Markdown { .. } => Reply::Markdown { content },
    };
    let rest = pieces.map(|p| reply_as_post(piece(p))).collect();
    let first = match &reply {
        Reply::Text { mentioned, .. } => Reply::Text {
            content: first,
            mentioned: mentioned.clone(),
        },
        Reply::Markdown { .. } => piece(first),
    };
    (first, rest)
}

/// A reply as the message posted in its place.
pub fn reply_as_post(reply: Reply) -> OutMessage {
    match reply {
        Reply::Text { content, mentioned } => OutMessage::Text {
            content,
            mentioned,
            mentioned_mobiles: Vec::new(),
        },
        Reply::Markdown { content } => OutMessage::Markdown { content },
    }
}

fn post_as_reply(message: &OutMessage) -> Option<Reply> {
    match message {
        OutMessage::Text {
            content, mentioned, ..
        } => Some(Reply::Text {
            content: content.clone(),
            mentioned: mentioned.clone(),
        }),
        OutMessage::Markdown { content } => Some(Reply::Markdown {
            content: content.clone(),
        }),
        OutMessage::News { .. } | OutMessage::Image { .. } => None,
    }
}

#[cfg(test)]
mod tests;
