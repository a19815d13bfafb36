//! The lanes' bookkeeping: one ordered queue per webhook key (per group for a bot account) in a
//! shared map, the order in which lanes wait for a task (urgency, then arrival), and what a key
//! remembers after its lane empties (its minute of sends).

use super::*;

/// How soon a send of `purpose` goes out among those waiting for the same key (lower first):
/// answers to people (replies, welcomes, the adoption greeting, an envelope) before broadcasts,
/// broadcasts before moderation's warnings and notices — a burst of spam must not hold a
/// newcomer's welcome until it expires.
pub(super) fn priority(purpose: &str) -> u8 {
    match purpose {
        "reply" | "welcome" | "adoption_greeting" | "red_envelope" => 0,
        "moderation_warning" | "notify_admins" | "health_digest" => 2,
        _ => 1,
    }
}

/// Puts `entry` after every waiting entry of its priority or a more urgent one (in order of
/// arrival within a priority).
pub(super) fn queue_by_priority(queue: &mut VecDeque<Queued>, queued: Queued) {
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
pub(super) struct Queued {
    pub(super) id: u64,
    /// Its urgency among the lane's sends ([`priority`]).
    pub(super) rank: u8,
    /// Not to be sent before this (a spread broadcast).
    pub(super) due: Option<chrono::DateTime<Utc>>,
    /// How many requests the message takes, or why it cannot be sent (counted when queued).
    pub(super) pieces: Result<usize, String>,
    /// Progress made before the lane parked mid-message (the store has it only with the outcome).
    pub(super) attempts: u32,
    pub(super) pieces_done: u32,
}

impl Queued {
    pub(super) fn of(entry: &OutboxEntry, pieces: Result<usize, String>) -> Self {
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
pub(super) struct LaneMap {
    pub(super) by_key: HashMap<String, KeyLane>,
    /// When idle keys were last forgotten.
    pub(super) pruned_at: Instant,
    /// Lanes with a send due now, by the urgency of that send ([`priority`]), then by arrival.
    pub(super) ready: [VecDeque<String>; 3],
    /// Lanes whose next send is due later, by when (and arrival, for equal times).
    pub(super) later: BTreeMap<(Instant, u64), String>,
    /// Arrival numbers for `later`.
    pub(super) seq: u64,
}

/// How a lane without a task waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
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
    pub(super) fn prune(&mut self, window: Duration) {
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
pub(super) struct KeyLane {
    pub(super) queue: VecDeque<Queued>,
    /// `None` while the lane's task runs (it holds the memory); `Some` when no task does.
    pub(super) idle: Option<KeyMemory>,
    pub(super) waiting: Waiting,
}

impl LaneMap {
    /// Puts `key`'s lane in line for a task if it has none: in `ready` when its next send is
    /// due now, else in `later` at `due` (moved sooner if it waited for a later time). Returns
    /// whether the earliest time in `later` became sooner (the waker must look again).
    pub(super) fn schedule(&mut self, key: &str, due: Option<Instant>) -> bool {
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
    pub(super) fn promote_due(&mut self, now: Instant) {
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
    pub(super) fn take_ready(&mut self) -> Option<(String, KeyMemory)> {
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
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.later.first_key_value().map(|(&(at, _), _)| at)
    }
}

/// The monotonic instant of a wall-clock time (now, if it has passed).
pub(super) fn instant_of(at: chrono::DateTime<Utc>) -> Instant {
    let now = Instant::now();
    (at - Utc::now()).to_std().map_or(now, |wait| now + wait)
}

/// What a key's lane must remember from one burst of sends to the next.
pub(super) struct KeyMemory {
    /// The key's sends in the last minute.
    pub(super) window: SlidingWindow,
    /// When WeCom said the robot is gone: sends planned before then are skipped (a re-adoption
    /// may bring the same key back for later ones).
    pub(super) gone_at: Option<chrono::DateTime<Utc>>,
}

/// A lane's place among the running ones, given back when its task ends, however it ends; the
/// waker then starts the next lane. (Not started here: a task dropped while the runtime shuts
/// down would start the next, which is dropped at once and starts the next — a lane map of
/// 100,000 lanes deep in one stack.)
pub(super) struct RunningLane(pub(super) Arc<Inner>);

impl Drop for RunningLane {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.wake.notify_one();
    }
}

/// A lane's place given up while it waits for its bot account (offline lanes must not keep
/// every other lane waiting), taken again when the wait ends.
pub(super) struct AwayFromRunning<'a>(pub(super) &'a Arc<Inner>);

impl<'a> AwayFromRunning<'a> {
    pub(super) fn new(inner: &'a Arc<Inner>) -> Self {
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
