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
//! queue in one shared map, and forgets the key once its minute has passed. At most
//! `max_running_lanes` lanes have a task at once ([`MAX_RUNNING_LANES`] by default); a lane whose
//! next send is due later (a spread broadcast, its key's or its bot's minute) parks instead of
//! waiting in a task, and lanes wait for a task in order of urgency, then of arrival. A morning
//! report to 100,000 groups is 100,000 short queues and a thousand tasks, not 100,000 tasks. At
//! most [`MAX_IN_FLIGHT`] requests (and their bodies) exist at once.
//!
//! Entries are written to the store before they reach a lane, and a start resumes every entry
//! that is not finished, so a crash or a shutdown loses nothing. A message delivered in the
//! moments before a crash but not yet recorded (outcomes are written in batches, within
//! milliseconds) is sent again after the restart: duplicates are bounded by the sends in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::OutboxConfig;
use super::governor::{SharedLimits, SlidingWindow, backoff};
use crate::domain::AccountKey;
use crate::domain::{BotId, ChatId};
use crate::store::{
    Destination, GroupStatus, NewSend, OutboxEntry, OutboxState, SendOutcome, Store, StoreError,
};
use crate::wire::onebot::hub::{CallError, Hub};
use crate::wire::onebot::protocol::ActionError;
use crate::wire::wecom::robot::webhook::{WebhookClient, WebhookError, WebhookUrl, request_bodies};

/// Requests on the wire (or about to be) at once: enough for the default global limit at
/// WeCom's usual latency (1,000/s × 0.2 s), and a bound on the request bodies and connections
/// held in memory.
pub const MAX_IN_FLIGHT: usize = 256;

/// Lanes with a task at once, by default: well above what the global limit needs in flight
/// (1,000/s at 0.2 s is 200), and a bound on the tasks (about 2 KB each) however many keys wait.
pub const MAX_RUNNING_LANES: usize = 1024;

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
    /// Lanes with a task at once; the others wait their turn in the lane map.
    pub max_running_lanes: usize,
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
            max_running_lanes: MAX_RUNNING_LANES,
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
    /// Lanes with a task that counts against `max_running_lanes` (a lane waiting for its bot
    /// account to connect does not count while it waits).
    running: AtomicUsize,
    /// Tells the waker that a parked lane became due sooner than it thought.
    wake: Arc<Notify>,
    recorder: mpsc::UnboundedSender<Record>,
    closed: AtomicBool,
    /// Cancelled at shutdown: sends waiting for an account stop waiting (and stay pending).
    closing: CancellationToken,
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
                    ready: Default::default(),
                    later: BTreeMap::new(),
                    seq: 0,
                }),
                in_flight: Semaphore::new(MAX_IN_FLIGHT),
                released: Mutex::new(HashMap::new()),
                restored: Mutex::new(restored),
                tracker: TaskTracker::new(),
                running: AtomicUsize::new(0),
                wake: Arc::new(Notify::new()),
                recorder,
                closed: AtomicBool::new(false),
                closing: CancellationToken::new(),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                resumed: AtomicU64::new(0),
            }),
        };
        tokio::spawn(run_waker(
            Arc::downgrade(&outbox.inner),
            Arc::clone(&outbox.inner.wake),
            outbox.inner.closing.clone(),
        ));
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
        let due = entry.not_before.map(instant_of);
        let queued = Queued::of(&entry, target.pieces(&entry));
        drop(entry);
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.prune(self.inner.settings.window);
        let key = target.lane_key().to_owned();
        let lane = lanes.by_key.entry(key.clone()).or_insert_with(|| KeyLane {
            // Most keys get one send at a time (a report a day): room for one, grown on demand.
            queue: VecDeque::with_capacity(1),
            idle: Some(KeyMemory {
                window: self.inner.window_for(&key),
                gone_at: None,
            }),
            waiting: Waiting::No,
        });
        queue_by_priority(&mut lane.queue, queued);
        let sooner = lanes.schedule(&key, due);
        drop(lanes);
        if sooner {
            self.inner.wake.notify_one();
        }
        self.inner.start_ready();
    }

    /// Lane tasks alive now (running, or waiting for their bot account).
    pub fn lane_tasks(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Lanes waiting for a task: due now, or parked until later.
    pub fn waiting_lanes(&self) -> usize {
        let lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.ready.iter().map(VecDeque::len).sum::<usize>() + lanes.later.len()
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
    let at = queue
        .iter()
        .rposition(|waiting| waiting.rank <= queued.rank)
        .map_or(0, |i| i + 1);
    queue.insert(at, queued);
}

/// A send waiting in a lane: only what ordering and scheduling need. The entry itself, message
/// and all, stays in the store and is read back when its turn comes: a morning report to 100,000
/// groups waits as 100,000 of these small records, not 100,000 reports.
#[derive(Debug, Clone)]
struct Queued {
    id: u64,
    /// Its urgency among the lane's sends ([`priority`]).
    rank: u8,
    /// Not to be sent before this (a spread broadcast).
    due: Option<chrono::DateTime<Utc>>,
    /// How many requests the message takes, or why it cannot be sent (counted when queued).
    pieces: Result<usize, String>,
    /// Progress made before the lane parked mid-message (the store has it only with the outcome).
    attempts: u32,
    pieces_done: u32,
}

impl Queued {
    fn of(entry: &OutboxEntry, pieces: Result<usize, String>) -> Self {
        Queued {
            id: entry.id,
            rank: priority(&entry.purpose),
            due: entry.not_before,
            pieces,
            attempts: entry.attempts,
            pieces_done: entry.pieces_done,
        }
    }
}

/// Every key's lane, and the lanes waiting for a task.
struct LaneMap {
    by_key: HashMap<String, KeyLane>,
    /// When idle keys were last forgotten.
    pruned_at: Instant,
    /// Lanes with a send due now, by the urgency of that send ([`priority`]), then by arrival.
    ready: [VecDeque<String>; 3],
    /// Lanes whose next send is due later, by when (and arrival, for equal times).
    later: BTreeMap<(Instant, u64), String>,
    /// Arrival numbers for `later`.
    seq: u64,
}

/// How a lane without a task waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// It is not waiting: a task runs it, or it has nothing queued.
    No,
    /// In `ready`.
    Ready,
    /// In `later` under this key.
    Until(Instant, u64),
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
    waiting: Waiting,
}

