//! Red-envelope tests as stored: each test (where, how much, how many shares, the window, the
//! seed its split and claim phrase come from, and its result once finished) and its claims, one
//! row per share taken — the payout ledger.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, WriteTx, decode, encode};
use crate::domain::ChatId;
use crate::domain::red_envelope::Results;

/// test id → JSON [`TestRecord`].
pub(super) const ENVELOPE_TESTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("envelope_tests");
/// (test id, share index) → JSON [`ClaimRecord`].
pub(super) const ENVELOPE_CLAIMS: TableDefinition<(&str, u32), &[u8]> =
    TableDefinition::new("envelope_claims");
/// (chat, test id): the tests of a group.
pub(super) const ENVELOPE_BY_CHAT: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("envelope_by_chat");
/// (start in unix microseconds, test id): every test in the order they started.
pub(super) const ENVELOPE_BY_START: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("envelope_by_start");

/// Set once [`ENVELOPE_BY_START`] was filled from the tests (stores made before it).
const BY_START_BUILT: &str = "envelope_by_start_built";

/// Fills [`ENVELOPE_BY_START`] from the tests, once.
pub(super) fn build_by_start_if_missing(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = tx.open_table(super::META)?;
    if meta.get(BY_START_BUILT)?.is_some() {
        return Ok(());
    }
    let tests = tx.open_table(ENVELOPE_TESTS)?;
    let mut by_start = tx.open_table(ENVELOPE_BY_START)?;
    for entry in tests.iter()? {
        let test: TestRecord = decode(entry?.1.value())?;
        by_start.insert((test.started_at.timestamp_micros(), test.id.as_str()), ())?;
    }
    meta.insert(BY_START_BUILT, [1u8].as_slice())?;
    Ok(())
}

/// Where a test is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestState {
    Running,
    Finished,
    /// Stopped before its window ended (by an admin, or its group released): claims are
    /// answered as cancelled and there are no results.
    Cancelled,
}

impl TestState {
    /// As the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TestState::Running => "running",
            TestState::Finished => "finished",
            TestState::Cancelled => "cancelled",
        }
    }
}

/// One red-envelope test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    pub id: String,
    pub chat_id: ChatId,
    pub total_fen: u64,
    pub shares: u32,
    pub window_secs: u64,
    /// The split and the claim phrase are computed from it.
    pub seed: u64,
    pub claim_phrase: String,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Who started it (a user id, `admin-api` for the token, `operator:NAME` from the console,
    /// or a schedule's name).
    pub started_by: String,
    pub state: TestState,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When the envelope reached the group (its post delivered), as known when the test
    /// finished; `None`: it never did (the account offline, the robot refusing), and the results
    /// say nothing about the group.
    #[serde(default)]
    pub posted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub results: Option<Results>,
    /// Who cancelled it (a user id as `chat:<id>`, `admin-api`, or `release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<String>,
}

/// One share taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub user_id: String,
    #[serde(default)]
    pub name: String,
    pub amount_fen: u64,
    pub at: DateTime<Utc>,
    /// Whether the member had spoken in the group before claiming (claimers who had not are
    /// the "silent claimers" of the results).
    #[serde(default)]
    pub spoke_before: bool,
    /// How the share was taken; a grab of a real WeChat envelope was paid by WeChat already.
    #[serde(default)]
    pub via: ClaimVia,
}

/// How a share was taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimVia {
    /// The member sent the claim phrase: Trumpet's ledger owes them the amount.
    #[default]
    Phrase,
    /// The bot account reported the member grabbing a real WeChat envelope (the amount is what
    /// WeChat gave, 0 when not reported): nothing to pay.
    WechatEnvelope,
}

impl ClaimVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimVia::Phrase => "phrase",
            ClaimVia::WechatEnvelope => "wechat_envelope",
        }
    }
}

impl WriteTx<'_> {
    /// Stores `test` (new, or with its state and results updated).
    pub fn put_envelope_test(&mut self, test: &TestRecord) -> Result<(), StoreError> {
        self.envelope_tests
            .insert(test.id.as_str(), encode(test)?.as_slice())?;
        self.envelope_by_chat
            .insert((test.chat_id.as_str(), test.id.as_str()), ())?;
        self.envelope_by_start
            .insert((test.started_at.timestamp_micros(), test.id.as_str()), ())?;
        Ok(())
    }

    /// Records share `index` of `test_id` as taken; refuses a share already taken.
    pub fn put_claim(
        &mut self,
        test_id: &str,
        index: u32,
        claim: &ClaimRecord,
    ) -> Result<(), StoreError> {
        if self.envelope_claims.get((test_id, index))?.is_some() {
            return Err(StoreError::Corrupt(format!(
                "share {index} of {test_id} is already taken"
            )));
        }
        self.envelope_claims
            .insert((test_id, index), encode(claim)?.as_slice())?;
        Ok(())
    }
}

/// The outbox key of a test's envelope post.
pub fn envelope_post_key(test_id: &str) -> String {
    format!("envelope:{test_id}:post")
}

