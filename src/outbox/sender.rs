//! Delivering the durable outbox ([`crate::store::OutboxEntry`]) through robot webhooks and bot
//! accounts: one ordered lane per webhook key (per group for a bot account), each with its own
//! sliding-window limit, all sharing the per-bot and global limits ([`SharedLimits`]); retries
//! with back-off and jitter on retryable errcodes; the group released when WeCom says the robot
//! is gone (93000 / 93008) and its later sends skipped; every outcome recorded in the store.
//!
//! A send for a bot account that is not connected waits for it to come back; a send whose
//! purpose has an expiry (`outbox.expire_after_minutes`) and that could not go out in time is
//! recorded as skipped ("expired") instead of being sent late.
//!
//! Memory stays proportional to what is queued, not to how many keys were ever used: a lane is a
//! queue in one shared map plus a task that runs only while the queue has entries, and forgets
//! the key once its minute has passed; at most [`MAX_IN_FLIGHT`] requests (and their bodies)
//! exist at once, however many lanes are waiting.
//!
//! Entries are written to the store before they reach a lane, and a start resumes every entry
//! that is not finished, so a crash or a shutdown loses nothing. A message delivered in the
//! moments before a crash but not yet recorded (outcomes are written in batches, within
//! milliseconds) is sent again after the restart: duplicates are bounded by the sends in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::governor::{SharedLimits, SlidingWindow, backoff};
use crate::channels::onebot::hub::{AccountKey, CallError, Hub};
use crate::channels::onebot::protocol::ActionError;
use crate::channels::wecom::robot::webhook::{
    WebhookClient, WebhookError, WebhookUrl, request_bodies,
};
use crate::config::OutboxConfig;
use crate::domain::{BotId, ChatId, OutMessage};
use crate::store::{
    Destination, GroupStatus, NewSend, OutboxEntry, OutboxState, SendOutcome, Store, StoreError,
};

/// Requests on the wire (or about to be) at once: enough for the default global limit at
/// WeCom's usual latency (1,000/s × 0.2 s), and a bound on the request bodies and connections
/// held in memory.
pub const MAX_IN_FLIGHT: usize = 256;

/// Limits and retry policy for sends.
#[derive(Debug, Clone)]
pub struct SendSettings {
    /// Sends per `window` per webhook key.
    pub per_minute: u32,
    /// WeCom's minute, with a margin; also the window of the per-bot limits.
    pub window: Duration,
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// Hosts a stored webhook URL may point at (checked again before sending).
    pub webhook_hosts: Vec<String>,
    /// Sends per minute per bot, for the bots that have a limit.
    pub bot_limits: HashMap<BotId, u32>,
    /// Sends per second across everything.
    pub global_per_second: u32,
    /// Retry a webhook send that got no answer in time (it may have arrived: a retry can
    /// duplicate it); otherwise it is recorded as timed out.
    pub retry_after_timeout: bool,
}

/// How sends through bot accounts are made, and when sends expire.
#[derive(Clone)]
pub struct OutboxOptions {
    /// The connected bot accounts.
    pub hub: Arc<Hub>,
    /// First back-off after a bot account's action was refused for now (34xxx, 36xxx, timeout).
    pub account_retry_base: Duration,
    pub account_max_attempts: u32,
    pub expiry: OutboxConfig,
}

impl Default for OutboxOptions {
    /// No accounts connected; nothing expires.
    fn default() -> Self {
        OutboxOptions {
            hub: Arc::new(Hub::new(Duration::from_secs(10))),
            account_retry_base: Duration::from_secs(2),
            account_max_attempts: 6,
            expiry: OutboxConfig {
                expire_after_minutes: Default::default(),
            },
        }
    }
}

/// Counters since start, for tests and the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    pub delivered: u64,
    pub failed: u64,
    pub skipped: u64,
    pub retries: u64,
    /// Entries found unfinished in the store at start and resumed.
    pub resumed: u64,
}

enum Record {
    Outcome(SendOutcome),
    /// An attempt through a lane (unix milliseconds): kept so that a restart keeps the window.
    Attempt {
        lane: String,
        at_ms: i64,
    },
    /// Write everything received so far, then answer.
    Flush(oneshot::Sender<()>),
}

