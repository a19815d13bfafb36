//! Moderation's state across messages: each member's standing (cached from the store, idle
//! entries dropped), recent activity for floods, repeats, campaigns and raids, the operator-wide
//! blacklist, the notice windows, and the client that fetches images for QR codes.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Utc};
use tracing::error;

use super::activity::{self, Sighting, Tracker};
use super::notices;
use crate::domain::{AccountKey, ChatId, Event};
use crate::engine::moderation::Prepared;
use crate::store::{BlacklistEntry, StandingRecord, Store, StoreError};

/// A member as moderation knows them in one group.
#[derive(Debug, Clone, Default)]
pub(super) struct MemberState {
    /// Messages sent here (as the store counted them when first loaded, plus those since).
    pub(super) messages: u64,
    pub(super) first_seen: Option<DateTime<Utc>>,
    pub(super) record: StandingRecord,
    /// Their first message here was checked against the blacklist.
    pub(super) blacklist_checked: bool,
    /// When the cache last kept this entry.
    kept_at: Option<DateTime<Utc>>,
}

/// Members cached before idle ones are dropped (they are read from the store again when they
/// speak; only `blacklist_checked` is lost, so a blacklisted member dropped from the cache is
/// checked once more).
const MAX_CACHED_MEMBERS: usize = 50_000;
/// Entries idle this long go first when the cache is full.
const CACHE_IDLE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Where images may be fetched from (see [`crate::outbound`]).
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    /// `wecom.media_hosts`: the robot's image URLs.
    pub media: crate::outbound::HostList,
    /// `onebot.file_hosts`: URLs a bot account's `get_file` answers with.
    pub files: crate::outbound::HostList,
}

/// Moderation's state: the members' standing (cached), recent activity, the blacklist, the
/// notice windows, and the client that fetches images.
pub struct Moderator {
    /// Fetches images by URL (QR codes in the robot's images), redirects only to listed hosts.
    pub(super) http: reqwest::Client,
    pub(super) fetch: FetchPolicy,
    pub(super) tracker: Mutex<Tracker>,
    pub(super) members: Mutex<HashMap<(ChatId, String), MemberState>>,
    pub(super) blacklist: RwLock<HashMap<String, BlacklistEntry>>,
    /// One warning and one admin notice per member, check and outcome in a window.
    pub(super) notices: notices::Coalescer,
    /// Trains the learned layer with the operator's labels.
    pub teacher: super::learning::Teacher,
}

impl Moderator {
    /// Loads the blacklist from `store`; images are fetched only where `fetch` allows.
    pub fn load(store: &Store, fetch: FetchPolicy) -> Result<Self, StoreError> {
        let mut hosts = fetch.media.clone();
        hosts.extend(&fetch.files);
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(hosts.redirect_policy(3, "wecom.media_hosts / onebot.file_hosts"))
            .build()
            .map_err(|e| StoreError::Db(format!("the image client could not be built: {e}")))?;
        let blacklist = store
            .blacklist()?
            .into_iter()
            .map(|e| (e.user_id.clone(), e))
            .collect();
        Ok(Self {
            http,
            fetch,
            tracker: Mutex::default(),
            members: Mutex::default(),
            blacklist: RwLock::new(blacklist),
            notices: notices::Coalescer::default(),
            teacher: super::learning::Teacher::default(),
        })
    }

    pub(super) fn blacklisted(&self, user: &str) -> Option<BlacklistEntry> {
        self.blacklist
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    /// Forgets what is cached about `user` in `chat` (after a change made elsewhere).
    pub(super) fn forget(&self, chat: &ChatId, user: &str) {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(chat.clone(), user.to_owned()));
    }

    /// The member's state, from the cache or the store.
    pub(super) async fn member(&self, store: &Store, chat: &ChatId, user: &str) -> MemberState {
        let key = (chat.clone(), user.to_owned());
        if let Some(m) = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return m.clone();
        }
        // Two point reads, microseconds from redb's cache: done in place. A hop through the
        // blocking pool costs more than the reads (two thread wake-ups on the request's path),
        // and a newcomer's first message — most messages in a large community — pays it.
        let read = store
            .member(chat, user)
            .and_then(|member| Ok((member, store.standing(chat, user)?)));
        match read {
            Ok((member, record)) => MemberState {
                messages: member.as_ref().map_or(0, |m| m.message_count),
                first_seen: member.map(|m| m.first_seen),
                record,
                blacklist_checked: false,
                kept_at: None,
            },
            Err(e) => {
                error!(chat = %chat, user, error = %e, "member standing unreadable; checked as new");
                MemberState::default()
            }
        }
    }

    /// Puts a member on the operator-wide blacklist (the store is written with the event).
    pub(super) fn ban(&self, entry: BlacklistEntry) {
        self.blacklist
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.user_id.clone(), entry);
    }

    /// Records `event` (in `chat`, reading `prepared`) in the recent activity; returns the
    /// sender's activity before it, kept for `window`.
    pub(super) fn sight(
        &self,
        event: &Event,
        chat: &ChatId,
        prepared: &Prepared,
        window: std::time::Duration,
        now: DateTime<Utc>,
    ) -> activity::Before {
        let sighting = Sighting::new(
            chat,
            &event.from.user_id,
            now,
            event.message_id.clone(),
            event.account.as_ref().map(|account| AccountKey {
                bot: event.bot.clone(),
                user_id: account.clone(),
            }),
        );
        // A question to the bot is asked again and in several groups by design (the same
        // question on a filing deadline): repeats and campaigns count only other messages.
        let canonical = if event.mentioned {
            ""
        } else {
            &prepared.canonical
        };
        self.tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .message(sighting, canonical, window, now)
    }

    pub(super) fn keep(&self, chat: &ChatId, user: &str, mut member: MemberState) {
        let now = Utc::now();
        member.kept_at = Some(now);
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if members.len() >= MAX_CACHED_MEMBERS {
            members.retain(|_, m| m.kept_at.is_some_and(|at| now - at < CACHE_IDLE));
            if members.len() >= MAX_CACHED_MEMBERS {
                members.clear();
            }
        }
        members.insert((chat.clone(), user.to_owned()), member);
    }
}
