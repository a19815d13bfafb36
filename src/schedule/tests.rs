//! Cron arithmetic across month ends and daylight-saving changes, quiet hours and targets.

use super::*;
use std::time::Duration;

use crate::engine::jobs::*;
use crate::engine::keywords::Window;
use crate::engine::message::{Format, Message};
use crate::engine::scope::Scope;
use chrono::TimeZone;

fn job(cron: &str, timezone: Tz) -> Job {
    Job {
        name: "j".into(),
        cron_text: cron.into(),
        cron: croner::Cron::new(cron).parse().unwrap(),
        timezone,
        targets: Targets::All,
        quiet_hours: Vec::new(),
        spread: Duration::ZERO,
        catch_up_within: Duration::from_secs(7200),
        enabled: true,
        queue_items: 0,
        message: Message::literal(Format::Text, "x", false),
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[test]
fn the_morning_slot_is_0730_in_shanghai_every_day_across_month_and_year_ends() {
    let j = job("30 7 * * *", DEFAULT_TIMEZONE);
    // 2026-01-31 07:30 CST = 2026-01-30 23:30 UTC; the next is 1 February.
    let slots = j.next_slots(utc(2026, 1, 30, 23, 30), 2);
    assert_eq!(slots, [utc(2026, 1, 31, 23, 30), utc(2026, 2, 1, 23, 30)]);
    let new_year = j.next_slot(utc(2026, 12, 31, 0, 0)).unwrap();
    assert_eq!(
        new_year,
        utc(2026, 12, 31, 23, 30),
        "07:30 on 1 January 2027"
    );
    // Only the last day of February in a non-leap year.
    let monthly = job("0 9 28-31 2 *", DEFAULT_TIMEZONE);
    assert_eq!(
        monthly.next_slots(utc(2026, 2, 1, 0, 0), 2),
        [utc(2026, 2, 28, 1, 0), utc(2027, 2, 28, 1, 0)]
    );
}

#[test]
fn slots_keep_local_time_across_daylight_saving_changes() {
    let ny = chrono_tz::America::New_York;
    let j = job("30 7 * * *", ny);
    // 2026-03-08: clocks go forward in New York. 07:30 EST = 12:30 UTC, 07:30 EDT = 11:30 UTC.
    let slots = j.next_slots(utc(2026, 3, 6, 13, 0), 3);
    assert_eq!(
        slots,
        [
            utc(2026, 3, 7, 12, 30),
            utc(2026, 3, 8, 11, 30),
            utc(2026, 3, 9, 11, 30)
        ]
    );
    // A slot inside the skipped hour (02:30 does not exist that day) does not hang or panic,
    // and the next day's slot is right.
    let gap = job("30 2 * * *", ny);
    let slots = gap.next_slots(utc(2026, 3, 7, 12, 0), 2);
    assert_eq!(slots.len(), 2, "{slots:?}");
    assert!(slots.iter().all(|s| *s > utc(2026, 3, 7, 12, 0)));
    assert_eq!(slots[1], utc(2026, 3, 9, 6, 30), "02:30 EDT on 9 March");
}

#[test]
fn missed_slots_are_listed_oldest_first_and_bounded() {
    let j = job("0 * * * *", DEFAULT_TIMEZONE);
    let missed = j.slots_between(utc(2026, 5, 1, 0, 10), utc(2026, 5, 1, 3, 0), 10);
    assert_eq!(
        missed,
        [
            utc(2026, 5, 1, 1, 0),
            utc(2026, 5, 1, 2, 0),
            utc(2026, 5, 1, 3, 0)
        ]
    );
    assert_eq!(
        j.slots_between(utc(2026, 5, 1, 0, 0), utc(2026, 6, 1, 0, 0), 5)
            .len(),
        5
    );
}

#[test]
fn quiet_hours_are_in_the_job_zone_and_targets_follow_scopes() {
    let mut j = job("0 * * * *", DEFAULT_TIMEZONE);
    j.quiet_hours = vec![Window {
        start: 22 * 60,
        end: 7 * 60,
    }];
    assert!(
        j.is_quiet(DEFAULT_TIMEZONE, utc(2026, 5, 1, 15, 0)),
        "23:00 in Shanghai"
    );
    assert!(
        !j.is_quiet(DEFAULT_TIMEZONE, utc(2026, 5, 1, 1, 0)),
        "09:00 in Shanghai"
    );
    // 23:00 Shanghai is quiet until 07:00 the next morning (23:00 UTC); 09:00 is not quiet.
    assert_eq!(
        j.quiet_until(DEFAULT_TIMEZONE, utc(2026, 5, 1, 15, 0)),
        Some(utc(2026, 5, 1, 23, 0))
    );
    assert_eq!(j.quiet_until(DEFAULT_TIMEZONE, utc(2026, 5, 1, 1, 0)), None);
    j.targets = Targets::Scopes(vec![
        Scope::parse("tag:province:广东").unwrap(),
        Scope::parse("group:g9").unwrap(),
    ]);
    let mut tagged = GroupSettings::default();
    tagged.tags.insert("province:广东".into());
    let plain = GroupSettings::default();
    assert!(j.targets(&ChatId::new("g1"), &tagged));
    assert!(!j.targets(&ChatId::new("g1"), &plain));
    assert!(j.targets(&ChatId::new("g9"), &plain));
}

fn none() -> SlotContent {
    SlotContent::default()
}

fn recipients(chats: &[&str]) -> Vec<Recipient> {
    chats
        .iter()
        .map(|c| Recipient {
            chat: ChatId::new(*c),
            bot: crate::domain::BotId::parse("trumpet").unwrap(),
            to: crate::store::Destination::Webhook {
                url: format!("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={c}"),
            },
            members: 42,
            settings: std::sync::Arc::new(GroupSettings::default()),
        })
        .collect()
}

#[test]
fn a_slot_is_planned_once_per_group_spread_and_skipped_only_with_a_reason() {
    let scripts = crate::engine::Scripts::embedded().unwrap();
    let mut j = scripts.jobs[0].clone();
    assert_eq!(j.name, "morning-report");
    j.spread = Duration::from_secs(600);
    let slot = utc(2026, 11, 22, 23, 30); // 07:30 on Monday in Shanghai
    let mut groups = recipients(&["g1", "g2", "g3", "g4"]);
    let mut opted_out = GroupSettings::default();
    opted_out.disabled_rules.insert("morning-report".into());
    groups[3].settings = std::sync::Arc::new(opted_out);

    // On time: three sends (g4 opted out), spread over ten minutes, none skipped.
    let sends = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        slot,
        &groups,
        &scripts,
        &none(),
        false,
    );
    let chats: Vec<_> = sends
        .iter()
        .map(|s| s.chat.clone().unwrap().to_string())
        .collect();
    assert_eq!(chats, ["g1", "g2", "g3"]);
    let offsets: Vec<i64> = sends
        .iter()
        .map(|s| (s.not_before.unwrap() - slot).num_seconds())
        .collect();
    assert_eq!(offsets, [0, 200, 400]);
    assert!(sends.iter().all(|s| s.skip.is_none()));
    assert!(
        sends
            .iter()
            .all(|s| s.run.as_deref() == Some("morning-report@20261122T2330Z"))
    );
    assert_eq!(sends[0].key, "job:morning-report@20261122T2330Z:g1");
    let crate::domain::OutMessage::Markdown { content } = &sends[0].message else {
        panic!("markdown")
    };
    assert!(
        content.contains("11月23日 星期一 · 农历十月十五"),
        "{content}"
    );

    // Caught up an hour late (the scheduler decides it is within the window): sent now.
    let late = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        slot + chrono::Duration::hours(1),
        &groups,
        &scripts,
        &none(),
        false,
    );
    assert!(late.iter().all(|s| s.skip.is_none()));
    assert_eq!(late[0].not_before, Some(slot + chrono::Duration::hours(1)));
    // Missed (beyond the window while the service was down): planned as skipped, with the reason.
    let missed = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        slot + chrono::Duration::hours(3),
        &groups,
        &scripts,
        &none(),
        true,
    );
    assert_eq!(missed.len(), 3);
    assert!(
        missed
            .iter()
            .all(|s| s.skip.as_deref().unwrap().starts_with("missed"))
    );
    // An operator running it on purpose three hours late: sent.
    let manual = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        slot + chrono::Duration::hours(3),
        &groups,
        &scripts,
        &none(),
        false,
    );
    assert!(manual.iter().all(|s| s.skip.is_none()));
    // In quiet hours (23:00 in Shanghai): skipped as such.
    let night = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        utc(2026, 11, 23, 15, 0),
        &groups,
        &scripts,
        &none(),
        false,
    );
    assert!(
        night
            .iter()
            .all(|s| s.skip.as_deref() == Some("quiet hours"))
    );
}

