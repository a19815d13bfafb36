//! Bot-scripts that change while the service runs: [`LiveScripts`] holds the version in force
//! and swaps in a new one atomically after it has been validated completely; a broken edit keeps
//! the previous version and is reported (log and `GET /api/v1/scripts/status`) with
//! `file:line:column` and the reason.
//!
//! Changes are found by polling the `*.toml` files of the directory and of its `content/`
//! (name, size, modification time):
//! no platform file-watching API, and it works the same on network and container file systems.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use super::ScriptError;
use crate::engine::Scripts;
use crate::engine::moderation::learned::Classifier;

/// What `GET /api/v1/scripts/status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptsStatus {
    /// The directory watched.
    pub dir: PathBuf,
    /// Whether the version in force came from the directory (false: the built-in copy).
    pub from_dir: bool,
    /// Counts up on every successful load.
    pub version: u64,
    pub loaded_at: DateTime<Utc>,
    pub keyword_rules: usize,
    /// The last failed load, when it is newer than the version in force.
    pub error: Option<ReloadError>,
}

/// A failed load: where and why.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl ReloadError {
    fn new(e: &ScriptError, at: DateTime<Utc>) -> Self {
        Self {
            file: e.file.display().to_string(),
            line: e.line,
            column: e.column,
            reason: e.reason.clone(),
            at,
        }
    }
}

/// What changes only with a load attempt; the rest of the status is read off the scripts.
struct History {
    version: u64,
    loaded_at: DateTime<Utc>,
    error: Option<ReloadError>,
}

/// The scripts in force, swappable while running. Cheap to share behind an `Arc`.
pub struct LiveScripts {
    current: RwLock<Arc<Scripts>>,
    history: RwLock<History>,
    dir: PathBuf,
    /// Edits through the API, one at a time (each reads, checks and writes a file).
    pub(super) edits: std::sync::Mutex<()>,
    /// The learned layer trained with the operator's labels: every version loaded uses it.
    learned: RwLock<Arc<Classifier>>,
}

/// The `*.toml` files of a directory and its `content/` with their sizes and modification
/// times, sorted; empty when the directory does not exist.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files: Vec<_> = [dir.to_owned(), dir.join(super::content::CONTENT_DIR)]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort();
    files
}

impl LiveScripts {
    /// Starts with `scripts`, loaded from `dir` (or the built-in copy).
    pub fn new(scripts: Scripts, dir: &Path) -> Self {
        let learned = scripts.moderation.learned.current();
        Self {
            current: RwLock::new(Arc::new(scripts)),
            history: RwLock::new(History {
                version: 1,
                loaded_at: Utc::now(),
                error: None,
            }),
            dir: dir.to_owned(),
            edits: std::sync::Mutex::new(()),
            learned: RwLock::new(learned),
        }
    }

    /// Puts `classifier` (trained with the operator's labels) in force, now and in every
    /// version loaded later.
    pub fn set_learned(&self, classifier: Arc<Classifier>) {
        // Under the write lock, so that a reload swapping in a new version at the same moment
        // picks up either this classifier or the one before and is then corrected here.
        let mut learned = self.learned.write().unwrap_or_else(|p| p.into_inner());
        *learned = Arc::clone(&classifier);
        self.current().moderation.learned.set(classifier);
    }

    /// The directory the scripts are loaded from (and edits are written to).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version in force.
    pub fn current(&self) -> Arc<Scripts> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn status(&self) -> ScriptsStatus {
        let scripts = self.current();
        let history = self.history.read().unwrap_or_else(|p| p.into_inner());
        ScriptsStatus {
            dir: self.dir.clone(),
            from_dir: scripts.source.is_some(),
            version: history.version,
            loaded_at: history.loaded_at,
            keyword_rules: scripts.keywords.rules().len(),
            error: history.error.clone(),
        }
    }

    fn refuse(&self, e: &ScriptError, at: DateTime<Utc>) {
        self.history
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .error = Some(ReloadError::new(e, at));
    }

    /// Loads the directory again; swaps the new version in when it is valid, else keeps the
    /// version in force and records the error. Blocking (reads files).
    pub fn reload(&self) -> Result<(), ScriptError> {
        let now = Utc::now();
        if !super::holds_scripts(&self.dir) && self.current().source.is_some() {
            // A directory that vanishes (a deploy mid-way, a mistaken `rm`) must not swap the
            // operator's rules for the built-in copy.
            let e = ScriptError {
                file: self.dir.clone(),
                line: 0,
                column: 0,
                reason:
                    "the directory or its messages.toml is gone; the loaded version stays in force"
                        .into(),
            };
            warn!(error = %e, "bot-scripts directory missing");
            self.refuse(&e, now);
            return Err(e);
        }
        match Scripts::load(&self.dir) {
            Ok(scripts) => {
                let keyword_rules = scripts.keywords.rules().len();
                let learned = self.learned.read().unwrap_or_else(|p| p.into_inner());
                scripts.moderation.learned.set(Arc::clone(&learned));
                // Swap under the history lock, so the version and the scripts change together.
                let mut history = self.history.write().unwrap_or_else(|p| p.into_inner());
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(scripts);
                history.version += 1;
                history.loaded_at = now;
                history.error = None;
                drop(learned);
                info!(dir = %self.dir.display(), version = history.version, keyword_rules,
                    "bot-scripts reloaded");
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "bot-scripts edit refused; the previous version stays in force");
                self.refuse(&e, now);
                Err(e)
            }
        }
    }

    /// Polls the directory every `every` and reloads when its files change. Runs until the
    /// task is aborted.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let dir = self.dir.clone();
        let mut seen = fingerprint(&dir);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let dir = dir.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&dir)).await else {
                continue;
            };
            if now == seen {
                continue;
            }
            seen = now;
            let this = Arc::clone(&self);
            // The outcome is logged and kept in the status by `reload` itself.
            let _ = tokio::task::spawn_blocking(move || this.reload()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_directory_keeps_the_loaded_rules() {
        let dir = tempfile::tempdir().unwrap();
        let scripts_dir = dir.path().join("bot-scripts");
        std::fs::create_dir(&scripts_dir).unwrap();
        std::fs::write(
            scripts_dir.join("messages.toml"),
            super::super::EMBEDDED_MESSAGES,
        )
        .unwrap();
        std::fs::write(
            scripts_dir.join("keywords.toml"),
            "[[keyword]]\nid = \"only\"\npatterns = [\"x\"]\nformat = \"text\"\ncontent = \"y\"\n",
        )
        .unwrap();
        let live = LiveScripts::new(Scripts::load(&scripts_dir).unwrap(), &scripts_dir);
        std::fs::remove_dir_all(&scripts_dir).unwrap();
        assert!(live.reload().is_err());
        assert_eq!(live.current().keywords.rules()[0].id, "only");
        let status = live.status();
        assert_eq!(status.version, 1);
        assert!(status.error.unwrap().reason.contains("gone"));
    }
}
