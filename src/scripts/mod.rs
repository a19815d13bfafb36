//! Loading the operator's `bot-scripts/` into the engine's types ([`crate::engine::Scripts`]):
//! reading and checking each file — the built-in messages in `messages.toml`, keyword replies,
//! commands, welcomes, moderation, red-envelope tests, the digest, jobs, report content — and
//! hot-reloading them ([`live`]). What the rules mean is the engine's; this module only parses.
//!
//! A broken file is reported with `file:line:column` and the reason. When the directory does
//! not exist the copy embedded at build time is used, so the service runs out of the box.

pub mod commands;
pub mod content;
pub mod edit;
pub mod feeds;
pub mod health;
pub mod keywords;
pub mod live;
pub mod moderation;
pub mod red_envelope;
pub mod schedules;
pub mod welcome;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::Scripts;
use crate::engine::commands::CommandSet;
use crate::engine::keywords::KeywordSet;
use crate::engine::message::{Format, Message};
use crate::engine::template::{Template, Templates};
use crate::engine::welcome::WelcomeScripts;

/// The messages file inside the scripts directory.
pub const MESSAGES_FILE: &str = "messages.toml";

/// The shipped `bot-scripts/messages.toml`, used when the directory is missing.
pub const EMBEDDED_MESSAGES: &str = include_str!("defaults/messages.toml");

/// The shipped `bot-scripts/keywords.toml`, used when the directory is missing.
pub const EMBEDDED_KEYWORDS: &str = include_str!("defaults/keywords.toml");

/// The shipped `bot-scripts/commands.toml`, used when the directory is missing.
pub const EMBEDDED_COMMANDS: &str = include_str!("defaults/commands.toml");

/// The shipped `bot-scripts/schedules.toml`, used when the directory is missing.
pub const EMBEDDED_SCHEDULES: &str = include_str!("defaults/schedules.toml");

/// The shipped `bot-scripts/welcome.toml`, used when the directory is missing.
pub const EMBEDDED_WELCOME: &str = include_str!("defaults/welcome.toml");
/// The shipped `bot-scripts/health.toml`, used when the directory is missing.
pub const EMBEDDED_HEALTH: &str = include_str!("defaults/health.toml");
/// The shipped `bot-scripts/red_envelope.toml`, used when the directory is missing.
pub const EMBEDDED_RED_ENVELOPE: &str = include_str!("defaults/red_envelope.toml");
/// The shipped `bot-scripts/moderation.toml`, used when the directory is missing.
pub const EMBEDDED_MODERATION: &str = include_str!("defaults/moderation.toml");
/// The built-in copy of `bot-scripts/content/calendar.toml`.
pub const EMBEDDED_CALENDAR: &str = include_str!("defaults/content/calendar.toml");
/// The built-in copy of `bot-scripts/content/queue.toml`.
pub const EMBEDDED_QUEUE: &str = include_str!("defaults/content/queue.toml");
pub const EMBEDDED_FEEDS: &str = include_str!("defaults/content/feeds.toml");

