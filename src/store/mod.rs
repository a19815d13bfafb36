//! The durable store: one redb file holding groups, members, daily counters, handled message ids
//! and generated bot credentials, behind a small typed API.
//!
//! Writes go through [`Store::write`], one transaction per call; callers batch many changes into
//! one call so that the disk is flushed once per batch, not once per message.

mod activity;
mod audit;
mod content;
mod labels;
mod mass_tasks;
mod moderation;
mod operators;
mod outbox;
mod overview;
mod records;
mod red_envelope;
mod robots;
mod roster;
mod script_edits;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::{BotId, ChatId, GroupSettings, Sender};

pub use activity::{DayCounters, RecentActivity, SharedTally, SpeakerTally};
pub use audit::{AuditEntry, AuditFilter};

pub use moderation::{BlacklistEntry, Fold, LogEntry, LogFilter, ModerationWrite, StandingRecord};

pub use labels::{Label, Review, ReviewError, Verdict as ReviewVerdict};
pub use mass_tasks::{MassChat, MassTask, MassTaskState, UnplannedSend};
pub use operators::OperatorRecord;
pub use outbox::{
    Destination, NewSend, OutboxEntry, OutboxState, ReceiptPage, ResendTargets, RunCounts,
    RunRecord, RunReport, SendOutcome, SendReceipt,
};
pub use overview::{PendingSends, RecentSends, SendSummary};

pub use records::{
    AdoptedVia, Adopter, DailyCounters, DedupeRecord, GroupRecord, GroupStatus, HeldPost,
    MemberRecord, PUSH_ONLY_BOT,
};

pub use red_envelope::{ClaimRecord, ClaimVia, TestRecord, TestState, envelope_post_key};

pub use robots::robot_digest;

pub use roster::RosterDiff;
pub use script_edits::ScriptEdit;
pub use tx::WriteTx;

/// Bumped whenever a table's key or value layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");

/// (chat, user) → (first seen, last seen (unix seconds), messages, name, alias). A fixed tuple
/// rather than JSON: it is read and written for every message.
const MEMBERS: TableDefinition<(&str, &str), MemberRow<'static>> = TableDefinition::new("members");

const DAILY: TableDefinition<(&str, &str), (u64, u64)> = TableDefinition::new("daily");

const DEDUPE: TableDefinition<&str, &[u8]> = TableDefinition::new("dedupe");

/// chat → JSON [`GroupSettings`]: roles, tags, rules switched off. Apart from `groups`, which the
/// pipeline rewrites with every batch, so that a settings change never races a counter update.
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");

/// (chat, user) → unix seconds of the member's last welcome in that group.
const WELCOMED: TableDefinition<(&str, &str), i64> = TableDefinition::new("welcomed");

const SCHEMA_KEY: &str = "schema_version";

/// The page cache when none is configured: 32 MiB. redb's own default (1 GiB) would let a busy
/// store grow the process far past what a small server should spend on it; the hot pages (the
/// B-tree's inner nodes, today's counters, the outbox's pending entries) fit in far less.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Counters are kept per local day in China Standard Time (UTC+8, no DST).
pub const CST_OFFSET_SECS: i64 = 8 * 3600;

/// The local day as a key, `YYYY-MM-DD`.
fn local_day(at: DateTime<Utc>) -> String {
    let cst = FixedOffset::east_opt(CST_OFFSET_SECS as i32).expect("UTC+8 is a valid offset");
    at.with_timezone(&cst).format("%Y-%m-%d").to_string()
}

/// The local day as a number (days since 1970-01-01 in UTC+8), for cheap comparisons.
fn local_day_number(unix_secs: i64) -> i64 {
    (unix_secs + CST_OFFSET_SECS).div_euclid(86_400)
}

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {0} is in use by another process (is another trumpet running?); stop it or set storage.path to another file"
    )]
    Locked(PathBuf),
    #[error("the store {path} has schema version {found}; this build reads version {expected}")]
    SchemaMismatch {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("cannot create the store's directory {0}: {1}")]
    Directory(PathBuf, std::io::Error),
    #[error("cannot open the store {0}: {1}")]
    Open(PathBuf, Box<redb::DatabaseError>),
    #[error("store error: {0}")]
    Db(String),
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}