impl LaneMap {
    /// Puts `key`'s lane in line for a task if it has none: in `ready` when its next send is
    /// due now, else in `later` at `due` (moved sooner if it waited for a later time). Returns
    /// whether the earliest time in `later` became sooner (the waker must look again).
    fn schedule(&mut self, key: &str, due: Option<Instant>) -> bool {
        let LaneMap {
            by_key,
            ready,
            later,
            seq,
            ..
        } = self;
        let Some(lane) = by_key.get_mut(key) else {
            return false;
        };
        let Some(front) = lane.queue.front() else {
            return false;
        };
        if lane.idle.is_none() || lane.waiting == Waiting::Ready {
            return false;
        }
        let due = due.filter(|&at| at > Instant::now());
        if let Waiting::Until(at, n) = lane.waiting {
            if due.is_some_and(|due| due >= at) {
                return false;
            }
            later.remove(&(at, n));
        }
        match due {
            None => {
                ready[usize::from(front.rank)].push_back(key.to_owned());
                lane.waiting = Waiting::Ready;
                false
            }
            Some(at) => {
                *seq += 1;
                let sooner = later
                    .first_key_value()
                    .is_none_or(|(&(first, _), _)| at < first);
                later.insert((at, *seq), key.to_owned());
                lane.waiting = Waiting::Until(at, *seq);
                sooner
            }
        }
    }

    /// Moves the parked lanes that are due by `now` to `ready`.
    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.later.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, n), key) = entry.remove_entry();
            let Some(lane) = self.by_key.get_mut(&key) else {
                continue;
            };
            if lane.waiting != Waiting::Until(at, n) {
                continue;
            }
            lane.waiting = Waiting::No;
            self.schedule(&key, None);
        }
    }

    /// The most urgent lane due now (its key and memory, for its task).
    fn take_ready(&mut self) -> Option<(String, KeyMemory)> {
        for queue in &mut self.ready {
            while let Some(key) = queue.pop_front() {
                let Some(lane) = self.by_key.get_mut(&key) else {
                    continue;
                };
                if lane.waiting != Waiting::Ready {
                    continue;
                }
                lane.waiting = Waiting::No;
                if lane.queue.is_empty() {
                    continue;
                }
                if let Some(memory) = lane.idle.take() {
                    return Some((key, memory));
                }
            }
        }
        None
    }

    /// When the earliest parked lane is due.
    fn next_due(&self) -> Option<Instant> {
        self.later.first_key_value().map(|(&(at, _), _)| at)
    }
}

