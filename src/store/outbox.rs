//! The durable outbox: every message the bot sends on its own initiative is written here before
//! it is sent, with an idempotency key (`(job, slot, group)` for broadcasts, the event for
//! posts an event caused), so that planning the same send twice enqueues nothing new and a
//! restart finds every send that had not finished.
//!
//! `outbox` holds the entries by id (ascending = enqueue order), `outbox_keys` maps idempotency
//! keys to ids, and `outbox_pending` indexes the unfinished ones so that a start reads only those.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, WriteTx, decode, encode};
use crate::domain::{ChatId, OutMessage};

pub(super) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
pub(super) const OUTBOX_KEYS: TableDefinition<&str, u64> = TableDefinition::new("outbox_keys");
pub(super) const OUTBOX_PENDING: TableDefinition<u64, ()> = TableDefinition::new("outbox_pending");

/// Where a send stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Not sent yet, or to be retried.
    Pending,
    Delivered,
    /// Gave up after the last attempt, or WeCom refused it for good.
    Failed,
    /// Not sent on purpose (the group was released, the slot was missed too long ago, …).
    Skipped,
}

/// A send to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSend {
    /// Idempotency key: enqueueing the same key again does nothing.
    pub key: String,
    pub chat: Option<ChatId>,
    /// The robot webhook URL (a credential).
    pub url: String,
    pub message: OutMessage,
    /// What the message is (`adoption_greeting`, `welcome`, `morning-report`, …).
    pub purpose: String,
    /// The broadcast run it belongs to, if any.
    pub run: Option<String>,
    /// Not before this time (a spread window, a scheduled slot).
    pub not_before: Option<DateTime<Utc>>,
}

/// One send as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub key: String,
    pub chat: Option<ChatId>,
    pub url: String,
    pub message: OutMessage,
    pub purpose: String,
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub not_before: Option<DateTime<Utc>>,
    pub state: OutboxState,
    /// Requests made for it so far (all pieces, retries included).
    #[serde(default)]
    pub attempts: u32,
    /// Pieces of a split message already delivered (a restart resumes after them).
    #[serde(default)]
    pub pieces_done: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// What an attempt changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub id: u64,
    pub state: OutboxState,
    pub attempts: u32,
    pub pieces_done: u32,
    pub last_error: Option<String>,
}

impl WriteTx<'_> {
    /// Enqueues `send` unless its key is already known; returns the new entry, or `None` for a
    /// key seen before (whatever became of it).
    pub fn enqueue(
        &mut self,
        send: NewSend,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        if self.outbox_keys.get(send.key.as_str())?.is_some() {
            return Ok(None);
        }
        let id = self.outbox.last()?.map_or(1, |(k, _)| k.value() + 1);
        let entry = OutboxEntry {
            id,
            key: send.key,
            chat: send.chat,
            url: send.url,
            message: send.message,
            purpose: send.purpose,
            run: send.run,
            not_before: send.not_before,
            state: OutboxState::Pending,
            attempts: 0,
            pieces_done: 0,
            last_error: None,
            created_at: now,
            updated_at: None,
        };
        self.outbox.insert(id, encode(&entry)?.as_slice())?;
        self.outbox_keys.insert(entry.key.as_str(), id)?;
        self.outbox_pending.insert(id, ())?;
        Ok(Some(entry))
    }

    /// Records the outcome of attempts on an entry; a finished entry leaves the pending index.
    pub fn record_send(
        &mut self,
        outcome: &SendOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(mut entry) = self
            .outbox
            .get(outcome.id)?
            .map(|v| decode::<OutboxEntry>(v.value()))
            .transpose()?
        else {
            return Err(StoreError::Corrupt(format!(
                "no outbox entry {}",
                outcome.id
            )));
        };
        entry.state = outcome.state;
        entry.attempts = outcome.attempts;
        entry.pieces_done = outcome.pieces_done;
        entry.last_error = outcome.last_error.clone();
        entry.updated_at = Some(now);
        self.outbox.insert(entry.id, encode(&entry)?.as_slice())?;
        if entry.state == OutboxState::Pending {
            self.outbox_pending.insert(entry.id, ())?;
        } else {
            self.outbox_pending.remove(entry.id)?;
        }
        Ok(())
    }
}

impl Store {
    /// Every unfinished send, in enqueue order.
    pub fn pending_sends(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let pending = tx.open_table(OUTBOX_PENDING)?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for entry in pending.iter()? {
            let (id, _) = entry?;
            if let Some(v) = outbox.get(id.value())? {
                out.push(decode(v.value())?);
            }
        }
        Ok(out)
    }

    /// One send by id.
    pub fn send(&self, id: u64) -> Result<Option<OutboxEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        outbox.get(id)?.map(|v| decode(v.value())).transpose()
    }

    /// The send enqueued under `key`, if any.
    pub fn send_by_key(&self, key: &str) -> Result<Option<OutboxEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let keys = tx.open_table(OUTBOX_KEYS)?;
        let Some(id) = keys.get(key)?.map(|v| v.value()) else {
            return Ok(None);
        };
        drop(keys);
        let outbox = tx.open_table(OUTBOX)?;
        outbox.get(id)?.map(|v| decode(v.value())).transpose()
    }
}
