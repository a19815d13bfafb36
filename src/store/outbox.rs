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
use crate::domain::{BotId, ChatId, OutMessage};

pub(super) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
pub(super) const OUTBOX_KEYS: TableDefinition<&str, u64> = TableDefinition::new("outbox_keys");
pub(super) const OUTBOX_PENDING: TableDefinition<u64, ()> = TableDefinition::new("outbox_pending");
/// (run id, entry id) → (): the sends of one broadcast run.
pub(super) const OUTBOX_BY_RUN: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("outbox_by_run");
/// (chat id, entry id) → (): the sends to one group (entries enqueued since this index exists).
pub(super) const OUTBOX_BY_CHAT: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("outbox_by_chat");
/// run id → JSON [`RunRecord`].
pub(super) const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");

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
    /// No answer came in time: it may have arrived or not, and was not sent again
    /// (`wecom.retry_after_timeout` is off).
    TimedOut,
    /// In a mass-send task WeCom created for a customer group's owner, who has not sent it yet
    /// (see `mass_tasks`): not delivered until WeCom says the owner sent it.
    AwaitingConfirmation,
}

/// Where a send goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Destination {
    /// A WeCom group robot's webhook URL (a credential).
    Webhook { url: String },
    /// A private message to `user_id` through this bot account of the entry's (OneBot) bot (the
    /// entry's group is what it is about). Before `Account`: read untagged, a private
    /// destination would otherwise be taken for the group's.
    Private { account: String, user_id: String },
    /// The entry's group, through this bot account of the entry's (OneBot) bot.
    Account { account: String },
    /// The entry's group, through the long connection of the entry's bot, a WeCom AI bot
    /// (`aibot_send_msg`); `aibot` is that bot's id, for the reader of a receipt.
    AiBot { aibot: String },
    /// The entry's group, a WeCom customer group, in a mass-send task of the entry's bot (a
    /// self-built app) that the group's owner confirms; `app` is that bot's id.
    CustomerGroup { app: String },
}

impl Destination {
    /// The destination of `group`: a customer group's mass-send tasks, its AI bot's link, its
    /// bot account, else its robot's webhook URL (unchecked).
    pub fn of_group(group: &super::GroupRecord) -> Option<Destination> {
        if group.customer {
            return Some(Destination::CustomerGroup {
                app: group.bot.to_string(),
            });
        }
        if group.aibot {
            return Some(Destination::AiBot {
                aibot: group.bot.to_string(),
            });
        }
        match (&group.account, &group.webhook_url) {
            (Some(account), _) => Some(Destination::Account {
                account: account.clone(),
            }),
            (None, Some(url)) => Some(Destination::Webhook { url: url.clone() }),
            (None, None) => None,
        }
    }
}

/// A send to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSend {
    /// Idempotency key: enqueueing the same key again does nothing.
    pub key: String,
    pub chat: Option<ChatId>,
    /// The bot whose group it goes to, for the per-bot limit.
    pub bot: Option<BotId>,
    pub to: Destination,
    pub message: OutMessage,
    /// What the message is (`adoption_greeting`, `welcome`, `morning-report`, …).
    pub purpose: String,
    /// The broadcast run it belongs to, if any.
    pub run: Option<String>,
    /// Not before this time (a spread window, a scheduled slot).
    pub not_before: Option<DateTime<Utc>>,
    /// Record the send as skipped, with this reason, instead of sending it (a slot missed too
    /// long ago, quiet hours): it is planned and counted, never silently dropped.
    pub skip: Option<String>,
}

/// One broadcast run: a job's slot planned for its groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `job@slot`, the same for every planning of that slot (restarts, manual runs).
    pub run_id: String,
    pub job: String,
    pub slot: DateTime<Utc>,
    /// `schedule`, `catch_up`, `missed` or `manual`: how the run was first planned.
    pub trigger: String,
    pub planned_at: DateTime<Utc>,
}

/// Which receipts of a run to return: those in `state` (all if `None`), after send `after`, at
/// most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptPage {
    pub state: Option<OutboxState>,
    pub after: Option<u64>,
    pub limit: usize,
}

/// The groups a run is sent again to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResendTargets {
    pub run: RunRecord,
    /// Each group that did not get the run, with how many sends of it the group has had.
    pub groups: Vec<(ChatId, usize)>,
}