/// A bot-scripts file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct ScriptError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// A message as written in a file (`content` keeps its position for template errors).
///
/// Files whose entries carry a message among other keys (keyword rules, commands, welcomes, jobs)
/// repeat these three fields rather than `#[serde(flatten)]` this struct: serde cannot combine
/// `flatten` with `deny_unknown_fields` (a misspelt key must be an error), and flattening buffers
/// the values, which loses the span of `content` that template errors point at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMessage {
    pub format: Format,
    pub content: toml::Spanned<String>,
    #[serde(default)]
    pub mention_sender: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HelpSection {
    // Spelled out rather than `#[serde(flatten)]`: flattening loses the line of a bad value.
    format: Format,
    content: toml::Spanned<String>,
    #[serde(default)]
    mention_sender: bool,
    triggers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesFile {
    adoption: RawMessage,
    help: HelpSection,
    #[serde(default)]
    fallback: Option<RawMessage>,
    #[serde(default)]
    rules: Option<RawMessage>,
}

/// One file being read: its text and name, for errors that point into it.
pub(crate) struct Source<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    /// Byte offsets of line starts, built on first use (every template's name carries its
    /// line; counting from the top for each of 10,000 rules would be quadratic).
    line_starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str, file: &'a Path) -> Self {
        Self {
            text,
            file,
            line_starts: std::cell::OnceCell::new(),
        }
    }

    /// The 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        starts.partition_point(|&start| start <= offset)
    }

    /// An error at byte `offset`.
    pub fn error(&self, offset: usize, reason: impl Into<String>) -> ScriptError {
        let (line, column) = line_col(self.text, offset);
        ScriptError {
            file: self.file.to_owned(),
            line,
            column,
            reason: reason.into(),
        }
    }

    /// A TOML parse error.
    pub fn toml_error(&self, e: &toml::de::Error) -> ScriptError {
        self.error(
            e.span().map(|s| s.start).unwrap_or(0),
            e.message().trim_end(),
        )
    }

    /// Compiles the template in `content` under `name`; errors point at the template's line in
    /// the file.
    pub fn template(
        &self,
        templates: &mut Templates,
        name: &str,
        content: &toml::Spanned<String>,
    ) -> Result<Template, ScriptError> {
        let start = content.span().start;
        if content.get_ref().trim().is_empty() {
            return Err(self.error(start, format!("{name}: content must not be empty")));
        }
        // `"""` followed by a newline: the template starts on the next line.
        let rest = &self.text[start.min(self.text.len())..];
        let skipped = ["\"\"\"\n", "'''\n", "\"\"\"\r\n", "'''\r\n"]
            .iter()
            .any(|p| rest.starts_with(p));
        let first_line = self.line_of(start) + usize::from(skipped);
        // The name says where the template is, so that a render error names file:line too.
        let full_name = format!("{}:{first_line}: {name}", self.file.display());
        let mut template = templates
            .compile(&full_name, content.get_ref())
            .map_err(|e| {
                let line = first_line + e.line.saturating_sub(1);
                ScriptError {
                    file: self.file.to_owned(),
                    line,
                    column: 1,
                    reason: format!("{name}: template error: {}", e.reason),
                }
            })?;
        template.set_origin(self.file, first_line);
        Ok(template)
    }

    /// Compiles a whole message.
    pub fn message(
        &self,
        templates: &mut Templates,
        name: &str,
        raw: &RawMessage,
    ) -> Result<Message, ScriptError> {
        Ok(Message {
            format: raw.format,
            body: self.template(templates, name, &raw.content)?,
            mention_sender: raw.mention_sender,
        })
    }
}

/// The files of one version: (path, text).
struct Files {
    messages: (PathBuf, String),
    keywords: Option<(PathBuf, String)>,
    commands: Option<(PathBuf, String)>,
    welcome: Option<(PathBuf, String)>,
    moderation: Option<(PathBuf, String)>,
    red_envelope: Option<(PathBuf, String)>,
    health: Option<(PathBuf, String)>,
    schedules: Option<(PathBuf, String)>,
    calendar: Option<(PathBuf, String)>,
    queue: Option<(PathBuf, String)>,
    feeds: Option<(PathBuf, String)>,
}

/// A file of a version, by its name in [`DEFAULT_FILES`]: its path and text, or `None` when an
/// optional file is absent.
type FileSource = Result<Option<(PathBuf, String)>, ScriptError>;

impl Files {
    /// Each file as `read` gives it, by name; `messages.toml` must be there.
    fn from_each(read: impl Fn(&str) -> FileSource) -> Result<Files, ScriptError> {
        let content = |name: &str| read(&format!("{}/{name}", content::CONTENT_DIR));
        let messages = read(MESSAGES_FILE)?.ok_or_else(|| ScriptError {
            file: PathBuf::from(MESSAGES_FILE),
            line: 0,
            column: 0,
            reason: "missing: every scripts folder needs messages.toml".into(),
        })?;
        Ok(Files {
            messages,
            keywords: read(keywords::KEYWORDS_FILE)?,
            commands: read(commands::COMMANDS_FILE)?,
            welcome: read(welcome::WELCOME_FILE)?,
            moderation: read(moderation::MODERATION_FILE)?,
            red_envelope: read(red_envelope::RED_ENVELOPE_FILE)?,
            health: read(health::HEALTH_FILE)?,
            schedules: read(schedules::SCHEDULES_FILE)?,
            calendar: content(content::CALENDAR_FILE)?,
            queue: content(content::QUEUE_FILE)?,
            feeds: content(feeds::FEEDS_FILE)?,
        })
    }
}

