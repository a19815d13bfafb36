//! Moderation end to end over the bot-account channel: a fake OneBot 12 implementation sends
//! group messages over the real WebSocket; the service deletes, warns, removes (confirmed by the
//! member list), tells the admins, keeps the log and the blacklist.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::fake_onebot::{FakeOneBot, World, sent_mentions, sent_text};
use crate::helpers::*;
use crate::onebot::{
    BOT_ACCOUNT, GROUP, adopted_by_owner, app_with, mention_command, scripts, wait_members,
    wait_sends, world,
};

/// The moderation log, filtered by `query` (`chat_id=…&user_id=…`).
async fn log(app: &TestApp, query: &str) -> Vec<Value> {
    let page = app.api(&format!("/api/v1/moderation?{query}")).await;
    serde_json::from_value(page["entries"].clone()).unwrap()
}

/// Waits until the log filtered by `query` has `count` entries; returns them, newest first.
async fn wait_log(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = log(app, query).await;
        if entries.len() >= count {
            return entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} log entries never came for {query}: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `send_message` requests whose text contains `needle`.
fn sent_containing(fake: &FakeOneBot, needle: &str) -> Vec<Value> {
    fake.requests("send_message")
        .into_iter()
        .filter(|r| sent_text(r).contains(needle))
        .collect()
}

/// Waits for `count` `send_message` requests that `matches`, returning them; `what` names them
/// when they never come.
async fn wait_messages(
    fake: &FakeOneBot,
    what: &str,
    count: usize,
    matches: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = fake
            .requests("send_message")
            .into_iter()
            .filter(|r| matches(r))
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} {what} never sent: {:?}",
            fake.requests("send_message")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_sent(fake: &FakeOneBot, needle: &str, count: usize) -> Vec<Value> {
    let what = format!("messages with {needle:?}");
    wait_messages(fake, &what, count, |r| sent_text(r).contains(needle)).await
}

/// Waits for `count` private messages to `user`, returning them.
async fn wait_private(fake: &FakeOneBot, user: &str, count: usize) -> Vec<Value> {
    let what = format!("private messages to {user}");
    wait_messages(fake, &what, count, |r| {
        r["params"]["detail_type"] == "private" && r["params"]["user_id"] == user
    })
    .await
}

/// A service with `scripts` and a bot account serving one group of three (owner `wxid_owner`,
/// `wxid_spam`) whose implementation offers `actions` besides the standard ones; `prepare` may
/// change the implementation's world (`fake.world`) before it connects.
struct Setup {
    _scripts: tempfile::TempDir,
    app: TestApp,
    fake: FakeOneBot,
}

async fn group_of_three(
    scripts: tempfile::TempDir,
    actions: &[&str],
    prepare: impl FnOnce(&mut World),
) -> Setup {
    let app = app_with(&scripts, "").await;
    let world = world(actions);
    {
        let mut w = world.lock().unwrap();
        w.groups.clear();
        prepare(&mut w);
    }
    let fake = adopted_by_owner(&app, &world).await;
    wait_members(&app, |ids| ids.len() == 3).await;
    Setup {
        _scripts: scripts,
        app,
        fake,
    }
}

/// The shipped scripts with `moderation.toml` edited by `edit`.
fn scripts_with(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let scripts = scripts();
    let file = scripts.path().join("moderation.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, edit(text)).unwrap();
    scripts
}

#[tokio::test]
async fn spam_is_deleted_and_warned_and_the_third_warning_removes_the_member() {
    let Setup { app, fake, .. } =
        group_of_three(scripts(), &["wx.delete_groupmember"], |_| {}).await;

    let first = fake.text(GROUP, "wxid_spam", "加我薇 信领取免费资料：kj12345");
    let deletes = fake
        .wait_requests("delete_message", 1, Duration::from_secs(5))
        .await;
    assert_eq!(deletes[0]["params"]["message_id"], format!("m-{first}"));
    let warning = wait_sent(&fake, "第 1 次提醒", 1).await;
    assert_eq!(sent_mentions(&warning[0]), vec!["wxid_spam"]);
    assert_eq!(warning[0]["params"]["group_id"], GROUP);

    fake.text(GROUP, "wxid_spam", "刷 单 兼 职，日 赚 三 百");
    wait_sent(&fake, "第 2 次提醒", 1).await;
    fake.text(GROUP, "wxid_spam", "有需要的联系 一三八一二三四五六七八");
    let removal = fake
        .wait_requests("wx.delete_groupmember", 1, Duration::from_secs(5))
        .await;
    assert_eq!(removal[0]["params"]["user_list"], json!(["wxid_spam"]));
    // Confirmed by the member list, and the owner is told.
    wait_members(&app, |ids| !ids.contains(&"wxid_spam".to_owned())).await;
    let told = wait_sent(&fake, "已将成员 名wxid_spam（wxid_spam） 移出本群", 1).await;
    assert_eq!(sent_mentions(&told[0]), vec!["wxid_owner"]);
    assert_eq!(fake.requests("delete_message").len(), 3);
    assert!(
        sent_containing(&fake, "第 3 次提醒").is_empty(),
        "removed, not warned"
    );

    let entries = wait_log(&app, &format!("chat_id={GROUP}&user_id=wxid_spam"), 3).await;
    assert_eq!(entries[0]["action"], "remove");
    // The bot account's events carry no name: the log has the member list's.
    assert_eq!(entries[0]["name"], "名wxid_spam", "{}", entries[0]);
    let outcome = entries[0]["outcome"].to_string();
    assert!(
        outcome.contains("deleted") && outcome.contains("removal confirmed"),
        "{outcome}"
    );
    assert_eq!(entries[2]["check"], "ad-intent");
    // Each cue that fired, with its weight.
    // (The sender is new here, so newcomer-ads fires as well, with the learned score added.)
    let evidence = entries[2]["evidence"].as_str().unwrap();
    let (long_standing, newcomer) = evidence.split_once("; newcomer-ads: ").unwrap();
    assert!(
        long_standing.starts_with("ad-intent: intent ")
            && long_standing.contains(
                "≥ 4: 拉人私加(+4): 加我微信; 广告句式(+4): 加我微信领取免费; 领取福利(+1.5): 领取; learned(+"
            )
            && newcomer.contains("learned(+"),
        "{evidence}"
    );
    assert_eq!(entries[2]["outcome"], json!(["deleted", "warned 1/3"]));
    assert_eq!(entries[2]["text"], "加我薇 信领取免费资料：kj12345");
    let blacklist = app.api("/api/v1/moderation/blacklist").await;
    assert_eq!(blacklist[0]["user_id"], "wxid_spam");
    assert_eq!(blacklist[0]["chat_id"], GROUP);
    // Filters narrow the log.
    assert_eq!(log(&app, "check=contacts").await.len(), 1);
    assert!(log(&app, "user_id=wxid_owner").await.is_empty());
    // A page at a time, newest first: two pages of two walk the same entries as one of all.
    let query = format!("chat_id={GROUP}&user_id=wxid_spam&limit=2");
    let first = app.api(&format!("/api/v1/moderation?{query}")).await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second = app
        .api(&format!("/api/v1/moderation?{query}&cursor={cursor}"))
        .await;
    let mut walked: Vec<Value> = serde_json::from_value(first["entries"].clone()).unwrap();
    walked.extend(serde_json::from_value::<Vec<Value>>(second["entries"].clone()).unwrap());
    let all = log(&app, &format!("chat_id={GROUP}&user_id=wxid_spam")).await;
    assert_eq!(walked, all);
    assert!(second["next_cursor"].is_null(), "{second}");
    let (status, _) = app
        .api_call(
            reqwest::Method::GET,
            "/api/v1/moderation?since=yesterday",
            None,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn trusted_members_are_not_touched_and_members_can_report_and_appeal() {
    let Setup { app, fake, .. } = group_of_three(scripts(), &["wx.delete_groupmember"], |w| {
        w.contacts = vec!["wxid_owner".into()];
    })
    .await;

    // The owner is trusted: an ad-like message of theirs stays.
    fake.text(GROUP, "wxid_owner", "课程报名加我微信 kj12345");
    // An admin approves a member, who is then trusted too.
    fake.message(GROUP, "wxid_owner", mention_command("信任", "wxid_spam"));
    wait_sent(&fake, "已信任", 1).await;
    fake.text(GROUP, "wxid_spam", "资料在我这，加我微信 kj12345");
    // A keyword reply shows the message was handled (and not held back).
    fake.text(GROUP, "wxid_spam", "开票信息在哪");
    wait_sent(&fake, "开票信息请看群公告", 1).await;
    assert!(fake.requests("delete_message").is_empty());
    let approvals = wait_log(&app, "check=approve", 1).await;
    assert_eq!(approvals[0]["by"], "wxid_owner");

    // Trust withdrawn: the next ad is deleted and warned.
    fake.message(
        GROUP,
        "wxid_owner",
        mention_command("取消信任", "wxid_spam"),
    );
    wait_sent(&fake, "不再是受信任成员", 1).await;
    fake.text(GROUP, "wxid_spam", "加我薇信领取资料 kj54321");
    fake.wait_requests("delete_message", 1, Duration::from_secs(5))
        .await;
    wait_sent(&fake, "第 1 次提醒", 1).await;

    // The member appeals; the admins are told, with the latest decision.
    fake.message(
        GROUP,
        "wxid_spam",
        json!([
            {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
            {"type": "text", "data": {"text": " 申诉 我是在分享资料不是广告"}}
        ]),
    );
    let appeal = wait_sent(&fake, "申诉：我是在分享资料不是广告", 1).await;
    assert!(
        sent_text(&appeal[0]).contains("请勿发布广告"),
        "{}",
        appeal[0]
    );
    assert_eq!(sent_mentions(&appeal[0]), vec!["wxid_owner"]);
    // The owner reports nothing new, but a member reports one who spoke.
    fake.text(GROUP, "wxid_a", "大家好我是新来的");
    spoke(&app, GROUP, "wxid_a").await;
    // Issue 27 §3: the words after the mention are the reason, kept with the report.
    fake.message(
        GROUP,
        "wxid_spam",
        json!([
            {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
            {"type": "text", "data": {"text": " 举报 "}},
            {"type": "mention", "data": {"user_id": "wxid_a"}},
            {"type": "text", "data": {"text": " 私聊发广告"}}
        ]),
    );
    // Issue 27 §2: the report goes to the owner privately (the bot account can message its
    // contacts) and to the operators' alert group, never into the group (where it would name
    // the reporter); the reporter is told it is recorded, sent privately, not made public.
    let answer = wait_sent(&fake, "举报已记录", 1).await;
    assert!(
        sent_text(&answer[0]).contains("并会私信告知群主和大当家")
            && sent_text(&answer[0]).contains("不会在群里公开"),
        "{}",
        answer[0]
    );
    let private = wait_private(&fake, "wxid_owner", 1).await;
    let told = sent_text(&private[0]);
    assert!(
        told.contains("举报了 wxid_a")
            && told.contains("私聊发广告")
            && told.contains("大家好我是新来的"),
        "{told}"
    );
    let alert = app.fake.wait_delivered(ALERTS_KEY, 1).await;
    let alert = alert[0].body["text"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        alert.contains("举报了 wxid_a")
            && alert.contains("大家好我是新来的")
            && alert.contains("私聊发广告")
            && alert.contains(GROUP),
        "{alert}"
    );
    let reports = wait_log(&app, "check=report", 1).await;
    assert_eq!(reports[0]["reason"], "私聊发广告", "{}", reports[0]);
    assert_eq!(
        reports[0]["outcome"],
        json!([
            "queued as a private message to wxid_owner",
            "queued for the operators' alert group"
        ]),
        "{}",
        reports[0]
    );
    assert!(
        !fake
            .requests("send_message")
            .iter()
            .any(|s| s["params"]["detail_type"] == "group" && sent_text(s).contains("举报了")),
        "the report was posted into the group"
    );
    // And the owner pardons the warned member: warnings cleared.
    fake.message(GROUP, "wxid_owner", mention_command("解封", "wxid_spam"));
    wait_sent(&fake, "已解封", 1).await;
    let pardons = wait_log(&app, "check=pardon", 1).await;
    assert!(
        pardons[0]["outcome"]
            .to_string()
            .contains("warnings cleared in 1 groups")
    );
    fake.text(GROUP, "wxid_spam", "加我薇信领取资料 kj99999");
    wait_sent(&fake, "第 1 次提醒", 2).await;
}

/// Issue 27 §2: a report is never sent privately to the member it names (here an admin), and a
/// private message the implementation refuses — the owner is not a contact of the account — is
/// listed as failed among the group's sends, with why, while the operators still get the report.
#[tokio::test]
async fn a_private_report_the_implementation_refuses_is_failed_in_the_sends_and_the_operators_have_it()
 {
    let Setup { app, fake, .. } =
        group_of_three(scripts(), &["wx.delete_groupmember"], |_| {}).await;
    fake.text(GROUP, "wxid_a", "今晚八点直播");
    spoke(&app, GROUP, "wxid_a").await;
    fake.message(GROUP, "wxid_owner", mention_command("设置大当家", "wxid_a"));
    wait_sent(&fake, "设为大当家", 1).await;
    fake.message(
        GROUP,
        "wxid_spam",
        json!([
            {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
            {"type": "text", "data": {"text": " 举报 "}},
            {"type": "mention", "data": {"user_id": "wxid_a"}},
            {"type": "text", "data": {"text": " 乱发链接"}}
        ]),
    );
    wait_sent(&fake, "举报已记录", 1).await;
    let private = wait_private(&fake, "wxid_owner", 1).await;
    assert!(sent_text(&private[0]).contains("乱发链接"));
    let sends = wait_sends(&app, |sends| {
        sends
            .iter()
            .any(|s| s["via"] == "private" && s["state"] == "failed")
    })
    .await;
    let refused = sends.iter().find(|s| s["via"] == "private").unwrap();
    assert_eq!(refused["recipient"], "wxid_owner", "{refused}");
    assert_eq!(refused["purpose"], "report", "{refused}");
    assert!(
        refused["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not a contact")),
        "{refused}"
    );
    // The reported admin is not told, privately or otherwise.
    assert!(
        !fake
            .requests("send_message")
            .iter()
            .any(|s| s["params"]["user_id"] == "wxid_a"),
        "the reported member was messaged"
    );
    let alert = app.fake.wait_delivered(ALERTS_KEY, 1).await;
    assert!(
        alert[0].body["text"]["content"]
            .as_str()
            .is_some_and(|t| t.contains("乱发链接")),
        "{:?}",
        alert[0].body
    );
}

#[tokio::test]
async fn dry_run_logs_what_would_happen_and_does_nothing() {
    let scripts = scripts_with(|t| t.replace("dry_run = false", "dry_run = true"));
    let Setup { app, fake, .. } = group_of_three(scripts, &["wx.delete_groupmember"], |_| {}).await;

    for text in ["加我薇信领取资料 kj12345", "刷单兼职", "代开各类发票"] {
        fake.text(GROUP, "wxid_spam", text);
    }
    let entries = wait_log(&app, "user_id=wxid_spam", 3).await;
    for entry in &entries {
        assert_eq!(entry["dry_run"], true);
    }
    // Dry-run counts no warnings: nobody would be removed for these three.
    for entry in &entries {
        assert_eq!(entry["outcome"], json!(["dry run: would warn"]));
    }
    assert!(fake.requests("delete_message").is_empty());
    assert!(fake.requests("wx.delete_groupmember").is_empty());
    assert!(sent_containing(&fake, "次提醒").is_empty());
    assert!(
        app.api("/api/v1/moderation/blacklist")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn without_removal_or_deletion_the_admins_are_told_instead() {
    // An implementation that offers neither removal nor deletion.
    let Setup { app, fake, .. } = group_of_three(scripts(), &[], |w| {
        w.supported.retain(|a| a != "delete_message")
    })
    .await;

    fake.text(GROUP, "wxid_spam", "加我薇信领取资料 kj12345");
    let told = wait_sent(&fake, "机器人无法撤回这条消息", 1).await;
    assert_eq!(sent_mentions(&told[0]), vec!["wxid_owner"]);
    assert!(sent_text(&told[0]).contains("请勿发布广告"), "{}", told[0]);
    wait_sent(&fake, "第 1 次提醒", 1).await;
    fake.text(GROUP, "wxid_spam", "刷单兼职日结");
    fake.text(GROUP, "wxid_spam", "代开各类发票");
    let told = wait_sent(&fake, "请管理员将成员 名wxid_spam（wxid_spam） 移出本群", 1).await;
    assert_eq!(sent_mentions(&told[0]), vec!["wxid_owner"]);
    assert!(fake.requests("delete_message").is_empty());
    assert!(fake.requests("wx.delete_groupmember").is_empty());
    let entries = wait_log(&app, "user_id=wxid_spam", 3).await;
    assert_eq!(entries[0]["action"], "remove");
    assert_eq!(entries[0]["outcome"], json!(["admins told"]));
}

/// Waits until `user`'s message in `group` was recorded.
async fn spoke(app: &TestApp, group: &str, user: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let members = app.api(&format!("/api/v1/groups/{group}/members")).await;
        let said = members["members"].as_array().is_some_and(|all| {
            all.iter()
                .any(|m| m["user_id"] == user && m["messages"].as_u64() > Some(0))
        });
        if said {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{user} never spoke in {group}: {members}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const GROUPS: [&str; 4] = [
    "2001@chatroom",
    "2002@chatroom",
    "2003@chatroom",
    "2004@chatroom",
];

#[tokio::test]
async fn the_same_ad_in_several_groups_is_a_campaign_and_its_sender_is_kept_out_everywhere() {
    // Shipped as a warning; an operator who wants campaigns removed (and banned) says so.
    let scripts = scripts_with(|t| {
        let at = t.find("id = \"campaign\"").unwrap();
        let (head, tail) = t.split_at(at);
        format!(
            "{head}{}",
            tail.replacen("action = \"warn\"", "action = \"remove\"", 1)
        )
    });
    let app = app_with(&scripts, "").await;
    let world: Arc<Mutex<World>> = Arc::new(Mutex::new(World::with_groups(
        &[
            (GROUPS[0], "会计1群", &[BOT_ACCOUNT, "wxid_x", "wxid_y"]),
            (GROUPS[1], "会计2群", &[BOT_ACCOUNT, "wxid_x", "wxid_z"]),
            (GROUPS[2], "会计3群", &[BOT_ACCOUNT, "wxid_x"]),
            (GROUPS[3], "会计4群", &[BOT_ACCOUNT]),
        ],
        &["wx.delete_groupmember"],
    )));
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    for group in GROUPS {
        app.wait_group(group, |g| g["status"] == "adopted").await;
    }
    // A message no content check finds (no word, no cue of an ad), posted into three groups by
    // two senders.
    let ad = "大家好，我是新来的，请多多关照呀";
    let first = fake.text(GROUPS[0], "wxid_y", ad);
    let second = fake.text(GROUPS[1], "wxid_z", ad);
    // Groups are handled side by side: wait until both copies were seen.
    spoke(&app, GROUPS[0], "wxid_y").await;
    spoke(&app, GROUPS[1], "wxid_z").await;
    assert!(
        fake.requests("delete_message").is_empty(),
        "two groups are no campaign"
    );
    fake.text(GROUPS[2], "wxid_x", &format!("{ad}！"));
    let entries = wait_log(&app, "check=campaign", 1).await;
    assert_eq!(entries[0]["chat_id"], GROUPS[2]);
    assert_eq!(entries[0]["action"], "remove");
    let removal = fake
        .wait_requests("wx.delete_groupmember", 1, Duration::from_secs(5))
        .await;
    assert_eq!(removal[0]["params"]["group_id"], GROUPS[2]);
    // The earlier copies are deleted too.
    let deletes = fake
        .wait_requests("delete_message", 3, Duration::from_secs(5))
        .await;
    let ids: Vec<&str> = deletes
        .iter()
        .filter_map(|d| d["params"]["message_id"].as_str())
        .collect();
    assert!(ids.contains(&format!("m-{first}").as_str()), "{ids:?}");
    assert!(ids.contains(&format!("m-{second}").as_str()), "{ids:?}");

    // The sender is blacklisted: joining another group gets them removed there at once…
    fake.notice(
        "j4",
        "group_member_increase",
        "join",
        GROUPS[3],
        "wxid_x",
        "",
    );
    let removals = fake
        .wait_requests("wx.delete_groupmember", 2, Duration::from_secs(5))
        .await;
    assert_eq!(removals[1]["params"]["group_id"], GROUPS[3]);
    let kept_out = wait_log(&app, "check=blacklist", 1).await;
    assert_eq!(kept_out[0]["chat_id"], GROUPS[3]);
    // …and their first message in a group they were already in removes them there.
    fake.text(GROUPS[0], "wxid_x", "大家好");
    let removals = fake
        .wait_requests("wx.delete_groupmember", 3, Duration::from_secs(5))
        .await;
    assert_eq!(removals[2]["params"]["group_id"], GROUPS[0]);

    // A pardon through the API lifts the ban.
    let (status, body) = app
        .api_call(
            reqwest::Method::DELETE,
            "/api/v1/moderation/blacklist/wxid_x",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["was_blacklisted"], true);
    assert!(
        app.api("/api/v1/moderation/blacklist")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = app
        .api_call(
            reqwest::Method::DELETE,
            "/api/v1/moderation/blacklist/wxid_x",
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing left to pardon");
    fake.notice(
        "j5",
        "group_member_increase",
        "join",
        GROUPS[3],
        "wxid_x",
        "",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.requests("wx.delete_groupmember").len(), 3);

    // Approval through the API: unknown groups are a 404.
    let (status, _) = app
        .api_put(
            "/api/v1/groups/nowhere/approved/wxid_x",
            json!({"approved": true}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .api_put(
            &format!("/api/v1/groups/{}/approved/wxid_y", GROUPS[0]),
            json!({"approved": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_raid_of_joins_tells_the_admins_and_puts_everyone_on_probation() {
    let scripts = scripts_with(|t| {
        t.replace("joins = 10", "joins = 3")
            .replace("probation_days = 3", "probation_days = 0")
    });
    let Setup { app, fake, .. } = group_of_three(scripts, &["wx.delete_groupmember"], |_| {}).await;

    // Before the raid, a member of long standing may share a mini-program card.
    for i in 0..6 {
        fake.text(GROUP, "wxid_spam", &format!("第{i}个问题请教一下"));
    }
    let card = json!([{"type": "wx.app", "data": {"title": "领取资料"}}]);
    fake.message(GROUP, "wxid_spam", card.clone());
    spoke(&app, GROUP, "wxid_spam").await;
    for (i, joiner) in ["wxid_r1", "wxid_r2", "wxid_r3"].iter().enumerate() {
        fake.notice(
            &format!("r{i}"),
            "group_member_increase",
            "join",
            GROUP,
            joiner,
            "",
        );
    }
    let told = wait_sent(&fake, "冲群警报", 1).await;
    assert_eq!(sent_mentions(&told[0]), vec!["wxid_owner"]);
    let raids = wait_log(&app, "check=raid", 1).await;
    assert_eq!(raids[0]["chat_id"], GROUP);
    assert!(fake.requests("delete_message").is_empty());
    // During the raid the same card is held to the newcomers' rule.
    fake.message(GROUP, "wxid_spam", card);
    let entries = wait_log(&app, "check=newcomer-cards", 1).await;
    assert_eq!(entries[0]["user_id"], "wxid_spam");
    fake.wait_requests("delete_message", 1, Duration::from_secs(5))
        .await;
}

/// A PNG of a QR code holding `text`.
fn qr_png(text: &str) -> Vec<u8> {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let width = code.width() as u32;
    let colors = code.to_colors();
    let scale = 6;
    let side = (width + 8) * scale;
    let img = image::GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (x / scale, y / scale);
        let inside = (4..width + 4).contains(&mx) && (4..width + 4).contains(&my);
        let dark = inside && colors[((my - 4) * width + (mx - 4)) as usize] == qrcode::Color::Dark;
        image::Luma([if dark { 0 } else { 255 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn a_qr_code_in_an_image_is_found_and_a_plain_image_passes() {
    let Setup { app, fake, .. } =
        group_of_three(scripts(), &["wx.delete_groupmember", "get_file"], |w| {
            w.files.insert(
                "qr-group".into(),
                qr_png("https://weixin.qq.com/g/AbCdEf123"),
            );
            w.files
                .insert("qr-tax".into(), qr_png("https://etax.chinatax.gov.cn/x"));
            let plain = image::GrayImage::from_pixel(120, 80, image::Luma([180]));
            let mut out = Vec::new();
            plain
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
            w.files.insert("photo".into(), out);
            w.files.insert("broken".into(), b"not an image".to_vec());
        })
        .await;

    let image = |id: &str| json!([{"type": "image", "data": {"file_id": id}}]);
    // An ordinary photo, an allowed code and a broken file pass (the broken one is logged).
    fake.message(GROUP, "wxid_spam", image("photo"));
    fake.message(GROUP, "wxid_spam", image("qr-tax"));
    fake.message(GROUP, "wxid_spam", image("broken"));
    fake.wait_requests("get_file", 3, Duration::from_secs(5))
        .await;
    // A group's QR code is deleted and warned.
    let id = fake.message(GROUP, "wxid_spam", image("qr-group"));
    let deletes = fake
        .wait_requests("delete_message", 1, Duration::from_secs(10))
        .await;
    assert_eq!(deletes[0]["params"]["message_id"], format!("m-{id}"));
    let entries = wait_log(&app, "check=qr-codes", 1).await;
    assert_eq!(
        entries[0]["evidence"],
        "qr-codes: 二维码：https://weixin.qq.com/g/AbCdEf123"
    );
    wait_sent(&fake, "请勿在群里发二维码", 1).await;
    assert_eq!(log(&app, "user_id=wxid_spam").await.len(), 1);
    // The owner's images are not even fetched.
    fake.message(GROUP, "wxid_owner", image("qr-group"));
    fake.text(GROUP, "wxid_owner", "开票");
    wait_sent(&fake, "开票信息请看群公告", 1).await;
    assert_eq!(fake.requests("get_file").len(), 4);
}

/// The group robot hears only @-mentions and can neither delete nor remove: a spam @-message
/// gets no answer, and the owner is told through the webhook.
#[tokio::test]
async fn on_the_group_robot_spam_gets_no_answer_and_the_owner_is_told() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("mod-robot");
    let added = robot_message(
        "g-mod",
        "boss",
        "add-g-mod",
        &hook,
        &event_body("add_to_chat"),
    );
    app.post_callback(&added).await;
    app.wait_group("g-mod", |g| {
        g["status"] == "adopted" && g["owner"] == "boss"
    })
    .await;
    app.fake.wait_delivered("mod-robot", 1).await; // the adoption greeting

    let spam = robot_message(
        "g-mod",
        "spammer",
        "m-1",
        &hook,
        &text_body("@会计小喇叭 发票问题加我薇信 kj12345 详聊"),
    );
    assert_eq!(app.reply_to(&spam).await, None, "spam is not answered");
    let pushes = app.fake.wait_delivered("mod-robot", 3).await;
    let texts: Vec<String> = pushes
        .iter()
        .map(|p| {
            p.body["text"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let notice = pushes
        .iter()
        .find(|p| {
            p.body["text"]["content"]
                .as_str()
                .is_some_and(|t| t.contains("机器人无法撤回这条消息"))
        })
        .unwrap_or_else(|| panic!("no notice to the owner: {texts:?}"));
    assert_eq!(notice.body["text"]["mentioned_list"], json!(["boss"]));
    assert!(
        texts
            .iter()
            .any(|t| t.contains("已通知管理员处理。这是第 1 次提醒")),
        "the warning does not claim a deletion: {texts:?}"
    );
    let entries = wait_log(&app, "chat_id=g-mod", 1).await;
    assert_eq!(entries[0]["user_id"], "spammer");
    assert_eq!(entries[0]["outcome"], json!(["warned 1/3", "admins told"]));

    // An ordinary question is still answered.
    let question = robot_message(
        "g-mod",
        "member",
        "m-2",
        &hook,
        &text_body("@会计小喇叭 发票怎么开"),
    );
    assert!(app.reply_to(&question).await.is_some());
}

/// Asking the bot the same thing again is not a repeat (nor, across groups, a campaign); saying
/// the same thing to the group three times is.
#[tokio::test]
async fn a_question_to_the_bot_asked_again_is_not_a_repeat() {
    let Setup { app, fake, .. } = group_of_three(scripts(), &[], |_| {}).await;
    let question = json!([
        {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
        {"type": "text", "data": {"text": " 开票信息在哪里可以看到"}}
    ]);
    for _ in 0..3 {
        fake.message(GROUP, "wxid_spam", question.clone());
    }
    // (Events of a group are handled in order: once the repeat below is logged, the questions
    // were judged.)
    for _ in 0..3 {
        fake.text(GROUP, "wxid_spam", "有没有人一起备考中级会计");
    }
    let entries = wait_log(&app, "check=repeat", 1).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(log(&app, "user_id=wxid_spam").await.len(), 1);
}

/// A member firing 300 spam @-mentions gets the warnings up to the limit and the owner one notice
/// per outcome — not 300 notices holding the robot's 20 a minute for a quarter of an hour — and
/// a newcomer reported right after is welcomed at once; the log counts every finding, folding the
/// repeats of one check and action into the row that was posted about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spam_burst_posts_one_warning_and_a_welcome_right_after_is_not_held_back() {
    let scripts = scripts();
    let app = spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        ..Options::default()
    })
    .await;
    let hook = app.fake.webhook_url("burst");
    let added = robot_message(
        "g-burst",
        "boss",
        "add-g-burst",
        &hook,
        &event_body("add_to_chat"),
    );
    app.post_callback(&added).await;
    app.fake.wait_delivered("burst", 1).await; // the adoption greeting

    for i in 0..300 {
        let spam = robot_message(
            "g-burst",
            "spammer",
            &format!("spam-{i}"),
            &hook,
            &text_body(&format!("@会计小喇叭 发票问题加我薇信 kj12345 详聊 {i}")),
        );
        assert_eq!(app.post_callback(&spam).await.status(), 200);
    }
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups/g-burst/joins",
            Some(json!({"members": [{"user_id": "newbie", "name": "新同学"}]})),
        )
        .await;
    assert_eq!(status, 202);
    let welcomed = |fake: &FakeWecom| {
        fake.received("burst")
            .iter()
            .any(|r| r.answered == 0 && r.body.to_string().contains("newbie"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !welcomed(&app.fake) {
        assert!(
            std::time::Instant::now() < deadline,
            "the welcome was held back: {} posts so far",
            app.fake.received("burst").len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moderation_posts = app
        .fake
        .received("burst")
        .iter()
        .filter(|r| !r.body.to_string().contains("newbie"))
        .count()
        - 1; // the greeting
    assert!(
        moderation_posts <= 8,
        "{moderation_posts} moderation posts for one burst"
    );
    // One row per check and action in the window, each counting the findings folded into it:
    // every finding is counted, and a burst is a handful of rows, not 300.
    let entries = log(&app, "chat_id=g-burst&limit=500").await;
    let counted: u64 = entries
        .iter()
        .map(|e| 1 + e["repeats"].as_u64().expect("repeats is a count"))
        .sum();
    assert_eq!(counted, 300, "every finding is counted: {entries:?}");
    assert!(entries.len() <= 8, "{} rows for one burst", entries.len());
    let folded = entries
        .iter()
        .filter(|e| e["repeats"].as_u64() > Some(0))
        .collect::<Vec<_>>();
    assert!(!folded.is_empty() && folded.iter().all(|e| e["last_at"].is_string()));
    // Blacklisted once, at the first removal: the later removals do not rewrite the entry.
    let first_removal = entries
        .iter()
        .rev()
        .find(|e| e["action"] == "remove")
        .expect("the burst reaches removal");
    let blacklist = app.api("/api/v1/moderation/blacklist").await;
    let banned: Vec<&Value> = blacklist
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["user_id"] == "spammer")
        .collect();
    assert_eq!(banned.len(), 1, "{blacklist}");
    assert_eq!(banned[0]["at"], first_removal["at"], "{blacklist}");
}

/// Issue 17 §6: `群统计` on a bot account counts the member list (the two people besides the
/// account, though only one has spoken) and does not say the bot only sees @-messages — it sees
/// every message there.
#[tokio::test]
async fn group_stats_on_a_bot_account_count_the_member_list() {
    let Setup {
        app: _app, fake, ..
    } = group_of_three(scripts(), &[], |_| {}).await;
    fake.message(
        GROUP,
        "wxid_owner",
        json!([
            {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
            {"type": "text", "data": {"text": " 群统计"}}
        ]),
    );
    let stats = wait_sent(&fake, "本群数据", 1).await;
    let text = sent_text(&stats[0]);
    assert!(text.contains("群成员：2 人"), "{text}");
    assert!(!text.contains("只能看到"), "{text}");
}

/// An admin's 误判 teaches the learned layer: the message it flagged, sent again by another
/// member, passes — the classifier is trained again with the label and put in force at once.
#[tokio::test]
async fn a_finding_judged_wrong_teaches_the_learned_layer() {
    let text = "本周六下午两点财税沙龙在三楼会议室，欢迎各位会员参加，到场有茶歇";
    let shipped = trumpet::engine::moderation::learned::SHIPPED.score(text);
    // A learned check that just flags this message with the shipped classifier.
    let threshold = shipped - 0.05;
    let scripts = scripts_with(|_| {
        format!(
            "[[check]]\nid = \"model\"\nkind = \"learned\"\nthreshold = {threshold:.3}\naction = \"delete\"\nreason = \"疑似广告\"\n"
        )
    });
    let Setup { app, fake, .. } = group_of_three(scripts, &[], |_| {}).await;

    fake.text(GROUP, "wxid_spam", text);
    let entries = wait_log(&app, "user_id=wxid_spam", 1).await;
    assert!(
        entries[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("learned score"),
        "{}",
        entries[0]
    );
    let id = entries[0]["id"].as_u64().unwrap();
    let (status, judged) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/moderation/{id}/review"),
            Some(json!({"verdict": "wrong"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{judged}");

    // The same words from another member now pass. An ad after them, which the learned check
    // still flags, shows the service has judged both (one member's messages go in order).
    fake.text(GROUP, "wxid_a", text);
    fake.text(
        GROUP,
        "wxid_a",
        "全场五折，名额有限，先到先得，详询客服，回T退订",
    );
    let entries = wait_log(&app, "user_id=wxid_a", 1).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0]["text"].as_str().unwrap().contains("全场五折"),
        "{entries:?}"
    );
}

/// A moderation file tried on the log before it is switched on: the findings it would let pass,
/// the admins' labels it would still get wrong; a file that does not load is refused with where.
#[tokio::test]
async fn a_moderation_file_is_tried_on_the_log_before_it_is_switched_on() {
    let Setup { app, fake, .. } = group_of_three(scripts(), &[], |_| {}).await;
    fake.text(GROUP, "wxid_a", "我的电话 13912345678");
    fake.text(GROUP, "wxid_a", "专业代开各类发票，详询");
    let entries = wait_log(&app, "user_id=wxid_a", 2).await;
    let invoice = entries
        .iter()
        .find(|e| e["check"] == "ad-intent")
        .unwrap_or_else(|| panic!("{entries:?}"));
    // An admin says the invoice finding was wrong (误判).
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/moderation/{}/review", invoice["id"]),
            Some(json!({"verdict": "wrong"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    // The pardon that goes with a 误判 is logged too.
    let logged = wait_log(&app, "user_id=wxid_a", 3).await.len();
    // The sender had just joined: the finding and its label say so, and both are judged again
    // with the newcomers' checks (the phone number is a finding for newcomers only).
    assert_eq!(invoice["probation"], true, "{invoice}");
    let labels = app.api("/api/v1/moderation/labels").await;
    assert_eq!(labels["labels"][0]["probation"], true, "{labels}");

    let rejudge = |body: Value| {
        let app = &app;
        async move {
            app.api_call(
                reqwest::Method::POST,
                "/api/v1/moderation/rejudge",
                Some(body),
            )
            .await
        }
    };
    // The rules in force: both findings stand, and the 误判 is one they still get wrong.
    let (status, now) = rejudge(json!({})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{now}");
    assert_eq!(
        (now["findings"].as_u64(), now["still_acted_on"].as_u64()),
        (Some(2), Some(2)),
        "{now}"
    );
    assert_eq!(now["labels"]["ordinary"], 1);
    assert_eq!(now["labels"]["flagged"], 1, "{now}");

    // The same file without the ad-intent checks (and newcomer-ads, which uses its cues): the
    // invoice ad would pass, the phone number would not (the contacts check), and the 误判 is
    // no longer flagged.
    let shipped = trumpet::scripts::EMBEDDED_MODERATION;
    let cut = shipped.find("[[check]]\nid = \"ad-intent\"").unwrap();
    let end = shipped.find("[[check]]\nid = \"newcomer-links\"").unwrap();
    let without = format!("{}{}", &shipped[..cut], &shipped[end..]);
    let (status, tried) = rejudge(json!({ "moderation": without })).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{tried}");
    assert_eq!(tried["still_acted_on"], 1, "{tried}");
    assert_eq!(tried["would_pass"][0]["check"], "ad-intent", "{tried}");
    assert_eq!(tried["would_pass"][0]["text"], "专业代开各类发票，详询");
    assert_eq!(tried["labels"]["flagged"], 0, "{tried}");

    // A file that does not load.
    let (status, refused) =
        rejudge(json!({ "moderation": "[[check]]\nid = \"x\"\nkind = \"nope\"\n" })).await;
    assert_eq!(
        status,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "{refused}"
    );
    assert!(
        refused.to_string().contains("moderation.toml:"),
        "{refused}"
    );
    // Nothing changed: the log is as it was.
    assert_eq!(log(&app, "user_id=wxid_a").await.len(), logged);
}
