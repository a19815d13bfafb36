//! Running a recognised command: a [`Run`] holds what the answers need (the asker, the group's
//! view, the scripts), with one method per command family — roles, removal, moderation
//! requests, tags, rule switches, the group's rules, red-envelope tests.

use super::*;

/// One command being run, with what its answers need.
pub(super) struct Run<'a> {
    pub(super) command: &'a Command,
    pub(super) trigger_text: &'a str,
    pub(super) args: &'a str,
    pub(super) ctx: &'a Ctx<'a>,
    pub(super) replies: &'a CommandReplies,
}

/// What a settings command answers with (its template's variables) and the changes it makes;
/// or the answer refusing it.
pub(super) type Changed = Result<(Value, Vec<SettingsChange>), Decision>;

impl Run<'_> {
    /// `message` rendered with the context's variables and `extra`.
    pub(super) fn answer(&self, message: &Message, extra: Value, refused: bool) -> Decision {
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
    pub(super) fn answer_with(&self, extra: Value, actions: Vec<Action>) -> Decision {
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
    pub(super) fn group_rules(&self) -> Changed {
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
    pub(super) fn role_change(&self) -> Changed {
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
    pub(super) fn remove(&self) -> Decision {
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
        let by = crate::engine::vars::display_name(&self.ctx.event.from);
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
    pub(super) fn moderation_request(&self) -> Decision {
        let (found, reason) = match self.named() {
            Ok(targets) => (targets.found, targets.reason),
            Err(refusal) => return refusal,
        };
        let mut requests = Vec::new();
        let mut names = Vec::new();
        // A report reaches the owner and admins privately where the channel can message them
        // and someone other than the reporter and the reported holds the role.
        let asker = self.ctx.event.from.user_id.as_str();
        let privately = self.command.kind == CommandKind::Report
            && self.ctx.view.can_message_privately
            && found.iter().all(|(user_id, _)| {
                !self
                    .ctx
                    .view
                    .settings
                    .report_recipients(&[asker, user_id])
                    .is_empty()
            });
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
        self.answer_with(context! { targets => names, privately }, requests)
    }

    /// `打标签` / `删标签`: the tags after the command, folded and checked.
    pub(super) fn tags(&self) -> Changed {
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
    pub(super) fn rule_switch(&self) -> Changed {
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
pub(super) fn envelope_test(
    args: &str,
    ctx: &Ctx<'_>,
    answer: &dyn Fn(&Message, Value, bool) -> Decision,
    command: &Command,
) -> Decision {
    use crate::engine::red_envelope::{check, chinese_reason, parse_args, yuan_digits};
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
