//! A write transaction's tables, with typed accessors for what the core tables hold (groups,
//! settings, members and their counters, handled ids, credentials, send times); the feature
//! modules add theirs in `impl WriteTx` blocks of their own.

use super::*;

/// The tables of one write transaction, with typed accessors.
pub struct WriteTx<'t> {
    pub(super) groups: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) members: redb::Table<'t, (&'static str, &'static str), MemberRow<'static>>,
    pub(super) daily: redb::Table<'t, (&'static str, &'static str), (u64, u64)>,
    /// Messages of all groups by day (the overview's figures).
    pub(super) day_totals: redb::Table<'t, &'static str, u64>,
    pub(super) dedupe: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) meta: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) settings: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) welcomed: redb::Table<'t, (&'static str, &'static str), i64>,
    pub(super) outbox: redb::Table<'t, u64, &'static [u8]>,
    pub(super) outbox_keys: redb::Table<'t, &'static str, u64>,
    pub(super) outbox_pending: redb::Table<'t, u64, ()>,
    pub(super) outbox_by_run: redb::Table<'t, (&'static str, u64), ()>,
    pub(super) outbox_by_chat: redb::Table<'t, (&'static str, u64), ()>,
    pub(super) runs: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) robot_groups: redb::Table<'t, (&'static str, &'static str), ()>,
    pub(super) group_robot: redb::Table<'t, &'static str, &'static str>,
    pub(super) roster: redb::Table<'t, (&'static str, &'static str), &'static str>,
    pub(super) mod_standing: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(super) blacklist: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) mod_log: redb::Table<'t, u64, &'static [u8]>,
    pub(super) mod_log_by_chat: redb::Table<'t, (&'static str, u64), ()>,
    pub(super) mod_log_folds: redb::Table<'t, (i64, u64), (u64, i64)>,
    pub(super) envelope_tests: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) envelope_claims: redb::Table<'t, (&'static str, u32), &'static [u8]>,
    pub(super) envelope_by_chat: redb::Table<'t, (&'static str, &'static str), ()>,
    pub(super) envelope_by_start: redb::Table<'t, (i64, &'static str), ()>,
    pub(super) speaker_days: redb::Table<'t, (&'static str, &'static str, &'static str), u32>,
    pub(super) group_days: redb::Table<'t, (&'static str, &'static str), (u64, u64, u64, u64)>,
    pub(super) last_posts: redb::Table<'t, &'static str, i64>,
    pub(super) mass_tasks: redb::Table<'t, u64, &'static [u8]>,
    pub(super) mass_entries: redb::Table<'t, u64, u64>,
    /// The last day key formatted, by day number: formatting a date per message is not free.
    pub(super) day_key: (i64, String),
}

