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
    assert_eq!(store.each_dedupe_since(150, |_, _| {}).unwrap(), 1);
    assert_eq!(store.write(|tx| tx.prune_dedupe(150)).unwrap(), 1);
    assert_eq!(store.each_dedupe_since(0, |_, _| {}).unwrap(), 1);
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

fn send(key: &str, chat: &str) -> NewSend {
    NewSend {
        key: key.into(),
        chat: Some(ChatId::new(chat)),
        bot: None,
        to: super::Destination::Webhook {
            url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k".into(),
        },
        message: crate::domain::OutMessage::Markdown {
            content: "早报".into(),
        },
        purpose: "morning-report".into(),
        run: Some("run-1".into()),
        not_before: None,
        skip: None,
    }
}

#[test]
fn a_groups_sends_come_newest_first_a_page_before_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb")).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 7, 30, 0).unwrap();
    store
        .write(|tx| {
            for i in 0..5 {
                tx.enqueue(send(&format!("s{i}"), "g1"), now)?;
                tx.enqueue(send(&format!("other{i}"), "g2"), now)?;
            }
            Ok(())
        })
        .unwrap();
    let ids = |sends: Vec<OutboxEntry>| sends.iter().map(|e| e.id).collect::<Vec<_>>();
    let chat = ChatId::new("g1");
    assert_eq!(ids(store.sends_to(&chat, 3, None).unwrap()), [9, 7, 5]);
    assert_eq!(ids(store.sends_to(&chat, 3, Some(5)).unwrap()), [3, 1]);
    assert!(store.sends_to(&chat, 3, Some(1)).unwrap().is_empty());
}

#[test]
fn the_outbox_enqueues_a_key_once_and_remembers_what_is_unfinished_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 7, 30, 0).unwrap();
    {
        let store = Store::open(&path).unwrap();
        let ids = store
            .write(|tx| {
                let a = tx.enqueue(send("job/slot/g1", "g1"), now)?;
                let b = tx.enqueue(send("job/slot/g2", "g2"), now)?;
                let again = tx.enqueue(send("job/slot/g1", "g1"), now)?;
                Ok((a.map(|e| e.id), b.map(|e| e.id), again))
            })
            .unwrap();
        assert_eq!(
            ids,
            (Some(1), Some(2), None),
            "planning twice enqueues nothing new"
        );
        // Also in a later transaction.
        let again = store
            .write(|tx| tx.enqueue(send("job/slot/g2", "g2"), now))
            .unwrap();
        assert_eq!(again, None);
        store
            .write(|tx| {
                tx.record_send(
                    &SendOutcome {
                        id: 1,
                        state: OutboxState::Delivered,
                        attempts: 2,
                        pieces_done: 1,
                        last_error: None,
                    },
                    now,
                )?;
                tx.record_send(
                    &SendOutcome {
                        id: 2,
                        state: OutboxState::Pending,
                        attempts: 1,
                        pieces_done: 0,
                        last_error: Some("errcode 45009".into()),
                    },
                    now,
                )
            })
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let pending = store.pending_sends().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, 2);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("errcode 45009"));
    let done = store.send_by_key("job/slot/g1").unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (OutboxState::Delivered, 2));
    assert_eq!(
        done.message,
        send("x", "g1").message,
        "the message survives as written"
    );
    // A third entry gets the next id.
    let next = store
        .write(|tx| tx.enqueue(send("job/slot/g3", "g3"), now))
        .unwrap()
        .unwrap();
    assert_eq!(next.id, 3);
    let missing = store.write(|tx| {
        tx.record_send(
            &SendOutcome {
                id: 99,
                state: OutboxState::Failed,
                attempts: 1,
                pieces_done: 0,
                last_error: None,
            },
            now,
        )
    });
    assert!(
        missing.is_err(),
        "an unknown id is an error, not a silent no-op"
    );
}

#[test]
fn queue_items_are_claimed_once_in_order_and_a_claim_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.redb")).unwrap();
    let queue: Vec<String> = ["i1", "i2", "i3", "i4"].map(String::from).to_vec();
    let claim = |name: &str, queue: &[String], n: usize| {
        store.write(|tx| tx.claim_items(name, queue, n)).unwrap()
    };
    assert_eq!(claim("report@2026-11-23", &queue, 1), ["i1"]);
    // The same day again (a restart, another zone, a manual run): the same item.
    assert_eq!(claim("report@2026-11-23", &queue, 1), ["i1"]);
    assert_eq!(claim("report@2026-11-24", &queue, 1), ["i2"]);
    // Another job takes from the same queue, never an item already used.
    assert_eq!(claim("digest@2026-11-24", &queue, 5), ["i3", "i4"]);
    assert!(
        claim("report@2026-11-25", &queue, 1).is_empty(),
        "the queue is used up"
    );
    assert_eq!(
        store.item_used_by("i2").unwrap().as_deref(),
        Some("report@2026-11-24")
    );
    assert_eq!(store.item_used_by("i9").unwrap(), None);
}

fn with_robot(chat: &str, key: &str) -> GroupRecord {
    GroupRecord {
        webhook_url: Some(format!(
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"
        )),
        ..group(chat)
    }
}

fn users(store: &Store, key: &str) -> Vec<String> {
    let url = format!("https://in.qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}");
    store
        .write(|tx| tx.groups_with_robot(&url))
        .unwrap()
        .into_iter()
        .map(|c| c.as_str().to_owned())
        .collect()
}

