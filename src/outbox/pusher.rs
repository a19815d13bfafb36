//! Pushing messages through robot webhooks: one ordered lane per webhook key, each with its own
//! sliding-window limit, retries with back-off on retryable errcodes, and release of the group
//! when WeCom says the robot is gone (93000 / 93008).
//!
//! The queue is in memory: a message still queued when the process dies is lost (and logged as
//! undelivered on a clean shutdown). The durable outbox replaces this queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::governor::{SlidingWindow, backoff};
use crate::channels::wecom::robot::webhook::{
    WebhookClient, WebhookError, WebhookUrl, request_bodies,
};
use crate::domain::{ChatId, OutMessage};
use crate::store::{GroupStatus, Store};

/// One message to push.
#[derive(Debug, Clone)]
pub struct PushJob {
    /// The group it is for, when known: released if the robot turns out to be gone.
    pub chat: Option<ChatId>,
    pub url: WebhookUrl,
    pub message: OutMessage,
    /// What the message is (`adoption_greeting`, …), for the log.
    pub purpose: &'static str,
}

/// Limits and retry policy for pushes.
#[derive(Debug, Clone)]
pub struct PushSettings {
    pub per_minute: u32,
    pub window: Duration,
    pub retry_base: Duration,
    pub max_attempts: u32,
}

/// Counters since start, for tests and the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushStats {
    pub delivered: u64,
    pub failed: u64,
    pub retries: u64,
}

struct Queued {
    job: PushJob,
    enqueued_at: Instant,
}

struct Inner {
    client: WebhookClient,
    settings: PushSettings,
    store: Store,
    lanes: Mutex<HashMap<String, mpsc::UnboundedSender<Queued>>>,
    tracker: TaskTracker,
    closed: AtomicBool,
    delivered: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

/// Queues pushes and delivers them in order per webhook key. Cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    inner: Arc<Inner>,
}

impl Pusher {
    pub fn new(client: WebhookClient, settings: PushSettings, store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                settings,
                store,
                lanes: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                closed: AtomicBool::new(false),
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `job` on its key's lane. After shutdown has begun the job is refused and logged.
    pub fn push(&self, job: PushJob) {
        if self.inner.closed.load(Ordering::Acquire) {
            error!(purpose = job.purpose, chat = ?job.chat, key = %job.url.key_hint(),
                "not sent: the service is shutting down");
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let queued = Queued {
            job,
            enqueued_at: Instant::now(),
        };
        let mut lanes = self.inner.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let key = queued.job.url.key().to_owned();
        let queued = match lanes.get(&key) {
            Some(lane) => match lane.send(queued) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => back,
            },
            None => queued,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive: it was created just now.
        let _ = tx.send(queued);
        lanes.insert(key.clone(), tx);
        let inner = Arc::clone(&self.inner);
        self.inner.tracker.spawn(run_lane(inner, key, rx));
    }

    pub fn stats(&self) -> PushStats {
        PushStats {
            delivered: self.inner.delivered.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// Stops taking jobs, lets the lanes finish what they hold for up to `grace`, and returns
    /// whether they all finished.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner.tracker.close();
        match tokio::time::timeout(grace, self.inner.tracker.wait()).await {
            Ok(()) => true,
            Err(_) => {
                error!(
                    lanes = self.inner.tracker.len(),
                    "shutdown grace ran out with pushes still queued; they are not sent"
                );
                false
            }
        }
    }
}

async fn run_lane(inner: Arc<Inner>, key: String, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let settings = &inner.settings;
    let mut window = SlidingWindow::new(settings.per_minute, settings.window);
    let mut gone_since: Option<Instant> = None;
    while let Some(Queued { job, enqueued_at }) = rx.recv().await {
        if gone_since.is_some_and(|gone| enqueued_at <= gone) {
            warn!(purpose = job.purpose, chat = ?job.chat, key = %job.url.key_hint(),
                "not sent: the robot left the group before this message's turn");
            inner.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let bodies = match request_bodies(&job.message) {
            Ok(bodies) => bodies,
            Err(e) => {
                error!(purpose = job.purpose, chat = ?job.chat, error = %e, "not sent: invalid message");
                inner.failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let pieces = bodies.len();
        for (i, body) in bodies.iter().enumerate() {
            match send_with_retries(&inner, &mut window, &job, body).await {
                Ok(()) => {
                    inner.delivered.fetch_add(1, Ordering::Relaxed);
                    info!(purpose = job.purpose, chat = ?job.chat, key = %job.url.key_hint(),
                        piece = i + 1, pieces, "pushed");
                }
                Err(e) => {
                    inner.failed.fetch_add(1, Ordering::Relaxed);
                    error!(purpose = job.purpose, chat = ?job.chat, key = %job.url.key_hint(),
                        error = %e, class = e.class(), piece = i + 1, pieces,
                        "push failed; the rest of this message is not sent");
                    if let WebhookError::RobotGone { errcode, .. } = e {
                        gone_since = Some(Instant::now());
                        if let Some(chat) = &job.chat {
                            release_group(&inner.store, chat, errcode).await;
                        }
                    }
                    break;
                }
            }
        }
    }
    tracing::debug!(key = %&key[..key.len().min(6)], "lane closed");
}

async fn send_with_retries(
    inner: &Inner,
    window: &mut SlidingWindow,
    job: &PushJob,
    body: &serde_json::Value,
) -> Result<(), WebhookError> {
    let settings = &inner.settings;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(wait) = window.delay(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        window.record(Instant::now());
        match inner.client.post(&job.url, body).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() && attempt < settings.max_attempts => {
                let jitter = rand::rng().random_range(0.8..1.2);
                let wait = backoff(settings.retry_base, attempt, jitter);
                inner.retries.fetch_add(1, Ordering::Relaxed);
                warn!(purpose = job.purpose, chat = ?job.chat, key = %job.url.key_hint(),
                    error = %e, class = e.class(), attempt, wait_ms = wait.as_millis() as u64,
                    "push will be retried");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
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
