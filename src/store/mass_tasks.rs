//! Mass-send tasks (企业群发) of self-built apps: a broadcast to WeCom customer groups goes out as
//! one task per owner, which the owner confirms in the WeCom client. A task is written here
//! before WeCom is asked to create it — with the sends it covers, each in one task only — so
//! that a restart never plans a send twice and knows which creations may have reached WeCom.
//!
//! `mass_tasks` holds the tasks by id; `mass_entries` maps each covered send to its task; the
//! open ones (creating, waiting for their owners) are indexed in `meta` under `mass_open:`, so
//! that the sender's rounds read those, not every task ever made.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, WriteTx, decode, encode};
use crate::domain::{BotId, ChatId};

/// task id → JSON [`MassTask`].
pub(super) const MASS_TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("mass_tasks");
/// outbox entry id → task id.
pub(super) const MASS_ENTRIES: TableDefinition<u64, u64> = TableDefinition::new("mass_entries");

/// The `meta` prefix of the open-task index.
const OPEN_PREFIX: &str = "mass_open:";

fn open_key(id: u64) -> String {
    format!("{OPEN_PREFIX}{id:020}")
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MassTaskState {
    /// Planned; WeCom has not (knowingly) created it yet. With `create_attempts > 0` it may
    /// have: the next attempt looks for it first.
    Creating,
    /// WeCom created it (`msgid`); the owner has not sent it to every group yet.
    AwaitingConfirmation,
    /// Every group's outcome is known.
    Finished,
    /// WeCom refused to create it, or it was stopped before the owner sent it.
    Failed,
}

/// One group of a task, with the send it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassChat {
    pub entry: u64,
    pub chat: ChatId,
}

/// One mass-send task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassTask {
    pub id: u64,
    /// The app (`wecom-app` bot) that creates it.
    pub bot: BotId,
    /// The owner who sends it (`sender`).
    pub sender: String,
    pub text: String,
    pub chats: Vec<MassChat>,
    /// The broadcast run its sends belong to, if any.
    #[serde(default)]
    pub run: Option<String>,
    pub state: MassTaskState,
    #[serde(default)]
    pub msgid: Option<String>,
    /// Requests made to create it.
    #[serde(default)]
    pub create_attempts: u32,
    pub planned_at: DateTime<Utc>,
    /// When the first request to create it went out (where a lost answer is looked for).
    #[serde(default)]
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// When WeCom created it.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the owner was reminded.
    #[serde(default)]
    pub reminders: Vec<DateTime<Utc>>,
    /// When its results were last read.
    #[serde(default)]
    pub checked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl MassTask {
    /// A task just planned (its id is assigned when it is written).
    pub fn planned(
        bot: BotId,
        sender: String,
        text: String,
        chats: Vec<MassChat>,
        run: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: 0,
            bot,
            sender,
            text,
            chats,
            run,
            state: MassTaskState::Creating,
            msgid: None,
            create_attempts: 0,
            planned_at: now,
            first_attempt_at: None,
            created_at: None,
            reminders: Vec::new(),
            checked_at: None,
            last_error: None,
        }
    }

    /// Whether it still needs work (creating, or waiting for the owner).
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            MassTaskState::Creating | MassTaskState::AwaitingConfirmation
        )
    }
}

impl WriteTx<'_> {
    /// Writes a new task (its id assigned here) and maps its sends to it; returns the id.
    /// A send already in a task is an error: it would go out twice.
    pub fn plan_mass_task(&mut self, mut task: MassTask) -> Result<MassTask, StoreError> {
        for chat in &task.chats {
            if self.mass_entries.get(chat.entry)?.is_some() {
                return Err(StoreError::Corrupt(format!(
                    "send {} is already in a mass-send task",
                    chat.entry
                )));
            }
        }
        task.id = self.mass_tasks.last()?.map_or(1, |(k, _)| k.value() + 1);
        for chat in &task.chats {
            self.mass_entries.insert(chat.entry, task.id)?;
        }
        self.put_mass_task(&task)?;
        Ok(task)
    }

    /// Replaces a task's record (and keeps the open-task index).
    pub fn put_mass_task(&mut self, task: &MassTask) -> Result<(), StoreError> {
        self.mass_tasks.insert(task.id, encode(task)?.as_slice())?;
        if task.is_open() {
            self.meta
                .insert(open_key(task.id).as_str(), [].as_slice())?;
        } else {
            self.meta.remove(open_key(task.id).as_str())?;
        }
        Ok(())
    }

    /// The task a send is in, if any.
    pub fn mass_task_of(&self, entry: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.mass_entries.get(entry)?.map(|v| v.value()))
    }
}

impl Store {
    /// Every task still creating or waiting for its owner, oldest first (read through the
    /// open-task index: closed tasks are not decoded).
    pub fn open_mass_tasks(&self) -> Result<Vec<MassTask>, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(super::META)?;
        let tasks = tx.open_table(MASS_TASKS)?;
        let mut open = Vec::new();
        for entry in meta.range(OPEN_PREFIX..)? {
            let (key, _) = entry?;
            let Some(id) = key.value().strip_prefix(OPEN_PREFIX) else {
                break;
            };
            let Ok(id) = id.parse::<u64>() else {
                continue;
            };
            if let Some(value) = tasks.get(id)? {
                open.push(decode(value.value())?);
            }
        }
        Ok(open)
    }

    /// The newest `limit` tasks, newest first.
    pub fn recent_mass_tasks(&self, limit: usize) -> Result<Vec<MassTask>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MASS_TASKS)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev().take(limit) {
            let (_, value) = entry?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    /// The task a send is in, if any.
    pub fn mass_task_of(&self, entry: u64) -> Result<Option<MassTask>, StoreError> {
        let tx = self.db.begin_read()?;
        let entries = tx.open_table(MASS_ENTRIES)?;
        let Some(id) = entries.get(entry)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let tasks = tx.open_table(MASS_TASKS)?;
        tasks.get(id)?.map(|v| decode(v.value())).transpose()
    }
}

impl WriteTx<'_> {
    /// One send by id.
    pub fn outbox_entry(&self, id: u64) -> Result<Option<super::OutboxEntry>, StoreError> {
        self.outbox.get(id)?.map(|v| decode(v.value())).transpose()
    }
}

/// An unfinished send to a customer group that no task covers yet, as far as planning needs to
/// know it before it is due (read without its message).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnplannedSend {
    pub id: u64,
    pub key: String,
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub not_before: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// `Destination::CustomerGroup`'s field, flattened into the entry.
    #[serde(default)]
    app: Option<String>,
}

impl Store {
    /// The unfinished sends to customer groups that no task covers yet, oldest first. A read:
    /// planning writes only when one of them is due.
    pub fn unplanned_mass_sends(&self) -> Result<Vec<UnplannedSend>, StoreError> {
        let tx = self.db.begin_read()?;
        let pending = tx.open_table(super::outbox::OUTBOX_PENDING)?;
        let outbox = tx.open_table(super::outbox::OUTBOX)?;
        let entries = tx.open_table(MASS_ENTRIES)?;
        let mut out = Vec::new();
        for item in pending.iter()? {
            let id = item?.0.value();
            if entries.get(id)?.is_some() {
                continue;
            }
            let Some(value) = outbox.get(id)? else {
                continue;
            };
            let send: UnplannedSend = decode(value.value())?;
            if send.app.is_some() {
                out.push(send);
            }
        }
        Ok(out)
    }
}
