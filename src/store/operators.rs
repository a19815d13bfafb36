//! Operator accounts: name → role and password hash (argon2id, PHC string; never the password).
//! Written seldom and apart from the event path: each change is a transaction of its own, and
//! the table is not one of the write transaction's hot tables.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode};
use crate::domain::OperatorRole;

/// name → the account (JSON).
pub(super) const OPERATORS: TableDefinition<&str, &[u8]> = TableDefinition::new("operators");

/// One operator account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    pub name: String,
    pub role: OperatorRole,
    /// The password's argon2id hash as a PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    /// When the role or password last changed.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every operator account, by name.
    pub fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(OPERATORS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, value) = row?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    /// The account called `name`, if any.
    pub fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(OPERATORS)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    /// Adds `record`; `false` (and nothing written) when the name is taken.
    pub fn add_operator(&self, record: &OperatorRecord) -> Result<bool, StoreError> {
        self.change_operators(|table| {
            if table.get(record.name.as_str())?.is_some() {
                return Ok(false);
            }
            table.insert(record.name.as_str(), encode(record)?.as_slice())?;
            Ok(true)
        })
    }

    /// Replaces the account of `record.name`; `false` when there is none.
    pub fn update_operator(&self, record: &OperatorRecord) -> Result<bool, StoreError> {
        self.change_operators(|table| {
            if table.get(record.name.as_str())?.is_none() {
                return Ok(false);
            }
            table.insert(record.name.as_str(), encode(record)?.as_slice())?;
            Ok(true)
        })
    }

    /// Removes the account called `name`; whether there was one.
    pub fn remove_operator(&self, name: &str) -> Result<bool, StoreError> {
        self.change_operators(|table| Ok(table.remove(name)?.is_some()))
    }

    fn change_operators<R>(
        &self,
        f: impl FnOnce(&mut redb::Table<'_, &'static str, &'static [u8]>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let tx = self.db.begin_write()?;
        let result = {
            let mut table = tx.open_table(OPERATORS)?;
            f(&mut table)?
        };
        tx.commit()?;
        Ok(result)
    }
}

fn encode(record: &OperatorRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt(e.to_string()))
}