#[test]
fn a_group_with_its_own_time_zone_gets_the_slot_at_its_local_time() {
    let scripts = crate::engine::Scripts::embedded().unwrap();
    let j = scripts.jobs[0].clone();
    let london = chrono_tz::Europe::London;
    let mut groups = recipients(&["cn", "uk"]);
    let uk = GroupSettings {
        timezone: Some("Europe/London".into()),
        name: "伦敦财税群".into(),
        ..GroupSettings::default()
    };
    groups[1].settings = std::sync::Arc::new(uk);
    assert_eq!(j.zone_for(&groups[1].settings), london);
    assert_eq!(j.mark_name(london), "morning-report@Europe/London");
    assert_eq!(j.mark_name(DEFAULT_TIMEZONE), "morning-report");

    // 07:30 in Shanghai: only the Shanghai group.
    let cn_slot = utc(2026, 11, 22, 23, 30);
    let cn = plan(
        &j,
        DEFAULT_TIMEZONE,
        cn_slot,
        cn_slot,
        &groups,
        &scripts,
        &none(),
        false,
    );
    assert_eq!(cn.len(), 1);
    assert_eq!(cn[0].chat.as_ref().unwrap().as_str(), "cn");
    // 07:30 in London (GMT in November) is the London group's slot, with London's date.
    let uk_slot = j.next_slot_in(london, cn_slot).unwrap();
    assert_eq!(uk_slot, utc(2026, 11, 23, 7, 30));
    let uk = plan(
        &j,
        london,
        uk_slot,
        uk_slot,
        &groups,
        &scripts,
        &none(),
        false,
    );
    assert_eq!(uk.len(), 1);
    assert_eq!(uk[0].chat.as_ref().unwrap().as_str(), "uk");
    assert!(
        uk[0].skip.is_none(),
        "07:30 is outside quiet hours in London"
    );
    let crate::domain::OutMessage::Markdown { content } = &uk[0].message else {
        panic!("markdown")
    };
    assert!(content.contains("11月23日 星期一"), "{content}");
    // An unknown zone stored earlier falls back to the job's.
    let odd = GroupSettings {
        timezone: Some("Mars/Base".into()),
        ..GroupSettings::default()
    };
    assert_eq!(j.zone_for(&odd), DEFAULT_TIMEZONE);
}