impl Store {
    /// When test `test_id`'s envelope post was delivered, if it was (a running test's record
    /// learns it only when the test finishes).
    pub fn envelope_posted_at(&self, test_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .send_by_key(&envelope_post_key(test_id))?
            .filter(|send| send.state == super::OutboxState::Delivered)
            .and_then(|send| send.updated_at))
    }

    pub fn envelope_test(&self, id: &str) -> Result<Option<TestRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ENVELOPE_TESTS)?;
        table.get(id)?.map(|v| decode(v.value())).transpose()
    }

    /// The claims of a test, in the order the shares were taken.
    pub fn envelope_claims(&self, id: &str) -> Result<Vec<ClaimRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ENVELOPE_CLAIMS)?;
        let mut out = Vec::new();
        for entry in table.range((id, 0)..=(id, u32::MAX))? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Every test still running (to finish them after a restart) and those finished since
    /// `finished_since` (to answer late claims).
    pub fn live_envelope_tests(
        &self,
        finished_since: DateTime<Utc>,
    ) -> Result<Vec<TestRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(ENVELOPE_TESTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let test: TestRecord = decode(entry?.1.value())?;
            if test.state == TestState::Running
                || test.finished_at.is_some_and(|t| t >= finished_since)
            {
                out.push(test);
            }
        }
        Ok(out)
    }

    /// Every group's tests, newest start first: at most `limit` of those that started before
    /// `before` (the start, in unix microseconds, and id of the last test of the page before).
    pub fn recent_envelope_tests(
        &self,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<TestRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let index = tx.open_table(ENVELOPE_BY_START)?;
        let tests = tx.open_table(ENVELOPE_TESTS)?;
        let mut out = Vec::new();
        let range = match before {
            Some(key) => index.range(..key)?,
            None => index.range::<(i64, &str)>(..)?,
        };
        for entry in range.rev().take(limit) {
            let (key, _) = entry?;
            let (_, id) = key.value();
            if let Some(value) = tests.get(id)? {
                out.push(decode(value.value())?);
            }
        }
        Ok(out)
    }

    /// The tests of `chat`, oldest first.
    pub fn envelope_tests_of(&self, chat: &ChatId) -> Result<Vec<TestRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let index = tx.open_table(ENVELOPE_BY_CHAT)?;
        let tests = tx.open_table(ENVELOPE_TESTS)?;
        let mut out = Vec::new();
        for entry in index.range((chat.as_str(), "")..)? {
            let (key, _) = entry?;
            let (c, id) = key.value();
            if c != chat.as_str() {
                break;
            }
            if let Some(v) = tests.get(id)? {
                out.push(decode::<TestRecord>(v.value())?);
            }
        }
        out.sort_by_key(|t| t.started_at);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_record(id: &str, chat: &str, minute: i64) -> TestRecord {
        let started =
            DateTime::from_timestamp(1_795_000_000, 0).unwrap() + chrono::Duration::minutes(minute);
        TestRecord {
            id: id.into(),
            chat_id: ChatId::new(chat),
            total_fen: 2000,
            shares: 20,
            window_secs: 7200,
            seed: 42,
            claim_phrase: "财税好运 527".into(),
            started_at: started,
            ends_at: started + chrono::Duration::hours(2),
            started_by: "admin-api".into(),
            state: TestState::Running,
            finished_at: None,
            results: None,
            posted_at: None,
            cancelled_by: None,
        }
    }

    #[test]
    fn tests_and_their_claims_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let claim = |user: &str, amount| ClaimRecord {
            user_id: user.into(),
            name: String::new(),
            amount_fen: amount,
            at: Utc::now(),
            spoke_before: true,
            via: ClaimVia::Phrase,
        };
        store
            .write(|tx| {
                tx.put_envelope_test(&test_record("t1", "g1", 0))?;
                tx.put_envelope_test(&test_record("t2", "g2", 1))?;
                tx.put_envelope_test(&test_record("t3", "g1", 2))?;
                tx.put_claim("t1", 0, &claim("a", 150))?;
                tx.put_claim("t1", 1, &claim("b", 50))
            })
            .unwrap();
        let taken = store.write(|tx| tx.put_claim("t1", 1, &claim("c", 50)));
        assert!(taken.is_err(), "a share is taken once");
        let claims = store.envelope_claims("t1").unwrap();
        assert_eq!(
            claims
                .iter()
                .map(|c| c.user_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(store.envelope_claims("t2").unwrap().is_empty());
        let of_g1: Vec<String> = store
            .envelope_tests_of(&ChatId::new("g1"))
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(of_g1, ["t1", "t3"]);
        let mut done = test_record("t2", "g2", 1);
        done.state = TestState::Finished;
        done.finished_at = Some(done.ends_at);
        store.write(|tx| tx.put_envelope_test(&done)).unwrap();
        let live = |since| -> Vec<String> {
            let mut ids: Vec<String> = store
                .live_envelope_tests(since)
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(live(done.ends_at), ["t1", "t2", "t3"]);
        assert_eq!(
            live(done.ends_at + chrono::Duration::seconds(1)),
            ["t1", "t3"]
        );
        assert_eq!(
            store.envelope_test("t2").unwrap().unwrap().state,
            TestState::Finished
        );
        assert!(store.envelope_test("nope").unwrap().is_none());
    }
}