/// A send's outcome as a run's receipt shows it: decoded from the stored entry without its
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SendReceipt {
    pub id: u64,
    pub chat: Option<ChatId>,
    pub state: OutboxState,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it was planned (every send of one planning has the same time).
    pub created_at: DateTime<Utc>,
}

/// How many of a run's sends stand where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub planned: usize,
    pub pending: usize,
    pub delivered: usize,
    pub failed: usize,
    pub skipped: usize,
    pub timed_out: usize,
    pub awaiting_confirmation: usize,
}

impl RunCounts {
    fn add(&mut self, state: OutboxState) {
        self.planned += 1;
        *match state {
            OutboxState::Pending => &mut self.pending,
            OutboxState::Delivered => &mut self.delivered,
            OutboxState::Failed => &mut self.failed,
            OutboxState::Skipped => &mut self.skipped,
            OutboxState::TimedOut => &mut self.timed_out,
            OutboxState::AwaitingConfirmation => &mut self.awaiting_confirmation,
        } += 1;
    }
}

/// A run, its counts and one page of its receipts.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub record: RunRecord,
    pub counts: RunCounts,
    pub receipts: Vec<SendReceipt>,
    /// Where the next page starts (`after`), when there are more receipts than the page held.
    pub next: Option<u64>,
}

/// One send as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub key: String,
    pub chat: Option<ChatId>,
    #[serde(default)]
    pub bot: Option<BotId>,
    /// Stored as `url` or `account` beside the other fields (entries written before accounts
    /// existed have a `url`).
    #[serde(flatten)]
    pub to: Destination,
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
        let skipped = send.skip.is_some();
        let entry = OutboxEntry {
            id,
            key: send.key,
            chat: send.chat,
            bot: send.bot,
            to: send.to,
            message: send.message,
            purpose: send.purpose,
            run: send.run,
            not_before: send.not_before,
            state: if skipped {
                OutboxState::Skipped
            } else {
                OutboxState::Pending
            },
            attempts: 0,
            pieces_done: 0,
            last_error: send.skip,
            created_at: now,
            updated_at: None,
        };
        self.outbox.insert(id, encode(&entry)?.as_slice())?;
        self.outbox_keys.insert(entry.key.as_str(), id)?;
        if let Some(run) = &entry.run {
            self.outbox_by_run.insert((run.as_str(), id), ())?;
        }
        if let Some(chat) = &entry.chat {
            self.outbox_by_chat.insert((chat.as_str(), id), ())?;
        }
        if skipped {
            // Counted, never sent.
            return Ok(None);
        }
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
        if outcome.state == OutboxState::Delivered
            && entry.state != OutboxState::Delivered
            && let Some(chat) = &entry.chat
        {
            self.note_post(chat, &entry.purpose, now)?;
        }
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

fn mark_key(job: &str) -> String {
    format!("schedule_mark:{job}")
}

impl WriteTx<'_> {
    /// Remembers that `job`'s slots up to `slot` have been planned.
    pub fn set_schedule_mark(&mut self, job: &str, slot: DateTime<Utc>) -> Result<(), StoreError> {
        let secs = slot.timestamp().to_be_bytes();
        self.meta.insert(mark_key(job).as_str(), secs.as_slice())?;
        Ok(())
    }

    /// Records a run unless it is known; returns whether it is new.
    pub fn put_run_if_new(&mut self, run: &RunRecord) -> Result<bool, StoreError> {
        if self.runs.get(run.run_id.as_str())?.is_some() {
            return Ok(false);
        }
        self.runs
            .insert(run.run_id.as_str(), encode(run)?.as_slice())?;
        Ok(true)
    }
}

