//! The ordered path from a de-duplicated event to the store and the pusher.
//!
//! The request path hands each new event to one pipeline task and waits for its batch to be
//! committed before it answers (an answer is a promise: WeCom never retries an answered
//! callback). The task takes whatever has queued up (up to [`BATCH`] items), applies it all in
//! one store transaction — one disk flush for the whole batch — tells the waiting requests, and
//! then queues the posts the engine decided on (the adoption greeting, notices to admins). This
//! is group commit: a batch starts as soon as the previous one is in, so at low load an event is
//! committed alone and at once, and under load batches grow instead of requests queueing one
//! flush each. Events are applied in the order they were accepted.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::domain::{ChatId, Conversation, Event, EventKind, OutMessage};
use crate::outbox::Outbox;
use crate::runtime::dedupe::Dedupe;
use crate::store::{
    AdoptedVia, Adopter, DedupeRecord, GroupRecord, HeldPost, ModerationWrite, NewSend,
    OutboxEntry, SharedTally, Store, StoreError, WriteTx,
};
use crate::wire::wecom::robot::webhook::WebhookUrl;

/// Why a group is released when its bot leaves (a bot account's group sync undoes it).
pub const LEFT_REASON: &str = "the robot was removed from the group";

/// Posts kept on a group the bot cannot reach yet (no webhook URL known), to be sent when it
/// can; other posts to such a group are logged and dropped (a notice or a reply would be stale).
const HELD_PURPOSES: &[&str] = &["adoption_greeting"];
/// The most posts held on one group.
const MAX_HELD: usize = 3;
/// A held post older than this is dropped instead of sent (a greeting a day late is odd).
const MAX_HELD_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Most items applied in one transaction.
pub const BATCH: usize = 2048;
/// Items that may wait for the pipeline before the request path waits too (back-pressure: a
/// full queue makes the next request wait for room, it never grows).
pub const QUEUE: usize = 4096;

/// A unit of work for the pipeline.
#[derive(Debug)]
pub enum Work {
    /// A new event, with its de-duplication record to persist.
    Event {
        event: Box<Event>,
        dedupe_key: String,
        dedupe: DedupeRecord,
        /// Messages to post to the event's group once it is recorded.
        posts: Vec<Post>,
        /// What moderation decided about it (standing, log entry, blacklist).
        moderation: Vec<ModerationWrite>,
        /// Told once the batch holding the event is committed (or could not be).
        done: Option<Committed>,
    },
    /// Forget handled ids first seen before this unix time.
    PruneDedupe { before: i64 },
}

/// A message the engine decided to post to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub message: OutMessage,
    pub purpose: &'static str,
}

/// Where an event's batch outcome is sent.
pub type Committed = oneshot::Sender<Result<(), NotRecorded>>;

/// The sending side; cheap to clone. When every handle is dropped the pipeline drains and stops.
#[derive(Clone)]
pub struct PipelineHandle {
    tx: mpsc::Sender<Work>,
}

/// The pipeline was stopped (the service is shutting down or the task failed).
#[derive(Debug, thiserror::Error)]
#[error("the pipeline is not running")]
pub struct PipelineStopped;

/// The store kept failing: the event's batch was not committed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the event was not recorded: the store kept failing")]
pub struct NotRecorded;

/// Why work was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Stopped(#[from] PipelineStopped),
    /// The queue stayed full for the whole wait: nothing was queued.
    #[error("the pipeline's queue stayed full")]
    Busy,
}

impl PipelineHandle {
    /// Queues `work`, waiting for room when the queue is full.
    pub async fn submit(&self, work: Work) -> Result<(), PipelineStopped> {
        self.tx.send(work).await.map_err(|_| PipelineStopped)
    }

