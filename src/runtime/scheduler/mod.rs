//! The scheduler: wakes for each job's next slot, plans it ([`crate::schedule::plan`]) into the durable
//! outbox in one transaction together with the run record and the job's mark (the last slot
//! planned), and hands the sends to the outbox. On start it looks at the slots missed since the
//! mark: those within `catch_up_within` are sent now, older ones are recorded as skipped. A job
//! seen for the first time starts from now (no backfill).
//!
//! Planning is idempotent — run ids and send keys derive from `(job, slot, group)` — so a restart,
//! a manual run of the same slot, or a second replica never sends one slot twice.

mod manual;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::domain::ChatId;
use crate::engine::Scripts;
use crate::engine::jobs::Job;
use crate::outbox::Outbox;
use crate::runtime::feeds::Feeds;
use crate::runtime::groups::Directory;
use crate::schedule::{
    PlanFlags, Recipient, SlotContent, claim_name, local_date, plan_each, run_id, trigger_for,
};
use crate::scripts::live::LiveScripts;
use crate::store::{GroupStatus, NewSend, RunRecord, Store, StoreError};

/// The longest the scheduler sleeps, so that edited schedules are picked up.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Groups planned per transaction (see [`Scheduler::run_slot`]).
pub const PLAN_CHUNK: usize = 2000;
/// Missed slots looked at per job on start.
const MAX_MISSED: usize = 100;
/// A slot in the zone it is for.
type ZoneSlot = (Tz, DateTime<Utc>);

/// The trigger of a run that is only rendered, never sent.
const DRY_RUN: &str = "dry_run";

/// Which slot of a job a run by hand is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotChoice {
    /// The latest slot at or before now (within 32 days).
    #[default]
    Current,
    /// The next slot after now, sent now (a quarterly reminder tried out by hand).
    Next,
}

/// Why a run could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no job named {0:?}")]
    UnknownJob(String),
    #[error(
        "the job {0:?} has no slot in the last 32 days: ask for its next slot instead (?slot=next, trumpet broadcast {0} --next)"
    )]
    NoSlot(String),
    #[error("the job {0:?} has no slot in the coming year: its cron never fires")]
    NoNextSlot(String),
    #[error(
        "the job {job:?} is in its quiet hours in {zone} until {until}: nothing was planned. To send anyway, run it with the override (override_quiet_hours=true; trumpet broadcast {job} --now)"
    )]
    QuietHours {
        job: String,
        zone: String,
        /// Local time the quiet hours end (`07:00`), or "their end" when they never do.
        until: String,
    },
    #[error("no run {0:?}")]
    UnknownRun(String),
    #[error("the run {run:?} is of the job {job:?}, which is no longer in schedules.toml")]
    JobGone { run: String, job: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run by hand would do.
#[derive(Debug)]
pub struct DryRun {
    /// Every target's send, rendered, with the reason it would be skipped.
    pub sends: Vec<NewSend>,
    /// Why the run would be refused (quiet hours without the override); nothing would be sent.
    pub refused: Option<String>,
}

/// Plans runs; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub store: Store,
    pub directory: Arc<Directory>,
    pub scripts: Arc<LiveScripts>,
    pub outbox: Outbox,
    pub webhook_hosts: Vec<String>,
    /// The feeds' cache: reports quote it and never wait for a fetch.
    pub feeds: Feeds,
}

/// What planning one slot did: its run, how many sends were new (a slot planned before adds
/// none), and the time the new sends carry as `created_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRun {
    pub run_id: String,
    pub queued: usize,
    pub at: DateTime<Utc>,
}

impl Scheduler {
    /// The adopted groups the bot can post to.
    async fn recipients(&self) -> Result<Vec<Recipient>, StoreError> {
        let store = self.store.clone();
        let groups = tokio::task::spawn_blocking(move || store.groups())
            .await
            .map_err(|e| StoreError::Db(format!("groups task failed: {e}")))??;
        let mut recipients = Vec::new();
        for g in groups
            .into_iter()
            .filter(|g| g.status == GroupStatus::Adopted)
        {
            match crate::store::Destination::of_group(&g) {
                Some(to) => recipients.push(Recipient {
                    settings: self.directory.get(&g.chat_id),
                    chat: g.chat_id,
                    bot: g.bot,
                    members: g.members_seen,
                    to,
                }),
                // Not silently: the operator sees which adopted group cannot be reached.
                None => {
                    warn!(chat = %g.chat_id, "adopted group without a webhook URL or bot account: no broadcast can reach it")
                }
            }
        }
        Ok(recipients)
    }