db_err!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

type MemberRow<'a> = (i64, i64, u64, &'a str, &'a str);

fn member_from_row(user_id: &str, row: MemberRow<'_>) -> MemberRecord {
    let (first, last, count, name, alias) = row;
    let at = |secs| DateTime::from_timestamp(secs, 0).unwrap_or_default();
    MemberRecord {
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        alias: alias.to_owned(),
        first_seen: at(first),
        last_seen: at(last),
        message_count: count,
    }
}

/// Credentials generated for a bot on first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StoredCredentials {
    pub token: String,
    pub encoding_aes_key: String,
    /// Printed for the operator once the service listened. Stores written before this was kept
    /// had shown theirs on the first start.
    #[serde(default = "shown_before")]
    pub shown: bool,
}

fn shown_before() -> bool {
    true
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// Opens (or creates) the store at `path` with the default page cache
    /// ([`DEFAULT_CACHE_BYTES`]). Fails at once, never hangs, when another process holds it, and
    /// refuses a file written with another schema version.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with a page cache of `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Directory(dir.into(), e))?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.into()),
                other => StoreError::Open(path.into(), Box::new(other)),
            })?;
        let store = Store { db: Arc::new(db) };
        store.check_schema(path)?;
        Ok(store)
    }

    fn check_schema(&self, path: &Path) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| {
                let bytes: [u8; 4] = v.value().try_into().unwrap_or([0xff; 4]);
                u32::from_be_bytes(bytes)
            });
            match found {
                Some(v) if v != SCHEMA_VERSION => {
                    return Err(StoreError::SchemaMismatch {
                        path: path.into(),
                        found: v,
                        expected: SCHEMA_VERSION,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
            }
            // Create every table so that readers never meet a missing one.
            tx.open_table(GROUPS)?;
            tx.open_table(MEMBERS)?;
            tx.open_table(DAILY)?;
            tx.open_table(DEDUPE)?;
            tx.open_table(SETTINGS)?;
            tx.open_table(WELCOMED)?;
            tx.open_table(outbox::OUTBOX)?;
            tx.open_table(outbox::OUTBOX_KEYS)?;
            tx.open_table(outbox::OUTBOX_PENDING)?;
            tx.open_table(outbox::OUTBOX_BY_RUN)?;
            tx.open_table(outbox::OUTBOX_BY_CHAT)?;
            tx.open_table(outbox::RUNS)?;
            tx.open_table(robots::ROBOT_GROUPS)?;
            tx.open_table(robots::GROUP_ROBOT)?;
            tx.open_table(roster::ROSTER)?;
            tx.open_table(mass_tasks::MASS_TASKS)?;
            tx.open_table(mass_tasks::MASS_ENTRIES)?;
            tx.open_table(moderation::MOD_STANDING)?;
            tx.open_table(moderation::BLACKLIST)?;
            tx.open_table(moderation::MOD_LOG)?;
            tx.open_table(moderation::MOD_LOG_BY_CHAT)?;
            tx.open_table(moderation::MOD_LOG_FOLDS)?;
            tx.open_table(red_envelope::ENVELOPE_TESTS)?;
            tx.open_table(red_envelope::ENVELOPE_CLAIMS)?;
            tx.open_table(red_envelope::ENVELOPE_BY_CHAT)?;
            tx.open_table(red_envelope::ENVELOPE_BY_START)?;
            tx.open_table(activity::SPEAKER_DAYS)?;
            tx.open_table(activity::GROUP_DAYS)?;
            tx.open_table(activity::LAST_POSTS)?;
            tx.open_table(activity::HEALTH_DAYS)?;
            tx.open_table(operators::OPERATORS)?;
            tx.open_table(audit::AUDIT)?;
            tx.open_table(overview::DAY_TOTALS)?;
            tx.open_table(labels::MOD_LABELS)?;
            tx.open_table(script_edits::SCRIPT_EDITS)?;
        }
        robots::build_if_missing(&tx)?;
        overview::build_totals_if_missing(&tx)?;
        red_envelope::build_by_start_if_missing(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Runs `f` in one write transaction and commits it (one disk flush).
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let tx = self.db.begin_write()?;
        let result = {
            let mut w = WriteTx {
                groups: tx.open_table(GROUPS)?,
                members: tx.open_table(MEMBERS)?,
                daily: tx.open_table(DAILY)?,
                day_totals: tx.open_table(overview::DAY_TOTALS)?,
                dedupe: tx.open_table(DEDUPE)?,
                meta: tx.open_table(META)?,
                settings: tx.open_table(SETTINGS)?,
                welcomed: tx.open_table(WELCOMED)?,
                outbox: tx.open_table(outbox::OUTBOX)?,
                outbox_keys: tx.open_table(outbox::OUTBOX_KEYS)?,
                outbox_pending: tx.open_table(outbox::OUTBOX_PENDING)?,
                outbox_by_run: tx.open_table(outbox::OUTBOX_BY_RUN)?,
                outbox_by_chat: tx.open_table(outbox::OUTBOX_BY_CHAT)?,
                runs: tx.open_table(outbox::RUNS)?,
                robot_groups: tx.open_table(robots::ROBOT_GROUPS)?,
                group_robot: tx.open_table(robots::GROUP_ROBOT)?,
                roster: tx.open_table(roster::ROSTER)?,
                mod_standing: tx.open_table(moderation::MOD_STANDING)?,
                blacklist: tx.open_table(moderation::BLACKLIST)?,
                mod_log: tx.open_table(moderation::MOD_LOG)?,
                mod_log_by_chat: tx.open_table(moderation::MOD_LOG_BY_CHAT)?,
                mod_log_folds: tx.open_table(moderation::MOD_LOG_FOLDS)?,
                envelope_tests: tx.open_table(red_envelope::ENVELOPE_TESTS)?,
                envelope_claims: tx.open_table(red_envelope::ENVELOPE_CLAIMS)?,
                envelope_by_chat: tx.open_table(red_envelope::ENVELOPE_BY_CHAT)?,
                envelope_by_start: tx.open_table(red_envelope::ENVELOPE_BY_START)?,
                speaker_days: tx.open_table(activity::SPEAKER_DAYS)?,
                group_days: tx.open_table(activity::GROUP_DAYS)?,
                last_posts: tx.open_table(activity::LAST_POSTS)?,
                mass_tasks: tx.open_table(mass_tasks::MASS_TASKS)?,
                mass_entries: tx.open_table(mass_tasks::MASS_ENTRIES)?,
                day_key: (i64::MIN, String::new()),
            };
            f(&mut w)?
        };
        tx.commit()?;
        Ok(result)
    }

    /// Every group, in chat id order.
    pub fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(GROUPS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    pub fn group(&self, chat: &ChatId) -> Result<Option<GroupRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(GROUPS)?;
        table
            .get(chat.as_str())?
            .map(|v| decode(v.value()))
            .transpose()
    }

    /// Every group's settings, for the in-memory directory at start.
    pub fn all_settings(&self) -> Result<Vec<(ChatId, GroupSettings)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(SETTINGS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            out.push((ChatId::new(key.value()), decode(value.value())?));
        }
        Ok(out)
    }

    /// The settings of `chat` (empty when nothing was set).
    pub fn settings(&self, chat: &ChatId) -> Result<GroupSettings, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(SETTINGS)?;
        Ok(table
            .get(chat.as_str())?
            .map(|v| decode(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// The members seen in `chat`, in user id order.
    pub fn members(&self, chat: &ChatId) -> Result<Vec<MemberRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for entry in table.range((chat.as_str(), "")..)? {
            let (key, value) = entry?;
            let (c, user) = key.value();
            if c != chat.as_str() {
                break;
            }
            out.push(member_from_row(user, value.value()));
        }
        Ok(out)
    }

    /// When `user` was last welcomed in `chat` (unix seconds).
    pub fn welcomed_at(&self, chat: &ChatId, user: &str) -> Result<Option<i64>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(WELCOMED)?;
        Ok(table.get((chat.as_str(), user))?.map(|v| v.value()))
    }

    pub fn member(&self, chat: &ChatId, user: &str) -> Result<Option<MemberRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MEMBERS)?;
        Ok(table
            .get((chat.as_str(), user))?
            .map(|v| member_from_row(user, v.value())))
    }

    /// The counters of `chat` for the local day containing `at`.
    pub fn daily(&self, chat: &ChatId, at: DateTime<Utc>) -> Result<DailyCounters, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DAILY)?;
        let day = local_day(at);
        Ok(table
            .get((chat.as_str(), day.as_str()))?
            .map(|v| {
                let (messages, speakers) = v.value();
                DailyCounters { messages, speakers }
            })
            .unwrap_or_default())
    }

    /// Calls `f` with each handled message id first seen at or after `since` (unix seconds) and
    /// when; returns how many. Streams: the ids are not collected first.
    pub fn each_dedupe_since(
        &self,
        since: i64,
        mut f: impl FnMut(&str, i64),
    ) -> Result<usize, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEDUPE)?;
        let mut count = 0;
        for entry in table.iter()? {
            let (key, value) = entry?;
            let record: DedupeRecord = decode(value.value())?;
            if record.at >= since {
                f(key.value(), record.at);
                count += 1;
            }
        }
        Ok(count)
    }

    /// The record of a handled message id (its reply), if the store has it.
    pub fn dedupe_record(&self, key: &str) -> Result<Option<DedupeRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DEDUPE)?;
        table.get(key)?.map(|v| decode(v.value())).transpose()
    }

    /// The `meta` entries whose key starts with `prefix`, in key order (small caches kept by
    /// other modules, e.g. the last good copy of each feed).
    pub fn meta_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(META)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..)? {
            let (key, value) = entry?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }

    pub fn bot_credentials(&self, bot: &BotId) -> Result<Option<StoredCredentials>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(META)?;
        table
            .get(credentials_key(bot).as_str())?
            .map(|v| decode(v.value()))
            .transpose()
    }
}

