//! Tests on a schedule (`[[schedule]]` in `red_envelope.toml`): at each slot a test starts in
//! every adopted group the schedule targets. The last slot handled is remembered per schedule in
//! the store; a slot missed while the service was down starts its tests if it is at most
//! `catch_up_within_minutes` old, else it is logged as skipped. A scheduled test's id derives from
//! (schedule, slot, group), so a slot handled twice — a crash between starting the tests and
//! writing the mark — starts nothing twice. A schedule seen for the first time starts from now.

use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::{Envelopes, StartError};
use crate::engine::red_envelope::rules::EnvelopeSchedule;
use crate::store::GroupStatus;

/// The name a schedule's mark is kept under beside the jobs' marks (`:` cannot be in a job's
/// name, so the two never meet).
fn mark_name(name: &str) -> String {
    format!("red_envelope:{name}")
}

/// A scheduled test's id: stable for (schedule, slot, group), safe in a URL.
fn scheduled_id(name: &str, slot: DateTime<Utc>, chat: &str) -> String {
    // FNV-1a: a short, stable digest of the chat id (which may hold any character).
    let digest = chat.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("rt-{name}-{}-{digest:016x}", slot.format("%Y%m%dT%H%MZ"))
}

impl Envelopes {
    /// Starts the tests of every schedule whose slot has come; returns the next slot of any
    /// schedule.
    pub async fn run_schedules(&self) -> Option<DateTime<Utc>> {
        let scripts = self.scripts.current();
        let schedules: Vec<&EnvelopeSchedule> = scripts
            .red_envelope
            .schedules
            .iter()
            .filter(|s| s.enabled)
            .collect();
        if schedules.is_empty() {
            return None;
        }
        let now = self.now();
        let names: Vec<String> = schedules.iter().map(|s| mark_name(&s.name)).collect();
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            names
                .iter()
                .map(|name| store.schedule_mark(name))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        let marks = match read {
            Ok(Ok(marks)) => marks,
            Ok(Err(e)) => {
                error!(error = %e, "red-envelope schedules not run: the store is unreadable");
                return None;
            }
            Err(e) => {
                error!(error = %e, "red-envelope schedules not run: task failed");
                return None;
            }
        };
        let mut next = None;
        for (schedule, mark) in schedules.into_iter().zip(marks) {
            let key = mark_name(&schedule.name);
            let due = match mark {
                // First seen: from now on, no backfill.
                None => None,
                Some(mark) => schedule.last_slot_between(mark, now),
            };
            if mark.is_none() || due.is_some() {
                if let Some(slot) = due {
                    let age = (now - slot).to_std().unwrap_or_default();
                    if age <= schedule.catch_up_within {
                        self.start_slot(schedule, slot).await;
                    } else {
                        warn!(schedule = %schedule.name, slot = %slot,
                            "a red-envelope slot missed while the service was down: skipped");
                    }
                }
                let store = self.store.clone();
                let written = tokio::task::spawn_blocking(move || {
                    store.write(|tx| tx.set_schedule_mark(&key, now))
                })
                .await;
                if !matches!(written, Ok(Ok(()))) {
                    error!(schedule = %schedule.name, "the schedule's mark was not written; its slot is looked at again");
                }
            }
            let after = schedule.next_slot(now);
            next = [next, after].into_iter().flatten().min();
        }
        next
    }

    /// Starts `schedule`'s test for `slot` in every adopted group it targets.
    async fn start_slot(&self, schedule: &EnvelopeSchedule, slot: DateTime<Utc>) {
        let store = self.store.clone();
        let groups = match tokio::task::spawn_blocking(move || store.groups()).await {
            Ok(Ok(groups)) => groups,
            Ok(Err(e)) => {
                return error!(schedule = %schedule.name, error = %e, "scheduled tests not started");
            }
            Err(e) => {
                return error!(schedule = %schedule.name, error = %e, "scheduled tests not started");
            }
        };
        let by = format!("schedule:{}", schedule.name);
        let (mut started, mut refused) = (0, 0);
        for group in groups
            .into_iter()
            .filter(|g| g.status == GroupStatus::Adopted)
        {
            let chat = group.chat_id;
            if !schedule.targets.cover(&chat, &self.directory.get(&chat)) {
                continue;
            }
            let id = scheduled_id(&schedule.name, slot, chat.as_str());
            match self.start_as(&chat, schedule.params, &by, Some(id)).await {
                Ok(_) => started += 1,
                // Slots handled twice, and push-only groups (nobody there could claim).
                Err(StartError::Duplicate(_) | StartError::Unheard) => {}
                Err(e) => {
                    refused += 1;
                    warn!(schedule = %schedule.name, chat = %chat, error = %e, "scheduled red-envelope test not started");
                }
            }
        }
        info!(schedule = %schedule.name, slot = %slot, started, refused, "scheduled red-envelope tests");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_ids_are_stable_and_url_safe() {
        let slot = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let a = scheduled_id("monthly", slot, "1001@chatroom");
        assert_eq!(a, scheduled_id("monthly", slot, "1001@chatroom"));
        assert_ne!(a, scheduled_id("monthly", slot, "1002@chatroom"));
        assert!(a.starts_with("rt-monthly-2026"), "{a}");
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{a}"
        );
    }
}
