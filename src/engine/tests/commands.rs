//! Tests of in-chat commands: roles checked, settings changed, removals answered truthfully,
//! reports with their reasons.

use super::*;

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