/// The monotonic instant of a wall-clock time (now, if it has passed).
fn instant_of(at: chrono::DateTime<Utc>) -> Instant {
    let now = Instant::now();
    (at - Utc::now()).to_std().map_or(now, |wait| now + wait)
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

    /// The entry of `queued`, read back from the store now that its turn has come, with the
    /// progress the lane made on it; `None` (logged) when it cannot or need not be sent.
    fn load(&self, queued: &Queued) -> Option<OutboxEntry> {
        match self.store.send(queued.id) {
            Ok(Some(mut entry)) if entry.state == OutboxState::Pending => {
                entry.attempts = entry.attempts.max(queued.attempts);
                entry.pieces_done = entry.pieces_done.max(queued.pieces_done);
                Some(entry)
            }
            Ok(Some(entry)) => {
                info!(id = queued.id, state = ?entry.state, "already finished; not sent again");
                None
            }
            Ok(None) => {
                warn!(
                    id = queued.id,
                    "the send is no longer in the outbox; not sent"
                );
                None
            }
            Err(e) => {
                // Left pending: the next start sends it (a store that cannot be read would not
                // record a failure either).
                error!(id = queued.id, error = %e,
                    "the send could not be read back from the store; it stays pending for the next start");
                None
            }
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
            // Remembered for its minute: without the room its queue had.
            lane.queue = VecDeque::new();
            lane.idle = Some(kept);
        }
        None
    }

    /// Starts tasks for the lanes that are due, most urgent first, while fewer than
    /// `max_running_lanes` run. Nothing new starts once shutdown has begun.
    fn start_ready(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes.promote_due(Instant::now());
        while self.running.load(Ordering::Acquire) < self.options.max_running_lanes {
            let Some((key, memory)) = lanes.take_ready() else {
                break;
            };
            self.running.fetch_add(1, Ordering::AcqRel);
            let running = RunningLane(Arc::clone(self));
            self.tracker.spawn(run_lane(running, key, memory));
        }
    }

    /// Waits shorter than this are waited in the lane's task; a lane facing a longer one parks
    /// (its task ends and it waits in the lane map until due).
    fn park_beyond(&self) -> Duration {
        (self.settings.window / 8).min(Duration::from_secs(2))
    }

    /// Puts `queued` back at the front of `key`'s lane with the lane's `memory` and parks the
    /// lane until `due`. The caller's task then ends.
    fn park(&self, key: &str, queued: Queued, memory: KeyMemory, due: Instant) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(lane) = lanes.by_key.get_mut(key) else {
            // Never: a lane with a task is not forgotten. Stays pending for the next start.
            error!(
                id = queued.id,
                "a parked lane has no queue; the send is kept for the next start"
            );
            return;
        };
        lane.queue.push_front(queued);
        lane.idle = Some(memory);
        let sooner = lanes.schedule(key, Some(due));
        drop(lanes);
        if sooner {
            self.wake.notify_one();
        }
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

/// A lane's place among the running ones, given back (and the next lane started) when its task
/// ends, however it ends.
struct RunningLane(Arc<Inner>);

impl Drop for RunningLane {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.start_ready();
    }
}

/// A lane's place given up while it waits for its bot account (offline lanes must not keep
/// every other lane waiting), taken again when the wait ends.
struct AwayFromRunning<'a>(&'a Arc<Inner>);

impl<'a> AwayFromRunning<'a> {
    fn new(inner: &'a Arc<Inner>) -> Self {
        inner.running.fetch_sub(1, Ordering::AcqRel);
        inner.start_ready();
        AwayFromRunning(inner)
    }
}

impl Drop for AwayFromRunning<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_add(1, Ordering::AcqRel);
    }
}

/// Starts parked lanes when they become due. Ends with the outbox or at shutdown.
async fn run_waker(inner: Weak<Inner>, wake: Arc<Notify>, closing: CancellationToken) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.start_ready();
            let lanes = inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.next_due()
        };
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = due => {}
            () = wake.notified() => {}
            () = closing.cancelled() => return,
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
    /// The next attempt may go only after this wait: the lane parks instead of waiting.
    #[error("waiting {0:?} for the limits")]
    Park(Duration),
}

