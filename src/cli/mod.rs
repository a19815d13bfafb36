//! The `trumpet` command line: `serve`, `check`, `keygen`, `credentials`, `simulate` and
//! `broadcast`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod broadcast;
mod moderation_eval;
mod operator;
mod service;
mod simulate;

use crate::app::{App, GeneratedCredentials, generate_credentials};
use crate::config::Config;
use crate::engine::Scripts;
use crate::store::Store;
use crate::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "trumpet",
    version,
    about = "会计小喇叭: a WeCom group bot for community operators"
)]
pub struct Cli {
    /// Configuration file (default: ./trumpet.toml when it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve,
    /// Validate the configuration and bot-scripts, then exit.
    Check,
    /// Print a fresh Token and EncodingAESKey for a WeCom callback.
    Keygen,
    /// Print the stored callback URL, Token and EncodingAESKey of generated bots (stop the
    /// service first: the store is single-process).
    Credentials,
    /// Show what the bot would answer to a message, sending nothing: the rule that answers and
    /// the reply, with the group's view from the store when the service is stopped.
    Simulate {
        /// The group's chat id.
        #[arg(long)]
        group: String,
        /// The sender's user id.
        #[arg(long)]
        from: String,
        /// The message @-mentions the bot.
        #[arg(long)]
        mention: bool,
        /// The message text.
        text: String,
        /// The running service's base URL (default: http://<server.listen>); when nothing
        /// answers there, the store is read directly.
        #[arg(long)]
        server: Option<String>,
    },
    /// How the bot-scripts' moderation does on labelled messages (a file of `spam<TAB>text` /
    /// `ham<TAB>text` lines, or a TOML corpus): recall, precision, false positives, and the
    /// misses. Nothing is sent or stored. With `--cv K`: K-fold cross-validation over the
    /// project's corpus (and FILE's messages, when given), the learned layer of each fold
    /// trained on the other folds only.
    ModerationEval {
        /// The labelled file.
        #[arg(required_unless_present = "cv")]
        file: Option<PathBuf>,
        /// How many misses and false positives to list.
        #[arg(long, default_value_t = 20)]
        show: usize,
        /// Cross-validate with this many folds (2 or more).
        #[arg(long, value_parser = clap::value_parser!(u16).range(2..))]
        cv: Option<u16>,
        /// Judge the messages as a newcomer's (on probation: the stricter checks apply) rather
        /// than a long-standing member's.
        #[arg(long)]
        newcomer: bool,
    },
    /// Operator accounts for the console and the admin API: add, list, remove, reset a
    /// password (read from stdin). While the service runs it holds the store: stop it first.
    Operator {
        #[command(subcommand)]
        action: operator::Action,
    },
    /// Writes the shipped bot-scripts into DIR (default: `scripts.dir`, `bot-scripts`) for you
    /// to edit; files already there are yours and are kept.
    Init { dir: Option<std::path::PathBuf> },
    /// Run a scheduled job now through the running service and follow it with a progress bar;
    /// `--dry-run` shows the message every target would get and sends nothing.
    Broadcast {
        /// The job's name in schedules.toml, e.g. morning-report.
        #[arg(required_unless_present = "resend")]
        job: Option<String>,
        /// Send run RUN's slot again to the groups that did not get it (failed, skipped, timed
        /// out), e.g. morning-report@20261206T0000Z; never to a group that did.
        #[arg(long, value_name = "RUN", conflicts_with_all = ["job", "dry_run", "next"])]
        resend: Option<String>,
        /// Send now even inside the job's quiet hours (a run there is refused otherwise).
        #[arg(long)]
        now: bool,
        /// Render for every target, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// The job's next slot instead of its current one, sent now (for a job whose last slot
        /// is more than 32 days ago, such as a quarterly reminder).
        #[arg(long)]
        next: bool,
        /// The service's base URL (default: http://<server.listen>).
        #[arg(long)]
        server: Option<String>,
    },
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Keygen => {
            let c = generate_credentials();
            println!("Token          {}", c.token.expose());
            println!("EncodingAESKey {}", c.encoding_aes_key.as_str());
            ExitCode::SUCCESS
        }
        Command::Check => check(&cli),
        Command::Serve => serve(&cli),
        Command::Credentials => credentials(&cli),
        Command::Simulate {
            ref group,
            ref from,
            mention,
            ref text,
            ref server,
        } => simulate::run(&cli, group, from, mention, text, server.as_deref()),
        Command::Init { ref dir } => init(&cli, dir.as_deref()),
        Command::ModerationEval {
            ref file,
            show,
            cv,
            newcomer,
        } => {
            let sender = match newcomer {
                true => crate::engine::moderation::eval::Sender::Newcomer,
                false => crate::engine::moderation::eval::Sender::LongStanding,
            };
            moderation_eval::run(&cli, file.as_deref(), show, cv.map(usize::from), sender)
        }
        Command::Operator { ref action } => match load_config(&cli) {
            Ok(config) => operator::run(&config, action),
            Err(code) => code,
        },
        Command::Broadcast {
            ref job,
            ref resend,
            now,
            dry_run,
            next,
            ref server,
        } => match load_config(&cli) {
            Ok(config) => {
                let what = match (job, resend) {
                    (_, Some(run)) => broadcast::Request::Resend { run },
                    (Some(job), None) => broadcast::Request::Job { job, dry_run, next },
                    // clap requires one of them.
                    (None, None) => return ExitCode::from(2),
                };
                broadcast::run(&config, server.as_deref(), what, now)
            }
            Err(code) => code,
        },
    }
}

