//! Loading the operator's `bot-scripts/`: the built-in messages (the adoption greeting, help,
//! and the answer to @-messages nothing else handles) in `messages.toml`, and the keyword
//! replies in `keywords.toml` ([`keywords`]).
//!
//! A broken file is reported with `file:line:column` and the reason. When the directory does
//! not exist the copy embedded at build time is used, so the service runs out of the box.

pub mod keywords;
pub mod live;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{OutMessage, Reply};
use crate::engine::keywords::KeywordSet;

/// The messages file inside the scripts directory.
pub const MESSAGES_FILE: &str = "messages.toml";

/// The shipped `bot-scripts/messages.toml`, used when the directory is missing.
pub const EMBEDDED_MESSAGES: &str = include_str!("../../bot-scripts/messages.toml");

/// The shipped `bot-scripts/keywords.toml`, used when the directory is missing.
pub const EMBEDDED_KEYWORDS: &str = include_str!("../../bot-scripts/keywords.toml");

/// A bot-scripts file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct ScriptError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// How a message is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Text,
    Markdown,
}

/// One message an operator wrote.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub format: Format,
    pub content: String,
    /// For text messages: @-mention the member the bot answers.
    #[serde(default)]
    pub mention_sender: bool,
}

impl Message {
    /// This message as a passive reply to `user_id`.
    pub fn reply_to(&self, user_id: &str) -> Reply {
        match self.format {
            Format::Text => Reply::Text {
                content: self.content.clone(),
                mentioned: if self.mention_sender && !user_id.is_empty() {
                    vec![user_id.to_owned()]
                } else {
                    Vec::new()
                },
            },
            Format::Markdown => Reply::Markdown {
                content: self.content.clone(),
            },
        }
    }