impl Scripts {
    /// Loads every file of `dir` (`messages.toml` required, the others optional), or the
    /// embedded copies when `dir` holds no scripts (no `messages.toml`: the directory does not
    /// exist, or `trumpet init` has not written the defaults there yet).
    pub fn load(dir: &Path) -> Result<Scripts, ScriptError> {
        Self::load_with(dir, None)
    }

    /// [`Scripts::load`] with one file's text given in place of what the directory holds
    /// (`(name, text)`, `name` as in [`DEFAULT_FILES`]): how an edit is checked before it is
    /// written. A directory that holds no scripts yet gives the built-in copies of the others.
    pub fn load_with(dir: &Path, replaced: Option<(&str, &str)>) -> Result<Scripts, ScriptError> {
        if !holds_scripts(dir) {
            // Script files without `messages.toml` are an operator's folder missing its one
            // required file, not an empty one: running the built-in copy would ignore them.
            if let Some((name, _)) = DEFAULT_FILES
                .iter()
                .find(|(name, _)| dir.join(name).exists())
            {
                return Err(ScriptError {
                    file: dir.join(MESSAGES_FILE),
                    line: 0,
                    column: 0,
                    reason: format!(
                        "missing, though {name} is there: every scripts folder needs messages.toml (`trumpet init` writes the files it lacks)"
                    ),
                });
            }
            let Some((name, text)) = replaced else {
                return Self::embedded();
            };
            let at = |file: &str, embedded: &str| {
                let text = if file == name { text } else { embedded };
                (dir.join(file), text.to_owned())
            };
            let mut scripts = Self::from_files(&Files::from_each(|file| {
                let embedded = DEFAULT_FILES.iter().find(|(f, _)| *f == file);
                Ok(embedded.map(|(f, t)| at(f, t)))
            })?)?;
            scripts.source = Some(dir.to_owned());
            return Ok(scripts);
        }
        let read = |name: &str| -> Result<Option<(PathBuf, String)>, ScriptError> {
            let file = dir.join(name);
            if let Some((_, text)) = replaced.filter(|(replaced, _)| *replaced == name) {
                return Ok(Some((file, text.to_owned())));
            }
            if name != MESSAGES_FILE && !file.exists() {
                return Ok(None);
            }
            std::fs::read_to_string(&file)
                .map(|text| Some((file.clone(), text)))
                .map_err(|e| ScriptError {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    reason: format!("cannot read: {e}"),
                })
        };
        let mut scripts = Self::from_files(&Files::from_each(read)?)?;
        scripts.source = Some(dir.to_owned());
        Ok(scripts)
    }
    /// The copies built into the binary.
    pub fn embedded() -> Result<Scripts, ScriptError> {
        let at =
            |name: &str, text: &str| (PathBuf::from(format!("<embedded>/{name}")), text.to_owned());
        Self::from_files(&Files {
            messages: at(MESSAGES_FILE, EMBEDDED_MESSAGES),
            keywords: Some(at(keywords::KEYWORDS_FILE, EMBEDDED_KEYWORDS)),
            commands: Some(at(commands::COMMANDS_FILE, EMBEDDED_COMMANDS)),
            welcome: Some(at(welcome::WELCOME_FILE, EMBEDDED_WELCOME)),
            moderation: Some(at(moderation::MODERATION_FILE, EMBEDDED_MODERATION)),
            red_envelope: Some(at(red_envelope::RED_ENVELOPE_FILE, EMBEDDED_RED_ENVELOPE)),
            health: Some(at(health::HEALTH_FILE, EMBEDDED_HEALTH)),
            schedules: Some(at(schedules::SCHEDULES_FILE, EMBEDDED_SCHEDULES)),
            calendar: Some(at("content/calendar.toml", EMBEDDED_CALENDAR)),
            queue: Some(at("content/queue.toml", EMBEDDED_QUEUE)),
            feeds: Some(at("content/feeds.toml", EMBEDDED_FEEDS)),
        })
    }