impl WriteTx<'_> {
    pub fn group(&self, chat: &ChatId) -> Result<Option<GroupRecord>, StoreError> {
        self.groups
            .get(chat.as_str())?
            .map(|v| decode(v.value()))
            .transpose()
    }

    pub fn settings(&self, chat: &ChatId) -> Result<GroupSettings, StoreError> {
        Ok(self
            .settings
            .get(chat.as_str())?
            .map(|v| decode(v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_settings(
        &mut self,
        chat: &ChatId,
        settings: &GroupSettings,
    ) -> Result<(), StoreError> {
        self.settings
            .insert(chat.as_str(), encode(settings)?.as_slice())?;
        Ok(())
    }

    /// Records that `user` was welcomed in `chat` at `at` (unix seconds).
    pub fn put_welcomed(&mut self, chat: &ChatId, user: &str, at: i64) -> Result<(), StoreError> {
        self.welcomed.insert((chat.as_str(), user), at)?;
        Ok(())
    }

    /// Sets a `meta` entry (see [`Store::meta_with_prefix`]).
    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        Ok(())
    }

    /// Removes a `meta` entry.
    pub fn remove_meta(&mut self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key)?;
        Ok(())
    }

    /// Merges `times` (unix milliseconds of send attempts) into the stored recent sends of
    /// `lane`, keeping those at or after `since_ms`, at most `keep` of them (the newest).
    pub fn note_send_times(
        &mut self,
        lane: &str,
        times: &[i64],
        since_ms: i64,
        keep: usize,
    ) -> Result<(), StoreError> {
        let key = format!("{SEND_TIMES_PREFIX}{lane}");
        let mut all: Vec<i64> = self
            .meta
            .get(key.as_str())?
            .map(|v| unpack_times(v.value()))
            .unwrap_or_default();
        all.extend_from_slice(times);
        all.sort_unstable();
        all.retain(|&t| t >= since_ms);
        let skip = all.len().saturating_sub(keep);
        let packed: Vec<u8> = all[skip..].iter().flat_map(|t| t.to_be_bytes()).collect();
        self.meta.insert(key.as_str(), packed.as_slice())?;
        Ok(())
    }

    pub fn put_group(&mut self, group: &GroupRecord) -> Result<(), StoreError> {
        self.groups
            .insert(group.chat_id.as_str(), encode(group)?.as_slice())?;
        self.index_robot(group)
    }

    /// Records that `sender` spoke in `chat` at `at`: the member's record, the group's totals
    /// and the day's counters. Returns whether this member was seen for the first time.
    pub fn record_message(
        &mut self,
        group: &mut GroupRecord,
        sender: &Sender,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let chat = group.chat_id.as_str();
        let user = sender.user_id.as_str();
        let secs = at.timestamp();
        let day_number = local_day_number(secs);
        if self.day_key.0 != day_number {
            self.day_key = (day_number, local_day(at));
        }
        let day = self.day_key.1.clone();
        let (first, last, count, name, alias) = match self.members.get((chat, user))? {
            Some(row) => {
                let (first, last, count, name, alias) = row.value();
                // Keep the last known name when a message arrives without one.
                let pick = |new: &str, old: &str| {
                    if new.is_empty() {
                        old.to_owned()
                    } else {
                        new.to_owned()
                    }
                };
                (
                    Some(first),
                    Some(last),
                    count,
                    pick(&sender.name, name),
                    pick(&sender.alias, alias),
                )
            }
            None => (None, None, 0, sender.name.clone(), sender.alias.clone()),
        };
        let first_time = first.is_none();
        self.members.insert(
            (chat, user),
            (
                first.unwrap_or(secs),
                secs,
                count + 1,
                name.as_str(),
                alias.as_str(),
            ),
        )?;

        // A member is a new speaker of the day when their previous message was on another day
        // (messages are recorded in arrival order, so `last` is never later than `at`).
        let spoke_today = last.is_some_and(|last| local_day_number(last) == day_number);
        let (messages, speakers) = self
            .daily
            .get((chat, day.as_str()))?
            .map(|v| v.value())
            .unwrap_or((0, 0));
        self.daily.insert(
            (chat, day.as_str()),
            (messages + 1, speakers + u64::from(!spoke_today)),
        )?;
        let total = self.day_totals.get(day.as_str())?.map_or(0, |v| v.value());
        self.day_totals.insert(day.as_str(), total + 1)?;
        self.note_reply(chat, &day, secs)?;

        if first_time {
            group.members_seen += 1;
        }
        group.messages += 1;
        group.last_message_at = Some(at);
        Ok(first_time)
    }

    pub fn put_dedupe(&mut self, key: &str, record: &DedupeRecord) -> Result<(), StoreError> {
        self.dedupe.insert(key, encode(record)?.as_slice())?;
        Ok(())
    }

    /// Forgets handled ids first seen before `before` (unix seconds); returns how many.
    pub fn prune_dedupe(&mut self, before: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        self.dedupe.retain(|_, value| {
            let keep = serde_json::from_slice::<DedupeRecord>(value)
                .map(|r| r.at >= before)
                .unwrap_or(false);
            if !keep {
                removed += 1;
            }
            keep
        })?;
        Ok(removed)
    }

    pub fn put_bot_credentials(
        &mut self,
        bot: &BotId,
        credentials: &StoredCredentials,
    ) -> Result<(), StoreError> {
        self.meta.insert(
            credentials_key(bot).as_str(),
            encode(credentials)?.as_slice(),
        )?;
        Ok(())
    }

    pub fn bot_credentials(&self, bot: &BotId) -> Result<Option<StoredCredentials>, StoreError> {
        self.meta
            .get(credentials_key(bot).as_str())?
            .map(|v| decode(v.value()))
            .transpose()
    }
}
