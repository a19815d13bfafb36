//! In-chat commands (the community pyramid): members @-mention the bot with a command word,
//! the engine checks the sender's role and answers — or refuses, saying which role the command
//! needs. Commands that change the group (roles, tags, rules switched off) return
//! [`SettingsChange`]s for the caller to store. Pure, like the rest of the engine.

mod run;

use run::{Run, envelope_test};

use minijinja::{Value, context};
use serde::Deserialize;

use super::scope::validate_tag;
use super::vars::GroupStats;
use super::{By, Ctx, Decision, GroupView};
use crate::domain::{Action, EnvelopeParams, ModerationRequest, Role, SettingsChange};
use crate::engine::message::Message;

/// What a command does. Operators choose the words that trigger it and who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// Show the group rules.
    Rules,
    /// Show who holds which role.
    Roles,
    SetAdmin,
    UnsetAdmin,
    SetHelper,
    UnsetHelper,
    /// Add tags to the group.
    Tag,
    /// Remove tags from the group.
    Untag,
    /// Switch a keyword rule off for this group.
    RuleOff,
    /// Switch it back on.
    RuleOn,
    /// Show this group's statistics.
    Stats,
    /// Remove members from the group (where the channel can; otherwise the admins are asked).
    Remove,
    /// Lift a moderation ban on members (blacklist, warnings).
    Pardon,
    /// Trust members in this group: content checks skip them.
    Approve,
    /// Stop trusting them.
    Unapprove,
    /// Report members' recent messages to the admins.
    Report,
    /// Appeal a moderation decision to the admins.
    Appeal,
    /// Start a red-envelope test in this group.
    RedEnvelopeTest,
    /// Cancel the red-envelope test running in this group.
    RedEnvelopeCancel,
}

impl CommandKind {
    pub const ALL: [CommandKind; 19] = [
        CommandKind::Rules,
        CommandKind::Roles,
        CommandKind::SetAdmin,
        CommandKind::UnsetAdmin,
        CommandKind::SetHelper,
        CommandKind::UnsetHelper,
        CommandKind::Tag,
        CommandKind::Untag,
        CommandKind::RuleOff,
        CommandKind::RuleOn,
        CommandKind::Stats,
        CommandKind::Remove,
        CommandKind::Pardon,
        CommandKind::Approve,
        CommandKind::Unapprove,
        CommandKind::Report,
        CommandKind::Appeal,
        CommandKind::RedEnvelopeTest,
        CommandKind::RedEnvelopeCancel,
    ];

    /// The key operators write in `commands.toml`.
    pub fn key(self) -> &'static str {
        match self {
            CommandKind::Rules => "rules",
            CommandKind::Roles => "roles",
            CommandKind::SetAdmin => "set_admin",
            CommandKind::UnsetAdmin => "unset_admin",
            CommandKind::SetHelper => "set_helper",
            CommandKind::UnsetHelper => "unset_helper",
            CommandKind::Tag => "tag",
            CommandKind::Untag => "untag",
            CommandKind::RuleOff => "rule_off",
            CommandKind::RuleOn => "rule_on",
            CommandKind::Stats => "stats",
            CommandKind::Remove => "remove",
            CommandKind::Pardon => "pardon",
            CommandKind::Approve => "approve",
            CommandKind::Unapprove => "unapprove",
            CommandKind::Report => "report",
            CommandKind::Appeal => "appeal",
            CommandKind::RedEnvelopeTest => "red_envelope_test",
            CommandKind::RedEnvelopeCancel => "red_envelope_cancel",
        }
    }
}

/// One configured command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub kind: CommandKind,
    /// Words that start the command (after the @-mention).
    pub triggers: Vec<String>,
    /// The lowest role that may use it.
    pub role: Role,
    /// The answer when it succeeds.
    pub reply: Message,
}

