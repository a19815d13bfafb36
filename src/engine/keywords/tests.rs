//! Tests of the keyword matcher: modes, priorities, windows, mentions.

use super::*;
use crate::domain::{ChatId, GroupSettings};
use crate::engine::message::Format;

fn rule(id: &str, mode: MatchMode, patterns: &[&str], priority: i32) -> KeywordRule {
    KeywordRule {
        id: id.into(),
        scope: Scope::Global,
        mode,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        priority,
        cooldown: Duration::ZERO,
        mentioned_only: true,
        hours: Vec::new(),
        enabled: true,
        reply: Message::literal(Format::Text, id, false),
    }
}

fn find<'a>(set: &'a KeywordSet, text: &str) -> Option<&'a str> {
    find_in(set, text, None, &GroupSettings::default())
}

fn find_in<'a>(
    set: &'a KeywordSet,
    text: &str,
    chat: Option<&ChatId>,
    settings: &GroupSettings,
) -> Option<&'a str> {
    set.find(
        &MatchInput {
            text,
            mentioned: true,
            minute_of_day: 600,
        },
        Place { chat, settings },
    )
    .map(|r| r.id.as_str())
}

#[test]
fn each_mode_matches_as_documented() {
    let set = KeywordSet::build(vec![
        rule("exact", MatchMode::Exact, &["hi"], 0),
        rule("contains", MatchMode::Contains, &["发票", "开票"], 0),
        rule("all", MatchMode::AllOf, &["个税", "汇算"], 0),
        rule("re", MatchMode::Regex, &[r"^\d{3}$"], 0),
    ])
    .unwrap();
    assert_eq!(find(&set, "hi"), Some("exact"));
    assert_eq!(find(&set, "hi there"), None);
    assert_eq!(find(&set, "我要开票"), Some("contains"));
    assert_eq!(find(&set, "汇算 个税"), Some("all"));
    assert_eq!(find(&set, "个税"), None);
    assert_eq!(find(&set, "123"), Some("re"));
    assert_eq!(find(&set, "1234"), None);
}

#[test]
fn priority_wins_and_ties_go_to_the_first_rule() {
    let set = KeywordSet::build(vec![
        rule("low", MatchMode::Contains, &["税"], 1),
        rule("high", MatchMode::Contains, &["个税"], 5),
        rule("same-later", MatchMode::Contains, &["个"], 5),
    ])
    .unwrap();
    assert_eq!(find(&set, "个税"), Some("high"));
    assert_eq!(find(&set, "税"), Some("low"));
}

#[test]
fn disabled_unmentioned_and_out_of_hours_rules_do_not_answer() {
    let mut off = rule("off", MatchMode::Contains, &["a"], 9);
    off.enabled = false;
    let mut quiet = rule("quiet", MatchMode::Contains, &["a"], 8);
    quiet.hours = vec![Window {
        start: 22 * 60,
        end: 6 * 60,
    }];
    let mut open = rule("open", MatchMode::Contains, &["a"], 1);
    open.mentioned_only = false;
    let set = KeywordSet::build(vec![off, quiet, open]).unwrap();
    let at = |minute, mentioned| {
        set.find(
            &MatchInput {
                text: "a",
                mentioned,
                minute_of_day: minute,
            },
            Place {
                chat: None,
                settings: &GroupSettings::default(),
            },
        )
        .map(|r| r.id.clone())
    };
    assert_eq!(
        at(600, true).as_deref(),
        Some("open"),
        "10:00: quiet is asleep"
    );
    assert_eq!(
        at(23 * 60, true).as_deref(),
        Some("quiet"),
        "23:00 is inside 22-06"
    );
    assert_eq!(
        at(60, false).as_deref(),
        Some("open"),
        "quiet needs a mention"
    );
}

#[test]
fn a_bad_regex_names_its_rule() {
    let err = KeywordSet::build(vec![
        rule("ok", MatchMode::Regex, &["a+"], 0),
        rule("broken", MatchMode::Regex, &["("], 0),
    ])
    .unwrap_err();
    assert_eq!(err.rule, "broken");
}

#[test]
fn the_narrowest_scope_wins_and_groups_can_switch_rules_off() {
    let scoped = |id: &str, scope: &str, pattern: &str, enabled: bool| KeywordRule {
        scope: Scope::parse(scope).unwrap(),
        enabled,
        reply: Message::literal(Format::Text, scope, false),
        ..rule(id, MatchMode::Contains, &[pattern], 0)
    };
    let set = KeywordSet::build(vec![
        scoped("invoice", "global", "发票", true),
        scoped("invoice", "tag:province:广东", "发票", true),
        scoped("invoice", "group:g-quiet", "发票", false),
        scoped("invoice", "group:g-custom", "开票", true),
    ])
    .unwrap();
    let answer = |chat: &str, tags: &[&str], disabled: &[&str], text: &str| {
        let settings = GroupSettings {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            disabled_rules: disabled.iter().map(|t| t.to_string()).collect(),
            ..GroupSettings::default()
        };
        let chat = ChatId::new(chat);
        set.find(
            &MatchInput {
                text,
                mentioned: true,
                minute_of_day: 600,
            },
            Place {
                chat: Some(&chat),
                settings: &settings,
            },
        )
        .map(|r| r.scope.to_string())
    };
    assert_eq!(answer("g1", &[], &[], "发票").as_deref(), Some("global"));
    assert_eq!(
        answer("g1", &["province:广东"], &[], "发票").as_deref(),
        Some("tag:province:广东")
    );
    // A disabled group version silences the rule there, even though wider versions match.
    assert_eq!(answer("g-quiet", &["province:广东"], &[], "发票"), None);
    // The group's own version answers its own patterns only.
    assert_eq!(answer("g-custom", &[], &[], "发票"), None);
    assert_eq!(
        answer("g-custom", &[], &[], "开票").as_deref(),
        Some("group:g-custom")
    );
    // Switched off for one group by its admins.
    assert_eq!(answer("g1", &[], &["invoice"], "发票"), None);
    assert_eq!(
        find_in(&set, "发票", None, &GroupSettings::default()),
        Some("invoice")
    );
}