struct Inner {
    client: WebhookClient,
    limits: SharedLimits,
    settings: SendSettings,
    options: OutboxOptions,
    store: Store,
    lanes: Mutex<LaneMap>,
    in_flight: Semaphore,
    /// Groups released while running, and when: their sends planned before then are skipped.
    released: Mutex<HashMap<ChatId, chrono::DateTime<Utc>>>,
    /// Each lane's attempts in its last window before the start (unix milliseconds), taken by
    /// the lane when it first runs: no key sees more than its limit across a restart.
    restored: Mutex<HashMap<String, Vec<i64>>>,
    tracker: TaskTracker,
    recorder: mpsc::UnboundedSender<Record>,
    closed: AtomicBool,
    /// Cancelled at shutdown: sends waiting for an account stop waiting (and stay pending).
    closing: tokio_util::sync::CancellationToken,
    delivered: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    retries: AtomicU64,
    resumed: AtomicU64,
}

/// The outbox's sending side. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// Starts the outbox for robot webhooks only and resumes every unfinished entry in `store`.
    pub fn start(
        client: WebhookClient,
        settings: SendSettings,
        store: Store,
    ) -> Result<Outbox, StoreError> {
        Self::start_with(client, settings, OutboxOptions::default(), store)
    }

    /// Starts the outbox and resumes every unfinished entry in `store`.
    pub fn start_with(
        client: WebhookClient,
        settings: SendSettings,
        options: OutboxOptions,
        store: Store,
    ) -> Result<Outbox, StoreError> {
        let (recorder, rx) = mpsc::unbounded_channel();
        let window = settings.window;
        let keep = settings.per_minute as usize;
        tokio::spawn(run_recorder(store.clone(), rx, window, keep));
        let since_ms = Utc::now().timestamp_millis() - window.as_millis() as i64;
        let restored = store.recent_send_times(since_ms).unwrap_or_else(|e| {
            warn!(error = %e, "recent sends per key unreadable: rate windows start empty");
            HashMap::new()
        });
        let outbox = Outbox {
            inner: Arc::new(Inner {
                client,
                limits: SharedLimits::new(
                    settings.bot_limits.clone(),
                    settings.window,
                    settings.global_per_second,
                ),
                settings,
                options,
                store: store.clone(),
                lanes: Mutex::new(LaneMap {
                    by_key: HashMap::new(),
                    pruned_at: Instant::now(),
                }),
                in_flight: Semaphore::new(MAX_IN_FLIGHT),
                released: Mutex::new(HashMap::new()),
                restored: Mutex::new(restored),
                tracker: TaskTracker::new(),
                recorder,
                closed: AtomicBool::new(false),
                closing: tokio_util::sync::CancellationToken::new(),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                resumed: AtomicU64::new(0),
            }),
        };
        // Streamed: each unfinished entry is queued as it is read, its message left in the store
        // until its turn (a start with 100,000 pending sends holds ids, not reports).
        // A group released while its sends waited (before a restart, or with the service down)
        // gets none of them: the store says when it was released.
        let mut checked = std::collections::HashSet::new();
        let resumed = store.each_pending_send(|entry| {
            if let Some(chat) = &entry.chat
                && checked.insert(chat.clone())
            {
                match store.group(chat) {
                    Ok(Some(group)) if group.status == GroupStatus::Released => {
                        if let Some(at) = group.released_at {
                            outbox.inner.note_release(chat, at);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => warn!(chat = %chat, error = %e,
                        "cannot read the group of a resumed send; it is sent unless released later"),
                }
            }
            outbox.dispatch(entry);
        })?;
        if resumed > 0 {
            info!(sends = resumed, "resuming unfinished sends from the outbox");
        }
        outbox
            .inner
            .resumed
            .store(resumed as u64, Ordering::Relaxed);
        Ok(outbox)
    }

    /// Writes `sends` to the store (one transaction) and queues the new ones; a send whose key
    /// is already known is left alone. Returns how many were new.
    pub async fn enqueue(&self, sends: Vec<NewSend>) -> Result<usize, StoreError> {
        let store = self.inner.store.clone();
        let entries = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let now = Utc::now();
                let mut new = Vec::new();
                for send in sends {
                    if let Some(entry) = tx.enqueue(send, now)? {
                        new.push(entry);
                    }
                }
                Ok(new)
            })
        })
        .await
        .map_err(|e| StoreError::Db(format!("outbox task failed: {e}")))??;
        let count = entries.len();
        for entry in entries {
            self.dispatch(entry);
        }
        Ok(count)
    }

    /// Queues an entry that is already in the store on its key's lane. After shutdown has
    /// begun it stays in the store for the next start.
    pub fn dispatch(&self, entry: OutboxEntry) {
        if self.inner.closed.load(Ordering::Acquire) {
            info!(id = entry.id, purpose = %entry.purpose,
                "shutting down: the send stays in the outbox for the next start");
            return;
        }
        let target = match Target::of(&entry, &self.inner.settings.webhook_hosts) {
            Ok(target) => target,
            Err(e) => {
                error!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, error = %e,
                    "not sent: nowhere to send it");
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                self.inner.record(&entry, OutboxState::Failed, Some(e));
                return;
            }
        };
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let settings = &self.inner.settings;
        lanes.prune(settings.window);
        let lane = lanes
            .by_key
            .entry(target.lane_key().to_owned())
            .or_insert_with(|| KeyLane {
                // Most keys get one send at a time (a report a day): room for one, grown on demand.
                queue: VecDeque::with_capacity(1),
                idle: Some(KeyMemory {
                    window: self.inner.window_for(target.lane_key()),
                    gone_at: None,
                }),
            });
        let pieces = target.pieces(&entry);
        queue_by_priority(&mut lane.queue, Queued::of(entry, pieces));
        if let Some(memory) = lane.idle.take() {
            let inner = Arc::clone(&self.inner);
            self.inner.tracker.spawn(run_lane(inner, target, memory));
        }
    }

    /// Notes that `chat` was released at `at`: its sends planned before then that are still
    /// waiting are skipped (and recorded so) instead of sent.
    pub fn release(&self, chat: &ChatId, at: chrono::DateTime<Utc>) {
        self.inner.note_release(chat, at);
    }

    /// Webhook keys currently remembered: those with queued sends, a running lane, or sends
    /// within their last minute.
    pub fn lane_count(&self) -> usize {
        let lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.by_key.len()
    }

    pub fn stats(&self) -> OutboxStats {
        let i = &self.inner;
        OutboxStats {
            delivered: i.delivered.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
            skipped: i.skipped.load(Ordering::Relaxed),
            retries: i.retries.load(Ordering::Relaxed),
            resumed: i.resumed.load(Ordering::Relaxed),
        }
    }

    /// Stops taking sends, lets the lanes finish what they hold for up to `grace`, writes every
    /// outcome, and returns whether the lanes all finished. Whatever did not finish stays in the
    /// outbox and is sent after the next start.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.closing.cancel();
        self.inner.tracker.close();
        let finished = match tokio::time::timeout(grace, self.inner.tracker.wait()).await {
            Ok(()) => true,
            Err(_) => {
                warn!(
                    lanes = self.inner.tracker.len(),
                    "shutdown grace ran out; unsent messages stay in the outbox for the next start"
                );
                false
            }
        };
        let (done, flushed) = oneshot::channel();
        if self.inner.recorder.send(Record::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
        finished
    }
}

