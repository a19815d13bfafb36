//! Which undated items of the content queue each (job, local date) took, so that every item is
//! used once, in order, and a restart, a second zone or a manual run of the same day gets the
//! same items rather than the next ones. Kept in `meta`: `content_claim:<job>@<date>` → the item
//! ids (JSON), `content_used:<item id>` → the claim that took it.

use super::{Store, StoreError, WriteTx, decode, encode};
use redb::{ReadableDatabase, ReadableTable};

fn claim_key(claim: &str) -> String {
    format!("content_claim:{claim}")
}

fn used_key(item: &str) -> String {
    format!("content_used:{item}")
}

/// The first `n` ids of `queue`, in order, that `used` says no claim has taken.
fn first_unused(
    queue: &[String],
    n: usize,
    mut used: impl FnMut(&str) -> Result<bool, StoreError>,
) -> Result<Vec<String>, StoreError> {
    let mut taken = Vec::with_capacity(n);
    for id in queue {
        if taken.len() == n {
            break;
        }
        if !used(id)? {
            taken.push(id.clone());
        }
    }
    Ok(taken)
}

impl WriteTx<'_> {
    /// The undated items `claim` (`<job>@<YYYY-MM-DD>`) takes: the ones it took before, or else
    /// the first `n` of `queue` (in order) that no claim has taken, which are then marked used.
    pub fn claim_items(
        &mut self,
        claim: &str,
        queue: &[String],
        n: usize,
    ) -> Result<Vec<String>, StoreError> {
        if let Some(taken) = self.meta.get(claim_key(claim).as_str())? {
            return decode(taken.value());
        }
        let taken = first_unused(queue, n, |id| {
            Ok(self.meta.get(used_key(id).as_str())?.is_some())
        })?;
        for id in &taken {
            self.meta.insert(used_key(id).as_str(), claim.as_bytes())?;
        }
        self.meta
            .insert(claim_key(claim).as_str(), encode(&taken)?.as_slice())?;
        Ok(taken)
    }
}

impl Store {
    /// The claim that used `item`, if any.
    pub fn item_used_by(&self, item: &str) -> Result<Option<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(super::META)?;
        Ok(meta
            .get(used_key(item).as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }
}

impl Store {
    /// What [`WriteTx::claim_items`] would return now, without claiming anything (dry runs).
    pub fn peek_items(
        &self,
        claim: &str,
        queue: &[String],
        n: usize,
    ) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read()?;
        let meta = tx.open_table(super::META)?;
        if let Some(taken) = meta.get(claim_key(claim).as_str())? {
            return decode(taken.value());
        }
        first_unused(queue, n, |id| {
            Ok(meta.get(used_key(id).as_str())?.is_some())
        })
    }
}
