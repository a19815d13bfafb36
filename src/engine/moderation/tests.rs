//! Tests of judging and planning (the checks themselves are tested in `content` and `text`),
//! and the labelled corpus: precision and recall of the shipped rules.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::domain::{Action, Capabilities, GroupSettings, OutMessage};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

fn shipped() -> ModerationRules {
    crate::engine::Scripts::embedded().unwrap().moderation
}

/// An ordinary member: here for a month, many messages, but a finding recently (not trusted).
fn ordinary(warnings: &[DateTime<Utc>]) -> Standing<'_> {
    Standing {
        role: Role::Member,
        approved: false,
        messages: 100,
        clean: 3,
        first_seen: Some(now() - chrono::Duration::days(30)),
        warnings,
    }
}

fn newcomer() -> Standing<'static> {
    Standing {
        messages: 0,
        first_seen: Some(now()),
        ..ordinary(&[])
    }
}

struct Judged {
    verdict: Verdict,
}

fn judge_text(
    rules: &ModerationRules,
    text: &str,
    parts: &[&str],
    standing: &Standing<'_>,
    activity: &Activity<'_>,
) -> Judged {
    let settings = GroupSettings::default();
    let chat = ChatId::new("g1");
    let place = Place {
        chat: Some(&chat),
        settings: &settings,
    };
    let prepared = Prepared::new(text, &rules.variants);
    let content = Content {
        prepared: &prepared,
        parts,
        qr_codes: &[],
    };
    Judged {
        verdict: judge(rules, place, &content, standing, activity, "u1", now()),
    }
}

/// The member judged: `u1`, known as 张三.
fn sender() -> crate::domain::Sender {
    crate::domain::Sender {
        user_id: "u1".into(),
        name: "张三".into(),
        ..Default::default()
    }
}

/// Eight messages in the last eight seconds: with one more, the shipped flood check fires.
fn burst() -> Vec<DateTime<Utc>> {
    (1..=8)
        .map(|s| now() - chrono::Duration::seconds(s))
        .collect()
}

fn quiet() -> Activity<'static> {
    Activity::default()
}

#[test]
fn an_ad_is_warned_and_the_third_warning_removes() {
    let rules = shipped();
    let judged = judge_text(
        &rules,
        "加 V❤信 kj12345 领资料",
        &[],
        &ordinary(&[]),
        &quiet(),
    );
    let worst = judged.verdict.worst().unwrap();
    assert_eq!(worst.severity, Severity::Warn);
    assert_eq!(judged.verdict.warnings, 1);
    assert_eq!(judged.verdict.outcome(), Some(Severity::Warn));
    let earlier = [
        now() - chrono::Duration::hours(2),
        now() - chrono::Duration::hours(1),
    ];
    let judged = judge_text(&rules, "刷单返利", &[], &ordinary(&earlier), &quiet());
    assert_eq!(judged.verdict.warnings, 3);
    assert_eq!(judged.verdict.outcome(), Some(Severity::Remove));
    // Warnings older than the window do not count.
    let old = [
        now() - chrono::Duration::days(3),
        now() - chrono::Duration::days(2),
    ];
    let judged = judge_text(&rules, "刷单返利", &[], &ordinary(&old), &quiet());
    assert_eq!(judged.verdict.outcome(), Some(Severity::Warn));
}

#[test]
fn a_flood_is_one_offence_and_earns_one_warning() {
    let rules = shipped();
    let burst = burst();
    let flooding = Activity {
        member_messages: &burst,
        ..Activity::default()
    };
    // The message that makes it a flood is warned.
    let first = judge_text(&rules, "好的", &[], &ordinary(&[]), &flooding);
    assert_eq!(first.verdict.worst().unwrap().check, "flood");
    assert!(first.verdict.new_warning);
    assert_eq!(first.verdict.warnings, 1);
    assert_eq!(first.verdict.outcome(), Some(Severity::Warn));
    // The next one of the same burst (warned a second ago, within the flood's 15 s) is deleted,
    // not warned again: no "warned 2/3" in the same breath.
    let warned = [now() - chrono::Duration::seconds(1)];
    let next = judge_text(&rules, "好的", &[], &ordinary(&warned), &flooding);
    assert!(!next.verdict.new_warning);
    assert_eq!(next.verdict.warnings, 1);
    assert_eq!(next.verdict.outcome(), Some(Severity::Delete));
    // A flood that starts after the burst's window is a new offence.
    let earlier = [now() - chrono::Duration::minutes(5)];
    let later = judge_text(&rules, "好的", &[], &ordinary(&earlier), &flooding);
    assert!(later.verdict.new_warning);
    assert_eq!(later.verdict.warnings, 2);
    // Ads are not bursts: each one is warned (the third removes).
    let ad = judge_text(&rules, "刷单返利", &[], &ordinary(&warned), &quiet());
    assert!(ad.verdict.new_warning);
    assert_eq!(ad.verdict.warnings, 2);
}