/// How soon a send of `purpose` goes out among those waiting for the same key (lower first):
/// answers to people (replies, welcomes, the adoption greeting, an envelope) before broadcasts,
/// broadcasts before moderation's warnings and notices — a burst of spam must not hold a
/// newcomer's welcome until it expires.
fn priority(purpose: &str) -> u8 {
    match purpose {
        "reply" | "welcome" | "adoption_greeting" | "red_envelope" => 0,
        "moderation_warning" | "notify_admins" | "health_digest" => 2,
        _ => 1,
    }
}

/// Puts `entry` after every waiting entry of its priority or a more urgent one (in order of
/// arrival within a priority).
fn queue_by_priority(queue: &mut VecDeque<Queued>, queued: Queued) {
    let rank = priority(&queued.entry.purpose);
    let at = queue
        .iter()
        .rposition(|waiting| priority(&waiting.entry.purpose) <= rank)
        .map_or(0, |i| i + 1);
    queue.insert(at, queued);
}

/// Messages larger than this wait in a lane without their body, which is read back from the
/// store when their turn comes: a broadcast of a 3 KB report to 100,000 groups would otherwise
/// hold 300 MB while the lanes work through it.
const KEPT_MESSAGE_BYTES: usize = 512;

/// An entry waiting in a lane, its message possibly left in the store until a place in flight
/// is had (so that lanes waiting for the limits hold no message either).
struct Queued {
    entry: OutboxEntry,
    /// The message was dropped from memory: read it back before sending.
    stripped: bool,
    /// How many requests the message takes, or why it cannot be sent (counted with the body).
    pieces: Result<usize, String>,
}

