//! What the bot would do with one message, in words: moderation's judgement, then the engine's
//! decision fitted to the channel, each action described as an operator reads it. `trumpet
//! simulate` and `POST /api/v1/simulate` both print this, from the same engine path the service
//! runs (recent activity — floods, repeats, campaigns, raids — and cooldowns are the running
//! service's and start empty here).

use chrono::{DateTime, Utc};

use super::moderation::{self, Activity, Content, Prepared, Standing};
use super::{GroupView, Scripts};
use crate::domain::{
    Action, Capabilities, Event, ModerationRequest, OutMessage, Reply, SettingsChange,
};

/// The lines describing what the bot would do with `event` in the group `view` shows, on a
/// channel that can do `caps`; `standing` is what moderation knows of the sender.
pub fn explain(
    event: &Event,
    view: &GroupView<'_>,
    scripts: &Scripts,
    standing: &Standing<'_>,
    caps: Capabilities,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut lines = Vec::new();
    if moderated(&mut lines, scripts, event, view, standing, caps, now) {
        lines.push(
            "decided nothing: moderation acts on the message, the bot does not answer it".into(),
        );
        return lines;
    }
    let decision = super::decide(event, view, scripts, now);
    lines.push(format!("decided {}", decision.by));
    for problem in &decision.problems {
        lines.push(format!("problem {problem}"));
    }
    let (actions, notes) = super::degrade(decision.actions, caps, view.settings);
    for note in notes {
        lines.push(format!("note    {note}"));
    }
    if actions.is_empty() {
        lines.push("actions none: the bot stays silent".into());
    }
    for action in &actions {
        describe(&mut lines, action);
    }
    lines
}

/// Moderation's judgement on the message, as lines; whether it would act on it (delete or more).
fn moderated(
    lines: &mut Vec<String>,
    scripts: &Scripts,
    event: &Event,
    view: &GroupView<'_>,
    standing: &Standing<'_>,
    caps: Capabilities,
    now: DateTime<Utc>,
) -> bool {
    let rules = &scripts.moderation;
    let Some(text) = super::heard_text(event) else {
        return false;
    };
    if rules.is_empty() {
        lines.push("moderation: no moderation.toml".into());
        return false;
    }
    let prepared = Prepared::new(&text, &rules.variants);
    let place = super::scope::Place {
        chat: event.chat_id(),
        settings: view.settings,
    };
    let content = Content {
        prepared: &prepared,
        parts: &["text"],
        qr_codes: &[],
    };
    let user = event.from.user_id.as_str();
    let verdict = moderation::judge(
        rules,
        place,
        &content,
        standing,
        &Activity::default(),
        user,
        now,
    );
    lines.push(format!(
        "checked {:?} ({}{})",
        prepared.canonical,
        if verdict.trusted {
            "trusted: only flood is checked"
        } else {
            "not trusted"
        },
        if verdict.probation {
            ", on probation"
        } else {
            ""
        }
    ));
    for f in &verdict.findings {
        lines.push(format!(
            "finding {} ({}): {} → {}",
            f.check,
            f.kind,
            f.evidence,
            f.severity.as_str()
        ));
    }
    let case = moderation::Case {
        verdict: &verdict,
        sender: &event.from,
        text: &text,
        message_id: event.message_id.as_deref(),
        caps,
        settings: view.settings,
        vars: &|| {
            super::vars::base(
                &event.from,
                standing.role,
                event.chat_id(),
                view.settings,
                now,
            )
        },
        window: moderation::NoticeWindow::Open { folded_before: 0 },
        blacklisted: false,
    };
    // The same response the service gives (notices within ten minutes of an earlier one about
    // the member are folded there; a simulation has no earlier ones).
    let Some(response) = moderation::respond(rules, &scripts.templates, case) else {
        lines.push("moderation clean".into());
        return false;
    };
    lines.push(format!(
        "moderation {} (warning {}/{}){}",
        response.outcome.as_str(),
        verdict.warnings,
        verdict.settings.warn_limit,
        if response.dry_run {
            ", dry run: nothing would be done"
        } else {
            ""
        }
    ));
    for note in &response.notes {
        lines.push(format!("note    {note}"));
    }
    for action in &response.actions {
        describe(lines, action);
    }
    if response.blacklist {
        lines.push("blacklist the member in every group".into());
    }
    response.acted
}