/// `trumpet init [DIR]`: the shipped bot-scripts written where the service will read them.
fn init(cli: &Cli, dir: Option<&std::path::Path>) -> ExitCode {
    let dir = match dir {
        Some(dir) => dir.to_owned(),
        None => match load_config(cli) {
            Ok(config) => config.scripts.dir,
            Err(code) => return code,
        },
    };
    match crate::scripts::write_defaults(&dir) {
        Ok(report) => {
            for file in &report.written {
                println!("wrote {}", file.display());
            }
            for file in &report.kept {
                println!("kept  {} (already there: yours)", file.display());
            }
            println!(
                "bot-scripts in {}: {} written, {} kept. Edit them (bot-scripts/README.md says how), check with `trumpet check`; a running service reloads them on its own.",
                dir.display(),
                report.written.len(),
                report.kept.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: cannot write bot-scripts into {}: {e}",
                dir.display()
            );
            ExitCode::from(2)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, ExitCode> {
    Config::load(cli.config.as_deref()).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Loads bot-scripts, or prints the `file:line:column` error and gives the exit code.
fn load_scripts(config: &Config) -> Result<Scripts, ExitCode> {
    if let Some(problem) = config.scripts.missing_dir() {
        eprintln!("error: {problem}");
        return Err(ExitCode::from(2));
    }
    Scripts::load(&config.scripts.dir).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn check(cli: &Cli) -> ExitCode {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!("configuration: ok ({} bot(s))", config.bots.len());
    let scripts = match load_scripts(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let from = match &scripts.source {
        Some(dir) => dir.display().to_string(),
        None => format!(
            "no bot-scripts in {} (`trumpet init` writes them there); the built-in copy is used",
            config.scripts.dir.display()
        ),
    };
    let rules = scripts.keywords.rules().len();
    let commands = scripts.commands.commands.len();
    let jobs = scripts.jobs.len();
    let columns = scripts.content.columns.iter().flatten().count();
    let items = scripts.content.items.len();
    let feeds = scripts.content.feeds.len();
    let checks = scripts.moderation.checks.len();
    let envelope_schedules = scripts.red_envelope.schedules.len();
    // Loading rendered every template with sample data already.
    let templates = scripts.messages().count();
    println!(
        "bot-scripts: ok ({from}; {rules} keyword rules, {commands} commands, {jobs} jobs, {columns} weekly columns, {items} queue items, {feeds} feeds, {checks} moderation checks, {envelope_schedules} red-envelope schedules, {templates} templates rendered with sample data)"
    );
    for warning in long_replies(&scripts) {
        println!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

/// Keyword replies longer than the group robot's passive reply may be: they still work (the
/// rest follows as posts), but the operator should know they cost posts.
fn long_replies(scripts: &crate::engine::Scripts) -> Vec<String> {
    let limits = crate::wire::wecom::robot::CAPABILITIES.reply_max_bytes;
    scripts
        .keywords
        .rules()
        .iter()
        .filter_map(|rule| {
            let bytes = rule.reply.body.source().len();
            let (limit, kind) = match rule.reply.format {
                crate::engine::message::Format::Text => (limits.text, "text"),
                crate::engine::message::Format::Markdown => (limits.markdown, "markdown"),
            };
            (bytes > limit).then(|| {
                format!(
                    "keyword rule `{}`: its reply is about {bytes} bytes, over WeCom's {limit}-byte limit for a {kind} reply; on the group robot the first {limit} bytes answer and the rest follows as posts (which count against the robot's 20 a minute)",
                    rule.id
                )
            })
        })
        .collect()
}

fn print_credentials(generated: &GeneratedCredentials, first_time: bool) {
    let c = &generated.credentials;
    let mut text = format!(
        "\nWeCom group robot \"{}\"\n\
         Paste these three values into the robot's message-receiving settings (接收消息配置):\n\
         \x20 URL             {}\n\
         \x20 Token           {}\n\
         \x20 EncodingAESKey  {}\n",
        generated.bot,
        generated.callback_url,
        c.token.expose(),
        c.encoding_aes_key.as_str()
    );
    if first_time {
        text.push_str(
            "They were generated on first start and are kept in the store; they are not printed again\n\
             (`trumpet credentials` shows them while the service is stopped).\n",
        );
    }
    text.push('\n');
    // A closed stdout (a pipe whose reader left) must not stop the service.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn serve(cli: &Cli) -> ExitCode {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    telemetry::init(cli.log_format, &config.log.level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let app = App::build(config)?;
        // Printed once the listener is bound: the URL is right, and a start that cannot listen
        // leaves them for the next.
        app.run(|generated| {
            for credentials in generated {
                print_credentials(credentials, true);
            }
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "trumpet stopped with an error");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn credentials(cli: &Cli) -> ExitCode {
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Only read: run in the wrong directory, it must not leave a new, empty store behind.
    if !config.storage.path.exists() {
        eprintln!(
            "error: no store at {} — run this where the service runs (or pass its --config); the credentials are generated by the service's first start",
            config.storage.path.display()
        );
        return ExitCode::from(2);
    }
    let store = match Store::open(&config.storage.path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for bot in &config.bots {
        if bot.channel == crate::config::ChannelKind::OneBot12 {
            println!(
                "bot {}: a onebot12 bot; its implementation connects to {} with the access_token of the configuration",
                bot.id,
                config.onebot_url(&bot.id)
            );
            continue;
        }
        if let Some(aibot) = &bot.aibot {
            println!(
                "bot {}: a wecom-aibot bot; the service dials {} as BotID {} with the secret of the configuration",
                bot.id, aibot.ws_url, aibot.bot_id
            );
            continue;
        }
        if bot.credentials.is_some() {
            println!("bot {}: credentials are set in the configuration", bot.id);
            continue;
        }
        match store.bot_credentials(&bot.id) {
            Ok(Some(stored)) => {
                match crate::wire::wecom::crypto::EncodingAesKey::parse(&stored.encoding_aes_key) {
                    Ok(key) => print_credentials(
                        &GeneratedCredentials {
                            bot: bot.id.clone(),
                            callback_url: config.callback_url(&bot.id),
                            credentials: crate::config::BotCredentials {
                                token: crate::config::Secret::new(stored.token),
                                encoding_aes_key: key,
                            },
                        },
                        false,
                    ),
                    Err(e) => eprintln!("bot {}: stored key is invalid: {e}", bot.id),
                }
            }
            Ok(None) => println!(
                "bot {}: not generated yet (run `trumpet serve` once)",
                bot.id
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
