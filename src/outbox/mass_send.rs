//! Broadcasts to WeCom customer groups, as mass-send tasks (企业群发) the groups' owners confirm
//! in the WeCom client: the sends of one run are planned into one task per owner (at most
//! 2,000 groups each), the task is written to the store before WeCom is asked to create it, and
//! each group's send stays `awaiting_confirmation` until `get_groupmsg_send_result` says the
//! owner sent it (`delivered`) or WeCom could not (`failed`, with WeCom's status). Owners who
//! have not confirmed are reminded (`remind_groupmsg_send`, at most 3 times a day); a send that
//! expires unconfirmed is stopped in WeCom (`cancel_groupmsg_send`) before it is called skipped.
//!
//! Crash safety: a send is in one task only (the store refuses a second), and a task whose
//! creation may have reached WeCom (a request went out, no answer was kept) is looked for in
//! the corp's mass sends (`get_groupmsg_list_v2`, same text, same owner) before it is created
//! again — a restart in the middle creates no second task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::OutboxConfig;
use crate::domain::BotId;
use crate::store::{
    Destination, GroupStatus, MassChat, MassTask, MassTaskState, OutboxState, SendOutcome, Store,
    StoreError,
};
use crate::wire::wecom::app::{ApiError, AppClient, AppSettings, MASS_MAX_GROUPS, mass_text};

/// A run's sends are planned this long after the first of them is due, so that a run planned
/// in several chunks goes into one task per owner.
const SETTLE: Duration = Duration::from_secs(3);

/// After a failed creation, the next attempt waits this long, doubling per attempt up to
/// [`CREATE_RETRY_MAX`].
const CREATE_RETRY: Duration = Duration::from_secs(2);
const CREATE_RETRY_MAX: Duration = Duration::from_secs(300);

fn create_retry(attempts: u32) -> Duration {
    CREATE_RETRY
        .saturating_mul(1 << attempts.saturating_sub(1).min(10))
        .min(CREATE_RETRY_MAX)
}

/// How far around the first request a lost creation is looked for.
const FIND_MARGIN_SECS: i64 = 120;

/// One app the sender creates tasks for.
pub struct MassApp {
    pub client: Arc<AppClient>,
    pub settings: AppSettings,
}

/// The mass-send tasks of every `wecom-app` bot.
pub struct MassSender {
    store: Store,
    apps: HashMap<BotId, MassApp>,
    expiry: OutboxConfig,
    wake: Notify,
    /// The service stopping: calls to WeCom give up (writes to the store never are cut short:
    /// a write left running on a blocking thread would keep the store open).
    stop: CancellationToken,
}

/// A send's new state, as written.
fn outcome(entry: u64, state: OutboxState, note: Option<String>) -> SendOutcome {
    SendOutcome {
        id: entry,
        state,
        attempts: 1,
        pieces_done: u32::from(state == OutboxState::Delivered),
        last_error: note,
    }
}

fn store_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Db(format!("mass-send task failed: {e}"))
}

impl MassSender {
    pub fn new(
        store: Store,
        apps: HashMap<BotId, MassApp>,
        expiry: OutboxConfig,
        stop: CancellationToken,
    ) -> Self {
        Self {
            store,
            apps,
            expiry,
            wake: Notify::new(),
            stop,
        }
    }

