//! In-chat commands (the community pyramid): members @-mention the bot with a command word,
//! the engine checks the sender's role and answers — or refuses, saying which role the command
//! needs. Commands that change the group (roles, tags, rules switched off) return
//! [`SettingsChange`]s for the caller to store. Pure, like the rest of the engine.

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

/// One command being run, with what its answers need.
struct Run<'a> {
    command: &'a Command,
    trigger_text: &'a str,
    args: &'a str,
    ctx: &'a Ctx<'a>,
    replies: &'a CommandReplies,
}

/// What a settings command answers with (its template's variables) and the changes it makes;
/// or the answer refusing it.
type Changed = Result<(Value, Vec<SettingsChange>), Decision>;

impl Run<'_> {
    /// `message` rendered with the context's variables and `extra`.
    fn answer(&self, message: &Message, extra: Value, refused: bool) -> Decision {
        let by = By::Command {
            kind: self.command.kind,
            refused,
        };
        self.ctx.answer(
            message,
            || context! { ..extra, ..self.ctx.vars() },
            by,
            Vec::new(),
        )
    }

    /// The command's reply with `extra`, followed by `actions`.
    fn answer_with(&self, extra: Value, actions: Vec<Action>) -> Decision {
        let mut decision = self.answer(&self.command.reply, extra, false);
        decision.actions.extend(actions);
        decision
    }

    /// The answer to a command given without what it needs.
    fn missing_argument(&self) -> Decision {
        self.answer(
            &self.replies.missing_argument,
            context! { command => self.trigger_text },
            false,
        )
    }

    /// The members the command names, or the answer saying none (or not all) were found.
    fn named(&self) -> Result<Targets, Decision> {
        let takes_reason = self.command.kind == CommandKind::Report;
        let targets = resolve_members(self.args, self.ctx.view, takes_reason);
        if targets.found.is_empty() && targets.missing.is_empty() {
            return Err(self.missing_argument());
        }
        if !targets.missing.is_empty() {
            return Err(self.answer(
                &self.replies.unknown_member,
                context! { missing => targets.missing },
                false,
            ));
        }
        Ok(targets)
    }

    /// `群规`: the group rules rendered into the reply.
    fn group_rules(&self) -> Changed {
        let Some(rules) = &self.ctx.scripts.rules else {
            return Ok((context! { group_rules => "" }, Vec::new()));
        };
        match self
            .ctx
            .scripts
            .templates
            .render(&rules.body, || self.ctx.vars())
        {
            Ok(group_rules) => Ok((context! { group_rules }, Vec::new())),
            Err(e) => Err(Decision::failed(
                By::Command {
                    kind: self.command.kind,
                    refused: false,
                },
                e,
            )),
        }
    }

    /// Setting or unsetting admins and helpers.
    fn role_change(&self) -> Changed {
        let found = self.named()?.found;
        let new_role = match self.command.kind {
            CommandKind::SetAdmin => Role::Admin,
            CommandKind::SetHelper => Role::Helper,
            _ => Role::Member,
        };
        let mut changes = Vec::new();
        let mut names = Vec::new();
        for (user_id, name) in found {
            // Unsetting a helper must not demote an admin, and the reverse.
            let current = self.ctx.view.settings.role_of(&user_id);
            let affected = match self.command.kind {
                CommandKind::UnsetAdmin => current == Role::Admin,
                CommandKind::UnsetHelper => current == Role::Helper,
                _ => current != Role::Owner,
            };
            if affected {
                changes.push(SettingsChange::SetRole {
                    user_id: user_id.clone(),
                    name: name.clone(),
                    role: new_role,
                });
            }
            names.push(if name.is_empty() { user_id } else { name });
        }
        Ok((context! { targets => names }, changes))
    }

    /// `移出 @member…`: nobody removes someone of their own standing or above (an admin cannot
    /// remove another admin or the owner); the answer is about them, not the sender's role.
    fn remove(&self) -> Decision {
        let found = match self.named() {
            Ok(targets) => targets.found,
            Err(refusal) => return refusal,
        };
        let protected: Vec<(&str, Role)> = found
            .iter()
            .map(|(id, name)| {
                let shown = if name.is_empty() { id } else { name };
                (shown.as_str(), self.ctx.view.settings.role_of(id))
            })
            .filter(|(_, their)| *their >= self.ctx.role)
            .collect();
        if let Some(highest) = protected.iter().map(|(_, r)| *r).max() {
            let targets: Vec<&str> = protected.iter().map(|(name, _)| *name).collect();
            return self.answer(
                &self.replies.protected_member,
                context! { targets, target_role => highest.title() },
                true,
            );
        }
        let by = super::vars::display_name(&self.ctx.event.from);
        let mut removals = Vec::new();
        let mut names = Vec::new();
        for (user_id, name) in found {
            removals.push(Action::RemoveMember {
                user_id: user_id.clone(),
                name: name.clone(),
                reason: format!("{by} 用群内指令「{}」移出", self.trigger_text),
            });
            names.push(if name.is_empty() { user_id } else { name });
        }
        let can_remove = self.ctx.view.can_remove_members;
        self.answer_with(context! { targets => names, can_remove }, removals)
    }

    /// Pardon, approve, unapprove and report: moderation requests the caller performs.
    fn moderation_request(&self) -> Decision {
        let (found, reason) = match self.named() {
            Ok(targets) => (targets.found, targets.reason),
            Err(refusal) => return refusal,
        };
        let mut requests = Vec::new();
        let mut names = Vec::new();
        for (user_id, name) in found {
            requests.push(Action::Moderation(match self.command.kind {
                CommandKind::Pardon => ModerationRequest::Pardon {
                    user_id: user_id.clone(),
                },
                CommandKind::Report => ModerationRequest::Report {
                    user_id: user_id.clone(),
                    reason: reason.clone(),
                },
                kind => ModerationRequest::Approve {
                    user_id: user_id.clone(),
                    approved: kind == CommandKind::Approve,
                },
            }));
            names.push(if name.is_empty() { user_id } else { name });
        }
        self.answer_with(context! { targets => names }, requests)
    }

    /// `打标签` / `删标签`: the tags after the command, folded and checked.
    fn tags(&self) -> Changed {
        let mut tags = Vec::new();
        for tag in self.args.split_whitespace() {
            match validate_tag(tag) {
                Ok(t) => tags.push(t),
                Err(_) => return Err(self.answer(&self.replies.bad_tag, context! { tag }, false)),
            }
        }
        if tags.is_empty() {
            return Err(self.missing_argument());
        }
        let change = if self.command.kind == CommandKind::Tag {
            SettingsChange::AddTags(tags)
        } else {
            SettingsChange::RemoveTags(tags)
        };
        let mut after = self.ctx.view.settings.clone();
        after.apply(&change);
        let tags: Vec<String> = after.tags.into_iter().collect();
        Ok((context! { tags }, vec![change]))
    }

    /// `关闭规则` / `开启规则`: a keyword rule or job switched off or on in this group.
    fn rule_switch(&self) -> Changed {
        let rule = self.args.split_whitespace().next().unwrap_or("");
        if rule.is_empty() {
            return Err(self.missing_argument());
        }
        let scripts = self.ctx.scripts;
        let known = scripts.keywords.rules().iter().any(|r| r.id == rule)
            || scripts.jobs.iter().any(|j| j.name == rule);
        if !known {
            return Err(self.answer(&self.replies.unknown_rule, context! { rule }, false));
        }
        let change = SettingsChange::SwitchRule {
            rule: rule.to_owned(),
            enabled: self.command.kind == CommandKind::RuleOn,
        };
        Ok((context! { rule }, vec![change]))
    }
}

