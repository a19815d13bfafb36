//! Runs an operator asks for: a job's slot now (refused inside quiet hours unless overridden),
//! a dry run that shows exactly what a run would do, and a resend of a slot to the groups that
//! did not get it.

use super::*;

impl Scheduler {
    /// Sends the slot of `run_id` again to the groups none of whose sends of it was delivered or
    /// is still pending (failed, skipped, timed out), rendered with the scripts in force now;
    /// never to a group that has it. Inside quiet hours it refuses unless
    /// `override_quiet_hours`. The new sends join the run.
    pub async fn resend(
        &self,
        run_id: &str,
        override_quiet_hours: bool,
    ) -> Result<PlannedRun, RunError> {
        let store = self.store.clone();
        let id = run_id.to_owned();
        let crate::store::ResendTargets {
            run: record,
            groups: targets,
        } = tokio::task::spawn_blocking(move || store.resend_targets(&id))
            .await
            .map_err(|e| StoreError::Db(format!("resend task failed: {e}")))??
            .ok_or_else(|| RunError::UnknownRun(run_id.to_owned()))?;
        let scripts = self.scripts.current();
        let job = scripts
            .jobs
            .iter()
            .find(|j| j.name == record.job)
            .ok_or_else(|| RunError::JobGone {
                run: run_id.to_owned(),
                job: record.job.clone(),
            })?;
        let now = Utc::now();
        let sent_before: HashMap<ChatId, usize> = targets.into_iter().collect();
        let recipients: Vec<Recipient> = self
            .recipients()
            .await?
            .into_iter()
            .filter(|r| sent_before.contains_key(&r.chat))
            .collect();
        let mut zones: Vec<Tz> = recipients
            .iter()
            .map(|r| job.zone_for(&r.settings))
            .collect();
        zones.sort_by_key(|z| z.name());
        zones.dedup();
        Self::check_quiet_hours(job, zones.iter().copied(), now, override_quiet_hours)?;
        let flags = PlanFlags {
            missed: false,
            override_quiet_hours,
        };
        let mut sends = Vec::new();
        for zone in zones {
            let content = self
                .slot_content(job, zone, record.slot, "resend", &scripts)
                .await?;
            sends.extend(
                plan_each(
                    job,
                    zone,
                    record.slot,
                    now,
                    &recipients,
                    &scripts,
                    &content,
                    flags,
                )
                // The run's earlier sends keep their keys: each resend has its own.
                .filter(|s| s.run.as_deref() == Some(run_id))
                .map(|mut send| {
                    let earlier = send.chat.as_ref().and_then(|c| sent_before.get(c));
                    send.key = format!("{}:resend{}", send.key, earlier.copied().unwrap_or(0));
                    send
                }),
            );
        }
        let store = self.store.clone();
        let entries = tokio::task::spawn_blocking(move || {
            store.write(|tx| {
                let mut entries = Vec::new();
                for send in sends {
                    entries.extend(tx.enqueue(send, now)?);
                }
                Ok(entries)
            })
        })
        .await
        .map_err(|e| StoreError::Db(format!("resend task failed: {e}")))??;
        let queued = entries.len();
        for entry in entries {
            self.outbox.dispatch(entry);
        }
        info!(job = %job.name, run = %run_id, queued, "run resent to the groups that did not get it");
        Ok(PlannedRun {
            run_id: run_id.to_owned(),
            queued,
            at: now,
        })
    }

