//! `trumpet simulate --group G --from U [--mention] TEXT`: what the bot would do with a message,
//! in words, sending nothing. It asks the running service (`POST /api/v1/simulate`: its own view
//! of the group, while the store is locked to it); when nothing answers, it reads the store
//! itself. Either way the lines come from the same engine path the service runs.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use super::service::{Api, BroadcastError, base_url};
use super::{Cli, load_config, load_scripts};
use crate::domain::BotId;
use crate::runtime::simulate::{Simulation, Sources, simulate};
use crate::store::Store;

/// Runs the command: exit 0 with the lines printed, 2 when it could not be simulated.
pub fn run(
    cli: &Cli,
    group: &str,
    from: &str,
    mention: bool,
    text: &str,
    server: Option<&str>,
) -> ExitCode {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let request = Simulation {
        group: group.to_owned(),
        from: from.to_owned(),
        text: text.to_owned(),
        mention,
    };
    let base = base_url(&config, server);
    let lines = match ask_service(&config, &base, &request) {
        Ok(Some(mut lines)) => {
            lines.insert(0, format!("asked   the running service at {base}"));
            lines
        }
        Ok(None) => match simulate_here(&config, &request) {
            Ok(lines) => lines,
            Err(code) => return code,
        },
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print_lines(&lines);
    ExitCode::SUCCESS
}

/// Prints `lines`; a reader that went away (`| head`) ends the output quietly instead of a
/// panic.
fn print_lines(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// The running service's answer; `None` when no service answers there (or no token is set to
/// ask it with).
fn ask_service(
    config: &crate::config::Config,
    base: &str,
    request: &Simulation,
) -> Result<Option<Vec<String>>, BroadcastError> {
    let Some(token) = config.admin.token.as_ref().map(|t| t.expose().to_owned()) else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BroadcastError::Malformed(format!("cannot start: {e}")))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| BroadcastError::Malformed(format!("cannot start an HTTP client: {e}")))?;
    let api = Api {
        http,
        base: base.to_owned(),
        token,
    };
    let body = serde_json::json!({
        "group": request.group,
        "from": request.from,
        "text": request.text,
        "mention": request.mention,
    });
    let answer = runtime.block_on(api.send(reqwest::Method::POST, "/api/v1/simulate", Some(&body)));
    match answer {
        Ok(answer) => {
            let lines = answer["lines"]
                .as_array()
                .ok_or_else(|| BroadcastError::Malformed(answer.to_string()))?
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect();
            Ok(Some(lines))
        }
        // Nobody there: the service is not running, and the store is free to read.
        Err(BroadcastError::Unreachable { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The simulation from the store itself (the service is not running).
fn simulate_here(
    config: &crate::config::Config,
    request: &Simulation,
) -> Result<Vec<String>, ExitCode> {
    let scripts = load_scripts(config)?;
    let store = match config.storage.path.exists() {
        false => None,
        true => match Store::open(&config.storage.path) {
            Ok(store) => Some(store),
            Err(e) => {
                eprintln!("error: the store cannot be read ({e}), and no service answered");
                return Err(ExitCode::from(2));
            }
        },
    };
    let not_cooling = |_: &str| false;
    let sources = Sources {
        store: store.as_ref(),
        settings: None,
        scripts: &scripts,
        accounts: None,
        cooling: &not_cooling,
        default_bot: config
            .bots
            .first()
            .map(|b| b.id.clone())
            .unwrap_or_else(|| BotId::parse("trumpet").expect("a valid id")),
    };
    match simulate(&sources, request, chrono::Utc::now()) {
        Ok(mut lines) => {
            lines.insert(
                0,
                "read    the store directly (no service answered; recent activity and cooldowns start empty)"
                    .into(),
            );
            Ok(lines)
        }
        Err(e) => {
            eprintln!("error: the store cannot be read: {e}");
            Err(ExitCode::from(2))
        }
    }
}