    /// Queues `work`, waiting at most `wait` for room: a request that cannot be kept in time is
    /// refused (and retried by its sender) rather than buffered without bound.
    pub async fn submit_within(&self, work: Work, wait: Duration) -> Result<(), SubmitError> {
        use mpsc::error::SendTimeoutError;
        match self.tx.send_timeout(work, wait).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(SubmitError::Busy),
            Err(SendTimeoutError::Closed(_)) => Err(SubmitError::Stopped(PipelineStopped)),
        }
    }

    /// A handle whose queue holds `capacity` items and is read by nobody but the caller (tests
    /// of what a full queue does).
    pub fn unattended(capacity: usize) -> (PipelineHandle, mpsc::Receiver<Work>) {
        let (tx, rx) = mpsc::channel(capacity);
        (PipelineHandle { tx }, rx)
    }
}

/// What the pipeline needs to apply events.
pub struct Pipeline {
    pub store: Store,
    pub outbox: Outbox,
    pub webhook_hosts: Vec<String>,
    /// Who spoke, counted since it was last written (health's speaker days).
    pub speakers: SharedTally,
    /// Handled ids: marked committed (or forgotten) with their batch.
    pub dedupe: Arc<Dedupe>,
    /// The bots on a WeCom AI bot's long connection: the groups they hear are posted to
    /// through it.
    pub aibots: Arc<std::collections::HashSet<crate::domain::BotId>>,
    /// The self-built apps (`wecom-app`): the groups they hear of are customer groups.
    pub apps: Arc<std::collections::HashSet<crate::domain::BotId>>,
}