impl Store {
    /// Every broadcast run planned here (of `job`, or of all jobs), newest planning first.
    pub fn runs(&self, job: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(RUNS)?;
        let mut runs = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            let run: RunRecord = decode(value.value())?;
            if job.is_none_or(|job| run.job == job) {
                runs.push(run);
            }
        }
        runs.sort_by(|a, b| {
            b.planned_at
                .cmp(&a.planned_at)
                .then_with(|| b.run_id.cmp(&a.run_id))
        });
        Ok(runs)
    }

    /// The last slot of `job` that was planned, if the job ever ran here.
    pub fn schedule_mark(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(super::META)?;
        Ok(meta.get(mark_key(job).as_str())?.and_then(|v| {
            let bytes: [u8; 8] = v.value().try_into().ok()?;
            DateTime::from_timestamp(i64::from_be_bytes(bytes), 0)
        }))
    }

    /// Calls `f` with each receipt of `run_id`'s sends, in enqueue order, as it is read (only
    /// the receipts' fields are decoded); the run, or `None` for an unknown one.
    fn each_receipt_of_run(
        &self,
        run_id: &str,
        mut f: impl FnMut(SendReceipt),
    ) -> Result<Option<RunRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let runs = tx.open_table(RUNS)?;
        let Some(record) = runs
            .get(run_id)?
            .map(|v| decode::<RunRecord>(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let by_run = tx.open_table(OUTBOX_BY_RUN)?;
        let outbox = tx.open_table(OUTBOX)?;
        for item in by_run.range((run_id, 0)..=(run_id, u64::MAX))? {
            let (_, id) = item?.0.value();
            if let Some(v) = outbox.get(id)? {
                f(decode(v.value())?);
            }
        }
        Ok(Some(record))
    }

    /// The groups a resend of `run_id` goes to — those none of whose sends of the run was
    /// delivered or is still pending (failed, skipped, timed out) — each with how many sends of
    /// the run it has had; `None` for an unknown run.
    pub fn resend_targets(&self, run_id: &str) -> Result<Option<ResendTargets>, StoreError> {
        // Per group: sends so far, and whether one of them was delivered or still may be.
        let mut groups: std::collections::BTreeMap<ChatId, (usize, bool)> = Default::default();
        let record = self.each_receipt_of_run(run_id, |receipt| {
            if let Some(chat) = receipt.chat {
                let group = groups.entry(chat).or_default();
                group.0 += 1;
                group.1 |= matches!(
                    receipt.state,
                    OutboxState::Delivered
                        | OutboxState::Pending
                        | OutboxState::AwaitingConfirmation
                );
            }
        })?;
        Ok(record.map(|run| ResendTargets {
            run,
            groups: groups
                .into_iter()
                .filter(|(_, (_, settled))| !settled)
                .map(|(chat, (sends, _))| (chat, sends))
                .collect(),
        }))
    }

    /// A run, how many of its sends stand where, and one page of their receipts (in enqueue
    /// order). Streamed: a run of 100,000 groups is counted without holding its sends, and only
    /// the receipts' fields are decoded.
    pub fn run_report(
        &self,
        run_id: &str,
        page: &ReceiptPage,
    ) -> Result<Option<RunReport>, StoreError> {
        let mut counts = RunCounts::default();
        let mut receipts = Vec::new();
        let mut next = None;
        let record = self.each_receipt_of_run(run_id, |receipt| {
            counts.add(receipt.state);
            let wanted = page.after.is_none_or(|after| receipt.id > after)
                && page.state.is_none_or(|state| state == receipt.state);
            if !wanted {
                return;
            }
            if receipts.len() < page.limit {
                receipts.push(receipt);
            } else if next.is_none() {
                next = receipts.last().map(|r: &SendReceipt| r.id);
            }
        })?;
        Ok(record.map(|record| RunReport {
            record,
            counts,
            receipts,
            next,
        }))
    }

    /// The last `limit` sends to `chat`, newest first.
    pub fn sends_to(
        &self,
        chat: &ChatId,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let by_chat = tx.open_table(OUTBOX_BY_CHAT)?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut sends = Vec::new();
        let until = before.map_or(u64::MAX, |b| b.saturating_sub(1));
        let range = by_chat.range((chat.as_str(), 0)..=(chat.as_str(), until))?;
        for item in range.rev().take(limit) {
            let (key, _) = item?;
            let (_, id) = key.value();
            if let Some(v) = outbox.get(id)? {
                sends.push(decode(v.value())?);
            }
        }
        Ok(sends)
    }

    /// Every unfinished send, in enqueue order.
    pub fn pending_sends(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = Vec::new();
        self.each_pending_send(|entry| out.push(entry))?;
        Ok(out)
    }

    /// Calls `f` with each unfinished send, oldest first, as it is read (not collected); returns
    /// how many.
    pub fn each_pending_send(&self, mut f: impl FnMut(OutboxEntry)) -> Result<usize, StoreError> {
        let tx = self.db.begin_read()?;
        let pending = tx.open_table(OUTBOX_PENDING)?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut count = 0;
        for entry in pending.iter()? {
            let (id, _) = entry?;
            if let Some(v) = outbox.get(id.value())? {
                f(decode(v.value())?);
                count += 1;
            }
        }
        Ok(count)
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
