//! What admins taught moderation: a finding marked wrong (误判: the message was ordinary) or
//! right (it was spam), kept as a labelled message — the operator's own samples, beside the
//! project's corpus, for the learned layer to train on. Keyed by the log entry they judge, so
//! judging again replaces the label rather than adding a second one.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::moderation::{LogEntry, MOD_LOG};
use super::{Store, StoreError, decode, encode};
use crate::domain::ChatId;

/// log entry id → JSON [`Label`].
pub(super) const MOD_LABELS: TableDefinition<u64, &[u8]> = TableDefinition::new("mod_labels");

/// Log entries that are not findings, and cannot be judged right or wrong.
const NOT_FINDINGS: [&str; 7] = [
    "report",
    "appeal",
    "pardon",
    "approve",
    "unapprove",
    "blacklist",
    "raid",
];

/// An admin's judgement of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// 误判: the message was ordinary.
    Wrong,
    /// The finding was right: the message was spam.
    Right,
}

/// Who judged a finding, how, and when (kept on the log entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub verdict: Verdict,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A labelled message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The log entry judged.
    pub entry_id: u64,
    /// `spam` or `ham`.
    pub label: String,
    pub text: String,
    pub normalized: String,
    pub chat_id: ChatId,
    /// The check that fired.
    pub check: String,
    /// The sender was on probation when the finding was made (the newcomers' checks applied).
    #[serde(default)]
    pub probation: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Why a finding could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no moderation log entry {0}")]
    NoSuchEntry(u64),
    #[error("log entry {0} is a {1}, not a finding: only findings are judged")]
    NotAFinding(u64, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LogEntry {
    /// Whether the entry is a check's finding (not a report, an appeal, a pardon, …): only
    /// findings are judged right or wrong.
    pub fn is_finding(&self) -> bool {
        !NOT_FINDINGS.contains(&self.check.as_str())
    }
}

impl Store {
    /// Records `review` on log entry `id` and keeps its message as a label (`ham` for a wrong
    /// finding, `spam` for a right one), in one transaction; answers the entry as it is now.
    pub fn review_finding(&self, id: u64, review: &Review) -> Result<LogEntry, ReviewError> {
        let tx = self.db.begin_write().map_err(StoreError::from)?;
        let entry = {
            let mut log = tx.open_table(MOD_LOG).map_err(StoreError::from)?;
            let mut entry: LogEntry = match log.get(id).map_err(StoreError::from)? {
                Some(value) => decode(value.value())?,
                None => return Err(ReviewError::NoSuchEntry(id)),
            };
            if !entry.is_finding() {
                return Err(ReviewError::NotAFinding(id, entry.check));
            }
            entry.review = Some(review.clone());
            log.insert(id, encode(&entry)?.as_slice())
                .map_err(StoreError::from)?;
            let label = Label {
                entry_id: id,
                label: match review.verdict {
                    Verdict::Wrong => "ham",
                    Verdict::Right => "spam",
                }
                .to_owned(),
                text: entry.text.clone(),
                normalized: entry.normalized.clone(),
                chat_id: entry.chat_id.clone(),
                check: entry.check.clone(),
                probation: entry.probation,
                by: review.by.clone(),
                at: review.at,
            };
            let mut labels = tx.open_table(MOD_LABELS).map_err(StoreError::from)?;
            labels
                .insert(id, encode(&label)?.as_slice())
                .map_err(StoreError::from)?;
            entry
        };
        tx.commit().map_err(StoreError::from)?;
        Ok(entry)
    }

    /// Every label, oldest finding first.
    pub fn labels(&self) -> Result<Vec<Label>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MOD_LABELS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(store: &Store, check: &str) -> u64 {
        let entry: LogEntry = serde_json::from_value(serde_json::json!({
            "at": "2026-12-06T09:00:00Z", "chat_id": "g", "user_id": "u", "text": "加我薇信",
            "normalized": "加我微信", "check": check, "action": "warn",
        }))
        .unwrap();
        store.write(|tx| tx.log_moderation(&entry)).unwrap()
    }

    fn review(verdict: Verdict) -> Review {
        Review {
            verdict,
            by: "operator:wang".into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn a_judged_finding_keeps_one_label_and_other_entries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let finding = logged(&store, "ad-words");
        let judged = store
            .review_finding(finding, &review(Verdict::Wrong))
            .unwrap();
        assert_eq!(judged.review.unwrap().verdict, Verdict::Wrong);
        assert_eq!(store.labels().unwrap()[0].label, "ham");
        // Judged again: the label is replaced, not doubled.
        store
            .review_finding(finding, &review(Verdict::Right))
            .unwrap();
        let labels = store.labels().unwrap();
        assert_eq!(labels.len(), 1);
        assert_eq!(
            (labels[0].label.as_str(), labels[0].text.as_str()),
            ("spam", "加我薇信")
        );

        let report = logged(&store, "report");
        assert!(matches!(
            store.review_finding(report, &review(Verdict::Wrong)),
            Err(ReviewError::NotAFinding(..))
        ));
        assert!(matches!(
            store.review_finding(1, &review(Verdict::Wrong)),
            Err(ReviewError::NoSuchEntry(1))
        ));
        assert_eq!(store.labels().unwrap().len(), 1);
    }
}
