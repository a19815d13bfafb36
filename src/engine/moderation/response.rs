//! What moderation does about a verdict, decided once for the service, `trumpet simulate` and
//! replay: the outcome in the admins' words, the warning to the member, the notice (the
//! operator's template or the built-in wording), the actions fitted to the channel, what the
//! notice window folds, and whether a removal puts the member on the blacklist. The caller
//! gathers the facts (the verdict, the member's name, the notice window) and performs the
//! actions.

use minijinja::{Value, context};

use super::{Finding, ModerationRules, NotifyAdmins, Severity, Verdict};
use crate::domain::{Action, Capabilities, ChatId, GroupSettings, OutMessage, Sender};
use crate::engine::template::Templates;
use crate::engine::vars;

/// The longest quote of the message in a notice to the admins, in characters.
const NOTICE_TEXT_CHARS: usize = 60;

/// What the notice window (one notice per member, check and outcome in ten minutes) says about
/// this finding; the caller keeps the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeWindow {
    /// The admins are told; `folded_before` findings were folded into the window before.
    Open { folded_before: u32 },
    /// The admins were told about this member, check and outcome in this window already.
    Folded,
}

/// The facts about one judged message that the response depends on.
pub struct Case<'a> {
    pub verdict: &'a Verdict,
    /// The sender, with the name the notice uses.
    pub sender: &'a Sender,
    /// The message's text (mentions left out), quoted in the notice.
    pub text: &'a str,
    /// The platform's id of the message, when the channel gave one.
    pub message_id: Option<&'a str>,
    pub caps: Capabilities,
    pub settings: &'a GroupSettings,
    /// The template variables of the sender and group ([`vars::base`]), built only when a
    /// template is rendered (a folded finding of a flood renders none).
    pub vars: &'a dyn Fn() -> Value,
    pub window: NoticeWindow,
    /// The member is on the operator-wide blacklist already.
    pub blacklisted: bool,
}

/// What moderation does about a message with findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub outcome: Severity,
    /// The finding the response is about (the worst).
    pub worst: Finding,
    /// What to do, fitted to the channel (empty in dry-run).
    pub actions: Vec<Action>,
    /// What fitting the actions to the channel changed, and templates that did not render.
    pub notes: Vec<String>,
    /// Every finding's evidence, for the log (`check: evidence; …`).
    pub evidence: String,
    pub dry_run: bool,
    /// The message is acted on (deleted or worse): the bot does not answer it otherwise.
    pub acted: bool,
    /// This removal puts the member on the operator-wide blacklist.
    pub blacklist: bool,
    /// A campaign's earlier copies in other groups are deleted too.
    pub delete_copies: bool,
    /// A step of its own — a warning, a first ban — gets a log row of its own even in a folded
    /// notice window; other folded findings are counted on the window's row.
    pub own_row: bool,
}

impl Response {
    /// How the warning count reads in the log (`warned 1/3`).
    pub fn warned(&self, verdict: &Verdict) -> String {
        format!(
            "warned {}/{}",
            verdict.warnings, verdict.settings.warn_limit
        )
    }
}

/// The response to `case`, or `None` when the verdict found nothing.
pub fn respond(rules: &ModerationRules, templates: &Templates, case: Case<'_>) -> Option<Response> {
    let verdict = case.verdict;
    let outcome = verdict.outcome()?;
    let worst = verdict.worst()?.clone();
    let dry_run = verdict.settings.dry_run;
    let deletable = case.message_id.filter(|_| case.caps.can_delete_messages);
    let folded = case.window == NoticeWindow::Folded;
    let mut notes = Vec::new();
    let vars = || {
        context! {
            ..(case.vars)(),
            ..context! {
                reason => &worst.reason,
                rule => &worst.check,
                evidence => &worst.evidence,
                warnings => verdict.warnings,
                limit => verdict.settings.warn_limit,
                action => describe(outcome, verdict),
                text => shorten(case.text, NOTICE_TEXT_CHARS),
                deleted => deletable.is_some() && outcome >= Severity::Delete && !dry_run,
            }
        }
    };
    let warning = match (outcome, &rules.warning) {
        (Severity::Warn, Some(message)) => message
            .push(templates, vars, std::slice::from_ref(&case.sender.user_id))
            .map_err(|e| notes.push(format!("the moderation warning did not render: {e}")))
            .ok(),
        _ => None,
    };
    let notice = match case.window {
        NoticeWindow::Folded => String::new(),
        NoticeWindow::Open { folded_before } => {
            let mut notice = notice_text(
                rules,
                templates,
                vars,
                &worst,
                outcome,
                verdict,
                case.sender,
            )
            .unwrap_or_else(|(text, problem)| {
                notes.push(problem);
                text
            });
            if deletable.is_none() && outcome >= Severity::Delete {
                notice.push_str("（机器人无法撤回这条消息，请管理员处理）");
            }
            if folded_before > 0 {
                notice.push_str(&format!(
                    "（此前 10 分钟内同类情况 {folded_before} 次，已合并未逐条提醒）"
                ));
            }
            notice
        }
    };
    let planned = plan(verdict, case.sender, deletable, warning, notice);
    let (mut actions, fitted) = crate::engine::degrade(planned, case.caps, case.settings);
    notes.extend(fitted);
    if folded {
        actions.retain(|a| {
            !matches!(a, Action::NotifyAdmins { .. })
                && !matches!(a, Action::Post { purpose, .. } if *purpose == "notify_admins")
        });
    }
    let acted = !dry_run && outcome >= Severity::Delete;
    // Once on the blacklist, a member's later removals add nothing to it (a flooder's every
    // message would otherwise rewrite the same entry).
    let blacklist =
        acted && outcome == Severity::Remove && worst.kind != "blacklist" && !case.blacklisted;
    Some(Response {
        outcome,
        delete_copies: acted && worst.kind == "campaign",
        own_row: outcome == Severity::Warn || blacklist,
        worst,
        actions,
        notes,
        evidence: verdict
            .findings
            .iter()
            .map(|f| format!("{}: {}", f.check, f.evidence))
            .collect::<Vec<_>>()
            .join("; "),
        dry_run,
        acted,
        blacklist,
    })
}