#[test]
fn the_report_carries_the_days_column_queue_items_and_group_facts() {
    let scripts = crate::engine::Scripts::embedded().unwrap();
    let j = scripts.jobs[0].clone();
    // Tuesday 24 November 2026, 07:30 in Shanghai: the dry-goods column.
    let slot = utc(2026, 11, 23, 23, 30);
    let date = local_date(slot, DEFAULT_TIMEZONE);
    assert_eq!(date.to_string(), "2026-11-24");
    let first = scripts.content.undated_ids()[0].clone();
    let content = SlotContent::gather(&scripts.content, date, std::slice::from_ref(&first));
    assert_eq!(content.column.as_ref().unwrap().name, "干货分享");
    assert_eq!(content.items.len(), 1);
    assert_eq!(content.calendar.len(), 3, "Tuesday, Thursday, Friday");
    let mut groups = recipients(&["g1"]);
    groups[0].settings = std::sync::Arc::new(GroupSettings {
        name: "广州财税交流1群".into(),
        ..GroupSettings::default()
    });
    let sends = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        slot,
        &groups,
        &scripts,
        &content,
        false,
    );
    let crate::domain::OutMessage::Markdown { content: text } = &sends[0].message else {
        panic!("markdown")
    };
    assert!(text.contains("干货分享"), "{text}");
    assert!(text.contains(&scripts.content.items[0].title), "{text}");
    // On a Monday there is no column, and the report still renders.
    let monday = utc(2026, 11, 22, 23, 30);
    let plain = SlotContent::gather(&scripts.content, local_date(monday, DEFAULT_TIMEZONE), &[]);
    assert!(plain.column.is_none() && plain.items.is_empty());
    let sends = plan(
        &j,
        DEFAULT_TIMEZONE,
        monday,
        monday,
        &groups,
        &scripts,
        &plain,
        false,
    );
    assert!(sends[0].skip.is_none(), "{:?}", sends[0].skip);
    assert_eq!(
        claim_name("morning-report", date),
        "morning-report@2026-11-24"
    );
}

