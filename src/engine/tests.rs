//! Table-driven tests of the engine over the shipped bot-scripts.

use super::*;
use crate::domain::{BotId, ChatId, Conversation, Sender};
use chrono::TimeZone;

fn event(kind: EventKind) -> Event {
    Event {
        bot: BotId::parse("b").unwrap(),
        msg_id: "1".into(),
        conversation: Conversation::Group(ChatId::new("c")),
        from: Sender {
            user_id: "zhangsan".into(),
            ..Sender::default()
        },
        webhook_url: None,
        kind,
        mentioned: true,
        received_at: Utc::now(),
    }
}

fn text(t: &str) -> Event {
    event(EventKind::Text { text: t.into() })
}

/// 10:00 in Shanghai.
fn office_hours() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

fn rule_for(scripts: &Scripts, message: &str, now: DateTime<Utc>) -> Option<String> {
    passive_reply(&text(message), scripts, now, |_| false).and_then(|a| a.rule.map(|(id, _)| id))
}

#[test]
fn shipped_keywords_answer_everyday_questions() {
    let scripts = Scripts::embedded().unwrap();
    assert!(
        scripts.keywords.rules().len() >= 20,
        "at least 20 keyword replies ship"
    );
    let table = [
        ("发票怎么开", Some("invoice")),
        ("ＦＡ票 开错了要红冲吗", Some("red-invoice")),
        ("个税汇算什么时候办", Some("annual-iit-settlement")),
        ("企业所得税汇算清缴截止", Some("cit-settlement")),
        ("汇算清缴", Some("settlement")),
        ("这个月几号之前要申报？", Some("filing-deadline")),
        ("专项附加扣除怎么填", Some("special-deductions")),
        ("个税起征点是多少", Some("iit")),
        ("社保缴费基数", Some("social-insurance")),
        ("初级会计考试时间", Some("junior-exam")),
        ("CPA 报名", Some("cpa-exam")),
        ("ｃｐａ", Some("cpa-exam")),
        ("差旅费报销要什么", Some("reimbursement")),
        ("小规模免征增值税的额度", Some("small-scale-vat")),
        ("今天天气不错", None),
    ];
    for (message, expected) in table {
        assert_eq!(
            rule_for(&scripts, message, office_hours()).as_deref(),
            expected,
            "{message}"
        );
    }
}

#[test]
fn help_comes_first_and_unmatched_text_gets_the_fallback() {
    let scripts = Scripts::embedded().unwrap();
    let help = passive_reply(&text("帮助"), &scripts, office_hours(), |_| false).unwrap();
    assert_eq!(help.reply, scripts.help.reply_to("zhangsan"));
    let Reply::Text { mentioned, .. } = &help.reply else {
        panic!("help is text")
    };
    assert_eq!(mentioned, &vec!["zhangsan".to_owned()]);
    let other = passive_reply(&text("你好"), &scripts, office_hours(), |_| false).unwrap();
    assert_eq!(
        Some(&other.reply),
        scripts
            .fallback
            .as_ref()
            .map(|m| m.reply_to("zhangsan"))
            .as_ref()
    );
    assert_eq!(
        passive_reply(
            &event(EventKind::BotAdded),
            &scripts,
            office_hours(),
            |_| false
        ),
        None
    );
}

#[test]
fn a_cooling_rule_keeps_the_bot_silent() {
    let scripts = Scripts::embedded().unwrap();
    let answer = passive_reply(&text("发票"), &scripts, office_hours(), |_| false).unwrap();
    assert_eq!(answer.rule, Some(("invoice".into(), 60)));
    assert_eq!(
        passive_reply(&text("发票"), &scripts, office_hours(), |id| id
            == "invoice"),
        None
    );
}

#[test]
fn office_hours_rules_sleep_at_night() {
    let scripts = Scripts::embedded().unwrap();
    let night = Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap(); // 23:00 in Shanghai
    assert_eq!(
        rule_for(&scripts, "有人工吗", office_hours()).as_deref(),
        Some("human-service")
    );
    assert_eq!(rule_for(&scripts, "有人工吗", night), None);
}

#[test]
fn without_a_fallback_or_a_mention_unmatched_text_is_silent() {
    let mut scripts = Scripts::embedded().unwrap();
    let mut unmentioned = text("你好");
    unmentioned.mentioned = false;
    assert_eq!(
        passive_reply(&unmentioned, &scripts, office_hours(), |_| false),
        None
    );
    scripts.fallback = None;
    assert_eq!(
        passive_reply(&text("你好"), &scripts, office_hours(), |_| false),
        None
    );
}
