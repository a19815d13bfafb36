//! What moderation keeps: each member's standing in each group (warnings, approval, where their
//! clean streak starts), the operator-wide blacklist, and the moderation log — every finding
//! (also in dry-run), report, appeal and pardon, with what was done and how it went.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, WriteTx, decode, encode};
use crate::domain::ChatId;

/// (chat, user) → JSON [`StandingRecord`]. Written only when something changes (a finding, an
/// approval, a pardon), never per message.
pub(super) const MOD_STANDING: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("mod_standing");
/// user → JSON [`BlacklistEntry`].
pub(super) const BLACKLIST: TableDefinition<&str, &[u8]> = TableDefinition::new("blacklist");
/// entry id → JSON [`LogEntry`]. Ids grow with time (microseconds since the epoch, made unique).
pub(super) const MOD_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("mod_log");
/// (chat, entry id): the log of one group.
pub(super) const MOD_LOG_BY_CHAT: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("mod_log_by_chat");
/// (the logged finding's time in microseconds, [`fold_key`] of its group, member, check and
/// action) → (findings folded into it, the last one's time in microseconds). A member repeating
/// the same finding within the notice window ([`crate::runtime::moderation`]'s coalescing) is counted on
/// one row instead of getting a row each: a flooder's hundreds of findings a minute are one
/// fixed-size insert each, not a log row and its index entry (the measured cost of a flood).
pub(super) const MOD_LOG_FOLDS: TableDefinition<(i64, u64), (u64, i64)> =
    TableDefinition::new("mod_log_folds");

/// A stable 64-bit FNV-1a hash of the fields that identify a fold: stored, so it must not change
/// between builds (std's hasher may). With the head's microsecond in the key, two different
/// rows sharing a key would need a hash collision at the same microsecond.
fn fold_key(entry: &LogEntry) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for field in [
        entry.chat_id.as_str(),
        &entry.user_id,
        &entry.check,
        &entry.action,
    ] {
        for byte in field.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A member's standing in one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingRecord {
    /// When they were warned (unix seconds), oldest first; only recent ones are kept.
    #[serde(default)]
    pub warnings: Vec<i64>,
    /// Approved by an admin here: skips content checks.
    #[serde(default)]
    pub approved: bool,
    /// Their message count at their last finding: messages after it are clean.
    #[serde(default)]
    pub clean_from: u64,
}

/// Someone removed for spam, kept out of every adopted group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    pub user_id: String,
    #[serde(default)]
    pub name: String,
    /// The group they were removed from, and why.
    pub chat_id: ChatId,
    pub check: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// One line of the moderation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Assigned when stored.
    #[serde(default)]
    pub id: u64,
    pub at: DateTime<Utc>,
    pub chat_id: ChatId,
    pub user_id: String,
    #[serde(default)]
    pub name: String,
    /// The message's platform id, when there is one.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The message as sent (shortened), and as compared.
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub normalized: String,
    /// The check that fired (`report`, `appeal`, `pardon`, `approve`, `blacklist`, `raid` for
    /// the entries that are not findings).
    pub check: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub evidence: String,
    /// What the rules called for (`log`, `notify`, `delete`, `warn`, `remove`).
    pub action: String,
    /// Nothing was done: the scope is in dry-run.
    #[serde(default)]
    pub dry_run: bool,
    /// The sender was on probation (new here, or anyone untrusted during a raid): the stricter
    /// checks applied. A finding is judged again the same way.
    #[serde(default)]
    pub probation: bool,
    /// What happened (`deleted`, `warned 1/3`, `removed`, `removal unconfirmed`, `admins told`…).
    #[serde(default)]
    pub outcome: Vec<String>,
    /// Who did it, for entries made by people (the reporter, the admin who pardoned).
    #[serde(default)]
    pub by: String,
    /// Findings of the same check and action about the same member folded into this one within
    /// the notice window (each counted toward warnings and removal like this one); filled in
    /// when read.
    #[serde(default)]
    pub repeats: u64,
    /// When the last folded finding happened.
    #[serde(default)]
    pub last_at: Option<DateTime<Utc>>,
    /// An admin's judgement of this finding (误判 or right), once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<super::labels::Review>,
}

