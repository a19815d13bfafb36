//! `trumpet moderation-eval FILE [--show N]`: how the bot-scripts' moderation does on labelled
//! messages — an operator's own file of `label<TAB>text` lines (`spam`/`ham`), or a TOML corpus —
//! each judged as a member's who is past probation but not trusted yet. Prints recall,
//! precision and false positives, then the misses and the false positives with what fired on
//! them. Nothing is sent or stored.

use std::path::Path;
use std::process::ExitCode;

use super::{Cli, load_config, load_scripts};
use crate::engine::moderation::eval::{evaluate, parse_labelled};

/// Runs the command: exit 0 with the figures printed, 2 when the file or scripts are unusable.
pub fn run(cli: &Cli, file: &Path, show: usize) -> ExitCode {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let scripts = match load_scripts(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let messages = match parse_labelled(&text) {
        Ok(messages) if !messages.is_empty() => messages,
        Ok(_) => {
            eprintln!("error: {} holds no labelled messages", file.display());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let score = evaluate(&scripts.moderation, &messages, chrono::Utc::now());
    println!("{}: {} messages", file.display(), messages.len());
    println!(
        "spam      {:>5}  caught {:>5}  recall    {:5.1} %",
        score.spam,
        score.caught,
        score.recall() * 100.0
    );
    println!(
        "ordinary  {:>5}  acted on {:>3}  false positives {:4.1} %",
        score.ordinary,
        score.flagged,
        score.false_positive_rate() * 100.0
    );
    println!("precision {:5.1} %", score.precision() * 100.0);
    if show > 0 {
        println!("missed (first {show} of {}):", score.missed.len());
        for text in score.missed.iter().take(show) {
            println!("  {text}");
        }
        println!(
            "false positives (first {show} of {}):",
            score.false_positives.len()
        );
        for (text, fired) in score.false_positives.iter().take(show) {
            println!("  {text}\n      ← {fired}");
        }
    }
    ExitCode::SUCCESS
}