/// Indented lines of a message's text.
fn quoted(lines: &mut Vec<String>, text: &str) {
    for line in text.trim_end().lines() {
        lines.push(format!("        {line}"));
    }
}

/// `action` as an operator reads it.
fn describe(lines: &mut Vec<String>, action: &Action) {
    match action {
        Action::Reply(reply) => {
            let (kind, content, mentioned) = match reply {
                Reply::Text { content, mentioned } => ("text", content, mentioned.as_slice()),
                Reply::Markdown { content } => ("markdown", content, &[][..]),
            };
            let at = if mentioned.is_empty() {
                String::new()
            } else {
                format!(", @{}", mentioned.join(" @"))
            };
            lines.push(format!("reply   {kind}{at}"));
            quoted(lines, content);
        }
        Action::Post { message, purpose } => {
            lines.push(format!("post    to the group ({purpose})"));
            match message {
                OutMessage::Text { content, .. } | OutMessage::Markdown { content } => {
                    quoted(lines, content)
                }
                OutMessage::News { articles } => {
                    for article in articles {
                        lines.push(format!("        {} — {}", article.title, article.url));
                    }
                }
                OutMessage::Image { bytes } => {
                    lines.push(format!("        an image, {} bytes", bytes.len()))
                }
            }
        }
        Action::NotifyAdmins { text } => {
            lines.push("notify  the owner and admins".into());
            quoted(lines, text);
        }
        Action::RemoveMember {
            user_id,
            name,
            reason,
        } => {
            lines.push(format!(
                "remove  {} from the group: {reason}",
                super::vars::name_and_id(name, user_id)
            ));
        }
        Action::DeleteMessage { message_id } => {
            lines.push(format!("delete  message {message_id}"));
        }
        Action::Moderation(request) => lines.push(match request {
            ModerationRequest::Pardon { user_id } => {
                format!("pardon  {user_id}: off the blacklist, warnings cleared")
            }
            ModerationRequest::Approve { user_id, approved } => match approved {
                true => format!("trust   {user_id} in this group"),
                false => format!("untrust {user_id} in this group"),
            },
            ModerationRequest::Report { user_id, reason } => {
                format!("report  {user_id} to the moderation log and the operators: {reason}")
            }
            ModerationRequest::Appeal { reason } => {
                format!("appeal  to the moderation log and the admins: {reason}")
            }
        }),
        Action::StartEnvelopeTest(params) => lines.push(format!(
            "start   a red-envelope test ({} fen, {} shares, {} s)",
            params
                .total_fen
                .map_or_else(|| "default".to_owned(), |v| v.to_string()),
            params
                .shares
                .map_or_else(|| "default".to_owned(), |v| v.to_string()),
            params
                .window_secs
                .map_or_else(|| "default".to_owned(), |v| v.to_string()),
        )),
        Action::CancelEnvelopeTest => lines.push("cancel  the running red-envelope test".into()),
        Action::Settings(change) => lines.push(format!("setting {}", setting(change))),
        Action::StartCooldown { rule, secs } => {
            lines.push(format!("cooldown rule {rule} rests {secs} s in this group"))
        }
    }
}

/// A settings change in words.
fn setting(change: &SettingsChange) -> String {
    match change {
        SettingsChange::SetOwner { user_id, .. } => format!("owner is now {user_id}"),
        SettingsChange::SetRole { user_id, role, .. } => {
            format!("{user_id} is now {}", role.title())
        }
        SettingsChange::AddTags(tags) => format!("tags added: {}", tags.join(", ")),
        SettingsChange::RemoveTags(tags) => format!("tags removed: {}", tags.join(", ")),
        SettingsChange::ReplaceTags(tags) => format!("tags are now: {}", tags.join(", ")),
        SettingsChange::SwitchRule { rule, enabled } => {
            format!("rule {rule} {}", if *enabled { "on" } else { "off" })
        }
        SettingsChange::SetName(name) => format!("group name is now {name}"),
        SettingsChange::SetTimezone(zone) => match zone {
            Some(zone) => format!("time zone is now {zone}"),
            None => "time zone: each job's own".into(),
        },
    }
}
