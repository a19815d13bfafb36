//! The history of bot-scripts edits made through the admin API (the console's 话术 page): who
//! changed which file when, and the diff. Edits made on disk are not here: the watcher loads
//! them without knowing who made them.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode};

/// id (microseconds since the epoch, made unique) → JSON [`ScriptEdit`].
pub(super) const SCRIPT_EDITS: TableDefinition<u64, &[u8]> = TableDefinition::new("script_edits");

/// One edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptEdit {
    /// Assigned when stored.
    #[serde(default)]
    pub id: u64,
    pub at: DateTime<Utc>,
    /// `operator:NAME` or `admin-token`.
    pub by: String,
    pub file: String,
    pub sha_before: String,
    pub sha: String,
    pub diff: String,
    pub lines_added: usize,
    pub lines_removed: usize,
}

impl Store {
    /// Appends `edit`; returns its id.
    pub fn add_script_edit(&self, edit: &ScriptEdit) -> Result<u64, StoreError> {
        let tx = self.db.begin_write()?;
        let id = {
            let mut table = tx.open_table(SCRIPT_EDITS)?;
            let wanted = edit.at.timestamp_micros().max(0) as u64;
            let last = table.last()?.map_or(0, |(k, _)| k.value());
            let id = wanted.max(last + 1);
            let stored = ScriptEdit { id, ..edit.clone() };
            table.insert(id, encode(&stored)?.as_slice())?;
            id
        };
        tx.commit()?;
        Ok(id)
    }

    /// Edits newest first: of `file` (or all), older than id `before`, at most `limit`.
    pub fn script_edits(
        &self,
        file: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ScriptEdit>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(SCRIPT_EDITS)?;
        let mut out = Vec::new();
        for entry in table.range(..before.unwrap_or(u64::MAX))?.rev() {
            let edit: ScriptEdit = decode(entry?.1.value())?;
            if file.is_none_or(|f| f == edit.file) {
                out.push(edit);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