impl SendError {
    fn class(&self) -> &'static str {
        match self {
            SendError::Webhook(e) => e.class(),
            SendError::Account(e) => e.class(),
            SendError::Expired(_) => "expired",
            SendError::Closing => "closing",
            SendError::Park(_) => "park",
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

/// Sends what `target`'s lane holds, in order, until it is empty or must wait long (it parks).
async fn run_lane(running: RunningLane, key: String, memory: KeyMemory) {
    let inner = &running.0;
    let mut memory = Some(memory);
    while let Some(queued) = inner.next_entry(&key, &mut memory) {
        // Due later than a short wait: parked, so that a spread broadcast holds no tasks.
        if let Some(wait) = queued.due.and_then(|at| (at - Utc::now()).to_std().ok()) {
            if wait > inner.park_beyond() {
                if let Some(kept) = memory.take() {
                    inner.park(&key, queued, kept, Instant::now() + wait);
                }
                return;
            }
            tokio::time::sleep(wait).await;
        }
        let Some(mut entry) = inner.load(&queued) else {
            continue;
        };
        let target = match Target::of(&entry, &inner.settings.webhook_hosts) {
            Ok(target) => target,
            Err(e) => {
                error!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, error = %e,
                    "not sent: nowhere to send it");
                inner.failed.fetch_add(1, Ordering::Relaxed);
                inner.record(&entry, OutboxState::Failed, Some(e));
                continue;
            }
        };
        // The memory is only taken back by `next_entry` when the queue is empty.
        let Some(KeyMemory { window, gone_at }) = memory.as_mut() else {
            break;
        };
        if gone_at.is_some_and(|gone| entry.created_at <= gone) {
            inner.skip(&entry, &target, "the robot left the group".into());
            continue;
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
        let pieces = match queued.pieces.clone() {
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
            match send_with_retries(inner, window, &target, &mut entry, piece).await {
                Ok(()) => {
                    entry.pieces_done += 1;
                    info!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat,
                        to = %target.hint(), piece = piece + 1, pieces, "pushed");
                }
                // Left pending in the store: the next start sends it.
                Err(SendError::Closing) => return,
                Err(SendError::Park(wait)) => {
                    if let Some(kept) = memory.take() {
                        let queued = Queued {
                            attempts: entry.attempts,
                            pieces_done: entry.pieces_done,
                            ..queued
                        };
                        inner.park(&key, queued, kept, Instant::now() + wait);
                    }
                    return;
                }
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
///
/// A long pause of the account parks the lane; while the account is away the lane keeps its
/// task but gives up its place among the running lanes.
async fn wait_for_account(
    inner: &Arc<Inner>,
    target: &Target,
    entry: &OutboxEntry,
) -> Result<(), SendError> {
    let Target::Account { key, .. } = target else {
        return Ok(());
    };
    let hub = &inner.options.hub;
    if let Some(wait) = hub.paused_for(key) {
        if wait > inner.park_beyond() {
            return Err(SendError::Park(wait));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = inner.closing.cancelled() => return Err(SendError::Closing),
        }
    }
    let mut told = false;
    let mut away = None;
    while !hub.is_connected(key) {
        away.get_or_insert_with(|| AwayFromRunning::new(inner));
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
    inner: &Arc<Inner>,
    window: &mut SlidingWindow,
    target: &Target,
    entry: &mut OutboxEntry,
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
        // A long wait for the key's minute or the bot's parks the lane (nothing is counted yet).
        if let Some(wait) = window.delay(Instant::now()) {
            if wait > inner.park_beyond() {
                return Err(SendError::Park(wait));
            }
            tokio::time::sleep(wait).await;
        }
        // The per-bot and global limits come after the key's own: a lane waiting for its key
        // holds no place there.
        inner
            .limits
            .take_within(entry.bot.as_ref(), inner.park_beyond())
            .await
            .map_err(SendError::Park)?;
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
        let message = &entry.message;
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
            group.release(
                Utc::now(),
                format!(
                    "WeCom errcode {errcode}: the robot is no longer in the group or its key is invalid"
                ),
            );
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
mod tests;