#[test]
fn trusted_members_skip_content_checks_but_not_flood() {
    let rules = shipped();
    let burst = burst();
    let flooding = Activity {
        member_messages: &burst,
        ..Activity::default()
    };
    for standing in [
        Standing {
            role: Role::Admin,
            ..ordinary(&[])
        },
        Standing {
            role: Role::Helper,
            ..ordinary(&[])
        },
        Standing {
            approved: true,
            ..ordinary(&[])
        },
        Standing {
            clean: 20,
            ..ordinary(&[])
        },
    ] {
        let judged = judge_text(&rules, "加我微信 kj12345", &[], &standing, &quiet());
        assert!(judged.verdict.trusted);
        assert!(
            judged.verdict.findings.is_empty(),
            "{:?}",
            judged.verdict.findings
        );
        let judged = judge_text(&rules, "好的", &[], &standing, &flooding);
        assert_eq!(judged.verdict.worst().unwrap().check, "flood");
    }
    let mut rules = shipped();
    rules.approved.insert("u1".into());
    let judged = judge_text(&rules, "加我微信 kj12345", &[], &ordinary(&[]), &quiet());
    assert!(judged.verdict.findings.is_empty());
}

#[test]
fn newcomers_and_raids_get_the_stricter_checks() {
    let rules = shipped();
    // A card from a newcomer; the same card from an ordinary member is fine.
    let judged = judge_text(&rules, "", &["wx.app"], &newcomer(), &quiet());
    assert!(judged.verdict.probation);
    assert_eq!(judged.verdict.worst().unwrap().check, "newcomer-cards");
    let judged = judge_text(&rules, "", &["wx.app"], &ordinary(&[]), &quiet());
    assert!(judged.verdict.findings.is_empty());
    // During a raid everyone untrusted is on probation.
    let raid = Activity {
        raid_until: Some(now() + chrono::Duration::minutes(5)),
        ..Activity::default()
    };
    let judged = judge_text(&rules, "", &["wx.app"], &ordinary(&[]), &raid);
    assert!(judged.verdict.probation);
    assert_eq!(judged.verdict.worst().unwrap().check, "newcomer-cards");
    // An allowed link is still deleted for a newcomer, not for others.
    let link = "看这篇 https://zhuanlan.zhihu.com/p/123";
    assert_eq!(
        judge_text(&rules, link, &[], &newcomer(), &quiet())
            .verdict
            .outcome(),
        Some(Severity::Delete)
    );
    assert!(
        judge_text(&rules, link, &[], &ordinary(&[]), &quiet())
            .verdict
            .findings
            .is_empty()
    );
}

#[test]
fn repeats_and_campaigns_are_counted_within_their_windows() {
    let rules = shipped();
    let twice = [
        now() - chrono::Duration::minutes(3),
        now() - chrono::Duration::minutes(1),
    ];
    let repeating = Activity {
        same_text: &twice,
        ..Activity::default()
    };
    let judged = judge_text(&rules, "今天的课几点开始", &[], &ordinary(&[]), &repeating);
    assert_eq!(judged.verdict.worst().unwrap().check, "repeat");
    let long_ago = [
        now() - chrono::Duration::hours(3),
        now() - chrono::Duration::hours(2),
    ];
    let stale = Activity {
        same_text: &long_ago,
        ..Activity::default()
    };
    assert!(
        judge_text(&rules, "今天的课几点开始", &[], &ordinary(&[]), &stale)
            .verdict
            .findings
            .is_empty()
    );

    // Not an ad by its words: only being pasted into three groups at once makes it a campaign.
    let text = "周末课程的安排已经发在群公告里大家记得提前看一下";
    let seen = [
        (ChatId::new("g2"), now() - chrono::Duration::minutes(2)),
        (ChatId::new("g3"), now() - chrono::Duration::minutes(1)),
        (ChatId::new("g3"), now() - chrono::Duration::seconds(30)),
    ];
    let campaign = Activity {
        elsewhere: &seen,
        ..Activity::default()
    };
    let judged = judge_text(&rules, text, &[], &ordinary(&[]), &campaign);
    let worst = judged.verdict.worst().unwrap();
    assert_eq!(
        (worst.check.as_str(), worst.severity),
        ("campaign", Severity::Warn)
    );
    assert_eq!(worst.evidence, "3 个群出现同一内容");
    // Two groups are not a campaign, and short texts never are.
    let two = Activity {
        elsewhere: &seen[1..],
        ..Activity::default()
    };
    assert!(
        judge_text(&rules, text, &[], &ordinary(&[]), &two)
            .verdict
            .findings
            .is_empty()
    );
    assert!(
        judge_text(&rules, "收到谢谢", &[], &ordinary(&[]), &campaign)
            .verdict
            .findings
            .is_empty()
    );
}

