//! What the console's overview reads at a glance, without visiting every group: messages per
//! local day over all groups (a total kept beside each group's daily counter), and the sends of
//! the last hours by where they stand.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::outbox::{OUTBOX, OUTBOX_PENDING, OutboxState};
use super::{DAILY, META, Store, StoreError, decode, local_day};
use crate::domain::ChatId;

/// Messages of every group by local day (`YYYY-MM-DD`).
pub(super) const DAY_TOTALS: TableDefinition<&str, u64> = TableDefinition::new("day_totals");

/// Set once the day totals were filled from the per-group counters (stores made before them).
const TOTALS_BUILT: &str = "day_totals_built";

/// Fills [`DAY_TOTALS`] from the per-group daily counters, once.
pub(super) fn build_totals_if_missing(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META)?;
    if meta.get(TOTALS_BUILT)?.is_some() {
        return Ok(());
    }
    let daily = tx.open_table(DAILY)?;
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    for entry in daily.iter()? {
        let (key, value) = entry?;
        let (_, day) = key.value();
        *totals.entry(day.to_owned()).or_default() += value.value().0;
    }
    let mut table = tx.open_table(DAY_TOTALS)?;
    for (day, messages) in totals {
        table.insert(day.as_str(), messages)?;
    }
    meta.insert(TOTALS_BUILT, [1u8].as_slice())?;
    Ok(())
}

/// A send as the overview counts it (decoded without its message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendSummary {
    pub id: u64,
    pub chat: Option<ChatId>,
    pub purpose: String,
    pub state: OutboxState,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub run: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// The sends planned since a time: how many stand where, and the newest that failed or timed
/// out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecentSends {
    pub delivered: u64,
    pub pending: u64,
    pub failed: u64,
    pub skipped: u64,
    pub timed_out: u64,
    /// In customer groups' mass-send tasks, not sent by their owners yet.
    pub awaiting_confirmation: u64,
    /// Failed and timed-out sends, newest first, at most the number asked for.
    pub problems: Vec<SendSummary>,
}

/// The sends not finished yet: how many, and since when the oldest waits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PendingSends {
    pub count: u64,
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// The oldest that may go now (not held for a later time), and since when.
    pub oldest_due_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Messages of all groups on each of the `days` local days up to `now`, oldest first.
    pub fn message_totals(
        &self,
        now: DateTime<Utc>,
        days: u32,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(DAY_TOTALS)?;
        (0..i64::from(days))
            .rev()
            .map(|back| {
                let day = local_day(now - chrono::Duration::days(back));
                let messages = table.get(day.as_str())?.map_or(0, |v| v.value());
                Ok((day, messages))
            })
            .collect()
    }

    /// The sends enqueued at or after `since`, counted by state, with up to `problems` of the
    /// failed and timed-out ones. Reads back from the newest send and stops at the first older
    /// one (ids grow with enqueue time).
    pub fn sends_since(
        &self,
        since: DateTime<Utc>,
        problems: usize,
    ) -> Result<RecentSends, StoreError> {
        let tx = self.db.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut out = RecentSends::default();
        for entry in outbox.iter()?.rev() {
            let (_, value) = entry?;
            let send: SendSummary = decode(value.value())?;
            if send.created_at < since {
                break;
            }
            let counter = match send.state {
                OutboxState::Delivered => &mut out.delivered,
                OutboxState::Pending => &mut out.pending,
                OutboxState::Failed => &mut out.failed,
                OutboxState::Skipped => &mut out.skipped,
                OutboxState::TimedOut => &mut out.timed_out,
                OutboxState::AwaitingConfirmation => &mut out.awaiting_confirmation,
            };
            *counter += 1;
            let problem = matches!(send.state, OutboxState::Failed | OutboxState::TimedOut);
            if problem && out.problems.len() < problems {
                out.problems.push(send);
            }
        }
        Ok(out)
    }

    /// How many sends wait, and the oldest of them (by enqueue time, and of those due by `now`).
    pub fn pending_summary(&self, now: DateTime<Utc>) -> Result<PendingSends, StoreError> {
        #[derive(Deserialize)]
        struct Times {
            created_at: DateTime<Utc>,
            #[serde(default)]
            not_before: Option<DateTime<Utc>>,
        }
        let tx = self.db.begin_read()?;
        let pending = tx.open_table(OUTBOX_PENDING)?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut out = PendingSends::default();
        for entry in pending.iter()? {
            let (id, _) = entry?;
            let Some(value) = outbox.get(id.value())? else {
                continue;
            };
            let times: Times = decode(value.value())?;
            out.count += 1;
            out.oldest_created_at.get_or_insert(times.created_at);
            let due = times.not_before.unwrap_or(times.created_at);
            if due <= now && out.oldest_due_at.is_none_or(|oldest| due < oldest) {
                out.oldest_due_at = Some(due);
            }
        }
        Ok(out)
    }
}