impl Queued {
    fn of(mut entry: OutboxEntry, pieces: Result<usize, String>) -> Self {
        let stripped = message_bytes(&entry.message) > KEPT_MESSAGE_BYTES;
        if stripped {
            entry.message = OutMessage::Markdown {
                content: String::new(),
            };
        }
        Queued {
            entry,
            stripped,
            pieces,
        }
    }
}

/// About how much memory a message's body takes.
fn message_bytes(message: &OutMessage) -> usize {
    match message {
        OutMessage::Text { content, .. } | OutMessage::Markdown { content } => content.len(),
        OutMessage::News { articles } => articles
            .iter()
            .map(|a| a.title.len() + a.description.len() + a.url.len() + a.picurl.len())
            .sum(),
        OutMessage::Image { bytes } => bytes.len(),
    }
}

/// Every key's lane.
struct LaneMap {
    by_key: HashMap<String, KeyLane>,
    /// When idle keys were last forgotten.
    pruned_at: Instant,
}

impl LaneMap {
    /// Forgets, at most once per `window`, the keys with nothing queued, no running task and
    /// no send within their window (a lane that ends inside its minute keeps its key until then).
    fn prune(&mut self, window: Duration) {
        let now = Instant::now();
        if now.duration_since(self.pruned_at) < window {
            return;
        }
        self.pruned_at = now;
        self.by_key.retain(|_, lane| {
            !lane.queue.is_empty()
                || lane
                    .idle
                    .as_ref()
                    .is_none_or(|m| m.gone_at.is_some() || !m.window.is_idle(now))
        });
    }
}

/// One webhook key's queue, and what the key remembers between its tasks.
struct KeyLane {
    queue: VecDeque<Queued>,
    /// `None` while the lane's task runs (it holds the memory); `Some` when no task does.
    idle: Option<KeyMemory>,
}

/// What a key's lane must remember from one burst of sends to the next.
struct KeyMemory {
    /// The key's sends in the last minute.
    window: SlidingWindow,
    /// When WeCom said the robot is gone: sends planned before then are skipped (a re-adoption
    /// may bring the same key back for later ones).
    gone_at: Option<chrono::DateTime<Utc>>,
}

impl Inner {
    /// A new window for `lane`, holding its attempts from before the start (if any).
    fn window_for(&self, lane: &str) -> SlidingWindow {
        let mut window = SlidingWindow::new(self.settings.per_minute, self.settings.window);
        let earlier = self
            .restored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(lane);
        if let Some(times) = earlier {
            let (now, now_ms) = (Instant::now(), Utc::now().timestamp_millis());
            for at_ms in times {
                let ago = Duration::from_millis(now_ms.saturating_sub(at_ms).max(0) as u64);
                window.record(now.checked_sub(ago).unwrap_or(now));
            }
        }
        window
    }

    /// The message of send `id`, read back from the store (it waited without it).
    fn stored_message(&self, id: u64) -> Result<OutMessage, SendError> {
        match self.store.send(id) {
            Ok(Some(stored)) => Ok(stored.message),
            Ok(None) => Err(SendError::Store(
                "the send is missing from the store".into(),
            )),
            Err(e) => Err(SendError::Store(e.to_string())),
        }
    }