/// The answers shared by all commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReplies {
    /// The sender's role is too low (`command`, `required_role`).
    pub refused: Message,
    /// The command needs members, tags or a rule id after it (`command`).
    pub missing_argument: Message,
    /// Named members could not be found in this group (`missing`).
    pub unknown_member: Message,
    /// A tag is malformed (`tag`).
    pub bad_tag: Message,
    /// No keyword rule has this id (`rule`).
    pub unknown_rule: Message,
    /// The change could not be saved (the caller sends this).
    pub failed: Message,
    /// Named members hold the sender's role or a higher one, so the sender cannot remove them
    /// (`targets`, `target_role`).
    pub protected_member: Message,
}

/// All commands of one version of the scripts.
#[derive(Debug, Clone, Default)]
pub struct CommandSet {
    pub commands: Vec<Command>,
    /// User ids that are owners in every group (the operators).
    pub operators: Vec<String>,
    /// `None` when there is no commands file: no commands at all.
    pub replies: Option<CommandReplies>,
    /// (trigger, command index), longest trigger first so that `设置大当家` beats `设置`.
    triggers: Vec<(String, usize)>,
}

impl CommandSet {
    pub fn new(commands: Vec<Command>, operators: Vec<String>, replies: CommandReplies) -> Self {
        let mut triggers: Vec<(String, usize)> = commands
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.triggers.iter().map(move |t| (t.clone(), i)))
            .collect();
        triggers.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        Self {
            commands,
            operators,
            replies: Some(replies),
            triggers,
        }
    }

    /// The command `text` starts with, and the rest of the text (its arguments).
    pub fn recognise<'t>(&self, text: &'t str) -> Option<(&Command, &'t str)> {
        self.replies.as_ref()?;
        let text = text.trim();
        self.triggers.iter().find_map(|(trigger, index)| {
            let rest = text.strip_prefix(trigger.as_str())?;
            // `标签` must not match `标签页`: a trigger is followed by a space, an @ or nothing.
            let boundary = rest.is_empty()
                || rest.starts_with(char::is_whitespace)
                || rest.starts_with(['@', '＠']);
            boundary.then(|| (&self.commands[*index], rest.trim()))
        })
    }

    /// The role `user_id` holds in a group with `settings`: operators are owners everywhere.
    pub fn role_of(&self, settings: &crate::domain::GroupSettings, user_id: &str) -> Role {
        if self.operators.iter().any(|o| o == user_id) {
            Role::Owner
        } else {
            settings.role_of(user_id)
        }
    }

    /// Every message of the commands (for `trumpet check`).
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        let shared = self.replies.iter().flat_map(|r| {
            [
                &r.refused,
                &r.missing_argument,
                &r.unknown_member,
                &r.bad_tag,
                &r.unknown_rule,
                &r.failed,
                &r.protected_member,
            ]
        });
        self.commands.iter().map(|c| &c.reply).chain(shared)
    }
}

/// Members named in a command: `@张三 @lisi` by display name or user id.
struct Targets {
    found: Vec<(String, String)>,
    missing: Vec<String>,
    /// What followed the members, for commands that take a reason (`举报 @n9 发广告`).
    reason: String,
}

/// The most words one display name is tried with (`@Amy Wang`, `@Mary Ann Lee`).
const NAME_WORDS: usize = 4;

/// Whether a word of a command is an @-mention.
fn is_mention(word: &str) -> bool {
    word.starts_with(['@', '＠'])
}

/// One member named by `name` (a user id, a display name or a role holder's name): `None` when
/// nobody is, or when two members share the display name (the user id is needed then).
fn find_member(name: &str, view: &GroupView<'_>) -> Option<(String, String)> {
    if let Some(m) = view.members.iter().find(|m| m.user_id == name) {
        return Some((m.user_id.clone(), m.name.clone()));
    }
    let mut by_name = view.members.iter().filter(|m| m.name == name);
    match (by_name.next(), by_name.next()) {
        (Some(m), None) => return Some((m.user_id.clone(), m.name.clone())),
        (Some(_), Some(_)) => return None,
        (None, _) => {}
    }
    if let Some(owner) = &view.settings.owner
        && (owner == name || view.settings.owner_name == name)
    {
        return Some((owner.clone(), view.settings.owner_name.clone()));
    }
    view.settings
        .roles
        .iter()
        .find(|(id, h)| id.as_str() == name || h.name == name)
        .map(|(id, h)| (id.clone(), h.name.clone()))
}