impl Pipeline {
    /// Starts the pipeline on a thread of its own: a batch is applied and committed there, with
    /// no hop through the blocking pool per batch (each hop is a thread wake-up on the path of
    /// every waiting request).
    pub fn spawn(self) -> (PipelineHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || self.run(rx, runtime));
        (PipelineHandle { tx }, task)
    }

    fn run(self, mut rx: mpsc::Receiver<Work>, runtime: tokio::runtime::Handle) {
        // The outbox starts its lanes as tasks of the service's runtime.
        let _runtime = runtime.enter();
        let mut batch = Vec::with_capacity(BATCH);
        // Group commit: whatever queued up while the last batch was committed is the next
        // batch, with no pause in between.
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(work) => batch.push(work),
                    Err(_) => break,
                }
            }
            let mut work = std::mem::take(&mut batch);
            // Who waits for this batch, and the ids it settles.
            let acks: Vec<(String, Option<Committed>)> = work
                .iter_mut()
                .filter_map(|w| match w {
                    Work::Event {
                        dedupe_key, done, ..
                    } => Some((dedupe_key.clone(), done.take())),
                    Work::PruneDedupe { .. } => None,
                })
                .collect();
            let (items, started) = (work.len(), std::time::Instant::now());
            let sends = self.apply_with_retries(&work);
            let committed = sends.is_some();
            debug!(
                items,
                committed,
                us = started.elapsed().as_micros() as u64,
                "batch done"
            );
            let keys = acks.iter().map(|(key, _)| key.as_str());
            if committed {
                self.dedupe.committed(keys);
            } else {
                self.dedupe.abandoned(keys);
            }
            for (_, done) in acks {
                if let Some(done) = done {
                    // The request may have gone (its client hung up): nobody to tell then.
                    let _ = done.send(if committed { Ok(()) } else { Err(NotRecorded) });
                }
            }
            for entry in sends.into_iter().flatten() {
                self.outbox.dispatch(entry);
            }
        }
        self.write_speakers();
        info!("pipeline drained");
    }

    /// Writes what the speaker tally holds (at shutdown).
    fn write_speakers(&self) {
        let mut tally = self.speakers.lock().unwrap_or_else(|e| e.into_inner());
        if tally.is_empty() {
            return;
        }
        match self.store.write(|tx| tx.write_speaker_tally(&tally)) {
            Ok(()) => tally.clear(),
            Err(e) => warn!(error = %e, "who spoke since the last minute was not written"),
        }
    }

    /// Applies `work`, retrying a failed write a few times (the requests wait meanwhile);
    /// `None` when it could not be committed.
    fn apply_with_retries(&self, work: &[Work]) -> Option<Vec<OutboxEntry>> {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=4 {
            // A bug that panics on one batch must not stop the pipeline for every later one.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.apply(work)));
            match result {
                Ok(Ok(sends)) => return Some(sends),
                Ok(Err(e)) => {
                    warn!(error = %e, attempt, items = work.len(), "store write failed; retrying")
                }
                Err(_) => {
                    error!(
                        items = work.len(),
                        "applying a batch panicked; it is not recorded"
                    );
                    return None;
                }
            }
            std::thread::sleep(delay);
            delay *= 4;
        }
        for item in work {
            if let Work::Event { event, .. } = item {
                error!(bot = %event.bot, msg_id = %event.msg_id, chat = ?event.chat_id(),
                    kind = ?event.kind, "event not recorded: the store kept failing");
            }
        }
        None
    }

    /// Applies a batch in one store transaction and returns the outbox entries it wrote. Blocking:
    /// the pipeline runs it on a blocking thread (public for the store benchmark).
    pub fn apply(&self, work: &[Work]) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut tally = self.speakers.lock().unwrap_or_else(|e| e.into_inner());
        // Who spoke goes to the store about once a minute, with a batch (decision D27).
        let flush = tally.is_due();
        let sends = self.store.write(|tx| {
            let sends = self.apply_batch(tx, work)?;
            if flush {
                tx.write_speaker_tally(&tally)?;
            }
            Ok(sends)
        })?;
        if flush {
            tally.clear();
        }
        // Counted once the batch is in: a batch retried after a failed write is not counted twice.
        for item in work {
            if let Work::Event { event, .. } = item
                && let Some(chat) = event.chat_id()
                && event.kind.is_message()
                && !event.from.user_id.is_empty()
            {
                tally.add(chat.as_str(), &event.from.user_id, event.received_at);
            }
        }
        Ok(sends)
    }

    fn apply_batch(
        &self,
        tx: &mut WriteTx<'_>,
        work: &[Work],
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut sends = Vec::new();
        // Each group touched by the batch is read once and written once, however many of the
        // batch's messages are from it.
        let mut groups: HashMap<ChatId, Option<GroupRecord>> = HashMap::new();
        for item in work {
            match item {
                Work::Event {
                    event,
                    dedupe_key,
                    dedupe,
                    posts,
                    moderation,
                    done: _,
                } => {
                    tx.put_dedupe(dedupe_key, dedupe)?;
                    for write in moderation {
                        tx.apply_moderation(write)?;
                    }
                    if let Conversation::Group(chat) = &event.conversation {
                        let slot = match groups.entry(chat.clone()) {
                            Entry::Occupied(slot) => slot.into_mut(),
                            Entry::Vacant(slot) => slot.insert(tx.group(chat)?),
                        };
                        let mut group = self.apply_group_event(tx, slot.take(), chat, event)?;
                        self.queue_posts(tx, &mut group, event, dedupe_key, posts, &mut sends)?;
                        *slot = Some(group);
                    }
                }
                Work::PruneDedupe { before } => {
                    let removed = tx.prune_dedupe(*before)?;
                    if removed > 0 {
                        info!(removed, "forgot old handled message ids");
                    }
                    // Health looks back four weeks: older speaker days go with the old ids.
                    let removed = tx.prune_speaker_days(Utc::now())?;
                    if removed > 0 {
                        info!(removed, "forgot who spoke on days health no longer reads");
                    }
                }
            }
        }
        for group in groups.into_values().flatten() {
            tx.put_group(&group)?;
        }
        Ok(sends)
    }

    /// The event's webhook URL when it is allowed.
    fn webhook(&self, event: &Event) -> Option<WebhookUrl> {
        let raw = event.webhook_url.as_deref()?;
        match WebhookUrl::parse(raw, &self.webhook_hosts) {
            Ok(url) => Some(url),
            Err(e) => {
                warn!(bot = %event.bot, chat = ?event.chat_id(), error = %e,
                    "webhook URL refused; nothing will be pushed to it");
                None
            }
        }
    }

    /// Writes `posts` to the outbox, in the batch's transaction: they are durable with the
    /// event that caused them. The key makes a replayed batch enqueue nothing twice. Posts worth
    /// keeping ([`HELD_PURPOSES`]) to a group the bot cannot reach yet are held on the group and
    /// queued by the first event that brings a way to reach it.
    fn queue_posts(
        &self,
        tx: &mut WriteTx<'_>,
        group: &mut GroupRecord,
        event: &Event,
        event_key: &str,
        posts: &[Post],
        sends: &mut Vec<OutboxEntry>,
    ) -> Result<(), StoreError> {
        if posts.is_empty() && group.held_posts.is_empty() {
            return Ok(());
        }
        let to = match crate::outbox::group_destination(group, &self.webhook_hosts) {
            Ok(to) => to,
            Err(why) => {
                for (i, post) in posts.iter().enumerate() {
                    if HELD_PURPOSES.contains(&post.purpose) && group.held_posts.len() < MAX_HELD {
                        info!(bot = %event.bot, chat = %group.chat_id, purpose = post.purpose,
                            "message held until the group can be reached: {why}");
                        group.held_posts.push(HeldPost {
                            key: format!("event:{event_key}:{i}"),
                            message: post.message.clone(),
                            purpose: post.purpose.to_owned(),
                            held_at: event.received_at,
                        });
                    } else {
                        warn!(bot = %event.bot, chat = %group.chat_id, purpose = post.purpose,
                            "message not posted: {why}");
                    }
                }
                return Ok(());
            }
        };
        let (held, stale): (Vec<HeldPost>, Vec<HeldPost>) = std::mem::take(&mut group.held_posts)
            .into_iter()
            .partition(|h| event.received_at - h.held_at < MAX_HELD_FOR);
        for post in &stale {
            warn!(bot = %event.bot, chat = %group.chat_id, purpose = %post.purpose,
                held_at = %post.held_at, "held message dropped: too old to send now");
        }
        if !held.is_empty() {
            info!(bot = %event.bot, chat = %group.chat_id, posts = held.len(),
                "held messages queued: the group can be reached now");
        }
        let held = held.into_iter().map(|h| (h.key, h.message, h.purpose));
        let new = posts.iter().enumerate().map(|(i, post)| {
            (
                format!("event:{event_key}:{i}"),
                post.message.clone(),
                post.purpose.to_owned(),
            )
        });
        for (key, message, purpose) in held.chain(new) {
            let send = NewSend {
                key,
                chat: Some(group.chat_id.clone()),
                bot: Some(group.bot.clone()),
                to: to.clone(),
                message,
                purpose,
                run: None,
                not_before: None,
                skip: None,
            };
            sends.extend(tx.enqueue(send, event.received_at)?);
        }
        Ok(())
    }

    /// Applies one event to its group's record (`existing`, as the batch has it so far) and
    /// returns the updated record.
    fn apply_group_event(
        &self,
        tx: &mut WriteTx<'_>,
        existing: Option<GroupRecord>,
        chat: &ChatId,
        event: &Event,
    ) -> Result<GroupRecord, StoreError> {
        let now = event.received_at;
        let known = existing.is_some();
        // Most events repeat the URL on record, which passed the check before: only a changed
        // URL, or an adoption (which pushes a greeting), needs parsing.
        let recorded = existing.as_ref().and_then(|g| g.webhook_url.as_deref());
        let changed = event
            .webhook_url
            .as_deref()
            .is_some_and(|raw| recorded != Some(raw));
        let webhook = if changed || event.kind == EventKind::BotAdded {
            self.webhook(event)
        } else {
            None
        };
        let mut group =
            existing.unwrap_or_else(|| GroupRecord::new(chat.clone(), event.bot.clone()));
        if let Some(url) = &webhook {
            group.webhook_url = Some(url.expose().to_owned());
        }
        if let Some(account) = &event.account {
            // The account that hears the group is the one that speaks in it.
            group.account = Some(account.clone());
        }
        if self.aibots.contains(&event.bot) {
            group.aibot = true;
        }
        let customer = self.apps.contains(&event.bot);
        if customer {
            group.customer = true;
        }
        match &event.kind {
            // Nobody added it: a channel that learns of a group only by hearing it (the AI
            // bot) reports it so, just before the first message.
            EventKind::BotAdded if event.from.user_id.is_empty() => {
                group.bot = event.bot.clone();
                group.adopt(AdoptedVia::FirstMessage, now, None);
                info!(bot = %event.bot, chat = %chat, "group adopted on its first message");
            }
            EventKind::BotAdded => {
                group.bot = event.bot.clone();
                let adopter = Adopter {
                    user_id: event.from.user_id.clone(),
                    name: event.from.name.clone(),
                };
                group.adopt(AdoptedVia::AddToChat, now, Some(adopter));
                info!(bot = %event.bot, chat = %chat, adopter = %event.from.user_id, "group adopted");
            }
            EventKind::BotRemoved => {
                group.release(now, LEFT_REASON);
                info!(bot = %event.bot, chat = %chat, by = %event.from.user_id, "group released");
            }
            _ => {
                if !known && customer {
                    // A customer group the app had not listed yet: WeCom reports only groups
                    // the app may see.
                    group.adopt(AdoptedVia::GroupchatList, now, None);
                    info!(bot = %event.bot, chat = %chat, "customer group adopted on its first event");
                } else if !known {
                    // The robot was in the group before Trumpet saw it being added.
                    group.adopt(AdoptedVia::FirstMessage, now, None);
                    info!(bot = %event.bot, chat = %chat, "group adopted on its first message");
                }
                let member = event.from.user_id.as_str();
                match &event.kind {
                    _ if member.is_empty() => {}
                    EventKind::MemberJoined { .. } => {
                        tx.roster_add(chat, member, &event.from.name)?;
                        tx.note_move(chat, now, true)?;
                    }
                    EventKind::MemberLeft { .. } => {
                        tx.roster_remove(chat, member)?;
                        tx.note_move(chat, now, false)?;
                    }
                    kind if kind.is_message() => {
                        tx.record_message(&mut group, &event.from, now)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(group)
    }
}

/// Unix seconds now, for de-duplication records.
pub fn unix_now() -> i64 {
    Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prune() -> Work {
        Work::PruneDedupe { before: 0 }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_makes_a_request_wait_then_refuses_it_without_growing() {
        let (handle, mut rx) = PipelineHandle::unattended(2);
        handle
            .submit_within(prune(), Duration::from_secs(4))
            .await
            .unwrap();
        handle
            .submit_within(prune(), Duration::from_secs(4))
            .await
            .unwrap();
        // Full: the third waits its whole budget and is refused; the queue did not grow.
        let started = tokio::time::Instant::now();
        let refused = handle.submit_within(prune(), Duration::from_secs(4)).await;
        assert!(matches!(refused, Err(SubmitError::Busy)), "{refused:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        assert_eq!(rx.len(), 2);
        // Room made while a request waits lets it in.
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.submit_within(prune(), Duration::from_secs(4)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(rx.recv().await.is_some());
        assert!(waiting.await.unwrap().is_ok());
        assert_eq!(rx.len(), 2);
        drop(rx);
        assert!(matches!(
            handle.submit_within(prune(), Duration::from_secs(1)).await,
            Err(SubmitError::Stopped(_))
        ));
    }
}
