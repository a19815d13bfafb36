//! `trumpet operator add|list|remove|reset-password`: operator accounts for the console and the
//! admin API, kept in the store (hashes only). Passwords are read from stdin — one line — so they
//! stay out of the shell's history and the process list. The service holds the store while it
//! runs; these commands then say so (the console's 账号 page does the same work there).

use std::io::BufRead;
use std::process::ExitCode;

use crate::config::Config;
use crate::domain::OperatorRole;
use crate::runtime::operators::{self, AccountError};
use crate::store::{Store, StoreError};

/// What to do with the accounts.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Adds an account; its password is the first line of stdin.
    Add {
        name: String,
        /// viewer (reads), operator (runs the groups), admin (also scripts and accounts).
        #[arg(long, value_parser = parse_role)]
        role: OperatorRole,
    },
    /// Lists the accounts and their roles.
    List,
    /// Removes an account (never the last admin).
    Remove { name: String },
    /// Gives an account a new password, read from stdin.
    ResetPassword { name: String },
}

fn parse_role(s: &str) -> Result<OperatorRole, String> {
    OperatorRole::parse(s).ok_or_else(|| format!("{s:?} is not a role: viewer, operator or admin"))
}

/// Runs `action` on the store of `config`; the exit code: 0 done, 1 the store failed, 2 refused.
pub fn run(config: &Config, action: &Action) -> ExitCode {
    let path = &config.storage.path;
    // Listing, removing or resetting in the wrong directory must not leave an empty store.
    if !matches!(action, Action::Add { .. }) && !path.exists() {
        eprintln!(
            "error: no store at {} — run this where the service runs (or pass its --config)",
            path.display()
        );
        return ExitCode::from(2);
    }
    let store = match Store::open(path) {
        Ok(store) => store,
        Err(StoreError::Locked(_)) => {
            eprintln!(
                "error: the service is running and holds the store at {}: manage accounts on the console's 账号 page, or stop the service first",
                path.display()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = chrono::Utc::now();
    let done = match action {
        Action::List => return list(&store),
        Action::Add { name, role } => read_password().and_then(|password| {
            operators::add(&store, name, *role, &password, now)?;
            println!("operator {name} added ({role})");
            Ok(())
        }),
        Action::Remove { name } => operators::remove(&store, name).map(|role| {
            println!("operator {name} removed (was {role})");
        }),
        Action::ResetPassword { name } => read_password().and_then(|password| {
            operators::reset_password(&store, name, &password, now)?;
            println!("operator {name}: password changed");
            Ok(())
        }),
    };
    match done {
        Ok(()) => {
            audit(&store, action, now);
            ExitCode::SUCCESS
        }
        Err(AccountError::Store(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(refused) => {
            eprintln!("error: {refused}");
            ExitCode::from(2)
        }
    }
}

/// Records a change in the audit trail (actor `cli`); a failure is reported, the change stands.
fn audit(store: &Store, action: &Action, now: chrono::DateTime<chrono::Utc>) {
    let action = match action {
        Action::Add { name, role } => format!("operator add {name} ({role})"),
        Action::Remove { name } => format!("operator remove {name}"),
        Action::ResetPassword { name } => format!("operator reset-password {name}"),
        Action::List => return,
    };
    let entry = crate::store::AuditEntry {
        id: 0,
        at: now,
        actor: "cli".into(),
        action,
        status: 0,
        request: None,
        before: None,
        after: None,
    };
    if let Err(e) = store.audit(&entry) {
        eprintln!("warning: done, but not recorded in the audit trail: {e}");
    }
}

fn list(store: &Store) -> ExitCode {
    match store.operators() {
        Ok(accounts) if accounts.is_empty() => {
            println!("no operators yet: add one with `trumpet operator add NAME --role admin`");
            ExitCode::SUCCESS
        }
        Ok(accounts) => {
            for account in accounts {
                let changed = account.updated_at.map_or_else(String::new, |at| {
                    format!(", changed {}", at.format("%Y-%m-%d %H:%M"))
                });
                println!(
                    "{:<20} {:<8} added {}{changed}",
                    account.name,
                    account.role,
                    account.created_at.format("%Y-%m-%d %H:%M")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The password: the first line of stdin, without its line ending.
fn read_password() -> Result<String, AccountError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| AccountError::Stdin(e.to_string()))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    operators::check_password(&password)?;
    Ok(password)
}