    fn from_files(files: &Files) -> Result<Scripts, ScriptError> {
        let mut templates = Templates::new();
        let (file, text) = &files.messages;
        let mut scripts = Self::parse_messages(&Source::new(text, file), &mut templates)?;
        if let Some((file, text)) = &files.keywords {
            scripts.keywords = keywords::parse(&Source::new(text, file), &mut templates)?;
        }
        if let Some((file, text)) = &files.commands {
            let src = Source::new(text, file);
            scripts.commands = commands::parse(&src, &mut templates)?;
            // A command word that is also a help word would never run.
            if let Some(word) = scripts
                .help_triggers
                .iter()
                .find(|h| scripts.commands.recognise(h).is_some())
            {
                return Err(src.error(
                    0,
                    format!("the help word {word:?} (messages.toml) starts a command here"),
                ));
            }
        }
        if let Some((file, text)) = &files.welcome {
            scripts.welcome = welcome::parse(&Source::new(text, file), &mut templates)?;
        }
        if let Some((file, text)) = &files.moderation {
            scripts.moderation = moderation::parse(&Source::new(text, file), &mut templates)?;
        }
        // Without a file of its own a directory gets the shipped one: tests started through the
        // API or a command need the envelope's messages.
        let shipped_red_envelope = (
            PathBuf::from(format!("<embedded>/{}", red_envelope::RED_ENVELOPE_FILE)),
            EMBEDDED_RED_ENVELOPE.to_owned(),
        );
        let (file, text) = files.red_envelope.as_ref().unwrap_or(&shipped_red_envelope);
        scripts.red_envelope = red_envelope::parse(&Source::new(text, file), &mut templates)?;
        if let Some((file, text)) = &files.health {
            scripts.health = health::parse(&Source::new(text, file), &mut templates)?;
        }
        if let Some((file, text)) = &files.schedules {
            scripts.jobs = schedules::parse(&Source::new(text, file), &mut templates)?;
        }
        if let Some((file, text)) = &files.calendar {
            scripts.content.columns = content::parse_calendar(&Source::new(text, file))?;
        }
        if let Some((file, text)) = &files.queue {
            scripts.content.items = content::parse_queue(&Source::new(text, file))?;
        }
        if let Some((file, text)) = &files.feeds {
            scripts.content.feeds = feeds::parse_feeds(&Source::new(text, file))?;
        }
        scripts.templates = templates;
        scripts.validate_templates(chrono::Utc::now())?;
        Ok(scripts)
    }

