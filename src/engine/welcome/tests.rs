//! Tests of welcome batching, intervals, rejoins and template choice.

use super::*;
use crate::domain::{ChatId, GroupSettings, Sender};
use chrono::TimeZone;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

fn joiner(id: &str, scene: JoinScene) -> Joiner {
    Joiner {
        member: Sender {
            user_id: id.into(),
            name: format!("名字{id}"),
            alias: String::new(),
        },
        scene,
    }
}

fn ids(joiners: &[Joiner]) -> Vec<&str> {
    joiners.iter().map(|j| j.member.user_id.as_str()).collect()
}

#[test]
fn joins_within_the_window_are_one_batch_and_a_raid_waits_for_the_interval() {
    let timing = WelcomeTiming::default(); // 30 s window, 300 s interval
    let mut g = GroupWelcomes::default();
    assert_eq!(g.due_at(&timing), None);
    g.add([joiner("a", JoinScene::Qrcode)], at(0));
    g.add(
        [
            joiner("b", JoinScene::Qrcode),
            joiner("a", JoinScene::Qrcode),
        ],
        at(10),
    );
    assert_eq!(g.due_at(&timing), Some(at(30)));
    assert_eq!(g.take_due(at(29), &timing), None);
    let batch = g.take_due(at(30), &timing).unwrap();
    assert_eq!(ids(&batch), ["a", "b"], "one welcome, each member once");

    // A raid right after: gathered until the interval since the last welcome has passed.
    for (i, id) in ["c", "d", "e"].iter().enumerate() {
        g.add([joiner(id, JoinScene::Link)], at(40 + i as i64 * 60));
    }
    assert_eq!(g.due_at(&timing), Some(at(330)));
    assert_eq!(g.take_due(at(100), &timing), None);
    assert!(!g.is_idle(at(100), &timing));
    let batch = g.take_due(at(330), &timing).unwrap();
    assert_eq!(ids(&batch), ["c", "d", "e"]);
    assert!(!g.is_idle(at(331), &timing), "the interval still runs");
    assert!(g.is_idle(at(630), &timing));
}

fn place<'a>(chat: &'a ChatId, settings: &'a GroupSettings) -> Place<'a> {
    Place {
        chat: Some(chat),
        settings,
    }
}

fn post_text(w: &Welcome) -> String {
    match &w.action {
        Some(Action::Post {
            message: crate::domain::OutMessage::Markdown { content },
            ..
        }) => content.clone(),
        Some(Action::Post {
            message: crate::domain::OutMessage::Text { content, .. },
            ..
        }) => content.clone(),
        other => panic!("no welcome post: {other:?}"),
    }
}

#[test]
fn the_welcome_mentions_everyone_and_skips_recent_rejoins() {
    let scripts = Scripts::embedded().unwrap();
    let chat = ChatId::new("g1");
    let settings = GroupSettings::default();
    let recently = at(-3 * 24 * 3600);
    let long_ago = at(-30 * 24 * 3600);
    let w = compose(
        &scripts,
        place(&chat, &settings),
        vec![
            joiner("new1", JoinScene::Invited),
            joiner("back-soon", JoinScene::Invited),
            joiner("back-later", JoinScene::Invited),
        ],
        |user| match user {
            "back-soon" => Some(recently),
            "back-later" => Some(long_ago),
            _ => None,
        },
        at(0),
    );
    assert!(w.problem.is_none(), "{:?}", w.problem);
    assert_eq!(w.welcomed, ["new1", "back-later"]);
    assert_eq!(w.recently_welcomed, ["back-soon"]);
    let text = post_text(&w);
    assert!(text.contains("<@new1> <@back-later>"), "{text}");
    assert!(text.contains("地区-姓名-岗位"), "{text}");
    assert!(
        text.contains("本群群规"),
        "the group rules are included: {text}"
    );

    // Everyone was welcomed recently: nothing is posted.
    let w = compose(
        &scripts,
        place(&chat, &settings),
        vec![joiner("back-soon", JoinScene::Invited)],
        |_| Some(recently),
        at(0),
    );
    assert_eq!(w.action, None);
}

#[test]
fn the_template_follows_scope_and_scene() {
    let scripts = Scripts::embedded().unwrap();
    let chat = ChatId::new("g1");
    let plain = GroupSettings::default();
    let mut newbies = GroupSettings::default();
    newbies.tags.insert("type:新手群".into());
    // (settings, scenes of the batch, a phrase of the expected template)
    let table: [(&GroupSettings, &[JoinScene], &str); 5] = [
        (&plain, &[JoinScene::Invited], "加入本群"),
        (&plain, &[JoinScene::Qrcode], "扫码加入本群"),
        // Mixed scenes use the template for any scene.
        (&plain, &[JoinScene::Qrcode, JoinScene::Invited], "加入本群"),
        (&newbies, &[JoinScene::Qrcode], "来到新手群"),
        (&newbies, &[JoinScene::Unknown], "来到新手群"),
    ];
    for (settings, scenes, phrase) in table {
        let joiners = scenes
            .iter()
            .enumerate()
            .map(|(i, s)| joiner(&format!("u{i}"), *s))
            .collect();
        let w = compose(&scripts, place(&chat, settings), joiners, |_| None, at(0));
        let text = post_text(&w);
        assert!(text.contains(phrase), "{scenes:?}: {text}");
        if scenes.len() > 1 {
            assert!(!text.contains("扫码"), "{text}");
        }
    }
}

#[test]
fn timing_and_switch_off_follow_the_narrowest_scope() {
    let mut scripts = Scripts::embedded().unwrap();
    let chat = ChatId::new("quiet-group");
    scripts.welcome.timing.push(TimingOverride {
        scope: Scope::parse("group:quiet-group").unwrap(),
        batch_window: Some(Duration::from_secs(5)),
        min_interval: None,
        rejoin_quiet: None,
    });
    let any_template = scripts.welcome.templates[0].message.clone();
    scripts.welcome.templates.push(WelcomeTemplate {
        scope: Scope::parse("group:quiet-group").unwrap(),
        scene: None,
        enabled: false,
        message: any_template,
    });
    let settings = GroupSettings::default();
    let timing = scripts.welcome.timing(place(&chat, &settings));
    assert_eq!(timing.batch_window, Duration::from_secs(5));
    assert_eq!(timing.min_interval, Duration::from_secs(300), "inherited");
    let w = compose(
        &scripts,
        place(&chat, &settings),
        vec![joiner("a", JoinScene::Invited)],
        |_| None,
        at(0),
    );
    assert_eq!(w.action, None, "welcomes are switched off in this group");
    let other = ChatId::new("other");
    assert_eq!(
        scripts
            .welcome
            .timing(place(&other, &settings))
            .batch_window,
        Duration::from_secs(30)
    );
}
