//! The audit trail: every change made through the admin API (and, later, the console), with who
//! made it, when, what was asked (secrets redacted) and the group's settings before and after.
//! Appended in transactions of their own, keyed by time; read newest first, a page at a time.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode};

/// id (microseconds since the epoch, made unique) → the entry (JSON).
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// One change, as the audit page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Set by the store: the time in microseconds, unique.
    #[serde(default)]
    pub id: u64,
    pub at: DateTime<Utc>,
    /// Who: `admin-token` (automation), `operator:NAME`, `cli`.
    pub actor: String,
    /// `PUT /api/v1/groups/g1/tags`, `operator add wang`.
    pub action: String,
    /// The answer's HTTP status (0 for a change made outside HTTP).
    pub status: u16,
    /// What was asked (the request's JSON, secrets replaced by `***`), if anything.
    #[serde(default)]
    pub request: Option<serde_json::Value>,
    /// The group's settings before and after, when the change touched a group's.
    #[serde(default)]
    pub before: Option<serde_json::Value>,
    #[serde(default)]
    pub after: Option<serde_json::Value>,
}

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Part of the action (`tags`, `PUT /api/v1/scripts`), any case.
    pub action: Option<String>,
    /// Only entries older than this id (the last of the page before).
    pub before: Option<u64>,
    /// At most this many, newest first.
    pub limit: usize,
}

impl Store {
    /// Appends `entry`, giving it a unique id from its time; returns the id.
    pub fn audit(&self, entry: &AuditEntry) -> Result<u64, StoreError> {
        let tx = self.db.begin_write()?;
        let id = {
            let mut table = tx.open_table(AUDIT)?;
            let mut id = entry.at.timestamp_micros().max(0) as u64;
            let last = table.last()?.map(|(k, _)| k.value());
            if let Some(last) = last.filter(|&last| last >= id) {
                id = last + 1;
            }
            let stored = AuditEntry {
                id,
                ..entry.clone()
            };
            let bytes =
                serde_json::to_vec(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            table.insert(id, bytes.as_slice())?;
            id
        };
        tx.commit()?;
        Ok(id)
    }

    /// Entries matching `filter`, newest first.
    pub fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        let upper = filter.before.unwrap_or(u64::MAX);
        for row in table.range(..upper)?.rev() {
            let (_, value) = row?;
            let entry: AuditEntry = decode(value.value())?;
            let action = filter.action.as_ref().map(|a| a.to_lowercase());
            if filter.actor.as_ref().is_none_or(|a| *a == entry.actor)
                && action
                    .as_ref()
                    .is_none_or(|a| entry.action.to_lowercase().contains(a.as_str()))
            {
                out.push(entry);
                if out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_newest_first_a_page_at_a_time_with_unique_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let at = Utc::now();
        let entry = |actor: &str, action: &str| AuditEntry {
            id: 0,
            at,
            actor: actor.into(),
            action: action.into(),
            status: 200,
            request: None,
            before: None,
            after: None,
        };
        // The same instant three times: distinct ids, in order.
        let a = store.audit(&entry("admin-token", "PUT a")).unwrap();
        let b = store.audit(&entry("cli", "operator add wang")).unwrap();
        let c = store.audit(&entry("admin-token", "PUT c")).unwrap();
        assert!(a < b && b < c);
        let all = store
            .audit_log(&AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap();
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["PUT c", "operator add wang", "PUT a"]);
        let page = store
            .audit_log(&AuditFilter {
                actor: Some("admin-token".into()),
                before: Some(c),
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].action, "PUT a");
        let by_action = store
            .audit_log(&AuditFilter {
                action: Some("OPERATOR".into()),
                limit: 10,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(by_action.len(), 1);
        assert_eq!(by_action[0].action, "operator add wang");
    }
}
