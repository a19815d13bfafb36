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
//!
//! Here: the outbox's handle and its shared state; in [`lanes`] the queues and the order they
//! wait in, in [`delivery`] a lane's task (limits, retries, release), in [`recorder`] the waker
//! of parked lanes and the writer of outcomes.

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
use crate::wire::wecom::aibot::AiBotLinks;
use crate::wire::wecom::robot::webhook::{WebhookClient, WebhookError, WebhookUrl, request_bodies};

mod delivery;
mod lanes;
mod recorder;
use delivery::{Target, run_lane};
use lanes::{
    AwayFromRunning, KeyLane, KeyMemory, LaneMap, Queued, RunningLane, Waiting, instant_of,
    queue_by_priority,
};
use recorder::{run_recorder, run_waker};

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
    /// The WeCom AI bots' open links.
    pub aibots: Arc<AiBotLinks>,
    /// First back-off after a bot account's action was refused for now (34xxx, 36xxx, timeout).
    pub account_retry_base: Duration,
    pub account_max_attempts: u32,
    pub expiry: OutboxConfig,
    /// Lanes with a task at once; the others wait their turn in the lane map.
    pub max_running_lanes: usize,
    /// Customer groups' broadcasts, as mass-send tasks (none without a `wecom-app` bot).
    pub mass: Option<Arc<super::mass_send::MassSender>>,
}

impl Default for OutboxOptions {
    /// No accounts connected; nothing expires.
    fn default() -> Self {
        OutboxOptions {
            hub: Arc::new(Hub::new(Duration::from_secs(10))),
            aibots: Arc::default(),
            account_retry_base: Duration::from_secs(2),
            account_max_attempts: 6,
            expiry: OutboxConfig {
                expire_after_minutes: Default::default(),
            },
            max_running_lanes: MAX_RUNNING_LANES,
            mass: None,
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
        // A customer group's send waits in the store for its mass-send task.
        if super::mass_send::is_mass_send(&entry.to) {
            match &self.inner.options.mass {
                Some(mass) if entry.bot.as_ref().is_some_and(|b| mass.serves(b)) => mass.wake(),
                _ => {
                    let reason = format!(
                        "no wecom-app bot {} is configured to create its mass-send task",
                        entry.bot.as_ref().map_or("?", |b| b.as_str())
                    );
                    error!(id = entry.id, chat = ?entry.chat, error = %reason, "not sent");
                    self.inner.failed.fetch_add(1, Ordering::Relaxed);
                    self.inner.record(&entry, OutboxState::Failed, Some(reason));
                }
            }
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
        let mut ready = Vec::new();
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes.promote_due(Instant::now());
            while self.running.load(Ordering::Acquire) < self.options.max_running_lanes {
                let Some(lane) = lanes.take_ready() else {
                    break;
                };
                self.running.fetch_add(1, Ordering::AcqRel);
                ready.push(lane);
            }
        }
        // Spawned with the lane map unlocked: on a runtime that is shutting down, spawning drops
        // the task at once, and its RunningLane's drop must not find the map locked by us.
        for (key, memory) in ready {
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

#[cfg(test)]
mod tests;