    /// The next entry of `key`'s lane, or `None` after handing `memory` back (or forgetting the
    /// key when its minute has passed and nothing is remembered against it): the task ends.
    fn next_entry(&self, key: &str, memory: &mut Option<KeyMemory>) -> Option<Queued> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes.by_key.get_mut(key)?;
        if let Some(queued) = lane.queue.pop_front() {
            return Some(queued);
        }
        let kept = memory.take()?;
        if kept.gone_at.is_none() && kept.window.is_idle(Instant::now()) {
            lanes.by_key.remove(key);
        } else {
            lane.idle = Some(kept);
        }
        None
    }

    fn note_release(&self, chat: &ChatId, at: chrono::DateTime<Utc>) {
        let mut released = self.released.lock().unwrap_or_else(|e| e.into_inner());
        // No send waits a week in a running service (spread windows are hours, retries
        // minutes); sends resumed at start are checked against the store instead.
        let forget_before = Utc::now() - chrono::Duration::days(7);
        released.retain(|_, at| *at >= forget_before);
        released.insert(chat.clone(), at);
    }

    /// Why `entry` must not be sent any more, if it must not.
    fn skip_reason(&self, entry: &OutboxEntry) -> Option<&'static str> {
        let chat = entry.chat.as_ref()?;
        let released = self.released.lock().unwrap_or_else(|e| e.into_inner());
        released
            .get(chat)
            .is_some_and(|&at| entry.created_at <= at)
            .then_some("the group was released")
    }

    fn record(&self, entry: &OutboxEntry, state: OutboxState, last_error: Option<String>) {
        let outcome = SendOutcome {
            id: entry.id,
            state,
            attempts: entry.attempts,
            pieces_done: entry.pieces_done,
            last_error,
        };
        if self.recorder.send(Record::Outcome(outcome)).is_err() {
            error!(
                id = entry.id,
                "the outcome recorder has stopped; this outcome is not stored"
            );
        }
    }
}

/// Writes outcomes and each lane's attempts in batches: one commit for whatever has arrived.
async fn run_recorder(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Record>,
    window: Duration,
    keep: usize,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let mut outcomes = Vec::new();
        let mut attempts: HashMap<String, Vec<i64>> = HashMap::new();
        let mut flushes = Vec::new();
        for record in batch.drain(..) {
            match record {
                Record::Outcome(o) => outcomes.push(o),
                Record::Attempt { lane, at_ms } => attempts.entry(lane).or_default().push(at_ms),
                Record::Flush(done) => flushes.push(done),
            }
        }
        if !outcomes.is_empty() || !attempts.is_empty() {
            write_outcomes(&store, outcomes, attempts, window, keep).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn write_outcomes(
    store: &Store,
    outcomes: Vec<SendOutcome>,
    attempts: HashMap<String, Vec<i64>>,
    window: Duration,
    keep: usize,
) {
    let outcomes = Arc::new(outcomes);
    let attempts = Arc::new(attempts);
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=4 {
        let store = store.clone();
        let (batch, lanes) = (Arc::clone(&outcomes), Arc::clone(&attempts));
        let result = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let now = Utc::now();
                for outcome in batch.iter() {
                    tx.record_send(outcome, now)?;
                }
                let since_ms = now.timestamp_millis() - window.as_millis() as i64;
                for (lane, times) in lanes.iter() {
                    tx.note_send_times(lane, times, since_ms, keep)?;
                }
                Ok(())
            })
        })
        .await;
        match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => warn!(error = %e, attempt, "could not record send outcomes; retrying"),
            Err(e) => warn!(error = %e, attempt, "outcome task failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay *= 4;
    }
    error!(
        outcomes = outcomes.len(),
        "send outcomes not recorded: the store kept failing; these sends stay pending and are sent again after a restart"
    );
}

/// Where a lane's sends go.
#[derive(Clone)]
enum Target {
    Webhook(WebhookUrl),
    /// A group through a bot account; `lane` is the lane's key.
    Account {
        key: AccountKey,
        chat: ChatId,
        lane: String,
    },
}

impl Target {
    fn of(entry: &OutboxEntry, webhook_hosts: &[String]) -> Result<Target, String> {
        match &entry.to {
            Destination::Webhook { url } => WebhookUrl::parse(url, webhook_hosts)
                .map(Target::Webhook)
                .map_err(|e| format!("the webhook URL is not allowed: {e}")),
            Destination::Account { account } => {
                let (Some(bot), Some(chat)) = (&entry.bot, &entry.chat) else {
                    return Err("a send through a bot account needs its bot and group".into());
                };
                Ok(Target::Account {
                    lane: format!("account\u{1f}{bot}\u{1f}{account}\u{1f}{chat}"),
                    key: AccountKey {
                        bot: bot.clone(),
                        user_id: account.clone(),
                    },
                    chat: chat.clone(),
                })
            }
        }
    }

    fn lane_key(&self) -> &str {
        match self {
            Target::Webhook(url) => url.key(),
            Target::Account { lane, .. } => lane,
        }
    }