#[test]
fn scoped_settings_and_checks_override_the_global_ones() {
    let mut rules = shipped();
    rules.settings.push(SettingsOverride {
        scope: Scope::Group(ChatId::new("g1")),
        dry_run: Some(true),
        ..SettingsOverride::default()
    });
    let judged = judge_text(&rules, "刷单返利", &[], &ordinary(&[]), &quiet());
    assert!(judged.verdict.settings.dry_run);
    assert_eq!(
        judged.verdict.settings.warn_limit, 3,
        "unset keys keep the global value"
    );
    assert!(!judged.verdict.findings.is_empty(), "dry-run still finds");
    let actions = plan(
        &judged.verdict,
        &sender(),
        Some("m1"),
        None,
        "notice".into(),
    );
    assert!(actions.is_empty(), "dry-run does nothing: {actions:?}");

    let mut rules = shipped();
    rules.settings.push(SettingsOverride {
        scope: Scope::Tag("type:vip".into()),
        enabled: Some(false),
        ..SettingsOverride::default()
    });
    let mut settings = GroupSettings::default();
    settings.tags.insert("type:vip".into());
    let chat = ChatId::new("g9");
    let place = Place {
        chat: Some(&chat),
        settings: &settings,
    };
    assert!(!rules.settings_at(place).enabled);
}

#[test]
fn plans_follow_the_outcome() {
    let rules = shipped();
    let warning = OutMessage::Text {
        content: "警告".into(),
        mentioned: vec!["u1".into()],
        mentioned_mobiles: Vec::new(),
    };
    let judged = judge_text(&rules, "刷单返利", &[], &ordinary(&[]), &quiet());
    let actions = plan(
        &judged.verdict,
        &sender(),
        Some("m1"),
        Some(warning.clone()),
        "n".into(),
    );
    assert_eq!(
        actions,
        vec![
            Action::DeleteMessage {
                message_id: "m1".into()
            },
            Action::Post {
                message: warning.clone(),
                purpose: "moderation_warning"
            },
        ]
    );
    // Without a message id (a channel that cannot name the message) the admins are told.
    let actions = plan(
        &judged.verdict,
        &sender(),
        None,
        Some(warning.clone()),
        "n".into(),
    );
    assert!(
        actions.contains(&Action::NotifyAdmins { text: "n".into() }),
        "{actions:?}"
    );
    // The third warning removes; the removal carries the notice.
    let earlier = [
        now() - chrono::Duration::hours(1),
        now() - chrono::Duration::minutes(30),
    ];
    let judged = judge_text(&rules, "刷单返利", &[], &ordinary(&earlier), &quiet());
    let actions = plan(
        &judged.verdict,
        &sender(),
        Some("m1"),
        Some(warning),
        "n".into(),
    );
    assert_eq!(
        actions,
        vec![
            Action::DeleteMessage {
                message_id: "m1".into()
            },
            Action::RemoveMember {
                user_id: "u1".into(),
                name: "张三".into(),
                reason: "n".into()
            },
        ]
    );
    // Nothing found, nothing done.
    let judged = judge_text(&rules, "好的", &[], &ordinary(&[]), &quiet());
    assert!(plan(&judged.verdict, &sender(), Some("m1"), None, "n".into()).is_empty());
}

#[derive(serde::Deserialize)]
struct Corpus {
    spam: Vec<String>,
    legit: Vec<String>,
}