#[test]
fn the_robot_index_follows_adoption_release_and_a_new_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb")).unwrap();
    store
        .write(|tx| {
            tx.put_group(&with_robot("c1", "k1"))?;
            tx.put_group(&with_robot("c2", "k1"))?;
            tx.put_group(&with_robot("c3", "k2"))?;
            // Groups without a robot are not indexed.
            tx.put_group(&group("c4"))
        })
        .unwrap();
    // The same key on another WeCom host is the same robot.
    assert_eq!(users(&store, "k1"), ["c1", "c2"]);
    assert_eq!(users(&store, "k2"), ["c3"]);
    assert!(users(&store, "k3").is_empty());
    store
        .write(|tx| {
            let mut released = with_robot("c1", "k1");
            released.status = GroupStatus::Released;
            tx.put_group(&released)?;
            tx.put_group(&with_robot("c3", "k3"))
        })
        .unwrap();
    assert_eq!(users(&store, "k1"), ["c2"]);
    assert!(users(&store, "k2").is_empty());
    assert_eq!(users(&store, "k3"), ["c3"]);
    // A URL without a key matches nothing.
    let none = store
        .write(|tx| tx.groups_with_robot("https://qyapi.weixin.qq.com/cgi-bin/webhook/send"))
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn a_store_written_before_the_robot_index_gets_it_built_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let store = Store::open(&path).unwrap();
        store
            .write(|tx| {
                tx.put_group(&with_robot("c1", "k1"))?;
                tx.put_group(&with_robot("c2", "k2"))
            })
            .unwrap();
    }
    // Make it look like an older store: no index, no flag.
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.delete_table(robots::ROBOT_GROUPS).unwrap();
        tx.delete_table(robots::GROUP_ROBOT).unwrap();
        tx.open_table(META)
            .unwrap()
            .remove("index:robot_groups")
            .unwrap();
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(users(&store, "k1"), ["c1"]);
    assert_eq!(users(&store, "k2"), ["c2"]);
}

#[test]
fn replacing_a_member_list_says_who_joined_and_who_left_unreported() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb")).unwrap();
    let chat = ChatId::new("g1");
    let list = |ids: &[&str]| -> Vec<(String, String)> {
        ids.iter()
            .map(|id| (id.to_string(), format!("名{id}")))
            .collect()
    };
    let first = store
        .write(|tx| {
            let empty = tx.roster_is_empty(&chat)?;
            Ok((empty, tx.roster_replace(&chat, &list(&["a", "b", "c"]))?))
        })
        .unwrap();
    assert!(first.0, "nothing stored before the first read");
    assert_eq!(first.1.joined, ["a", "b", "c"]);
    store
        .write(|tx| {
            tx.roster_add(&chat, "d", "")?;
            assert!(tx.roster_remove(&chat, "a")?);
            assert!(!tx.roster_remove(&chat, "nobody")?);
            Ok(())
        })
        .unwrap();
    let diff = store
        .write(|tx| tx.roster_replace(&chat, &list(&["b", "d", "e"])))
        .unwrap();
    assert_eq!(diff.joined, ["e"]);
    assert_eq!(diff.left, ["c"], "c left without anyone saying so");
    let names: Vec<_> = store.roster(&chat).unwrap();
    assert_eq!(
        names,
        list(&["b", "d", "e"]),
        "names come from the latest list"
    );
    assert!(store.roster(&ChatId::new("g2")).unwrap().is_empty());
}

#[test]
fn a_customer_groups_send_is_planned_into_one_mass_task_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.redb")).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 6, 0, 30, 0).unwrap();
    let to_customers = |key: &str, chat: &str| NewSend {
        to: super::Destination::CustomerGroup { app: "kefu".into() },
        bot: Some(BotId::parse("kefu").unwrap()),
        ..send(key, chat)
    };
    let (a, b) = store
        .write(|tx| {
            let a = tx.enqueue(to_customers("k-a", "wrA"), now)?.unwrap();
            let b = tx.enqueue(to_customers("k-b", "wrB"), now)?.unwrap();
            // A robot group's send is not the mass sender's.
            tx.enqueue(send("k-c", "robot-group"), now)?;
            Ok((a, b))
        })
        .unwrap();
    // Stored and read back as a customer group's send.
    assert_eq!(store.send(a.id).unwrap().unwrap().to, a.to);
    let unplanned: Vec<u64> = store
        .unplanned_mass_sends()
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(unplanned, [a.id, b.id]);
    let task = MassTask::planned(
        BotId::parse("kefu").unwrap(),
        "teacher_li".into(),
        "早报".into(),
        vec![MassChat {
            entry: a.id,
            chat: ChatId::new("wrA"),
        }],
        Some("run-1".into()),
        now,
    );
    let planned = store.write(|tx| tx.plan_mass_task(task.clone())).unwrap();
    assert_eq!(planned.id, 1);
    assert_eq!(
        store.mass_task_of(a.id).unwrap().unwrap().sender,
        "teacher_li"
    );
    let unplanned: Vec<u64> = store
        .unplanned_mass_sends()
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(unplanned, [b.id]);
    // The same send in a second task is refused, and nothing of that task is kept.
    assert!(store.write(|tx| tx.plan_mass_task(task)).is_err());
    assert_eq!(store.recent_mass_tasks(10).unwrap().len(), 1);
    assert_eq!(store.open_mass_tasks().unwrap().len(), 1);
    // A finished task leaves the open-task index.
    let mut done = store.mass_task_of(a.id).unwrap().unwrap();
    done.state = MassTaskState::Finished;
    store.write(|tx| tx.put_mass_task(&done)).unwrap();
    assert!(store.open_mass_tasks().unwrap().is_empty());
    assert_eq!(store.recent_mass_tasks(10).unwrap().len(), 1);
}
