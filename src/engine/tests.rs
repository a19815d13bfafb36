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

#[test]
fn commands_check_roles_and_change_settings() {
    let scripts = Scripts::embedded().unwrap();
    let settings = pyramid();
    let members = members();
    let stats = GroupStats {
        members_seen: 12,
        messages: 340,
        today_messages: 5,
        today_speakers: 3,
        members: 0,
        sees_every_message: false,
    };
    let view = GroupView {
        settings: &settings,
        recent: &[],
        stats: Some(&stats),
        members: &members,
        cooling: &|_| false,
        can_remove_members: true,
        can_message_privately: true,
    };
    let set_role = |user: &str, name: &str, role| {
        vec![Action::Settings(SettingsChange::SetRole {
            user_id: user.into(),
            name: name.into(),
            role,
        })]
    };
    // (sender, text, refused, expected settings changes, a phrase in the reply)
    let table: Vec<(&str, &str, bool, Vec<Action>, &str)> = vec![
        ("zhangsan", "设置大当家 @李四", true, vec![], "需要群主"),
        ("da", "设置大当家 @李四", true, vec![], "你目前是大当家"),
        (
            "boss",
            "设置大当家 @李四",
            false,
            set_role("lisi", "李四", Role::Admin),
            "李四",
        ),
        (
            "boss",
            "设置大当家 lisi",
            false,
            set_role("lisi", "李四", Role::Admin),
            "李四",
        ),
        ("boss", "设置大当家 @王五", false, vec![], "没找到 王五"),
        ("boss", "设置大当家 @赵六", false, vec![], "没找到 赵六"),
        ("boss", "设置大当家", false, vec![], "后面还要写上"),
        (
            "da",
            "设置小当家 @张三",
            false,
            set_role("zhangsan", "张三", Role::Helper),
            "小当家",
        ),
        ("xiao", "设置小当家 @张三", true, vec![], "需要大当家"),
        // Unsetting a helper leaves an admin alone.
        ("da", "取消小当家 大当家甲", false, vec![], "不再是小当家"),
        (
            "boss",
            "取消大当家 @大当家甲",
            false,
            set_role("da", "大当家甲", Role::Member),
            "不再是大当家",
        ),
        (
            "da",
            "打标签 province:广东 type:新手群",
            false,
            vec![Action::Settings(SettingsChange::AddTags(vec![
                "province:广东".into(),
                "type:新手群".into(),
            ]))],
            "province:广东",
        ),
        ("zhangsan", "打标签 x", true, vec![], "需要大当家"),
        (
            "da",
            "移出 @张三",
            false,
            vec![Action::RemoveMember {
                user_id: "zhangsan".into(),
                name: "张三".into(),
                reason: "da-name 用群内指令「移出」移出".into(),
            }],
            "正在将 张三 移出本群",
        ),
        // An admin cannot remove another admin or the owner; a member cannot remove anyone.
        // Issue 27 §13: the answer blames the target's role, not the asker's.
        ("da", "移出 @大当家甲", true, vec![], "TA 是大当家"),
        ("da", "移出 @老板", true, vec![], "TA 是群主"),
        ("zhangsan", "踢出 @李四", true, vec![], "需要大当家"),
        (
            "da",
            "关闭规则 invoice",
            false,
            vec![Action::Settings(SettingsChange::SwitchRule {
                rule: "invoice".into(),
                enabled: false,
            })],
            "已关闭",
        ),
        ("da", "关闭规则 nope", false, vec![], "没有编号为「nope」"),
        ("xiao", "群统计", false, vec![], "累计消息：340 条"),
        ("zhangsan", "群统计", true, vec![], "需要小当家"),
        ("zhangsan", "管理名单", false, vec![], "群主：老板"),
        ("zhangsan", "群规", false, vec![], "本群群规"),
        // Issue 27 §11: a display name with a space is one member (the longest name wins), and
        // what members type after a command word ends in punctuation.
        (
            "da",
            "设置小当家 @Amy Wang",
            false,
            set_role("amyw", "Amy Wang", Role::Helper),
            "Amy Wang",
        ),
        (
            "da",
            "设置小当家 @Amy @张三",
            false,
            [
                set_role("amy", "Amy", Role::Helper),
                set_role("zhangsan", "张三", Role::Helper),
            ]
            .concat(),
            "Amy、张三",
        ),
        ("zhangsan", "群规！", false, vec![], "本群群规"),
        ("zhangsan", "群规?", false, vec![], "本群群规"),
    ];
    for (sender, message, refused, changes, phrase) in table {
        let event = event_from(
            sender,
            EventKind::Text {
                text: message.into(),
            },
        );
        assert!(is_command(&event, &scripts), "{message}");
        let d = decide(&event, &view, &scripts, office_hours());
        assert!(d.problems.is_empty(), "{message}: {:?}", d.problems);
        let By::Command {
            refused: was_refused,
            ..
        } = d.by
        else {
            panic!("{message}: not a command: {:?}", d.by)
        };
        assert_eq!(was_refused, refused, "{message} by {sender}");
        let got: Vec<Action> = d
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Settings(_) | Action::RemoveMember { .. }))
            .cloned()
            .collect();
        assert_eq!(got, changes, "{message} by {sender}");
        assert!(
            reply_text(&d).contains(phrase),
            "{message} by {sender}: {:?}",
            reply_text(&d)
        );
    }
}