/// `红包测试 20元 20份 2小时`: the test's parameters (the defaults of `red_envelope.toml` for
/// those not given), checked here so that a member hears at once what is wrong; the caller
/// starts the test.
fn envelope_test(
    args: &str,
    ctx: &Ctx<'_>,
    answer: &dyn Fn(&Message, Value, bool) -> Decision,
    command: &Command,
) -> Decision {
    use super::red_envelope::{check, chinese_reason, parse_args, yuan_digits};
    let defaults = &ctx.scripts.red_envelope;
    let filled = parse_args(args).and_then(|p| {
        let total_fen = p.total_fen.unwrap_or(defaults.total_fen);
        let shares = p.shares.unwrap_or(defaults.shares);
        let window_secs = p.window_secs.unwrap_or(defaults.window.as_secs());
        check(total_fen, shares).map_err(|e| chinese_reason(&e))?;
        let longest = crate::engine::red_envelope::rules::MAX_WINDOW.as_secs();
        if window_secs == 0 || window_secs > longest {
            return Err(format!("有效时间要在 1 秒到 {} 小时之间", longest / 3600));
        }
        Ok(EnvelopeParams {
            total_fen: Some(total_fen),
            shares: Some(shares),
            window_secs: Some(window_secs),
        })
    });
    match (filled, &defaults.messages) {
        (Ok(params), _) => {
            let envelope = context! {
                total => yuan_digits(params.total_fen.unwrap_or_default()),
                shares => params.shares,
                window_minutes => params.window_secs.unwrap_or_default().div_ceil(60),
            };
            let mut decision = answer(&command.reply, context! { envelope }, false);
            decision.actions.push(Action::StartEnvelopeTest(params));
            decision
        }
        (Err(reason), Some(messages)) => answer(&messages.not_started, context! { reason }, false),
        // Scripts without a red-envelope file (tests of the messages file alone) cannot run one.
        (Err(_), None) => Decision::nothing(By::Command {
            kind: command.kind,
            refused: false,
        }),
    }
}