/// `meta` keys of each send lane's recent attempts (see [`WriteTx::note_send_times`]).
const SEND_TIMES_PREFIX: &str = "send_times:";

fn unpack_times(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

impl Store {
    /// Each send lane's attempts at or after `since_ms` (unix milliseconds), so that a restart
    /// keeps every rate window; lanes with none left are forgotten.
    pub fn recent_send_times(
        &self,
        since_ms: i64,
    ) -> Result<std::collections::HashMap<String, Vec<i64>>, StoreError> {
        let mut recent = std::collections::HashMap::new();
        let mut stale = Vec::new();
        for (key, bytes) in self.meta_with_prefix(SEND_TIMES_PREFIX)? {
            let times: Vec<i64> = unpack_times(&bytes)
                .into_iter()
                .filter(|&t| t >= since_ms)
                .collect();
            let lane = key.trim_start_matches(SEND_TIMES_PREFIX).to_owned();
            if times.is_empty() {
                stale.push(key);
            } else {
                recent.insert(lane, times);
            }
        }
        if !stale.is_empty() {
            self.write(|tx| stale.iter().try_for_each(|key| tx.remove_meta(key)))?;
        }
        Ok(recent)
    }
}

fn credentials_key(bot: &BotId) -> String {
    format!("bot_credentials:{bot}")
}

#[cfg(test)]
mod tests;
