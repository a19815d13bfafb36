//! Table-driven tests of the engine over the shipped bot-scripts.

use super::*;
use crate::domain::{BotId, ChatId, Conversation, ModerationRequest, RoleHolder, Sender};
use chrono::TimeZone;

fn event_from(user: &str, kind: EventKind) -> Event {
    Event {
        bot: BotId::parse("b").unwrap(),
        msg_id: "1".into(),
        conversation: Conversation::Group(ChatId::new("c")),
        from: Sender {
            user_id: user.into(),
            name: format!("{user}-name"),
            ..Sender::default()
        },
        webhook_url: None,
        account: None,
        message_id: None,
        kind,
        mentioned: true,
        received_at: Utc::now(),
    }
}

fn text(t: &str) -> Event {
    event_from("zhangsan", EventKind::Text { text: t.into() })
}

/// 10:00 in Shanghai.
fn office_hours() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap()
}

fn decide_plain(event: &Event, scripts: &Scripts, now: DateTime<Utc>) -> Decision {
    decide(event, &GroupView::empty(), scripts, now)
}

fn rule_for(scripts: &Scripts, message: &str, now: DateTime<Utc>) -> Option<String> {
    match decide_plain(&text(message), scripts, now).by {
        By::Keyword { rule } => Some(rule),
        _ => None,
    }
}

fn reply_text(decision: &Decision) -> String {
    match decision.reply() {
        Some(Reply::Text { content, .. }) | Some(Reply::Markdown { content }) => content.clone(),
        None => String::new(),
    }
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
    let help = decide_plain(&text("帮助"), &scripts, office_hours());
    assert_eq!(help.by, By::Help);
    let Some(Reply::Text { mentioned, content }) = help.reply() else {
        panic!("help is text: {help:?}")
    };
    assert_eq!(mentioned, &vec!["zhangsan".to_owned()]);
    assert_eq!(content, scripts.help.body.source());
    let other = decide_plain(&text("你好"), &scripts, office_hours());
    assert_eq!(other.by, By::Fallback);
    assert_eq!(
        reply_text(&other),
        scripts.fallback.as_ref().unwrap().body.source()
    );
}

#[test]
fn a_cooling_rule_keeps_the_bot_silent() {
    let scripts = Scripts::embedded().unwrap();
    let answer = decide_plain(&text("发票"), &scripts, office_hours());
    assert!(answer.actions.contains(&Action::StartCooldown {
        rule: "invoice".into(),
        secs: 60
    }));
    let cooling = |id: &str| id == "invoice";
    let view = GroupView {
        cooling: &cooling,
        can_remove_members: true,
        can_message_privately: true,
        ..GroupView::empty()
    };
    let silent = decide(&text("发票"), &view, &scripts, office_hours());
    assert_eq!(
        silent.by,
        By::Cooling {
            rule: "invoice".into()
        }
    );
    assert!(silent.actions.is_empty());
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
    assert!(
        decide_plain(&unmentioned, &scripts, office_hours())
            .actions
            .is_empty()
    );
    scripts.fallback = None;
    assert_eq!(
        decide_plain(&text("你好"), &scripts, office_hours()).by,
        By::Nothing
    );
}

#[test]
fn adoption_makes_the_adopter_owner_and_posts_the_greeting() {
    let scripts = Scripts::embedded().unwrap();
    let d = decide_plain(
        &event_from("boss", EventKind::BotAdded),
        &scripts,
        office_hours(),
    );
    assert_eq!(d.by, By::Adoption);
    assert_eq!(
        d.actions[0],
        Action::Settings(SettingsChange::SetOwner {
            user_id: "boss".into(),
            name: "boss-name".into()
        })
    );
    assert!(matches!(
        d.actions[1],
        Action::Post {
            purpose: "adoption_greeting",
            ..
        }
    ));
    let removed = decide_plain(
        &event_from("boss", EventKind::BotRemoved),
        &scripts,
        office_hours(),
    );
    assert!(removed.actions.is_empty());
}

#[test]
fn operators_are_owners_everywhere_and_words_need_a_boundary() {
    let mut scripts = Scripts::embedded().unwrap();
    scripts.commands.operators = vec!["ops".into()];
    let d = decide_plain(
        &event_from(
            "ops",
            EventKind::Text {
                text: "设置大当家 @ops".into(),
            },
        ),
        &scripts,
        office_hours(),
    );
    assert!(matches!(d.by, By::Command { refused: false, .. }), "{d:?}");
    // `群规则` is not the `群规` command.
    assert!(!is_command(&text("群规则是什么"), &scripts));
    let mut unmentioned = text("群规");
    unmentioned.mentioned = false;
    assert!(!is_command(&unmentioned, &scripts));
}