#[test]
fn group_name_and_member_count_reach_job_templates() {
    let mut j = job("30 7 * * *", DEFAULT_TIMEZONE);
    let mut templates = crate::engine::template::Templates::new();
    let body = templates
        .compile("test", "{{ group.name }} · {{ group.member_count }} 人")
        .unwrap();
    j.message = Message {
        format: Format::Text,
        body,
        mention_sender: false,
    };
    let mut scripts = crate::engine::Scripts::embedded().unwrap();
    scripts.templates = templates;
    let mut groups = recipients(&["g1"]);
    groups[0].settings = std::sync::Arc::new(GroupSettings {
        name: "深圳群".into(),
        ..GroupSettings::default()
    });
    let slot = utc(2026, 11, 22, 23, 30);
    let sends = plan(
        &j,
        DEFAULT_TIMEZONE,
        slot,
        slot,
        &groups,
        &scripts,
        &none(),
        false,
    );
    let crate::domain::OutMessage::Text { content, .. } = &sends[0].message else {
        panic!("text")
    };
    assert_eq!(content, "深圳群 · 42 人");
}

#[test]
fn a_slot_is_late_only_when_it_went_by_while_the_service_was_down() {
    let started = utc(2026, 5, 1, 8, 0);
    let window = Duration::from_secs(7200);
    let slot = utc(2026, 5, 1, 7, 30);
    // While running, even a late tick is on schedule.
    assert_eq!(
        trigger_for(
            started + chrono::Duration::minutes(5),
            started + chrono::Duration::minutes(9),
            started,
            window
        ),
        "schedule"
    );
    // Before the start: caught up inside the window, missed beyond it.
    assert_eq!(trigger_for(slot, started, started, window), "catch_up");
    assert_eq!(
        trigger_for(slot, slot + chrono::Duration::hours(2), started, window),
        "catch_up"
    );
    assert_eq!(
        trigger_for(slot, slot + chrono::Duration::minutes(121), started, window),
        "missed"
    );
    // A window of 0: any slot that went by while down is missed, however little late.
    assert_eq!(
        trigger_for(
            slot,
            slot + chrono::Duration::seconds(2),
            slot + chrono::Duration::seconds(1),
            Duration::ZERO
        ),
        "missed"
    );
}
