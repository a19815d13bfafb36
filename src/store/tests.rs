//! Tests for the store: schema checks, locking, and the typed accessors.

use super::*;
use chrono::TimeZone;

fn sender(id: &str) -> Sender {
    Sender {
        user_id: id.into(),
        name: format!("name-{id}"),
        alias: String::new(),
    }
}

fn group(chat: &str) -> GroupRecord {
    GroupRecord {
        status: GroupStatus::Adopted,
        ..GroupRecord::new(ChatId::new(chat), BotId::parse("b").unwrap())
    }
}

#[test]
fn a_second_open_of_the_same_file_fails_at_once_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let _first = Store::open(&path).unwrap();
    let err = Store::open(&path).err().expect("second open refused");
    assert!(matches!(err, StoreError::Locked(_)), "{err}");
    assert!(err.to_string().contains("another process"), "{err}");
}

#[test]
fn a_different_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, 99u32.to_be_bytes().as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let err = Store::open(&path).err().expect("refused");
    assert!(
        matches!(err, StoreError::SchemaMismatch { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn members_and_daily_counters_are_counted_once_per_member_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("nested/dirs/t.redb")).unwrap();
    let day1 = Utc.with_ymd_and_hms(2026, 3, 1, 1, 0, 0).unwrap(); // 09:00 in Shanghai
    let day1_late = Utc.with_ymd_and_hms(2026, 3, 1, 15, 59, 0).unwrap(); // 23:59
    let day2 = Utc.with_ymd_and_hms(2026, 3, 1, 16, 0, 0).unwrap(); // 00:00 next day
    store
        .write(|tx| {
            let mut g = group("c1");
            assert!(tx.record_message(&mut g, &sender("a"), day1)?);
            assert!(!tx.record_message(&mut g, &sender("a"), day1_late)?);
            assert!(tx.record_message(&mut g, &sender("b"), day1_late)?);
            assert!(!tx.record_message(&mut g, &sender("a"), day2)?);
            tx.put_group(&g)
        })
        .unwrap();
    let chat = ChatId::new("c1");
    let g = store.group(&chat).unwrap().unwrap();
    assert_eq!((g.members_seen, g.messages), (2, 4));
    assert_eq!(
        store.daily(&chat, day1).unwrap(),
        DailyCounters {
            messages: 3,
            speakers: 2
        }
    );
    assert_eq!(
        store.daily(&chat, day2).unwrap(),
        DailyCounters {
            messages: 1,
            speakers: 1
        }
    );
    let a = store.member(&chat, "a").unwrap().unwrap();
    assert_eq!(
        (a.message_count, a.first_seen, a.last_seen),
        (3, day1, day2)
    );
}

#[test]
fn data_survives_a_reopen_and_old_dedupe_ids_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                tx.put_group(&group("c1"))?;
                tx.put_dedupe(
                    "b\u{1f}old",
                    &DedupeRecord {
                        at: 100,
                        reply: None,
                    },
                )?;
                tx.put_dedupe(
                    "b\u{1f}new",
                    &DedupeRecord {
                        at: 200,
                        reply: None,
                    },
                )
            })
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.groups().unwrap().len(), 1);
    assert_eq!(store.dedupe_since(150).unwrap().len(), 1);
    assert_eq!(store.write(|tx| tx.prune_dedupe(150)).unwrap(), 1);
    assert_eq!(store.dedupe_since(0).unwrap().len(), 1);
}

#[test]
fn a_failed_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb")).unwrap();
    let result: Result<(), StoreError> = store.write(|tx| {
        tx.put_group(&group("c1"))?;
        Err(StoreError::Corrupt("abort".into()))
    });
    assert!(result.is_err());
    assert!(store.groups().unwrap().is_empty());
}