    /// The zones `job` runs in: its own, and those operators set on groups.
    fn zones(&self, job: &Job) -> Vec<Tz> {
        let mut zones = vec![job.timezone];
        for (_, settings) in self.directory.all() {
            let zone = job.zone_for(&settings);
            if !zones.contains(&zone) {
                zones.push(zone);
            }
        }
        zones
    }

    /// The content of a slot: the day's column, the feeds' cached entries, and its queue items — claimed for the job's
    /// local date in their own transaction before planning, so that a failed planning retried
    /// later, another zone or a manual run of the same day get the same items. A missed slot
    /// (sent to nobody) takes none.
    async fn slot_content(
        &self,
        job: &Job,
        zone: Tz,
        slot: DateTime<Utc>,
        trigger: &str,
        scripts: &Scripts,
    ) -> Result<SlotContent, StoreError> {
        let date = local_date(slot, zone);
        let claimed = if job.queue_items == 0 || trigger == "missed" {
            Vec::new()
        } else {
            let store = self.store.clone();
            let claim = claim_name(&job.name, date);
            let queue = scripts.content.undated_ids();
            let n = job.queue_items;
            // A dry run only looks at what the slot would take.
            let dry = trigger == DRY_RUN;
            tokio::task::spawn_blocking(move || {
                if dry {
                    store.peek_items(&claim, &queue, n)
                } else {
                    store.write(|tx| tx.claim_items(&claim, &queue, n))
                }
            })
            .await
            .map_err(|e| StoreError::Db(format!("content task failed: {e}")))??
        };
        let mut content = SlotContent::gather(&scripts.content, date, &claimed);
        content.feeds = self.feeds.view(&scripts.content.feeds, slot, zone);
        Ok(content)
    }

    /// Plans `slot` of `job` for the groups in `zone` (`trigger` says why) into the outbox, in
    /// chunks of [`PLAN_CHUNK`] groups, and queues its sends; returns the run. Planning a slot
    /// again adds nothing. A scheduled slot with no group to send to records no run, only the
    /// job's mark.
    pub async fn run_slot(
        &self,
        job: &Job,
        zone: Tz,
        slot: DateTime<Utc>,
        trigger: &str,
    ) -> Result<PlannedRun, StoreError> {
        let now = Utc::now();
        self.run_slot_from(job, zone, slot, trigger, slot.max(now), false)
            .await
    }