/// Which log entries to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub chat_id: Option<ChatId>,
    pub user_id: Option<String>,
    pub check: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries older than this id (the last of the page before).
    pub before: Option<u64>,
    /// At most this many, newest first.
    pub limit: usize,
}

impl LogFilter {
    fn accepts(&self, entry: &LogEntry) -> bool {
        self.user_id.as_ref().is_none_or(|u| *u == entry.user_id)
            && self.check.as_ref().is_none_or(|c| *c == entry.check)
            && self.until.is_none_or(|t| entry.at <= t)
    }
}

/// Entries examined at most per query: a filter matching nothing in a huge log answers in
/// bounded time (with what it found).
const MAX_SCANNED: usize = 200_000;

/// What moderation decided about one event, written with the event's batch: the member's
/// standing, the log entry and, for a removal, the blacklist entry.
#[derive(Debug, Clone)]
pub struct ModerationWrite {
    pub chat: ChatId,
    pub user: String,
    pub standing: Option<StandingRecord>,
    pub entry: LogEntry,
    pub ban: Option<BlacklistEntry>,
    /// The finding repeats one already logged (same member, check and action): it is counted on
    /// that row instead of getting its own.
    pub fold_into: Option<Fold>,
}

/// Where a repeated finding is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fold {
    /// When the finding it repeats was logged.
    pub head: DateTime<Utc>,
}

impl ModerationWrite {
    /// Only a log entry (no standing, no ban).
    pub fn entry(chat: &ChatId, user: &str, entry: LogEntry) -> Self {
        Self {
            chat: chat.clone(),
            user: user.to_owned(),
            standing: None,
            entry,
            ban: None,
            fold_into: None,
        }
    }
}

impl WriteTx<'_> {
    /// Writes what moderation decided (see [`ModerationWrite`]).
    pub fn apply_moderation(&mut self, write: &ModerationWrite) -> Result<(), StoreError> {
        if let Some(record) = &write.standing {
            self.put_standing(&write.chat, &write.user, record)?;
        }
        if let Some(ban) = &write.ban {
            self.blacklist_add(ban)?;
        }
        match write.fold_into {
            Some(fold) => {
                let key = (fold.head.timestamp_micros(), fold_key(&write.entry));
                let repeats = self.mod_log_folds.get(key)?.map_or(0, |v| v.value().0);
                let value = (repeats + 1, write.entry.at.timestamp_micros());
                self.mod_log_folds.insert(key, value)?;
                Ok(())
            }
            None => self.log_moderation(&write.entry).map(drop),
        }
    }

    pub fn standing(&self, chat: &ChatId, user: &str) -> Result<StandingRecord, StoreError> {
        self.mod_standing
            .get((chat.as_str(), user))?
            .map(|v| decode(v.value()))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    pub fn put_standing(
        &mut self,
        chat: &ChatId,
        user: &str,
        record: &StandingRecord,
    ) -> Result<(), StoreError> {
        if *record == StandingRecord::default() {
            self.mod_standing.remove((chat.as_str(), user))?;
        } else {
            self.mod_standing
                .insert((chat.as_str(), user), encode(record)?.as_slice())?;
        }
        Ok(())
    }

    /// Clears `user`'s warnings in every group (a pardon); returns the groups touched.
    pub fn clear_warnings_everywhere(&mut self, user: &str) -> Result<Vec<ChatId>, StoreError> {
        let mut touched = Vec::new();
        for entry in self.mod_standing.iter()? {
            let (key, value) = entry?;
            let (chat, u) = key.value();
            if u == user {
                let record: StandingRecord = decode(value.value())?;
                if !record.warnings.is_empty() {
                    touched.push((ChatId::new(chat), record));
                }
            }
        }
        for (chat, mut record) in touched.iter().cloned() {
            record.warnings.clear();
            self.put_standing(&chat, user, &record)?;
        }
        Ok(touched.into_iter().map(|(c, _)| c).collect())
    }

    pub fn blacklist_add(&mut self, entry: &BlacklistEntry) -> Result<(), StoreError> {
        self.blacklist
            .insert(entry.user_id.as_str(), encode(entry)?.as_slice())?;
        Ok(())
    }

    /// Takes `user` off the blacklist; returns whether they were on it.
    pub fn blacklist_remove(&mut self, user: &str) -> Result<bool, StoreError> {
        Ok(self.blacklist.remove(user)?.is_some())
    }

    /// Appends `entry` to the log; returns its id.
    pub fn log_moderation(&mut self, entry: &LogEntry) -> Result<u64, StoreError> {
        let wanted = entry.at.timestamp_micros().max(0) as u64;
        let last = self.mod_log.last()?.map_or(0, |(k, _)| k.value());
        let id = wanted.max(last + 1);
        let mut stored = entry.clone();
        stored.id = id;
        self.mod_log.insert(id, encode(&stored)?.as_slice())?;
        self.mod_log_by_chat
            .insert((entry.chat_id.as_str(), id), ())?;
        Ok(id)
    }
}

