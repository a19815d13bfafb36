//! A message an operator wrote: its format (text or markdown), its body as a compiled
//! template, and whether it @-mentions the member answered. Rendering it gives the reply or push
//! the channel sends.

use minijinja::Value;
use serde::Deserialize;

use crate::domain::{OutMessage, Reply};
use crate::engine::template::{RenderError, Template, Templates};

/// How a message is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Text,
    Markdown,
}

/// One message an operator wrote; its body is a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub format: Format,
    pub body: Template,
    /// For text messages: @-mention the member the bot answers.
    pub mention_sender: bool,
}

impl Message {
    /// A message without template variables (tests, built-in texts).
    pub fn literal(format: Format, content: &str, mention_sender: bool) -> Self {
        Self {
            format,
            body: Template::literal(content),
            mention_sender,
        }
    }

    /// This message as a passive reply to `user_id`.
    pub fn reply(
        &self,
        templates: &Templates,
        vars: impl FnOnce() -> Value,
        user_id: &str,
    ) -> Result<Reply, RenderError> {
        let content = templates.render(&self.body, vars)?;
        Ok(match self.format {
            Format::Text => Reply::Text {
                content,
                mentioned: if self.mention_sender && !user_id.is_empty() {
                    vec![user_id.to_owned()]
                } else {
                    Vec::new()
                },
            },
            Format::Markdown => Reply::Markdown { content },
        })
    }

    /// This message as a push; `mention` is @-mentioned when the message mentions the sender
    /// (text only: markdown mentions are written in the template as `<@userid>`).
    pub fn push(
        &self,
        templates: &Templates,
        vars: impl FnOnce() -> Value,
        mention: &[String],
    ) -> Result<OutMessage, RenderError> {
        let content = templates.render(&self.body, vars)?;
        Ok(match self.format {
            Format::Text => OutMessage::Text {
                content,
                mentioned: if self.mention_sender {
                    mention.to_vec()
                } else {
                    Vec::new()
                },
                mentioned_mobiles: Vec::new(),
            },
            Format::Markdown => OutMessage::Markdown { content },
        })
    }
}