    /// Parses and validates a messages file alone (no keyword replies or commands); `file`
    /// names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Scripts, ScriptError> {
        let mut templates = Templates::new();
        let mut scripts = Self::parse_messages(&Source::new(text, file), &mut templates)?;
        scripts.templates = templates;
        Ok(scripts)
    }

    fn parse_messages(src: &Source<'_>, templates: &mut Templates) -> Result<Scripts, ScriptError> {
        let parsed: MessagesFile = toml::from_str(src.text).map_err(|e| src.toml_error(&e))?;
        let help = RawMessage {
            format: parsed.help.format,
            content: parsed.help.content.clone(),
            mention_sender: parsed.help.mention_sender,
        };
        let triggers = words(&parsed.help.triggers);
        if triggers.is_empty() {
            return Err(src.error(
                src.text.find("[help]").unwrap_or(0),
                "[help] triggers must list at least one word",
            ));
        }
        let mut optional = |name: &str, raw: &Option<RawMessage>| {
            raw.as_ref()
                .map(|r| src.message(templates, name, r))
                .transpose()
        };
        let fallback = optional("fallback", &parsed.fallback)?;
        let rules = optional("rules", &parsed.rules)?;
        Ok(Scripts {
            adoption: src.message(templates, "adoption", &parsed.adoption)?,
            help: src.message(templates, "help", &help)?,
            help_triggers: triggers,
            fallback,
            rules,
            keywords: KeywordSet::default(),
            commands: CommandSet::default(),
            welcome: WelcomeScripts::default(),
            moderation: Default::default(),
            red_envelope: Default::default(),
            health: Default::default(),
            jobs: Vec::new(),
            content: crate::engine::content::Content::default(),
            templates: Templates::new(),
            source: None,
        })
    }

    /// Renders every template with variables against sample data, so that a misspelt
    /// variable, a filter on the wrong type or a runaway loop refuses the whole version (at
    /// load, reload and `trumpet check`) instead of failing when members are waiting.
    pub fn validate_templates(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ScriptError> {
        // Jobs see the declared feeds: a template naming an undeclared one is a mistake.
        let feeds: std::collections::BTreeMap<&str, crate::engine::vars::FeedView> = self
            .content
            .feeds
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    crate::engine::vars::FeedView::sample(&f.name),
                )
            })
            .collect();
        let vars = minijinja::context! { feeds => feeds, ..crate::engine::vars::sample(now) };
        for message in self.messages().filter(|m| !m.body.is_literal()) {
            if let Err(e) = self.templates.render(&message.body, || vars.clone()) {
                let (file, line) = message
                    .body
                    .origin()
                    .map(|(f, l)| (f.to_owned(), l + e.line.unwrap_or(1) - 1))
                    .unwrap_or_default();
                return Err(ScriptError {
                    file,
                    line,
                    column: 1,
                    reason: format!(
                        "{}: {}",
                        e.name
                            .split_once(": ")
                            .map_or(e.name.as_str(), |(_, entry)| entry),
                        e.reason
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Whether `dir` holds bot-scripts (its `messages.toml`); otherwise the built-in copy applies.
pub fn holds_scripts(dir: &Path) -> bool {
    dir.join(MESSAGES_FILE).exists()
}

/// Every shipped file, by its path inside a scripts directory: what the binary embeds and what
/// `trumpet init` writes.
pub const DEFAULT_FILES: &[(&str, &str)] = &[
    ("messages.toml", EMBEDDED_MESSAGES),
    ("keywords.toml", EMBEDDED_KEYWORDS),
    ("commands.toml", EMBEDDED_COMMANDS),
    ("welcome.toml", EMBEDDED_WELCOME),
    ("moderation.toml", EMBEDDED_MODERATION),
    ("red_envelope.toml", EMBEDDED_RED_ENVELOPE),
    ("health.toml", EMBEDDED_HEALTH),
    ("schedules.toml", EMBEDDED_SCHEDULES),
    ("content/calendar.toml", EMBEDDED_CALENDAR),
    ("content/queue.toml", EMBEDDED_QUEUE),
    ("content/feeds.toml", EMBEDDED_FEEDS),
];

/// What `trumpet init` did: the files it wrote, and those it kept because they were there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InitReport {
    pub written: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

/// Writes the shipped bot-scripts into `dir` for an operator to edit. A file already there is
/// the operator's and is never overwritten (an upgrade adds only files new to it).
pub fn write_defaults(dir: &Path) -> std::io::Result<InitReport> {
    let mut report = InitReport::default();
    for (name, text) in DEFAULT_FILES {
        let file = dir.join(name);
        if file.exists() {
            report.kept.push(file);
            continue;
        }
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // `create_new`: a file that appeared since the check is still not overwritten.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
        {
            Ok(mut out) => {
                std::io::Write::write_all(&mut out, text.as_bytes())?;
                report.written.push(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => report.kept.push(file),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// An id operators choose (a rule id, a job name): 1–64 ASCII letters, digits, `-` or `_`, so
/// that it is safe in URLs, logs and commands.
pub(crate) fn check_identifier(what: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} must be 1 to 64 ASCII letters, digits, '-' or '_'"
        ))
    }
}

/// Words from a list operators wrote: trimmed, blanks left out.
pub(crate) fn words(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .collect()
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
mod tests;