    /// `call` to WeCom, given up when the service stops (as a transport error: whatever it was
    /// doing is looked at again on the next start).
    async fn api<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        self.stop
            .run_until_cancelled(call)
            .await
            .unwrap_or_else(|| Err(ApiError::Transport("the service is stopping".into())))
    }

    /// Whether `bot` is a configured app.
    pub fn serves(&self, bot: &BotId) -> bool {
        self.apps.contains_key(bot)
    }

    /// New sends to customer groups are in the store: plan them.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Plans, creates, checks and reminds until the service stops.
    pub async fn run(self: Arc<Self>) {
        loop {
            let next = self.round().await;
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = self.wake.notified() => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// One round; returns how long until the next work is due.
    async fn round(&self) -> Duration {
        let now = Utc::now();
        let mut next = Duration::from_secs(60);
        match self.plan(now).await {
            Ok(Some(wait)) => next = next.min(wait),
            Ok(None) => {}
            Err(e) => error!(error = %e, "mass-send tasks not planned: the store failed"),
        }
        let store = self.store.clone();
        let open = match tokio::task::spawn_blocking(move || store.open_mass_tasks()).await {
            Ok(Ok(open)) => open,
            Ok(Err(e)) => {
                error!(error = %e, "mass-send tasks unreadable");
                return next;
            }
            Err(e) => {
                error!(error = %e, "mass-send task read failed");
                return next;
            }
        };
        for task in open {
            if self.stop.is_cancelled() {
                break;
            }
            let Some(app) = self.apps.get(&task.bot) else {
                continue;
            };
            let wait = match task.state {
                MassTaskState::Creating => self.create(app, task).await,
                MassTaskState::AwaitingConfirmation => self.follow(app, task).await,
                MassTaskState::Finished | MassTaskState::Failed => None,
            };
            if let Some(wait) = wait {
                next = next.min(wait);
            }
        }
        next.max(Duration::from_millis(200))
    }

    /// Plans the due sends into tasks: one per run, owner and text, at most 2,000 groups each.
    /// Returns how long until sends not yet due are.
    async fn plan(&self, now: DateTime<Utc>) -> Result<Option<Duration>, StoreError> {
        let store = self.store.clone();
        let apps: HashSet<BotId> = self.apps.keys().cloned().collect();
        let expiry = self.expiry.clone();
        let (planned, wait) = tokio::task::spawn_blocking(move || {
            // Read first: nothing is written (and no message decoded) until a send is due.
            let unplanned = store.unplanned_mass_sends()?;
            let settle = chrono::Duration::from_std(SETTLE).unwrap_or_default();
            // A run goes out when its first send is due: every send of it at once.
            let mut due_runs = HashSet::new();
            let mut wait: Option<Duration> = None;
            for send in &unplanned {
                let due = send
                    .not_before
                    .unwrap_or(send.created_at)
                    .max(send.created_at + settle);
                let batch = send.run.clone().unwrap_or_else(|| send.key.clone());
                if due <= now {
                    due_runs.insert(batch);
                } else if let Ok(left) = (due - now).to_std() {
                    wait = Some(wait.map_or(left, |w| w.min(left)));
                }
            }
            let due: Vec<u64> = unplanned
                .iter()
                .filter(|s| due_runs.contains(s.run.as_ref().unwrap_or(&s.key)))
                .map(|s| s.id)
                .collect();
            if due.is_empty() {
                return Ok((Vec::new(), wait));
            }
            store.write(|tx| {
                let mut sends = Vec::with_capacity(due.len());
                for id in due {
                    // This loop is the only planner: a send read as unplanned still is.
                    if let Some(send) = tx.outbox_entry(id)? {
                        sends.push(send);
                    }
                }
                // (bot, run, owner, text) → the groups.
                let mut tasks: BTreeMap<(BotId, String, String, String), Vec<MassChat>> =
                    BTreeMap::new();
                let mut runs: HashMap<String, Option<String>> = HashMap::new();
                let mut refused = Vec::new();
                for send in sends {
                    let batch = send.run.clone().unwrap_or_else(|| send.key.clone());
                    let (Some(bot), Some(chat)) = (send.bot.clone(), send.chat.clone()) else {
                        refused.push((
                            send.id,
                            OutboxState::Failed,
                            "a mass send needs its app and group".to_owned(),
                        ));
                        continue;
                    };
                    if !apps.contains(&bot) {
                        refused.push((
                            send.id,
                            OutboxState::Failed,
                            format!("no wecom-app bot {bot} is configured"),
                        ));
                        continue;
                    }
                    // Not planned stale (the service was down past the send's expiry).
                    let expires = expiry
                        .expiry(&send.purpose, send.run.is_some())
                        .and_then(|d| chrono::Duration::from_std(d).ok())
                        .map(|d| send.not_before.unwrap_or(send.created_at) + d);
                    if let Some(at) = expires.filter(|at| now > *at) {
                        refused.push((
                            send.id,
                            OutboxState::Skipped,
                            format!("expired: not planned into a mass-send task by {at}"),
                        ));
                        continue;
                    }
                    let group = tx.group(&chat)?;
                    if group
                        .as_ref()
                        .is_none_or(|g| g.status != GroupStatus::Adopted)
                    {
                        refused.push((
                            send.id,
                            OutboxState::Skipped,
                            "the group was released".to_owned(),
                        ));
                        continue;
                    }
                    let Some(owner) = tx.settings(&chat)?.owner else {
                        refused.push((
                            send.id,
                            OutboxState::Failed,
                            "the group's owner is not known yet (read at the next sync with WeCom)"
                                .to_owned(),
                        ));
                        continue;
                    };
                    let text = match mass_text(&send.message) {
                        Ok(text) => text,
                        Err(e) => {
                            refused.push((send.id, OutboxState::Failed, e));
                            continue;
                        }
                    };
                    runs.insert(batch.clone(), send.run.clone());
                    tasks
                        .entry((bot, batch, owner, text))
                        .or_default()
                        .push(MassChat {
                            entry: send.id,
                            chat,
                        });
                }
                for (id, state, reason) in refused {
                    tx.record_send(&outcome(id, state, Some(reason)), now)?;
                }
                let mut planned = Vec::new();
                for ((bot, batch, sender, text), chats) in tasks {
                    for part in chats.chunks(MASS_MAX_GROUPS) {
                        planned.push(tx.plan_mass_task(MassTask::planned(
                            bot.clone(),
                            sender.clone(),
                            text.clone(),
                            part.to_vec(),
                            runs.get(&batch).cloned().flatten(),
                            now,
                        ))?);
                    }
                }
                Ok((planned, wait))
            })
        })
        .await
        .map_err(store_error)??;
        for task in &planned {
            info!(bot = %task.bot, task = task.id, sender = %task.sender, groups = task.chats.len(),
                run = ?task.run, "mass-send task planned");
        }
        Ok(wait)
    }

    /// Writes `task` (and, with it, the sends' new states).
    async fn save(&self, task: MassTask, sends: Vec<SendOutcome>) -> Result<MassTask, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let now = Utc::now();
                for send in &sends {
                    tx.record_send(send, now)?;
                }
                tx.put_mass_task(&task)?;
                Ok(task)
            })
        })
        .await
        .map_err(store_error)?
    }

    /// Creates `task` in WeCom (or finds it there, when an earlier request may have created
    /// it); returns when to try again if it is not created yet.
    async fn create(&self, app: &MassApp, mut task: MassTask) -> Option<Duration> {
        if task.create_attempts > 0 {
            match self.find_created(app, &task).await {
                Ok(Some(msgid)) => {
                    info!(bot = %task.bot, task = task.id, msgid = %msgid,
                        "mass-send task found in WeCom: an earlier request had created it");
                    return self.created(app, task, msgid, Vec::new()).await;
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(bot = %task.bot, task = task.id, error = %e,
                        "could not look for an earlier creation of the task; trying later");
                    return Some(CREATE_RETRY);
                }
            }
        }
        task.create_attempts += 1;
        task.first_attempt_at.get_or_insert_with(Utc::now);
        // Written before the request: a crash after it makes the next attempt look first.
        let task = match self.save(task, Vec::new()).await {
            Ok(task) => task,
            Err(e) => {
                error!(error = %e, "mass-send task not written; not created now");
                return Some(CREATE_RETRY);
            }
        };
        let chats: Vec<String> = task.chats.iter().map(|c| c.chat.to_string()).collect();
        match self
            .api(app.client.add_mass_task(&task.sender, &chats, &task.text))
            .await
        {
            Ok((msgid, refused)) => self.created(app, task, msgid, refused).await,
            Err(e) if e.is_retryable() => {
                warn!(bot = %task.bot, task = task.id, error = %e, class = e.class(),
                    "mass-send task not created yet; trying again");
                let mut task = task;
                task.last_error = Some(e.to_string());
                let wait = create_retry(task.create_attempts);
                if let Err(e) = self.save(task, Vec::new()).await {
                    error!(error = %e, "mass-send task not written");
                }
                Some(wait)
            }
            Err(e) => {
                error!(bot = %task.bot, task = task.id, error = %e, class = e.class(),
                    "WeCom refused the mass-send task");
                let reason = format!("WeCom refused the mass-send task: {e}");
                let sends = task
                    .chats
                    .iter()
                    .map(|c| outcome(c.entry, OutboxState::Failed, Some(reason.clone())))
                    .collect();
                let mut task = task;
                task.state = MassTaskState::Failed;
                task.last_error = Some(reason);
                if let Err(e) = self.save(task, sends).await {
                    error!(error = %e, "mass-send task not written");
                }
                None
            }
        }
    }

    /// The msgid of a task an earlier request created: the corp's mass sends around the first
    /// request with the same text, sent by the same owner, not taken by another task.
    async fn find_created(&self, app: &MassApp, task: &MassTask) -> Result<Option<String>, String> {
        let from = task.first_attempt_at.unwrap_or(task.planned_at).timestamp() - FIND_MARGIN_SECS;
        let until = Utc::now().timestamp() + FIND_MARGIN_SECS;
        let listed = self
            .api(app.client.mass_messages_between(from, until))
            .await
            .map_err(|e| e.to_string())?;
        let store = self.store.clone();
        let taken: HashSet<String> =
            tokio::task::spawn_blocking(move || store.recent_mass_tasks(10_000))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter_map(|t| t.msgid)
                .collect();
        for candidate in listed
            .into_iter()
            .filter(|m| m.text.trim() == task.text && !taken.contains(&m.msgid))
        {
            let owners = self
                .api(app.client.mass_task_owners(&candidate.msgid))
                .await
                .map_err(|e| e.to_string())?;
            if owners.iter().any(|o| o.userid == task.sender) {
                return Ok(Some(candidate.msgid));
            }
        }
        Ok(None)
    }

    /// Records that WeCom created `task` as `msgid`, without the groups in `refused`; returns
    /// when its results are first read.
    async fn created(
        &self,
        app: &MassApp,
        mut task: MassTask,
        msgid: String,
        refused: Vec<String>,
    ) -> Option<Duration> {
        let refused: HashSet<String> = refused.into_iter().collect();
        let waiting = format!(
            "awaiting confirmation by the group's owner {} (task {msgid})",
            task.sender
        );
        let sends: Vec<SendOutcome> = task
            .chats
            .iter()
            .map(|c| {
                if refused.contains(c.chat.as_str()) {
                    outcome(c.entry, OutboxState::Failed, Some(
                        "WeCom left this group out of the owner's task (fail_list): it cannot take the owner's mass send".into()))
                } else {
                    outcome(c.entry, OutboxState::AwaitingConfirmation, Some(waiting.clone()))
                }
            })
            .collect();
        let all_refused = task.chats.iter().all(|c| refused.contains(c.chat.as_str()));
        info!(bot = %task.bot, task = task.id, msgid = %msgid, sender = %task.sender,
            groups = task.chats.len(), refused = refused.len(), "mass-send task created; waiting for the owner");
        task.state = if all_refused {
            MassTaskState::Finished
        } else {
            MassTaskState::AwaitingConfirmation
        };
        task.msgid = Some(msgid);
        task.created_at = Some(Utc::now());
        task.last_error = None;
        if let Err(e) = self.save(task, sends).await {
            // WeCom has the task; the next round finds it again (create_attempts > 0).
            error!(error = %e, "created mass-send task not written");
            return Some(CREATE_RETRY);
        }
        Some(Duration::from_secs(app.settings.result_poll_secs))
    }

    /// Reads a created task's results when due, reminds its owner when due, stops it when its
    /// sends expire; returns when to look again.
    async fn follow(&self, app: &MassApp, task: MassTask) -> Option<Duration> {
        let now = Utc::now();
        let created = task.created_at.unwrap_or(task.planned_at);
        let poll =
            chrono::Duration::seconds(i64::try_from(app.settings.result_poll_secs).unwrap_or(300));
        let check_at = task.checked_at.unwrap_or(created) + poll;
        let checked = now >= check_at;
        let task = if checked {
            match self.check(app, task).await {
                Some(task) => task,
                None => return None,
            }
        } else {
            task
        };
        let task = match self.expire(app, task, now).await {
            Some(task) => task,
            None => return None,
        };
        let remind_at = self.remind(app, task, now).await;
        let next_check = if checked {
            poll.to_std().ok()
        } else {
            (check_at - now).to_std().ok()
        };
        [next_check, remind_at].into_iter().flatten().min()
    }

    /// Reads how the task went in each group; returns it when groups still wait.
    async fn check(&self, app: &MassApp, mut task: MassTask) -> Option<MassTask> {
        let msgid = task.msgid.clone()?;
        let results = match self
            .api(app.client.mass_send_results(&msgid, &task.sender))
            .await
        {
            Ok(results) => results,
            Err(e) => {
                warn!(bot = %task.bot, task = task.id, msgid = %msgid, error = %e,
                    "mass-send results not read; trying at the next poll");
                task.checked_at = Some(Utc::now());
                return self.save(task, Vec::new()).await.ok();
            }
        };
        let by_chat: HashMap<&str, u8> = results
            .iter()
            .map(|r| (r.chat_id.as_str(), r.status))
            .collect();
        let store = self.store.clone();
        let ids: Vec<u64> = task.chats.iter().map(|c| c.entry).collect();
        let states: HashMap<u64, OutboxState> = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .filter_map(|id| store.send(id).ok().flatten().map(|e| (id, e.state)))
                .collect()
        })
        .await
        .unwrap_or_default();
        let mut sends = Vec::new();
        let mut waiting = 0;
        for chat in &task.chats {
            if states.get(&chat.entry) != Some(&OutboxState::AwaitingConfirmation) {
                continue;
            }
            match by_chat.get(chat.chat.as_str()) {
                Some(1) => sends.push(outcome(chat.entry, OutboxState::Delivered, None)),
                Some(2) => sends.push(outcome(chat.entry, OutboxState::Failed,
                    Some("WeCom: not sent to this group (status 2)".into()))),
                Some(3) => sends.push(outcome(chat.entry, OutboxState::Failed,
                    Some("WeCom: not sent — the group had already received its mass sends allowed (status 3)".into()))),
                _ => waiting += 1,
            }
        }
        let delivered = sends
            .iter()
            .filter(|s| s.state == OutboxState::Delivered)
            .count();
        if !sends.is_empty() {
            info!(bot = %task.bot, task = task.id, msgid = %msgid, sender = %task.sender,
                settled = sends.len(), delivered, waiting, "mass-send results read");
        }
        task.checked_at = Some(Utc::now());
        if waiting == 0 {
            task.state = MassTaskState::Finished;
        }
        let task = match self.save(task, sends).await {
            Ok(task) => task,
            Err(e) => {
                error!(error = %e, "mass-send results not written");
                return None;
            }
        };
        task.is_open().then_some(task)
    }

    /// Stops a task whose sends have expired (the broadcast expiry of `[outbox]`) in WeCom,
    /// then records its waiting sends as skipped; returns it when it goes on.
    async fn expire(
        &self,
        app: &MassApp,
        mut task: MassTask,
        now: DateTime<Utc>,
    ) -> Option<MassTask> {
        let Some(after) = self.expiry.expiry("broadcast", true) else {
            return Some(task);
        };
        let Ok(after) = chrono::Duration::from_std(after) else {
            return Some(task);
        };
        let expires = task.planned_at + after;
        if now < expires {
            return Some(task);
        }
        let msgid = task.msgid.clone()?;
        if let Err(e) = self.api(app.client.cancel_mass_task(&msgid)).await {
            // Not stopped: the owner may still send it, so it is not called skipped.
            warn!(bot = %task.bot, task = task.id, msgid = %msgid, error = %e,
                "an expired mass-send task could not be stopped; still waiting for its results");
            return Some(task);
        }
        let reason = format!(
            "expired: the owner had not sent it by {expires}; the task was stopped in WeCom"
        );
        let store = self.store.clone();
        let ids: Vec<u64> = task.chats.iter().map(|c| c.entry).collect();
        let waiting: Vec<u64> = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .filter(|id| {
                    store
                        .send(*id)
                        .ok()
                        .flatten()
                        .is_some_and(|e| e.state == OutboxState::AwaitingConfirmation)
                })
                .collect()
        })
        .await
        .unwrap_or_default();
        let sends = waiting
            .into_iter()
            .map(|id| outcome(id, OutboxState::Skipped, Some(reason.clone())))
            .collect();
        info!(bot = %task.bot, task = task.id, msgid = %msgid, "expired mass-send task stopped");
        task.state = MassTaskState::Failed;
        task.last_error = Some(reason);
        if let Err(e) = self.save(task, sends).await {
            error!(error = %e, "stopped mass-send task not written");
        }
        None
    }

    /// Reminds the owner when due (at most 3 times in any 24 hours); returns when the next
    /// reminder may be due.
    async fn remind(
        &self,
        app: &MassApp,
        mut task: MassTask,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        if app.settings.remind_after_secs == 0 {
            return None;
        }
        let every = chrono::Duration::seconds(
            i64::try_from(app.settings.remind_after_secs).unwrap_or(3600),
        );
        let last = task
            .reminders
            .last()
            .copied()
            .unwrap_or(task.created_at.unwrap_or(task.planned_at));
        let today = task
            .reminders
            .iter()
            .filter(|r| now - **r < chrono::Duration::hours(24))
            .count();
        let due = if today >= crate::wire::wecom::app::MAX_REMINDERS_PER_DAY {
            task.reminders[task.reminders.len() - today] + chrono::Duration::hours(24)
        } else {
            last + every
        };
        if now < due {
            return (due - now).to_std().ok();
        }
        let msgid = task.msgid.clone()?;
        match self.api(app.client.remind_mass_task(&msgid)).await {
            Ok(()) => {
                info!(bot = %task.bot, task = task.id, msgid = %msgid, sender = %task.sender,
                    reminders = task.reminders.len() + 1, "owner reminded to send the mass-send task");
                task.reminders.push(now);
                if let Err(e) = self.save(task, Vec::new()).await {
                    error!(error = %e, "reminder not written");
                }
            }
            Err(e) => warn!(bot = %task.bot, task = task.id, error = %e, "owner not reminded"),
        }
        Some(every.to_std().unwrap_or(Duration::from_secs(3600)))
    }
}

/// Whether `to` is a customer group's (sent through [`MassSender`], not a lane).
pub fn is_mass_send(to: &Destination) -> bool {
    matches!(to, Destination::CustomerGroup { .. })
}
