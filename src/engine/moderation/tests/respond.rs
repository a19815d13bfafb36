//! Tests of moderation's response: the notice's wording, the warning, folding, and blacklisting
//! on removal, decided once for the service and `simulate`.

use super::*;

/// A bot account: hears everything, deletes and removes.
fn account_caps() -> Capabilities {
    Capabilities {
        sees_every_message: true,
        reports_joins: true,
        passive_reply: false,
        can_post: true,
        can_remove_members: true,
        can_delete_messages: true,
        can_message_privately: true,
        reply_max_bytes: crate::domain::ReplyLimits::NONE,
    }
}

/// The template variables of [`sender`] in a group nothing is known about.
fn base_vars() -> minijinja::Value {
    crate::engine::vars::base(
        &sender(),
        Role::Member,
        None,
        &GroupSettings::default(),
        now(),
    )
}

fn case<'a>(
    verdict: &'a Verdict,
    sender: &'a crate::domain::Sender,
    settings: &'a GroupSettings,
    caps: Capabilities,
    window: NoticeWindow,
    blacklisted: bool,
) -> Case<'a> {
    Case {
        verdict,
        sender,
        text: "刷单返利",
        message_id: Some("m1"),
        caps,
        settings,
        vars: &base_vars,
        window,
        blacklisted,
    }
}

/// The verdict on an ad from a member warned twice in the window: the third warning removes.
fn third_warning(rules: &ModerationRules) -> Verdict {
    let earlier = [
        now() - chrono::Duration::hours(1),
        now() - chrono::Duration::minutes(30),
    ];
    judge_text(rules, "刷单返利", &[], &ordinary(&earlier), &quiet()).verdict
}

fn notices(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::NotifyAdmins { text } => Some(text.clone()),
            Action::RemoveMember { reason, .. } => Some(reason.clone()),
            Action::Post {
                message: OutMessage::Text { content, .. } | OutMessage::Markdown { content },
                purpose: "notify_admins",
            } => Some(content.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_response_words_the_notice_and_decides_the_blacklist_once() {
    let scripts = crate::engine::Scripts::embedded().unwrap();
    let rules = &scripts.moderation;
    let settings = GroupSettings::default();
    let open = NoticeWindow::Open { folded_before: 0 };
    let sender = sender();
    // The third warning removes: the removal carries the notice, names the member by name and
    // id, and puts them on the blacklist — once.
    let third = third_warning(rules);
    let first_ban = respond(
        rules,
        &scripts.templates,
        case(&third, &sender, &settings, account_caps(), open, false),
    )
    .unwrap();
    assert_eq!(first_ban.outcome, Severity::Remove);
    assert!(first_ban.acted && first_ban.blacklist && first_ban.own_row);
    let worded = notices(&first_ban.actions);
    assert_eq!(worded.len(), 1, "{:?}", first_ban.actions);
    assert!(worded[0].contains("张三（u1）"), "{}", worded[0]);
    let again = respond(
        rules,
        &scripts.templates,
        case(&third, &sender, &settings, account_caps(), open, true),
    )
    .unwrap();
    assert!(!again.blacklist, "a blacklisted member is not listed again");
    // A blacklisted member's removal for being blacklisted adds nothing to the list either.
    let mut listed = third.clone();
    listed.findings = vec![blacklist_finding("广告", &ChatId::new("g9"), "广州1群")];
    let listed = respond(
        rules,
        &scripts.templates,
        case(&listed, &sender, &settings, account_caps(), open, false),
    )
    .unwrap();
    assert!(!listed.blacklist);
    assert_eq!(listed.worst.evidence, "曾因「广告」被移出群「广州1群」");

    // A first warning on the group robot: the message cannot be deleted, so the admins are told
    // and the notice says so; the folded count is added to it.
    let robot = Capabilities {
        sees_every_message: false,
        reports_joins: false,
        passive_reply: true,
        can_remove_members: false,
        can_delete_messages: false,
        can_message_privately: false,
        ..account_caps()
    };
    let first = judge_text(rules, "刷单返利", &[], &ordinary(&[]), &quiet()).verdict;
    let warned = respond(
        rules,
        &scripts.templates,
        case(
            &first,
            &sender,
            &settings,
            robot,
            NoticeWindow::Open { folded_before: 4 },
            false,
        ),
    )
    .unwrap();
    assert_eq!(warned.outcome, Severity::Warn);
    assert!(!warned.blacklist && warned.own_row);
    let worded = notices(&warned.actions);
    assert_eq!(worded.len(), 1, "{:?}", warned.actions);
    assert!(
        worded[0].contains("机器人无法撤回这条消息"),
        "{}",
        worded[0]
    );
    assert!(worded[0].contains("同类情况 4 次"), "{}", worded[0]);
    assert!(
        warned
            .actions
            .iter()
            .any(|a| matches!(a, Action::Post { purpose, .. } if *purpose == "moderation_warning")),
        "the member is warned: {:?}",
        warned.actions
    );
    // Folded into the window's notice: no notice, the warning still goes out.
    let folded = respond(
        rules,
        &scripts.templates,
        case(
            &first,
            &sender,
            &settings,
            robot,
            NoticeWindow::Folded,
            false,
        ),
    )
    .unwrap();
    assert!(notices(&folded.actions).is_empty(), "{:?}", folded.actions);
    assert!(!folded.actions.is_empty());
}

#[test]
fn a_broken_notice_template_falls_back_to_the_built_in_wording_and_says_so() {
    let scripts = crate::engine::Scripts::embedded().unwrap();
    let broken = crate::engine::template::Templates::default();
    let rules = &scripts.moderation;
    assert!(
        rules.admin_notice.is_some(),
        "the shipped rules word the notice"
    );
    let settings = GroupSettings::default();
    let sender = sender();
    let third = third_warning(rules);
    // Templates that do not hold the shipped notice: rendering fails.
    let response = respond(
        rules,
        &broken,
        case(
            &third,
            &sender,
            &settings,
            account_caps(),
            NoticeWindow::Open { folded_before: 0 },
            false,
        ),
    )
    .unwrap();
    assert!(
        response
            .notes
            .iter()
            .any(|n| n.contains("notice did not render")),
        "{:?}",
        response.notes
    );
    let worded = notices(&response.actions);
    assert!(worded[0].starts_with("群管理：张三（u1）"), "{}", worded[0]);
}