    /// This message as a push.
    pub fn push(&self, mention: Option<&str>) -> OutMessage {
        match self.format {
            Format::Text => OutMessage::Text {
                content: self.content.clone(),
                mentioned: mention
                    .filter(|_| self.mention_sender)
                    .map(|u| vec![u.to_owned()])
                    .unwrap_or_default(),
                mentioned_mobiles: Vec::new(),
            },
            Format::Markdown => OutMessage::Markdown {
                content: self.content.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct HelpSection {
    // Spelled out rather than `#[serde(flatten)]`: flattening loses the line of a bad value.
    format: Format,
    content: String,
    #[serde(default)]
    mention_sender: bool,
    triggers: Vec<String>,
}

impl HelpSection {
    fn message(&self) -> Message {
        Message {
            format: self.format,
            content: self.content.clone(),
            mention_sender: self.mention_sender,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesFile {
    adoption: Message,
    help: HelpSection,
    #[serde(default)]
    fallback: Option<Message>,
}

/// The loaded scripts.
#[derive(Debug)]
pub struct Scripts {
    /// Posted when the bot is added to a group.
    pub adoption: Message,
    /// The answer to a help trigger.
    pub help: Message,
    /// Words that ask for help, compared after trimming, ignoring ASCII case.
    pub help_triggers: Vec<String>,
    /// The answer to an @-message nothing else handles; `None` stays silent.
    pub fallback: Option<Message>,
    /// Keyword replies.
    pub keywords: KeywordSet,
    /// Where they were loaded from (`None`: the embedded copy).
    pub source: Option<PathBuf>,
}

impl Scripts {
    /// Loads `dir/messages.toml` and `dir/keywords.toml` (optional), or the embedded copies
    /// when `dir` does not exist.
    pub fn load(dir: &Path) -> Result<Scripts, ScriptError> {
        if !dir.exists() {
            return Self::embedded();
        }
        let read = |file: &Path| {
            std::fs::read_to_string(file).map_err(|e| ScriptError {
                file: file.to_owned(),
                line: 0,
                column: 0,
                reason: format!("cannot read: {e}"),
            })
        };
        let messages_file = dir.join(MESSAGES_FILE);
        let mut scripts = Self::parse(&read(&messages_file)?, &messages_file)?;
        let keywords_file = dir.join(keywords::KEYWORDS_FILE);
        if keywords_file.exists() {
            scripts.keywords = keywords::parse(&read(&keywords_file)?, &keywords_file)?;
        }
        scripts.source = Some(dir.to_owned());
        Ok(scripts)
    }

    /// The copies built into the binary.
    pub fn embedded() -> Result<Scripts, ScriptError> {
        let mut scripts = Self::parse(EMBEDDED_MESSAGES, Path::new("<embedded>/messages.toml"))?;
        scripts.keywords =
            keywords::parse(EMBEDDED_KEYWORDS, Path::new("<embedded>/keywords.toml"))?;
        Ok(scripts)
    }

    /// Parses and validates a messages file (with no keyword replies); `file` names it in
    /// errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scripts, ScriptError> {
        let at = |offset: Option<usize>, reason: String| {
            let (line, column) = offset.map(|o| line_col(text, o)).unwrap_or((1, 1));
            ScriptError {
                file: file.to_owned(),
                line,
                column,
                reason,
            }
        };
        let parsed: MessagesFile = toml::from_str(text)
            .map_err(|e| at(e.span().map(|s| s.start), e.message().trim_end().to_owned()))?;
        let section_offset = |name: &str| text.find(&format!("[{name}]"));
        for (name, message) in [
            ("adoption", Some(&parsed.adoption)),
            ("help", Some(&parsed.help.message())),
            ("fallback", parsed.fallback.as_ref()),
        ] {
            if let Some(m) = message
                && m.content.trim().is_empty()
            {
                return Err(at(
                    section_offset(name),
                    format!("[{name}] content must not be empty"),
                ));
            }
        }
        let triggers: Vec<String> = parsed
            .help
            .triggers
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if triggers.is_empty() {
            return Err(at(
                section_offset("help"),
                "[help] triggers must list at least one word".into(),
            ));
        }
        Ok(Scripts {
            adoption: parsed.adoption,
            help: parsed.help.message(),
            help_triggers: triggers,
            fallback: parsed.fallback,
            keywords: KeywordSet::default(),
            source: None,
        })
    }

    /// Whether `text` (already stripped of the @-mention) asks for help.
    pub fn is_help(&self, text: &str) -> bool {
        let text = text.trim();
        self.help_triggers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(text))
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scripts_load() {
        let s = Scripts::parse(EMBEDDED_MESSAGES, Path::new("messages.toml")).unwrap();
        assert!(s.is_help("帮助"));
        assert!(s.is_help(" HELP "));
        assert!(!s.is_help("帮助我"));
        assert!(s.fallback.is_some());
    }

    #[test]
    fn the_repository_copy_is_the_embedded_copy() {
        let on_disk = Scripts::load(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("bot-scripts")
                .as_path(),
        )
        .unwrap();
        let embedded = Scripts::embedded().unwrap();
        assert_eq!(on_disk.adoption, embedded.adoption);
        assert_eq!(on_disk.keywords.rules(), embedded.keywords.rules());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let text = "[adoption]\nformat = \"text\"\ncontent = \"hi\"\n\n[help]\nformat = \"txt\"\ncontent = \"x\"\ntriggers = [\"帮助\"]\n";
        let err = Scripts::parse(text, Path::new("bot-scripts/messages.toml")).unwrap_err();
        assert_eq!(err.line, 6, "{err}");
        assert!(
            err.to_string().starts_with("bot-scripts/messages.toml:6:"),
            "{err}"
        );
        assert!(err.reason.contains("txt"), "{err}");
    }

    #[test]
    fn empty_content_and_missing_triggers_are_refused() {
        let text = "[adoption]\nformat = \"text\"\ncontent = \"  \"\n[help]\nformat = \"text\"\ncontent = \"x\"\ntriggers = [\"a\"]\n";
        let err = Scripts::parse(text, Path::new("m.toml")).unwrap_err();
        assert_eq!(
            (err.line, err.reason.contains("adoption")),
            (1, true),
            "{err}"
        );
        let text = "[adoption]\nformat = \"text\"\ncontent = \"x\"\n[help]\nformat = \"text\"\ncontent = \"x\"\ntriggers = [\" \"]\n";
        let err = Scripts::parse(text, Path::new("m.toml")).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
    }
}