/// Reads the members `args` names. A display name may hold spaces (`@Amy Wang`): the longest
/// run of words that names a member wins. With `takes_reason`, the words after the members
/// (`举报 @n9 发广告`) are the reason instead of more names.
fn resolve_members(args: &str, view: &GroupView<'_>, takes_reason: bool) -> Targets {
    let mut targets = Targets {
        found: Vec::new(),
        missing: Vec::new(),
        reason: String::new(),
    };
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut at = 0;
    while at < words.len() {
        let word = words[at];
        let named = targets.found.len() + targets.missing.len();
        if takes_reason && !is_mention(word) && named > 0 {
            targets.reason = words[at..].join(" ");
            break;
        }
        let first = word.trim_start_matches(['@', '＠']);
        if first.is_empty() {
            at += 1;
            continue;
        }
        // Longest first: `@Amy Wang` is one member even when an `Amy` exists too. A following
        // @-mention never belongs to this name.
        let longest = (at + 1..=words.len().min(at + NAME_WORDS))
            .take_while(|&end| end == at + 1 || !is_mention(words[end - 1]))
            .last()
            .unwrap_or(at + 1);
        let matched = (at + 1..=longest).rev().find_map(|end| {
            let name = std::iter::once(first)
                .chain(words[at + 1..end].iter().copied())
                .collect::<Vec<_>>()
                .join(" ");
            find_member(&name, view).map(|found| (found, end))
        });
        match matched {
            Some((found, end)) => {
                if !targets.found.contains(&found) {
                    targets.found.push(found);
                }
                at = end;
            }
            None => {
                targets.missing.push(first.to_owned());
                at += 1;
            }
        }
    }
    targets
}

/// Runs `command` with `args` for the sender of `ctx`.
pub(super) fn run(command: &Command, trigger_text: &str, args: &str, ctx: &Ctx<'_>) -> Decision {
    let replies = ctx
        .scripts
        .commands
        .replies
        .as_ref()
        .expect("recognise() only finds commands when replies exist");
    let run = Run {
        command,
        trigger_text,
        args,
        ctx,
        replies,
    };
    if ctx.role < command.role {
        return run.answer(
            &replies.refused,
            context! {
                command => trigger_text,
                required_role => command.role.title(),
            },
            true,
        );
    }
    // Commands that answer and act: done here. The others change settings (or nothing) and
    // answer with `command.reply` below.
    let changed = match command.kind {
        CommandKind::Rules => run.group_rules(),
        CommandKind::Roles => Ok((context! {}, Vec::new())),
        CommandKind::Stats => {
            let stats = ctx.view.stats.cloned().unwrap_or_else(GroupStats::default);
            Ok((context! { stats }, Vec::new()))
        }
        CommandKind::SetAdmin
        | CommandKind::UnsetAdmin
        | CommandKind::SetHelper
        | CommandKind::UnsetHelper => run.role_change(),
        CommandKind::Tag | CommandKind::Untag => run.tags(),
        CommandKind::RuleOff | CommandKind::RuleOn => run.rule_switch(),
        CommandKind::Remove => return run.remove(),
        CommandKind::Pardon
        | CommandKind::Approve
        | CommandKind::Unapprove
        | CommandKind::Report => return run.moderation_request(),
        CommandKind::Appeal => {
            let appeal = Action::Moderation(ModerationRequest::Appeal {
                reason: args.trim().to_owned(),
            });
            return run.answer_with(context! {}, vec![appeal]);
        }
        CommandKind::RedEnvelopeTest => {
            return envelope_test(args, ctx, &|m, e, r| run.answer(m, e, r), command);
        }
        CommandKind::RedEnvelopeCancel => {
            return run.answer_with(context! {}, vec![Action::CancelEnvelopeTest]);
        }
    };
    match changed {
        Ok((extra, changes)) => {
            let mut decision = run.answer(&command.reply, extra, false);
            let settings: Vec<Action> = changes.into_iter().map(Action::Settings).collect();
            decision.actions.splice(0..0, settings);
            decision
        }
        Err(refusal) => refusal,
    }
}
