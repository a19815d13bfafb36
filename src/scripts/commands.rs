//! `bot-scripts/commands.toml`: the in-chat commands — which words trigger each command, the
//! lowest role that may use it, its answers — and the operators, who are owners in every group.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Format, RawMessage, ScriptError, Source, words};
use crate::domain::Role;
use crate::engine::commands::{Command, CommandKind, CommandReplies, CommandSet};
use crate::engine::template::Templates;

/// The commands file inside the scripts directory (optional: no file, no commands).
pub const COMMANDS_FILE: &str = "commands.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplies {
    refused: RawMessage,
    missing_argument: RawMessage,
    unknown_member: RawMessage,
    bad_tag: RawMessage,
    unknown_rule: RawMessage,
    failed: RawMessage,
    /// Added after the others: a file without it takes the shipped one.
    #[serde(default)]
    protected_member: Option<RawMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    triggers: Vec<String>,
    role: toml::Spanned<String>,
    format: Format,
    content: toml::Spanned<String>,
    #[serde(default)]
    mention_sender: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandsFile {
    #[serde(default)]
    operators: Vec<String>,
    replies: RawReplies,
    #[serde(default)]
    command: BTreeMap<String, toml::Spanned<RawCommand>>,
}

/// The shipped file's `[replies.protected_member]`, for a file written before it existed.
fn shipped_protected_member(templates: &mut Templates) -> Result<super::Message, ScriptError> {
    let file = std::path::PathBuf::from(format!("<embedded>/{COMMANDS_FILE}"));
    let shipped = Source::new(super::EMBEDDED_COMMANDS, &file);
    let parsed: CommandsFile = toml::from_str(shipped.text).map_err(|e| shipped.toml_error(&e))?;
    let raw = parsed
        .replies
        .protected_member
        .ok_or_else(|| shipped.error(0, "[replies.protected_member] is missing"))?;
    shipped.message(templates, "replies.protected_member", &raw)
}

/// Parses a commands file, adding its templates to `templates`.
pub(crate) fn parse(
    src: &Source<'_>,
    templates: &mut Templates,
) -> Result<CommandSet, ScriptError> {
    let parsed: CommandsFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
    let r = &parsed.replies;
    let replies = CommandReplies {
        refused: src.message(templates, "replies.refused", &r.refused)?,
        missing_argument: src.message(
            templates,
            "replies.missing_argument",
            &r.missing_argument,
        )?,
        unknown_member: src.message(templates, "replies.unknown_member", &r.unknown_member)?,
        bad_tag: src.message(templates, "replies.bad_tag", &r.bad_tag)?,
        unknown_rule: src.message(templates, "replies.unknown_rule", &r.unknown_rule)?,
        failed: src.message(templates, "replies.failed", &r.failed)?,
        protected_member: match &r.protected_member {
            Some(own) => src.message(templates, "replies.protected_member", own)?,
            None => shipped_protected_member(templates)?,
        },
    };
    let mut commands = Vec::new();
    let mut seen_triggers: BTreeMap<String, String> = BTreeMap::new();
    for (key, spanned) in &parsed.command {
        let start = spanned.span().start;
        let raw = spanned.get_ref();
        let kind = CommandKind::ALL
            .into_iter()
            .find(|k| k.key() == key)
            .ok_or_else(|| {
                let known: Vec<_> = CommandKind::ALL.iter().map(|k| k.key()).collect();
                src.error(
                    start,
                    format!(
                        "[command.{key}] is not a command; known: {}",
                        known.join(", ")
                    ),
                )
            })?;
        let role = Role::parse(raw.role.get_ref()).ok_or_else(|| {
            src.error(
                raw.role.span().start,
                format!(
                    "[command.{key}] role {:?} must be member, helper, admin or owner",
                    raw.role.get_ref()
                ),
            )
        })?;
        let triggers = words(&raw.triggers);
        if triggers.is_empty() {
            return Err(src.error(start, format!("[command.{key}] triggers must list a word")));
        }
        for trigger in &triggers {
            if trigger.chars().any(char::is_whitespace) {
                return Err(src.error(
                    start,
                    format!("[command.{key}] trigger {trigger:?} must not contain spaces"),
                ));
            }
            if let Some(other) = seen_triggers.insert(trigger.clone(), key.clone()) {
                return Err(src.error(
                    start,
                    format!(
                        "[command.{key}] trigger {trigger:?} is also used by [command.{other}]"
                    ),
                ));
            }
        }
        let reply = src.message(
            templates,
            &format!("command.{key}"),
            &RawMessage {
                format: raw.format,
                content: raw.content.clone(),
                mention_sender: raw.mention_sender,
            },
        )?;
        commands.push(Command {
            kind,
            triggers,
            role,
            reply,
        });
    }
    let operators = words(&parsed.operators);
    Ok(CommandSet::new(commands, operators, replies))
}
