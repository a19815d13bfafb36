//! The loaded scripts: one consistent version of everything an operator wrote in
//! `bot-scripts/` — messages, keyword replies, commands, welcomes, moderation, red-envelope
//! tests, the health digest, jobs and report content — as the engine's own types.
//! [`crate::scripts`] reads the files into it; the engine decides with it.

use std::path::PathBuf;

use crate::engine::commands::CommandSet;
use crate::engine::content::Content;
use crate::engine::health::HealthScripts;
use crate::engine::jobs::Job;
use crate::engine::keywords::KeywordSet;
use crate::engine::message::Message;
use crate::engine::moderation::ModerationRules;
use crate::engine::red_envelope::rules::RedEnvelopeScripts;
use crate::engine::template::Templates;
use crate::engine::welcome::WelcomeScripts;

/// The loaded scripts: one consistent version of every file.
#[derive(Debug)]
pub struct Scripts {
    /// Every template of this version.
    pub templates: Templates,
    /// Posted when the bot is added to a group.
    pub adoption: Message,
    /// The answer to a help trigger.
    pub help: Message,
    /// Words that ask for help, compared after trimming, ignoring ASCII case.
    pub help_triggers: Vec<String>,
    /// The answer to an @-message nothing else handles; `None` stays silent.
    pub fallback: Option<Message>,
    /// The group rules (the rules command and the welcome's `group_rules`).
    pub rules: Option<Message>,
    /// Keyword replies.
    pub keywords: KeywordSet,
    /// In-chat commands.
    pub commands: CommandSet,
    /// Welcomes for new members.
    pub welcome: WelcomeScripts,
    /// Moderation checks and settings.
    pub moderation: ModerationRules,
    /// Red-envelope tests: defaults, verdict thresholds, claim words.
    pub red_envelope: RedEnvelopeScripts,
    /// The weekly health digest (`health.toml`).
    pub health: HealthScripts,
    /// Scheduled jobs.
    pub jobs: Vec<Job>,
    /// The weekly calendar and the content queue (`content/`).
    pub content: Content,
    /// Where they were loaded from (`None`: the embedded copy).
    pub source: Option<PathBuf>,
}

impl Scripts {
    /// Whether `text` (already stripped of the @-mention) asks for help.
    pub fn is_help(&self, text: &str) -> bool {
        let text = text.trim();
        self.help_triggers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(text))
    }

    /// Every message of this version.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        [Some(&self.adoption), Some(&self.help)]
            .into_iter()
            .chain([self.fallback.as_ref(), self.rules.as_ref()])
            .flatten()
            .chain(self.keywords.rules().iter().map(|r| &r.reply))
            .chain(self.commands.messages())
            .chain(self.welcome.templates.iter().map(|t| &t.message))
            .chain(self.moderation.warning.iter())
            .chain(self.moderation.admin_notice.iter())
            .chain(self.red_envelope.messages())
            .chain(self.health.digest.iter().map(|d| &d.message))
            .chain(self.jobs.iter().map(|j| &j.message))
    }
}
