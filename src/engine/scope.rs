//! Scopes: where a rule or setting applies — everywhere, in groups with a tag, or in one group
//! (by chat id, never by name). When several versions of a rule apply to a group, the most
//! specific one wins: group, then tag, then global.

use std::fmt;

use crate::domain::{ChatId, GroupSettings};

/// Where something applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    #[default]
    Global,
    /// Groups carrying this tag (`province:广东`, `type:新手群`).
    Tag(String),
    /// One group.
    Group(ChatId),
}

/// The group a decision is made for.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// `None` in a one-to-one chat.
    pub chat: Option<&'a ChatId>,
    pub settings: &'a GroupSettings,
}

impl Scope {
    /// Parses `global`, `tag:<tag>` or `group:<chat id>`.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let text = text.trim();
        if text == "global" {
            return Ok(Scope::Global);
        }
        if let Some(tag) = text.strip_prefix("tag:") {
            return validate_tag(tag).map(Scope::Tag);
        }
        if let Some(chat) = text.strip_prefix("group:")
            && !chat.trim().is_empty()
            && !chat.chars().any(char::is_whitespace)
        {
            return Ok(Scope::Group(ChatId::new(chat)));
        }
        Err(format!(
            "scope {text:?} must be \"global\", \"tag:<tag>\" or \"group:<chat id>\""
        ))
    }

    /// Higher is more specific.
    pub fn rank(&self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Tag(_) => 1,
            Scope::Group(_) => 2,
        }
    }

    /// Whether this scope covers `place`.
    pub fn covers(&self, place: Place<'_>) -> bool {
        match self {
            Scope::Global => true,
            Scope::Tag(tag) => place.settings.tags.contains(tag),
            Scope::Group(chat) => place.chat == Some(chat),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Tag(tag) => write!(f, "tag:{tag}"),
            Scope::Group(chat) => write!(f, "group:{chat}"),
        }
    }
}

/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;

/// A tag as it is kept and compared: 1–32 characters without spaces, e.g. `province:广东` or
/// `新手群`, folded (full-width to half-width, case, traditional to simplified, invisible
/// characters dropped) wherever it enters — chat, API, scope files and stored settings.
pub fn validate_tag(tag: &str) -> Result<String, String> {
    // Folded the way keywords are: a tag typed with a Chinese input method (`province：广东`,
    // `ｔｙｐｅ`) or carrying an invisible character is the same tag as the plain one.
    let folded = super::normalize::normalize(tag);
    let tag = folded.trim();
    let len = tag.chars().count();
    if len == 0 || len > MAX_TAG_CHARS {
        return Err(format!(
            "tag {tag:?} must be 1 to {MAX_TAG_CHARS} characters"
        ));
    }
    if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("tag {tag:?} must not contain spaces"));
    }
    Ok(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_cover() {
        let mut settings = GroupSettings::default();
        settings.tags.insert("province:广东".into());
        let chat = ChatId::new("g1");
        let here = Place {
            chat: Some(&chat),
            settings: &settings,
        };
        for (text, covers) in [
            ("global", true),
            ("tag:province:广东", true),
            ("tag:province:浙江", false),
            ("group:g1", true),
            ("group:g2", false),
        ] {
            let scope = Scope::parse(text).unwrap();
            assert_eq!(scope.covers(here), covers, "{text}");
            assert_eq!(scope.to_string(), text);
        }
        for bad in ["", "tags:x", "tag:", "group:", "group:a b", "tag:有 空格"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(Scope::parse("group:g1").unwrap().rank() > Scope::parse("tag:x").unwrap().rank());
    }
}
