//! Logging setup in one place: human-readable by default, JSON with `--log-format json`.
//! `RUST_LOG` overrides `log.level`.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A log write that fails (stderr closed, a full pipe) must not take the service down:
    // tracing-subscriber reports such failures with `eprintln!`, which panics when stderr is gone.
    // Colours only on a terminal: in a file or journald the escapes are noise.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

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