    /// What the log shows: a webhook key's hint, or the account.
    fn hint(&self) -> String {
        match self {
            Target::Webhook(url) => url.key_hint(),
            Target::Account { key, .. } => format!("{}/{}", key.bot, key.user_id),
        }
    }

    /// How many requests `entry`'s message takes (a long robot message is split).
    fn pieces(&self, entry: &OutboxEntry) -> Result<usize, String> {
        match self {
            Target::Webhook(_) => request_bodies(&entry.message)
                .map(|b| b.len())
                .map_err(|e| e.to_string()),
            Target::Account { .. } => Ok(1),
        }
    }
}

/// Why a send did not go out.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Account(#[from] CallError),
    #[error("expired: the bot account was not connected within {0} min")]
    Expired(f64),
    /// The service is stopping: the send stays pending for the next start.
    #[error("shutting down")]
    Closing,
    /// The message could not be read back from the store.
    #[error("the message could not be read back: {0}")]
    Store(String),
}

impl SendError {
    fn class(&self) -> &'static str {
        match self {
            SendError::Webhook(e) => e.class(),
            SendError::Account(e) => e.class(),
            SendError::Expired(_) => "expired",
            SendError::Closing => "closing",
            SendError::Store(_) => "store",
        }
    }
}

impl Inner {
    /// When `entry` stops being worth sending, if its purpose expires: counted from when it
    /// was due (its `not_before`, else when it was queued).
    fn expires_at(&self, entry: &OutboxEntry) -> Option<chrono::DateTime<Utc>> {
        let after = self
            .options
            .expiry
            .expiry(&entry.purpose, entry.run.is_some())?;
        let due = entry
            .not_before
            .unwrap_or(entry.created_at)
            .max(entry.created_at);
        Some(due + chrono::Duration::from_std(after).ok()?)
    }

    fn skip(&self, entry: &OutboxEntry, target: &Target, reason: String) {
        warn!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, to = %target.hint(),
            reason = %reason, "skipped");
        self.skipped.fetch_add(1, Ordering::Relaxed);
        self.record(entry, OutboxState::Skipped, Some(reason));
    }
}

async fn run_lane(inner: Arc<Inner>, target: Target, memory: KeyMemory) {
    let mut memory = Some(memory);
    while let Some(queued) = inner.next_entry(target.lane_key(), &mut memory) {
        let Queued {
            mut entry,
            stripped,
            pieces,
        } = queued;
        // The memory is only taken back by `next_entry` when the queue is empty.
        let Some(KeyMemory { window, gone_at }) = memory.as_mut() else {
            break;
        };
        if gone_at.is_some_and(|gone| entry.created_at <= gone) {
            inner.skip(&entry, &target, "the robot left the group".into());
            continue;
        }
        if let Some(wait) = entry
            .not_before
            .and_then(|at| (at - Utc::now()).to_std().ok())
        {
            tokio::time::sleep(wait).await;
        }
        // Checked after the wait: a group released during a spread window gets nothing.
        if let Some(reason) = inner.skip_reason(&entry) {
            inner.skip(&entry, &target, reason.into());
            continue;
        }
        if let Some(at) = inner.expires_at(&entry)
            && Utc::now() > at
        {
            inner.skip(&entry, &target, format!("expired: not sent by {at}"));
            continue;
        }
        // Validated (and counted) now; each piece's body is built again when its turn comes, so
        // that lanes waiting for a place hold no request bodies.
        let pieces = match pieces {
            Ok(pieces) => pieces,
            Err(e) => {
                error!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, error = %e,
                    "not sent: invalid message");
                inner.failed.fetch_add(1, Ordering::Relaxed);
                inner.record(&entry, OutboxState::Failed, Some(e));
                continue;
            }
        };
        let mut failure = None;
        for piece in (entry.pieces_done as usize)..pieces {
            match send_with_retries(&inner, window, &target, &mut entry, stripped, piece).await {
                Ok(()) => {
                    entry.pieces_done += 1;
                    info!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat,
                        to = %target.hint(), piece = piece + 1, pieces, "pushed");
                }
                // Left pending in the store: the next start sends it.
                Err(SendError::Closing) => return,
                Err(SendError::Expired(minutes)) => {
                    failure = Some((
                        OutboxState::Skipped,
                        SendError::Expired(minutes).to_string(),
                    ));
                    break;
                }
                Err(e) => {
                    error!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat,
                        to = %target.hint(), error = %e, class = e.class(), piece = piece + 1, pieces,
                        "send failed; the rest of this message is not sent");
                    if let SendError::Webhook(WebhookError::RobotGone { errcode, .. }) = e {
                        *gone_at = Some(Utc::now());
                        if let Some(chat) = &entry.chat {
                            inner.note_release(chat, Utc::now());
                            release_group(&inner.store, chat, errcode).await;
                        }
                    }
                    let state = match e {
                        // It may have arrived: say so rather than "failed".
                        SendError::Webhook(WebhookError::Timeout) => OutboxState::TimedOut,
                        _ => OutboxState::Failed,
                    };
                    failure = Some((state, e.to_string()));
                    break;
                }
            }
        }
        match failure {
            None => {
                inner.delivered.fetch_add(1, Ordering::Relaxed);
                inner.record(&entry, OutboxState::Delivered, None);
            }
            Some((OutboxState::Skipped, reason)) => inner.skip(&entry, &target, reason),
            Some((state, reason)) => {
                inner.failed.fetch_add(1, Ordering::Relaxed);
                inner.record(&entry, state, Some(reason));
            }
        }
    }
}