impl Store {
    pub fn standing(&self, chat: &ChatId, user: &str) -> Result<StandingRecord, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MOD_STANDING)?;
        table
            .get((chat.as_str(), user))?
            .map(|v| decode(v.value()))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Every member trusted in a group (approved: content checks skip them), by group.
    pub fn approved_members(&self) -> Result<Vec<(ChatId, String)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(MOD_STANDING)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let standing: StandingRecord = decode(value.value())?;
            if standing.approved {
                let (chat, user) = key.value();
                out.push((ChatId::new(chat), user.to_owned()));
            }
        }
        Ok(out)
    }

    /// The whole blacklist, by user id.
    pub fn blacklist(&self) -> Result<Vec<BlacklistEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(BLACKLIST)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Log entries matching `filter`, newest first.
    pub fn moderation_log(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StoreError> {
        let tx = self.db.begin_read()?;
        let log = tx.open_table(MOD_LOG)?;
        let folds = tx.open_table(MOD_LOG_FOLDS)?;
        let since = filter
            .since
            .map_or(0, |t| t.timestamp_micros().max(0) as u64);
        let mut out = Vec::new();
        let mut take = |mut entry: LogEntry| -> Result<bool, StoreError> {
            if filter.accepts(&entry) {
                let key = (entry.at.timestamp_micros(), fold_key(&entry));
                if let Some(fold) = folds.get(key)? {
                    let (repeats, last) = fold.value();
                    entry.repeats = repeats;
                    entry.last_at = DateTime::from_timestamp_micros(last);
                }
                out.push(entry);
            }
            Ok(out.len() < filter.limit)
        };
        match &filter.chat_id {
            Some(chat) => {
                let index = tx.open_table(MOD_LOG_BY_CHAT)?;
                let until = filter.before.map_or(u64::MAX, |b| b.saturating_sub(1));
                let range = index.range((chat.as_str(), since)..=(chat.as_str(), until))?;
                for item in range.rev().take(MAX_SCANNED) {
                    let id = item?.0.value().1;
                    if let Some(value) = log.get(id)?
                        && !take(decode(value.value())?)?
                    {
                        break;
                    }
                }
            }
            None => {
                let until = filter.before.map_or(u64::MAX, |b| b.saturating_sub(1));
                for item in log.range(since..=until)?.rev().take(MAX_SCANNED) {
                    if !take(decode(item?.1.value())?)? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(chat: &str, user: &str, check: &str, minute: u32) -> LogEntry {
        LogEntry {
            id: 0,
            at: Utc.with_ymd_and_hms(2026, 11, 23, 9, minute, 0).unwrap(),
            chat_id: ChatId::new(chat),
            user_id: user.into(),
            name: String::new(),
            message_id: None,
            text: "刷单".into(),
            normalized: "刷单".into(),
            check: check.into(),
            kind: "words".into(),
            reason: "广告".into(),
            evidence: "刷单".into(),
            action: "warn".into(),
            dry_run: false,
            probation: false,
            outcome: vec!["deleted".into()],
            by: String::new(),
            repeats: 0,
            last_at: None,
            review: None,
        }
    }

    #[test]
    fn repeats_are_counted_on_the_row_they_fold_into() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let head = entry("g1", "u1", "flood", 1);
        let write = |entry: LogEntry, fold_into| ModerationWrite {
            fold_into,
            ..ModerationWrite::entry(&ChatId::new("g1"), "u1", entry)
        };
        store
            .write(|tx| {
                tx.apply_moderation(&write(head.clone(), None))?;
                // Another member's finding at the same instant is a row of its own.
                tx.apply_moderation(&write(entry("g1", "u2", "flood", 1), None))?;
                for minute in 2..=4_u32 {
                    let fold = Fold { head: head.at };
                    tx.apply_moderation(&write(entry("g1", "u1", "flood", minute), Some(fold)))?;
                }
                Ok(())
            })
            .unwrap();
        let log = store
            .moderation_log(&LogFilter {
                before: None,
                limit: 10,
                ..LogFilter::default()
            })
            .unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        let u1 = log.iter().find(|e| e.user_id == "u1").unwrap();
        assert_eq!(u1.repeats, 3);
        assert_eq!(u1.last_at, Some(entry("g1", "u1", "flood", 4).at));
        let u2 = log.iter().find(|e| e.user_id == "u2").unwrap();
        assert_eq!((u2.repeats, u2.last_at), (0, None));
    }

    #[test]
    fn the_log_is_filtered_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|tx| {
                tx.log_moderation(&entry("g1", "u1", "ad-words", 1))?;
                tx.log_moderation(&entry("g2", "u1", "contacts", 2))?;
                tx.log_moderation(&entry("g1", "u2", "ad-words", 3))?;
                // Same instant: still a distinct entry.
                tx.log_moderation(&entry("g1", "u2", "ad-words", 3))
            })
            .unwrap();
        let read = |filter: LogFilter| -> Vec<(String, String, u32)> {
            store
                .moderation_log(&LogFilter {
                    before: None,
                    limit: 10,
                    ..filter
                })
                .unwrap()
                .into_iter()
                .map(|e| {
                    use chrono::Timelike;
                    (e.chat_id.to_string(), e.user_id, e.at.minute())
                })
                .collect()
        };
        assert_eq!(read(LogFilter::default()).len(), 4);
        assert_eq!(read(LogFilter::default())[0].2, 3, "newest first");
        let g1 = read(LogFilter {
            chat_id: Some(ChatId::new("g1")),
            ..LogFilter::default()
        });
        assert_eq!(g1.len(), 3);
        let u1 = read(LogFilter {
            user_id: Some("u1".into()),
            ..LogFilter::default()
        });
        assert_eq!(
            u1,
            vec![("g2".into(), "u1".into(), 2), ("g1".into(), "u1".into(), 1)]
        );
        let contacts = read(LogFilter {
            check: Some("contacts".into()),
            ..LogFilter::default()
        });
        assert_eq!(contacts.len(), 1);
        let window = read(LogFilter {
            since: Some(Utc.with_ymd_and_hms(2026, 11, 23, 9, 2, 0).unwrap()),
            until: Some(Utc.with_ymd_and_hms(2026, 11, 23, 9, 2, 30).unwrap()),
            ..LogFilter::default()
        });
        assert_eq!(window, vec![("g2".into(), "u1".into(), 2)]);
        let limited = store
            .moderation_log(&LogFilter {
                before: None,
                limit: 2,
                ..LogFilter::default()
            })
            .unwrap();
        assert_eq!(limited.len(), 2);
    }

    #[test]
    fn standing_and_blacklist_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let chat = ChatId::new("g1");
        let record = StandingRecord {
            warnings: vec![1, 2],
            approved: false,
            clean_from: 7,
        };
        store
            .write(|tx| {
                tx.put_standing(&chat, "u1", &record)?;
                tx.put_standing(&ChatId::new("g2"), "u1", &record)?;
                tx.blacklist_add(&BlacklistEntry {
                    user_id: "u1".into(),
                    name: "广告哥".into(),
                    chat_id: chat.clone(),
                    check: "campaign".into(),
                    reason: "串群广告".into(),
                    at: Utc::now(),
                })
            })
            .unwrap();
        assert_eq!(store.standing(&chat, "u1").unwrap(), record);
        assert_eq!(
            store.standing(&chat, "u2").unwrap(),
            StandingRecord::default()
        );
        assert_eq!(store.blacklist().unwrap().len(), 1);
        let touched = store
            .write(|tx| {
                let touched = tx.clear_warnings_everywhere("u1")?;
                tx.blacklist_remove("u1")?;
                Ok(touched)
            })
            .unwrap();
        assert_eq!(touched.len(), 2);
        assert!(store.standing(&chat, "u1").unwrap().warnings.is_empty());
        assert_eq!(store.standing(&chat, "u1").unwrap().clean_from, 7);
        assert!(store.blacklist().unwrap().is_empty());
    }
}
