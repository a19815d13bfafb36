//! A lane's task: it takes the lane's sends in order, waits for a bot account that is away or for
//! the key's, the bot's and the global limits, sends with retries and back-off on retryable
//! errors, and releases the group when WeCom says the robot is gone.

use super::*;
use crate::wire::onebot::hub::To;
use crate::wire::wecom::aibot::{AckError, post_contents};

/// Where a lane's sends go.
#[derive(Clone)]
pub(super) enum Target {
    Webhook(WebhookUrl),
    /// A group through a bot account; `lane` is the lane's key.
    Account {
        key: AccountKey,
        chat: ChatId,
        lane: String,
    },
    /// A person, privately, through a bot account; `lane` is the lane's key.
    Private {
        key: AccountKey,
        user_id: String,
        lane: String,
    },
    /// A group through a WeCom AI bot's long connection; `lane` is the lane's key.
    AiBot {
        bot: BotId,
        chat: ChatId,
        lane: String,
    },
}

impl Target {
    pub(super) fn of(entry: &OutboxEntry, webhook_hosts: &[String]) -> Result<Target, String> {
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
            Destination::Private { account, user_id } => {
                let Some(bot) = &entry.bot else {
                    return Err("a private message through a bot account needs its bot".into());
                };
                Ok(Target::Private {
                    lane: format!("private\u{1f}{bot}\u{1f}{account}\u{1f}{user_id}"),
                    key: AccountKey {
                        bot: bot.clone(),
                        user_id: account.clone(),
                    },
                    user_id: user_id.clone(),
                })
            }
            Destination::CustomerGroup { .. } => Err(
                "a customer group is reached only by a mass-send task (this build has not planned one)".into(),
            ),
            Destination::AiBot { .. } => {
                let (Some(bot), Some(chat)) = (&entry.bot, &entry.chat) else {
                    return Err("a send through an AI bot needs its bot and group".into());
                };
                Ok(Target::AiBot {
                    lane: format!("aibot\u{1f}{bot}\u{1f}{chat}"),
                    bot: bot.clone(),
                    chat: chat.clone(),
                })
            }
        }
    }

    /// The bot account this target sends through, if any.
    fn account(&self) -> Option<&AccountKey> {
        match self {
            Target::Webhook(_) | Target::AiBot { .. } => None,
            Target::Account { key, .. } | Target::Private { key, .. } => Some(key),
        }
    }

    pub(super) fn lane_key(&self) -> &str {
        match self {
            Target::Webhook(url) => url.key(),
            Target::Account { lane, .. }
            | Target::Private { lane, .. }
            | Target::AiBot { lane, .. } => lane,
        }
    }

    /// What the log shows: a webhook key's hint, or the account.
    pub(super) fn hint(&self) -> String {
        match self {
            Target::Webhook(url) => url.key_hint(),
            Target::Account { key, .. } => format!("{}/{}", key.bot, key.user_id),
            Target::Private { key, .. } => format!("{}/{} (private)", key.bot, key.user_id),
            Target::AiBot { bot, .. } => format!("{bot} (AI bot)"),
        }
    }

    /// How many requests `entry`'s message takes (a long robot message is split).
    pub(super) fn pieces(&self, entry: &OutboxEntry) -> Result<usize, String> {
        match self {
            Target::Webhook(_) => request_bodies(&entry.message)
                .map(|b| b.len())
                .map_err(|e| e.to_string()),
            Target::Account { .. } | Target::Private { .. } => Ok(1),
            Target::AiBot { .. } => post_contents(&entry.message).map(|c| c.len()),
        }
    }
}

/// Why a send did not go out.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(transparent)]
    Account(#[from] CallError),
    #[error(transparent)]
    AiBot(#[from] AckError),
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
            SendError::AiBot(e) => e.class(),
            SendError::Expired(_) => "expired",
            SendError::Closing => "closing",
            SendError::Park(_) => "park",
        }
    }
}