    /// [`Scheduler::run_slot`] with its sends spread from `start` (now, for a slot run by hand
    /// before it comes), inside quiet hours when an operator overrode them.
    async fn run_slot_from(
        &self,
        job: &Job,
        zone: Tz,
        slot: DateTime<Utc>,
        trigger: &str,
        start: DateTime<Utc>,
        override_quiet_hours: bool,
    ) -> Result<PlannedRun, StoreError> {
        let now = Utc::now();
        let recipients = self.recipients().await?;
        let scripts = self.scripts.current();
        // Nobody to send to takes nothing from the queue.
        let content = if recipients.is_empty() {
            SlotContent::default()
        } else {
            self.slot_content(job, zone, slot, trigger, &scripts)
                .await?
        };
        let run = RunRecord {
            run_id: run_id(&job.name, slot),
            job: job.name.clone(),
            slot,
            trigger: trigger.to_owned(),
            planned_at: now,
        };
        // An operator who runs a job sees its run, even one with no group to send to.
        let manual = trigger == "manual";
        let mark = job.mark_name(zone);
        // Rendered and written in chunks, each chunk's sends queued as soon as they are in: a
        // run to 100,000 groups never holds every report at once. The mark goes with the last
        // chunk; a crash before it plans the slot again after the restart, and the sends' keys
        // (job, slot, group) make the chunks already written add nothing twice.
        let flags = PlanFlags {
            missed: trigger == "missed",
            override_quiet_hours,
        };
        let mut sends = plan_each(
            job,
            zone,
            slot,
            start,
            &recipients,
            &scripts,
            &content,
            flags,
        )
        .peekable();
        let (mut planned, mut queued, mut first) = (0, 0, true);
        loop {
            let chunk: Vec<NewSend> = sends.by_ref().take(PLAN_CHUNK).collect();
            planned += chunk.len();
            let last = sends.peek().is_none();
            let with_run = first && (!chunk.is_empty() || manual);
            let store = self.store.clone();
            let (run_for_tx, mark) = (run.clone(), mark.clone());
            let entries = tokio::task::spawn_blocking(move || {
                store.write(|tx| {
                    if with_run {
                        tx.put_run_if_new(&run_for_tx)?;
                    }
                    let mut entries = Vec::new();
                    for send in chunk {
                        entries.extend(tx.enqueue(send, now)?);
                    }
                    if last {
                        tx.set_schedule_mark(&mark, slot)?;
                    }
                    Ok(entries)
                })
            })
            .await
            .map_err(|e| StoreError::Db(format!("planning task failed: {e}")))??;
            first = false;
            queued += entries.len();
            for entry in entries {
                self.outbox.dispatch(entry);
            }
            if last {
                break;
            }
        }
        info!(job = %job.name, zone = %zone, run = %run.run_id, trigger, groups = planned,
            queued, "run planned");
        Ok(PlannedRun {
            run_id: run.run_id,
            queued,
            at: now,
        })
    }

    /// The scheduling loop, until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        // The last slot planned per job and zone, from the store on first sight.
        let mut marks: HashMap<String, DateTime<Utc>> = HashMap::new();
        // Slots before this went by while the service was down.
        let started = Utc::now();
        loop {
            let scripts = self.scripts.current();
            let now = Utc::now();
            let mut next: Option<DateTime<Utc>> = None;
            let series = scripts
                .jobs
                .iter()
                .filter(|j| j.enabled)
                .flat_map(|j| self.zones(j).into_iter().map(move |z| (j, z)));
            for (job, zone) in series {
                let name = job.mark_name(zone);
                let mark = match marks.get(&name) {
                    Some(mark) => *mark,
                    None => match self.first_sight(&name, now).await {
                        Ok(mark) => mark,
                        Err(e) => {
                            error!(job = %job.name, error = %e, "cannot read the job's mark; retrying");
                            continue;
                        }
                    },
                };
                let mut mark = mark;
                for slot in job.slots_between_in(zone, mark, now, MAX_MISSED) {
                    let trigger = trigger_for(slot, now, started, job.catch_up_within);
                    match self.run_slot(job, zone, slot, trigger).await {
                        Ok(_) => mark = slot,
                        Err(e) => {
                            error!(job = %job.name, slot = %slot, error = %e,
                                "could not plan the slot; retrying shortly");
                            break;
                        }
                    }
                }
                marks.insert(name, mark);
                next = next.into_iter().chain(job.next_slot_in(zone, mark)).min();
            }
            let sleep = next
                .and_then(|at| (at - Utc::now()).to_std().ok())
                .unwrap_or_default()
                .min(MAX_SLEEP);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = stop.cancelled() => break,
            }
        }
        info!("scheduler stopped");
    }

    /// The mark of a job (in a zone: `name` is [`Job::mark_name`]) the loop has not seen yet:
    /// the stored one, or now for a new job or zone.
    async fn first_sight(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let store = self.store.clone();
        let key = name.to_owned();
        let stored = tokio::task::spawn_blocking(move || store.schedule_mark(&key))
            .await
            .map_err(|e| StoreError::Db(format!("mark task failed: {e}")))??;
        match stored {
            Some(mark) => Ok(mark),
            None => {
                info!(job = %name, "first time this job (in this zone) is seen here: it starts from now, no earlier slot is sent");
                let store = self.store.clone();
                let name = name.to_owned();
                tokio::task::spawn_blocking(move || {
                    store.write(|tx| tx.set_schedule_mark(&name, now))
                })
                .await
                .map_err(|e| StoreError::Db(format!("mark task failed: {e}")))??;
                Ok(now)
            }
        }
    }
}