#[test]
fn a_rule_switched_off_in_a_group_stays_silent_there() {
    let scripts = Scripts::embedded().unwrap();
    let mut settings = GroupSettings::default();
    settings.disabled_rules.insert("invoice".into());
    let view = GroupView {
        settings: &settings,
        ..GroupView::empty()
    };
    let d = decide(&text("发票怎么开"), &view, &scripts, office_hours());
    assert_eq!(d.by, By::Fallback);
}

#[test]
fn templates_see_member_group_and_date() {
    let mut scripts = Scripts::embedded().unwrap();
    let src = crate::scripts::Source::new(
        "content = \"{{ member.name }}/{{ member.role }}/{{ group.tags | join(',') }}/{{ date.weekday }}\"",
        std::path::Path::new("t.toml"),
    );
    #[derive(serde::Deserialize)]
    struct File {
        content: toml::Spanned<String>,
    }
    let content = toml::from_str::<File>(src.text).unwrap().content;
    let body = src.template(&mut scripts.templates, "t", &content).unwrap();
    scripts.fallback = Some(Message {
        format: crate::engine::message::Format::Text,
        body,
        mention_sender: false,
    });
    let mut settings = pyramid();
    settings.tags.insert("type:新手群".into());
    let view = GroupView {
        settings: &settings,
        ..GroupView::empty()
    };
    let d = decide(&text("你好"), &view, &scripts, office_hours());
    assert_eq!(reply_text(&d), "zhangsan-name/成员/type:新手群/星期一");
}

#[test]
fn actions_a_channel_cannot_perform_degrade_visibly() {
    let settings = pyramid();
    // A channel like the group robot: posts and replies, removes and deletes nothing.
    let caps = Capabilities {
        sees_every_message: false,
        reports_joins: false,
        passive_reply: true,
        can_post: true,
        can_remove_members: false,
        can_delete_messages: false,
        can_message_privately: false,
        reply_max_bytes: crate::domain::ReplyLimits::NONE,
    };
    let (actions, notes) = degrade(
        vec![Action::RemoveMember {
            user_id: "spammer".into(),
            name: "广告王".into(),
            reason: "广告".into(),
        }],
        caps,
        &settings,
    );
    assert_eq!(notes.len(), 1);
    let [
        Action::Post {
            message: OutMessage::Text {
                content, mentioned, ..
            },
            purpose: "notify_admins",
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:?}")
    };
    // Named as people know them, with the id beside the name.
    assert!(
        content.contains("请管理员将成员 广告王（spammer） 移出本群") && content.contains("广告"),
        "{content}"
    );
    assert_eq!(mentioned, &vec!["boss".to_owned(), "da".to_owned()]);

    // A channel that can only reply answers a post in the reply, and says so.
    let reply_only = Capabilities {
        can_post: false,
        ..caps
    };
    let post = Action::Post {
        message: OutMessage::Markdown {
            content: "hi".into(),
        },
        purpose: "greeting",
    };
    let (actions, notes) = degrade(vec![post.clone()], reply_only, &settings);
    assert_eq!(
        actions,
        vec![Action::Reply(Reply::Markdown {
            content: "hi".into()
        })]
    );
    assert_eq!(notes.len(), 1);
    // …but never two replies: the second is reported, not silently lost.
    let reply = Action::Reply(Reply::Markdown {
        content: "answer".into(),
    });
    let (actions, notes) = degrade(vec![reply.clone(), post], reply_only, &settings);
    assert_eq!(actions, vec![reply]);
    assert!(notes[0].contains("not sent"), "{notes:?}");
}

/// A group owned by `boss`, with `da` as admin and `xiao` as helper; `zhangsan` is a member.
fn pyramid() -> GroupSettings {
    let mut s = GroupSettings {
        owner: Some("boss".into()),
        owner_name: "老板".into(),
        ..GroupSettings::default()
    };
    for (id, name, role) in [
        ("da", "大当家甲", Role::Admin),
        ("xiao", "小当家乙", Role::Helper),
    ] {
        s.roles.insert(
            id.into(),
            RoleHolder {
                role,
                name: name.into(),
            },
        );
    }
    s
}

fn members() -> Vec<MemberBrief> {
    [
        ("zhangsan", "张三"),
        ("lisi", "李四"),
        ("wang1", "王五"),
        ("wang2", "王五"),
        ("amy", "Amy"),
        ("amyw", "Amy Wang"),
    ]
    .iter()
    .map(|(id, name)| MemberBrief {
        user_id: id.to_string(),
        name: name.to_string(),
    })
    .collect()
}

mod commands;
