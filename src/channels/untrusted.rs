//! Text from outside written to the log: escaped and cut, so that an unauthenticated request
//! path or a peer's error message cannot forge a log line or repaint a terminal.

/// Text from outside (a request path, a peer's error message) as a log field: control
/// characters and escapes shown escaped (a newline or an ANSI sequence cannot forge a log line or
/// repaint a terminal), cut to [`Untrusted::MAX_CHARS`] characters.
pub struct Untrusted<'a>(pub &'a str);

impl Untrusted<'_> {
    pub const MAX_CHARS: usize = 64;
}

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(Self::MAX_CHARS) {
            if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}') {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Untrusted;

    #[test]
    fn untrusted_text_cannot_forge_lines_or_colours() {
        let shown = Untrusted("bot\n2026-12-05 INFO admin logged in \u{1b}[31mred").to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(
            shown.contains("\\u{a}") && shown.contains("\\u{1b}"),
            "{shown}"
        );
        let long = Untrusted(&"x".repeat(500)).to_string();
        assert_eq!(long.chars().count(), Untrusted::MAX_CHARS + 1);
        assert_eq!(Untrusted("群机器人").to_string(), "群机器人");
    }
}