/// Sends what `target`'s lane holds, in order, until it is empty or must wait long (it parks).
pub(super) async fn run_lane(running: RunningLane, key: String, memory: KeyMemory) {
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
                        SendError::Webhook(WebhookError::Timeout)
                        | SendError::AiBot(AckError::Timeout(_)) => OutboxState::TimedOut,
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
pub(super) async fn wait_for_account(
    inner: &Arc<Inner>,
    target: &Target,
    entry: &OutboxEntry,
) -> Result<(), SendError> {
    if let Target::AiBot { bot, .. } = target {
        return wait_for_aibot(inner, target, bot, entry).await;
    }
    let Some(key) = target.account() else {
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
        let limit = wait_limit(inner, entry)?;
        tokio::select! {
            _ = hub.wait_connected(key, limit) => {}
            () = inner.closing.cancelled() => return Err(SendError::Closing),
        }
    }
    Ok(())
}

/// How long a send may still wait for its link or account: until it expires (an error once it
/// has), else an hour at a time.
fn wait_limit(inner: &Arc<Inner>, entry: &OutboxEntry) -> Result<Duration, SendError> {
    match inner.expires_at(entry) {
        Some(at) => (at - Utc::now()).to_std().map_err(|_| {
            let minutes = inner
                .options
                .expiry
                .expiry(&entry.purpose, entry.run.is_some())
                .map_or(0.0, |d| d.as_secs_f64() / 60.0);
            SendError::Expired(minutes)
        }),
        None => Ok(Duration::from_secs(3600)),
    }
}

/// Waits until the AI bot `bot`'s link is up; gives up when the entry expires or the service
/// stops. While the link is down the lane gives up its place among the running lanes.
async fn wait_for_aibot(
    inner: &Arc<Inner>,
    target: &Target,
    bot: &BotId,
    entry: &OutboxEntry,
) -> Result<(), SendError> {
    let links = &inner.options.aibots;
    let mut away = None;
    // URL-callback mode: the send fails with the reason rather than wait.
    while !links.is_connected(bot) && !links.is_callback_only(bot) {
        if away.is_none() {
            info!(id = entry.id, purpose = %entry.purpose, chat = ?entry.chat, to = %target.hint(),
                "the AI bot's link is down; the send waits for it");
        }
        away.get_or_insert_with(|| AwayFromRunning::new(inner));
        let limit = wait_limit(inner, entry)?;
        tokio::select! {
            _ = links.wait_connected(bot, limit) => {}
            () = inner.closing.cancelled() => return Err(SendError::Closing),
        }
    }
    Ok(())
}

/// Sends piece `piece` of `entry`, retrying what may be retried. Waits for the bot account to
/// be connected and for the key's minute first, then for the per-bot and global limits, then
/// for a place among the requests in flight.
pub(super) async fn send_with_retries(
    inner: &Arc<Inner>,
    window: &mut SlidingWindow,
    target: &Target,
    entry: &mut OutboxEntry,
    piece: usize,
) -> Result<(), SendError> {
    let settings = &inner.settings;
    let (retry_base, max_attempts) = match target {
        Target::Webhook(_) => (settings.retry_base, settings.max_attempts),
        Target::Account { .. } | Target::Private { .. } | Target::AiBot { .. } => (
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
            Target::Account { key, chat, .. } => Box::pin(inner.options.hub.send_message(
                key,
                To::Group(chat.as_str()),
                message,
            ))
            .await
            .map(|_| ())
            .map_err(SendError::from),
            Target::Private { key, user_id, .. } => Box::pin(inner.options.hub.send_message(
                key,
                To::Private(user_id),
                message,
            ))
            .await
            .map(|_| ())
            .map_err(SendError::from),
            Target::AiBot { bot, chat, .. } => match post_contents(message) {
                Ok(contents) => match contents.get(piece) {
                    Some(content) => Box::pin(inner.options.aibots.post_markdown(
                        bot,
                        chat.as_str(),
                        content,
                    ))
                    .await
                    .map_err(SendError::from),
                    None => Err(WebhookError::Invalid(format!(
                        "the message has no piece {}",
                        piece + 1
                    ))
                    .into()),
                },
                Err(e) => Err(WebhookError::Invalid(e).into()),
            },
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
            // The link went down with the post unanswered: sent again once it is back (within
            // the send's expiry) — it may reach the group twice, which the receipt's attempts
            // show.
            Err(SendError::AiBot(AckError::NotConnected | AckError::Closed)) => {
                attempt -= 1;
                continue;
            }
            Err(SendError::AiBot(AckError::Timeout(_))) => inner.settings.retry_after_timeout,
            Err(SendError::AiBot(e)) => e.is_retryable(),
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
pub(super) async fn release_group(store: &Store, chat: &ChatId, errcode: i64) {
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