    /// The slot `which` asks for of `job` in each zone it runs in, the job's own zone first:
    /// the current one (the latest at or before now, within 32 days), or the next one.
    fn chosen_slots(
        &self,
        scripts: &Scripts,
        name: &str,
        which: SlotChoice,
    ) -> Result<(Job, Vec<ZoneSlot>), RunError> {
        let job = scripts
            .jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| RunError::UnknownJob(name.to_owned()))?;
        let now = Utc::now();
        let mut slots = Vec::new();
        for zone in self.zones(job) {
            let slot = match which {
                SlotChoice::Current => job
                    .slots_between_in(zone, now - chrono::Duration::days(32), now, usize::MAX)
                    .pop()
                    .ok_or_else(|| RunError::NoSlot(name.to_owned()))?,
                SlotChoice::Next => job
                    .slots_between_in(zone, now, now + chrono::Duration::days(366), 1)
                    .first()
                    .copied()
                    .ok_or_else(|| RunError::NoNextSlot(name.to_owned()))?,
            };
            slots.push((zone, slot));
        }
        Ok((job.clone(), slots))
    }

    /// Refuses a run by hand that would start inside the job's quiet hours in one of `zones`,
    /// unless the operator overrode them: a run planned there would only skip every group and
    /// use the slot up.
    fn check_quiet_hours(
        job: &Job,
        zones: impl IntoIterator<Item = Tz>,
        now: DateTime<Utc>,
        override_quiet_hours: bool,
    ) -> Result<(), RunError> {
        if override_quiet_hours {
            return Ok(());
        }
        for zone in zones {
            if job.is_quiet(zone, now) {
                let until = job.quiet_until(zone, now).map_or_else(
                    || "their end".to_owned(),
                    |t| t.with_timezone(&zone).format("%H:%M").to_string(),
                );
                return Err(RunError::QuietHours {
                    job: job.name.clone(),
                    zone: zone.name().to_owned(),
                    until,
                });
            }
        }
        Ok(())
    }

    /// Runs `job` now for the slot `which` asks for in every zone it runs in (the next slot's
    /// sends go out now, and the slot when it comes adds nothing); returns the runs, the job's
    /// own zone first. Inside the job's quiet hours it refuses before planning anything, unless
    /// `override_quiet_hours`.
    pub async fn run_now(
        &self,
        name: &str,
        which: SlotChoice,
        override_quiet_hours: bool,
    ) -> Result<Vec<PlannedRun>, RunError> {
        let scripts = self.scripts.current();
        let (job, slots) = self.chosen_slots(&scripts, name, which)?;
        let now = Utc::now();
        Self::check_quiet_hours(
            &job,
            slots.iter().map(|(zone, _)| *zone),
            now,
            override_quiet_hours,
        )?;
        let mut runs = Vec::new();
        for (zone, slot) in slots {
            // By hand, sends start now: the current slot is past, the next one is asked for now.
            let planned = self
                .run_slot_from(&job, zone, slot, "manual", now, override_quiet_hours)
                .await?;
            // Zones with the same offset (Asia/Shanghai, Asia/Hong_Kong) share the slot, hence
            // the run: one entry per run.
            match runs
                .iter_mut()
                .find(|run: &&mut PlannedRun| run.run_id == planned.run_id)
            {
                Some(run) => {
                    run.queued += planned.queued;
                    run.at = run.at.min(planned.at);
                }
                None => runs.push(planned),
            }
        }
        Ok(runs)
    }

    /// What [`Scheduler::run_now`] would do, rendered for every target, without sending,
    /// recording or claiming anything — including its refusal inside quiet hours.
    pub async fn dry_run(
        &self,
        name: &str,
        which: SlotChoice,
        override_quiet_hours: bool,
    ) -> Result<DryRun, RunError> {
        let scripts = self.scripts.current();
        let (job, slots) = self.chosen_slots(&scripts, name, which)?;
        let recipients = self.recipients().await?;
        let now = Utc::now();
        let refused = Self::check_quiet_hours(
            &job,
            slots.iter().map(|(zone, _)| *zone),
            now,
            override_quiet_hours,
        )
        .err()
        .map(|e| e.to_string());
        let flags = PlanFlags {
            missed: false,
            override_quiet_hours,
        };
        let mut sends = Vec::new();
        for (zone, slot) in slots {
            let content = self
                .slot_content(&job, zone, slot, DRY_RUN, &scripts)
                .await?;
            // As the run would: sent from now, whichever slot.
            sends.extend(plan_each(
                &job,
                zone,
                slot,
                now,
                &recipients,
                &scripts,
                &content,
                flags,
            ));
        }
        Ok(DryRun { sends, refused })
    }
}