/// Waits until the account of `target` is connected (at once for a webhook). Gives up when the
/// entry expires or the service stops.
async fn wait_for_account(
    inner: &Inner,
    target: &Target,
    entry: &OutboxEntry,
) -> Result<(), SendError> {
    let Target::Account { key, .. } = target else {
        return Ok(());
    };
    let hub = &inner.options.hub;
    if let Some(wait) = hub.paused_for(key) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = inner.closing.cancelled() => return Err(SendError::Closing),
        }
    }
    let mut told = false;
    while !hub.is_connected(key) {
        if !told {
            info!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, to = %target.hint(),
                "the bot account is not connected; the send waits for it");
            told = true;
        }
        let limit = match inner.expires_at(entry) {
            Some(at) => match (at - Utc::now()).to_std() {
                Ok(left) => left,
                Err(_) => {
                    let minutes = inner
                        .options
                        .expiry
                        .expiry(&entry.purpose, entry.run.is_some())
                        .map_or(0.0, |d| d.as_secs_f64() / 60.0);
                    return Err(SendError::Expired(minutes));
                }
            },
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = hub.wait_connected(key, limit) => {}
            () = inner.closing.cancelled() => return Err(SendError::Closing),
        }
    }
    Ok(())
}

/// Sends piece `piece` of `entry`, retrying what may be retried. Waits for the bot account to
/// be connected and for the key's minute first, then for the per-bot and global limits, then
/// for a place among the requests in flight.
async fn send_with_retries(
    inner: &Inner,
    window: &mut SlidingWindow,
    target: &Target,
    entry: &mut OutboxEntry,
    stripped: bool,
    piece: usize,
) -> Result<(), SendError> {
    let settings = &inner.settings;
    let (retry_base, max_attempts) = match target {
        Target::Webhook(_) => (settings.retry_base, settings.max_attempts),
        Target::Account { .. } => (
            inner.options.account_retry_base,
            inner.options.account_max_attempts,
        ),
    };
    let mut attempt = 0;
    loop {
        wait_for_account(inner, target, entry).await?;
        attempt += 1;
        if let Some(wait) = window.delay(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        // The per-bot and global limits come after the key's own: a lane waiting for its key
        // holds no place there.
        inner.limits.take(entry.bot.as_ref()).await;
        // A place in flight last: lanes waiting for a bot's limit must not hold the places other
        // bots' sends need. The semaphore is never closed: a permit always comes.
        let Ok(permit) = inner.in_flight.acquire().await else {
            return Err(WebhookError::Transport("the outbox is closed".into()).into());
        };
        window.record(Instant::now());
        let _ = inner.recorder.send(Record::Attempt {
            lane: target.lane_key().to_owned(),
            at_ms: Utc::now().timestamp_millis(),
        });
        entry.attempts += 1;
        // Read back only now, with a place in flight: it lives for this request alone.
        let loaded;
        let message = if stripped {
            loaded = inner.stored_message(entry.id)?;
            &loaded
        } else {
            &entry.message
        };
        let result: Result<(), SendError> = match target {
            Target::Webhook(url) => {
                let body = request_bodies(message)?
                    .into_iter()
                    .nth(piece)
                    .ok_or_else(|| {
                        WebhookError::Invalid(format!("the message has no piece {}", piece + 1))
                    })?;
                // Boxed: the request's state lives only while it is in flight, not in every lane.
                Box::pin(inner.client.post(url, &body))
                    .await
                    .map_err(SendError::from)
            }
            Target::Account { key, chat, .. } => Box::pin(inner.options.hub.send_group_message(
                key,
                chat.as_str(),
                message,
            ))
            .await
            .map(|_| ())
            .map_err(SendError::from),
        };
        drop(permit);
        let retryable = match &result {
            Ok(()) => return Ok(()),
            // No answer in time: it may have arrived. Retried only when the operator chose
            // duplicates over gaps (`wecom.retry_after_timeout`).
            Err(SendError::Webhook(WebhookError::Timeout)) => inner.settings.retry_after_timeout,
            Err(SendError::Webhook(e)) => e.is_retryable(),
            // Lost the connection: not the message's fault; wait for the account again.
            Err(SendError::Account(CallError::NotConnected | CallError::Disconnected)) => {
                attempt -= 1;
                continue;
            }
            Err(SendError::Account(e)) => e.is_retryable(),
            Err(_) => false,
        };
        let Err(e) = result else {
            return Ok(());
        };
        if !retryable || attempt >= max_attempts {
            return Err(e);
        }
        let jitter = rand::rng().random_range(0.8..1.2);
        let wait = backoff(retry_base, attempt, jitter);
        if let (
            Target::Account { key, .. },
            SendError::Account(CallError::Action(ActionError::PlatformRefused { .. })),
        ) = (target, &e)
        {
            inner.options.hub.pause(key, wait);
        }
        inner.retries.fetch_add(1, Ordering::Relaxed);
        warn!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, to = %target.hint(),
            error = %e, class = e.class(), attempt, wait_ms = wait.as_millis() as u64,
            "send will be retried");
        tokio::time::sleep(wait).await;
    }
}