/// Precision and recall of the shipped rules on the first labelled corpus, for an ordinary
/// member and for a newcomer (stricter checks). Printed for BENCHMARKS.md
/// (`cargo test --lib the_corpus -- --nocapture`). This corpus was written when any link or
/// phone number was a finding; a long-standing member's bare link (`更多资料关注 ziliao.cc`) or
/// number now only counts towards ad-intent, so of its 124 ads about a dozen of that kind pass
/// when a long-standing member posts them — a newcomer's are all still caught.
#[test]
fn the_corpus() {
    let corpus: Corpus =
        toml::from_str(include_str!("../../../tests/data/moderation-corpus.toml")).unwrap();
    assert!(corpus.spam.len() + corpus.legit.len() >= 200);
    let rules = shipped();
    for (who, standing, least_recall) in [
        ("ordinary member", ordinary(&[]), 0.85),
        ("newcomer", newcomer(), 0.95),
    ] {
        let flagged = |text: &str| {
            judge_text(&rules, text, &[], &standing, &quiet())
                .verdict
                .outcome()
                .is_some_and(|s| s >= Severity::Delete)
        };
        let missed: Vec<&String> = corpus.spam.iter().filter(|t| !flagged(t)).collect();
        let false_positives: Vec<&String> = corpus.legit.iter().filter(|t| flagged(t)).collect();
        let caught = corpus.spam.len() - missed.len();
        let recall = caught as f64 / corpus.spam.len() as f64;
        let precision = caught as f64 / (caught + false_positives.len()) as f64;
        println!(
            "{who}: spam {} caught {caught} (recall {:.1} %), legit {} flagged {} (precision {:.1} %)",
            corpus.spam.len(),
            recall * 100.0,
            corpus.legit.len(),
            false_positives.len(),
            precision * 100.0
        );
        println!("  missed: {missed:?}");
        assert!(
            false_positives.is_empty(),
            "{who}: false positives {false_positives:?}"
        );
        assert!(
            recall >= least_recall,
            "{who}: recall {recall:.3}, missed {missed:?}"
        );
    }
}

#[test]
fn longest_window_covers_every_behaviour_check() {
    let rules = shipped();
    assert_eq!(rules.longest_window(), Duration::from_secs(600));
}

mod respond;

/// Issue 19: the shipped ad-intent check weighs cues — an offer with a call to contact is an ad;
/// the same trade named in a question, or in a warning, is ordinary — and names every cue that
/// fired.
#[test]
fn intent_weighs_cues_and_a_trade_word_alone_never_convicts() {
    let rules = shipped();
    let intent = |text: &str| {
        judge_text(&rules, text, &[], &ordinary(&[]), &quiet())
            .verdict
            .findings
            .into_iter()
            .find(|f| f.check == "ad-intent")
    };
    let ad = intent("专业代开增值税专用发票，税点低，详询").expect("an offer is an ad");
    assert!(
        ad.evidence.contains("发票买卖(+4): 代开") && ad.evidence.contains("诱导联系(+2): 详询"),
        "{}",
        ad.evidence
    );
    for ordinary in [
        "个人去税务局代开发票要带什么资料",
        "代开发票需要交几个点的税？",
        "有人在群里说能刷流水，这个违法的吧？大家别信",
        "贷款利息能税前扣除吗",
    ] {
        assert_eq!(intent(ordinary), None, "{ordinary}");
    }
}

/// The held-out split of the project's corpus, judged as `trumpet moderation-eval` judges it, as
/// a long-standing member's and as a newcomer's (the `newcomer-ads` check weighs the learned
/// layer): the floors are the figures measured when they were set (BENCHMARKS.md), so a change
/// that loses spam or flags ordinary talk fails here. Issue 19's target (95 % recall) is not
/// reached yet; the floors rise with it. Only the counts are printed: this split is not to be
/// tuned on.
#[test]
fn the_held_out_split_stays_above_its_floors() {
    use super::eval::{Sender, evaluate_as, parse_labelled};
    let first = parse_labelled(include_str!("../../../corpus/moderation/holdout.tsv")).unwrap();
    let second = parse_labelled(include_str!("../../../corpus/moderation/holdout-2.tsv")).unwrap();
    assert!(first.len() >= 300 && second.len() >= 250);
    let rules = shipped();
    // (split, sender, least spam caught, most ordinary messages flagged)
    let floors = [
        ("holdout", &first, Sender::LongStanding, 127, 1),
        ("holdout", &first, Sender::Newcomer, 132, 1),
        ("holdout-2", &second, Sender::LongStanding, 108, 2),
        ("holdout-2", &second, Sender::Newcomer, 114, 2),
    ];
    for (split, messages, sender, least_caught, most_flagged) in floors {
        let score = evaluate_as(&rules, messages, sender, now());
        let figures = format!(
            "{split}, {sender:?}: {} of {} spam caught, {} of {} ordinary flagged",
            score.caught, score.spam, score.flagged, score.ordinary
        );
        println!("{figures}");
        assert!(score.caught >= least_caught, "{figures}");
        assert!(score.flagged <= most_flagged, "{figures}");
    }
}