/// What an outcome means, for the admins.
pub fn describe(outcome: Severity, verdict: &Verdict) -> String {
    match outcome {
        Severity::Log => "仅记录".into(),
        Severity::Notify => "提醒管理员".into(),
        Severity::Delete => "撤回".into(),
        Severity::Warn => format!(
            "撤回并警告（第 {}/{} 次）",
            verdict.warnings, verdict.settings.warn_limit
        ),
        Severity::Remove => "撤回并移出本群".into(),
    }
}

/// The notice to the admins, from the operator's template or the built-in wording; when the
/// template fails, the built-in wording and the problem.
fn notice_text(
    rules: &ModerationRules,
    templates: &Templates,
    vars: impl FnOnce() -> Value,
    worst: &Finding,
    outcome: Severity,
    verdict: &Verdict,
    sender: &Sender,
) -> Result<String, (String, String)> {
    let built_in = || {
        format!(
            "群管理：{}{}。规则：{}；依据：{}；处理：{}。",
            vars::name_and_id(&sender.name, &sender.user_id),
            worst.reason,
            worst.check,
            worst.evidence,
            describe(outcome, verdict)
        )
    };
    match &rules.admin_notice {
        None => Ok(built_in()),
        Some(message) => templates.render(&message.body, vars).map_err(|e| {
            (
                built_in(),
                format!("the moderation notice did not render: {e}"),
            )
        }),
    }
}

/// The finding for a blacklisted member's first message (or join) in a group: they were removed
/// from `chat` (named `group_name` when one is known) for `reason`.
pub fn blacklist_finding(reason: &str, chat: &ChatId, group_name: &str) -> Finding {
    // The group by its name where one is known: operators know their groups by name.
    let group = match group_name.trim() {
        "" => chat.to_string(),
        name => format!("「{name}」"),
    };
    Finding {
        check: "blacklist".into(),
        kind: "blacklist",
        severity: Severity::Remove,
        reason: "黑名单成员".into(),
        evidence: format!("曾因「{reason}」被移出群{group}"),
    }
}

/// `text` cut to `chars` characters, with an ellipsis when it was longer.
pub fn shorten(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    out
}

/// What the bot does about a verdict on a message from `sender` (whose platform id is
/// `message_id`, when the channel gave one and can delete it): nothing in dry-run; otherwise,
/// by the outcome, delete it, post the `warning`, remove the member, and tell the admins with
/// the `notice`. A removal carries the notice as its reason: whoever performs it tells the
/// admins how it went. `degrade` then turns what the channel cannot do into notices.
pub fn plan(
    verdict: &Verdict,
    sender: &Sender,
    message_id: Option<&str>,
    warning: Option<OutMessage>,
    notice: String,
) -> Vec<Action> {
    let Some(outcome) = verdict.outcome() else {
        return Vec::new();
    };
    if verdict.settings.dry_run || outcome == Severity::Log {
        return Vec::new();
    }
    let mut actions = Vec::new();
    if outcome >= Severity::Delete
        && let Some(id) = message_id
    {
        actions.push(Action::DeleteMessage {
            message_id: id.to_owned(),
        });
    }
    if outcome == Severity::Warn
        && let Some(message) = warning
    {
        actions.push(Action::Post {
            message,
            purpose: "moderation_warning",
        });
    }
    let tell = match outcome {
        Severity::Remove => {
            actions.push(Action::RemoveMember {
                user_id: sender.user_id.clone(),
                name: sender.name.clone(),
                reason: notice.clone(),
            });
            false
        }
        Severity::Notify => true,
        // A message the bot could not delete is left to the admins.
        _ => message_id.is_none() || verdict.settings.notify_admins == NotifyAdmins::Always,
    };
    if tell {
        actions.push(Action::NotifyAdmins { text: notice });
    }
    actions
}