/// Marks `chat` released because WeCom answered `errcode` (robot removed or key invalid).
async fn release_group(store: &Store, chat: &ChatId, errcode: i64) {
    let store = store.clone();
    let chat_id = chat.clone();
    let chat = chat.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.write(|tx| {
            let Some(mut group) = tx.group(&chat)? else {
                return Ok(false);
            };
            if group.status != GroupStatus::Adopted {
                return Ok(false);
            }
            group.status = GroupStatus::Released;
            group.released_at = Some(Utc::now());
            group.release_reason = Some(format!(
                "WeCom errcode {errcode}: the robot is no longer in the group or its key is invalid"
            ));
            tx.put_group(&group)?;
            Ok(true)
        })
    })
    .await;
    match result {
        Ok(Ok(true)) => {
            warn!(chat = %chat_id, errcode, "group released: WeCom says the robot is gone")
        }
        Ok(Ok(false)) => {}
        Ok(Err(e)) => error!(chat = %chat_id, error = %e, "could not mark the group released"),
        Err(e) => error!(error = %e, "release task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, purpose: &str) -> OutboxEntry {
        OutboxEntry {
            id,
            key: format!("k{id}"),
            chat: None,
            bot: None,
            to: Destination::Webhook { url: String::new() },
            message: crate::domain::OutMessage::Markdown {
                content: String::new(),
            },
            purpose: purpose.into(),
            run: None,
            not_before: None,
            state: OutboxState::Pending,
            attempts: 0,
            pieces_done: 0,
            last_error: None,
            created_at: Utc::now(),
            updated_at: None,
        }
    }

    #[test]
    fn welcomes_and_replies_pass_waiting_notices_and_keep_their_order() {
        let mut queue = VecDeque::new();
        for (id, purpose) in [
            (1, "notify_admins"),
            (2, "moderation_warning"),
            (3, "morning-report"),
            (4, "welcome"),
            (5, "notify_admins"),
            (6, "reply"),
            (7, "morning-report"),
        ] {
            queue_by_priority(&mut queue, Queued::of(entry(id, purpose), Ok(1)));
        }
        let order: Vec<u64> = queue.iter().map(|q| q.entry.id).collect();
        assert_eq!(order, [4, 6, 3, 7, 1, 2, 5]);
    }
}
