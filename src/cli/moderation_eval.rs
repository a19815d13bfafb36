//! `trumpet moderation-eval [FILE] [--show N] [--cv K]`: how the bot-scripts' moderation does on
//! labelled messages — an operator's own file of `label<TAB>text` lines (`spam`/`ham`), or a TOML
//! corpus — each judged as a member's who is past probation but not trusted yet. Prints recall,
//! precision and false positives, then the misses and the false positives with what fired on
//! them. With `--cv K`, K-fold cross-validation over the project's corpus (plus FILE): each
//! fold judged with a learned layer trained on the others. Nothing is sent or stored.

use std::path::Path;
use std::process::ExitCode;

use super::{Cli, load_config, load_scripts};
use crate::engine::moderation::eval::{
    Labelled, Sender, cross_validate, evaluate_as, parse_labelled,
};

/// Runs the command: exit 0 with the figures printed, 2 when the file or scripts are unusable.
pub fn run(
    cli: &Cli,
    file: Option<&Path>,
    show: usize,
    cv: Option<usize>,
    sender: Sender,
) -> ExitCode {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let scripts = match load_scripts(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut messages = match file.map(read).transpose() {
        Ok(messages) => messages.unwrap_or_default(),
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let now = chrono::Utc::now();
    let (score, what) = match cv {
        Some(folds) => {
            let own = messages.len();
            messages.splice(0..0, crate::engine::moderation::learned::shipped_samples());
            let score = cross_validate(&scripts.moderation, &messages, folds, sender, now);
            let what = format!(
                "{folds}-fold cross-validation over the project's corpus{}",
                match file {
                    Some(f) => format!(" and {} ({own} of them)", f.display()),
                    None => String::new(),
                }
            );
            (score, what)
        }
        None => (
            evaluate_as(&scripts.moderation, &messages, sender, now),
            file.map(|f| f.display().to_string()).unwrap_or_default(),
        ),
    };
    println!(
        "{what}: {} messages, judged as {}",
        messages.len(),
        match sender {
            Sender::LongStanding => "a long-standing member's",
            Sender::Newcomer => "a newcomer's",
        }
    );
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

/// The labelled messages of `file`, or why there are none.
fn read(file: &Path) -> Result<Vec<Labelled>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    match parse_labelled(&text) {
        Ok(messages) if !messages.is_empty() => Ok(messages),
        Ok(_) => Err(format!("{} holds no labelled messages", file.display())),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}
