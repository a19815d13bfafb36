//! Criterion benchmark of the health ranking (`GET /api/v1/health`, the weekly digest): every
//! adopted group's last four weeks read from the store and assessed, lowest score first.
//! 1,000 groups, each with 28 days of talk from 1 to 8 of its members (no red-envelope tests:
//! reading a group's tests is one more index range), and a speaker tally not yet written (as
//! between the pipeline's minute writes).
//!
//! Run: `cargo bench --bench health`. Figures are recorded in BENCHMARKS.md.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use trumpet::domain::{BotId, ChatId, Sender};
use trumpet::runtime::groups::Directory;
use trumpet::store::{GroupRecord, GroupStatus, SharedTally, SpeakerTally, Store};

const GROUPS: usize = 1000;

fn populate(store: &Store, now: DateTime<Utc>) -> SharedTally {
    let bot = BotId::parse("trumpet").unwrap();
    for g in 0..GROUPS {
        let chat = ChatId::new(format!("wrkHealth{g:05}"));
        let mut group = GroupRecord::new(chat.clone(), bot.clone());
        group.status = GroupStatus::Adopted;
        group.adopted_at = Some(now - chrono::Duration::days(90));
        let mut tally = SpeakerTally::default();
        store
            .write(|tx| {
                for day in 0..28 {
                    let at = now - chrono::Duration::days(day);
                    // Quieter groups further down the list.
                    for m in 0..(8 - g % 8) {
                        let member = Sender {
                            user_id: format!("m{m}"),
                            ..Sender::default()
                        };
                        tx.record_message(&mut group, &member, at)?;
                        tally.add(chat.as_str(), &member.user_id, at);
                    }
                }
                tx.write_speaker_tally(&tally)?;
                tx.put_group(&group)
            })
            .unwrap();
    }
    // Today's talk in every group, counted but not written yet.
    let mut pending = SpeakerTally::default();
    for g in 0..GROUPS {
        pending.add(&format!("wrkHealth{g:05}"), "m0", now);
    }
    Arc::new(std::sync::Mutex::new(pending))
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.redb")).unwrap();
    let now = Utc::now();
    let speakers = populate(&store, now);
    let directory = Directory::load(store.clone()).unwrap();
    let mut group = c.benchmark_group("health");
    group.sample_size(10);
    group.bench_function("ranking_1000_groups", |b| {
        b.iter(|| {
            let ranked =
                trumpet::runtime::health::ranking(&store, &directory, &speakers, now).unwrap();
            assert_eq!(ranked.len(), GROUPS);
            ranked
        })
    });
    group.finish();
}

criterion_group!(health, benches);
criterion_main!(health);