/// Issue 17 §6: where the channel cannot remove anyone (the group robot), `移出` says the admins
/// are asked, not that the bot is removing the member.
#[test]
fn a_removal_the_channel_cannot_do_is_answered_truthfully() {
    let scripts = Scripts::embedded().unwrap();
    let settings = pyramid();
    let members = members();
    let answer = |can_remove_members| {
        let view = GroupView {
            settings: &settings,
            recent: &[],
            stats: None,
            members: &members,
            cooling: &|_| false,
            can_remove_members,
            can_message_privately: can_remove_members,
        };
        let event = event_from(
            "da",
            EventKind::Text {
                text: "移出 @张三".into(),
            },
        );
        reply_text(&decide(&event, &view, &scripts, office_hours()))
    };
    let robot = answer(false);
    assert!(
        robot.contains("不能移人") && robot.contains("张三") && !robot.contains("正在将"),
        "{robot}"
    );
    assert!(answer(true).contains("正在将 张三 移出本群"));
}

/// Issue 27 §3: the words after the reported members are the reason, not more members.
#[test]
fn a_report_takes_the_words_after_the_members_as_its_reason() {
    let scripts = Scripts::embedded().unwrap();
    let settings = pyramid();
    let members = members();
    let view = GroupView {
        settings: &settings,
        recent: &[],
        stats: None,
        members: &members,
        cooling: &|_| false,
        can_remove_members: true,
        can_message_privately: true,
    };
    let reports = |message: &str| -> (Vec<(String, String)>, String) {
        let d = decide(
            &event_from(
                "zhangsan",
                EventKind::Text {
                    text: message.into(),
                },
            ),
            &view,
            &scripts,
            office_hours(),
        );
        let asked = d
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Moderation(ModerationRequest::Report { user_id, reason }) => {
                    Some((user_id.clone(), reason.clone()))
                }
                _ => None,
            })
            .collect();
        (asked, reply_text(&d))
    };
    let (asked, _) = reports("举报 @李四 发广告 还拉人！");
    assert_eq!(asked, vec![("lisi".to_owned(), "发广告 还拉人".to_owned())]);
    let (asked, _) = reports("举报 @李四 @Amy Wang 私聊推销");
    assert_eq!(
        asked,
        vec![
            ("lisi".to_owned(), "私聊推销".to_owned()),
            ("amyw".to_owned(), "私聊推销".to_owned())
        ]
    );
    let (asked, _) = reports("举报 lisi 刷屏");
    assert_eq!(asked, vec![("lisi".to_owned(), "刷屏".to_owned())]);
    let (asked, reply) = reports("举报 @赵六 发广告");
    assert!(asked.is_empty());
    assert!(reply.contains("没找到 赵六"), "{reply}");
    // Issue 27 §2: on a channel that messages people privately, with an owner and an admin to
    // tell, the answer says they will be told privately; where nobody else holds the role, or
    // the channel cannot message privately, it does not.
    let (_, reply) = reports("举报 @李四 发广告");
    assert!(reply.contains("私信告知群主和大当家"), "{reply}");
    let alone = GroupSettings {
        owner: Some("zhangsan".into()),
        ..GroupSettings::default()
    };
    for (settings, privately) in [(&alone, true), (&settings, false)] {
        let view = GroupView {
            settings,
            can_message_privately: privately,
            ..view
        };
        let d = decide(
            &event_from(
                "zhangsan",
                EventKind::Text {
                    text: "举报 @李四 发广告".into(),
                },
            ),
            &view,
            &scripts,
            office_hours(),
        );
        let reply = reply_text(&d);
        assert!(
            reply.contains("举报已记录") && !reply.contains("私信"),
            "{reply}"
        );
    }
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
