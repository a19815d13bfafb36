//! The bot-account channel end to end: a fake OneBot 12 implementation connects over the real
//! reverse WebSocket and drives the real service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::helpers::fake_onebot::{FakeOneBot, Reaction, World, sent_mentions, sent_text};
use crate::helpers::*;

pub(crate) const BOT_ACCOUNT: &str = "wxid_trumpet";
pub(crate) const GROUP: &str = "1001@chatroom";

/// Scripts with quick welcomes (1 s batches, 2 s apart) and a keyword rule that answers without
/// a mention.
pub(crate) fn scripts() -> tempfile::TempDir {
    let scripts = scripts_copy();
    let welcome = scripts.path().join("welcome.toml");
    let text = std::fs::read_to_string(&welcome)
        .unwrap()
        .replace("batch_window_secs = 30", "batch_window_secs = 1")
        .replace("min_interval_secs = 300", "min_interval_secs = 2");
    std::fs::write(&welcome, text).unwrap();
    let keywords = scripts.path().join("keywords.toml");
    let mut text = std::fs::read_to_string(&keywords).unwrap();
    text.push_str(
        r#"
[[keyword]]
id = "invoice-anywhere"
patterns = ["开票"]
mentioned_only = false
format = "text"
content = "开票信息请看群公告"
"#,
    );
    std::fs::write(&keywords, text).unwrap();
    scripts
}

pub(crate) async fn app_with(scripts: &tempfile::TempDir, extra: &str) -> TestApp {
    spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        more: onebot_toml(extra),
        ..Options::default()
    })
    .await
}

pub(crate) fn world(extra_actions: &[&str]) -> Arc<Mutex<World>> {
    Arc::new(Mutex::new(World::with_groups(
        &[(GROUP, "会计交流1群", &[BOT_ACCOUNT, "wxid_owner", "wxid_a"])],
        extra_actions,
    )))
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_before_the_upgrade() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = world(&[]);
    let refused = |r: Result<FakeOneBot, _>| match r {
        Err(crate::helpers::fake_onebot::Refused(status)) => status,
        Ok(_) => panic!("connected without the right token"),
    };
    let url = app.onebot_url();
    let wrong = FakeOneBot::connect(
        &url,
        Some("not-the-token-at-all"),
        false,
        "x",
        world.clone(),
    )
    .await;
    assert_eq!(refused(wrong), Some(401));
    let missing = FakeOneBot::connect(&url, None, false, "x", world.clone()).await;
    assert_eq!(refused(missing), Some(401));
    let other_bot = url.replace(ONEBOT, "nobody");
    let unknown =
        FakeOneBot::connect(&other_bot, Some(ONEBOT_TOKEN), false, "x", world.clone()).await;
    assert_eq!(refused(unknown), Some(404));
    // The token in the query, for implementations that cannot set headers.
    let in_query = FakeOneBot::connect(&url, Some(ONEBOT_TOKEN), true, BOT_ACCOUNT, world.clone())
        .await
        .expect("the query token is accepted");
    in_query
        .wait_requests("get_supported_actions", 1, Duration::from_secs(5))
        .await;
    // The webhook checks the same token.
    let event = json!({"id": "w1", "time": 1.0, "type": "meta", "detail_type": "heartbeat", "sub_type": "", "interval": 5000});
    let post = |token: Option<&str>| {
        let mut request = app
            .http
            .post(app.url(&format!("/onebot/v12/{ONEBOT}")))
            .json(&event);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request.send()
    };
    assert_eq!(
        post(Some("wrong-token-wrong-token"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(post(Some(ONEBOT_TOKEN)).await.unwrap().status(), 204);
    in_query.disconnect().await;
}

#[tokio::test]
async fn groups_are_adopted_on_connect_and_keywords_are_answered_on_every_message() {
    let scripts = scripts();
    let mut app = app_with(&scripts, "").await;
    let world = world(&[]);
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    fake.wait_requests("get_group_list", 1, Duration::from_secs(5))
        .await;
    let group = app
        .wait_group(GROUP, |g| g["status"] == "adopted" && g["name"] != "")
        .await;
    assert_eq!(group["adopted_via"], "group_list", "{group}");
    assert_eq!(group["name"], "会计交流1群", "{group}");
    assert_eq!(group["can_push"], true, "{group}");
    assert_eq!(group["account"], BOT_ACCOUNT, "{group}");
    let (status, _) = app
        .api_call(reqwest::Method::GET, "/api/v1/groups/nobody/sends", None)
        .await;
    assert_eq!(status, 404, "no sends list for a group never seen");
    assert!(
        fake.requests("send_message").is_empty(),
        "no greeting for groups the account was already in"
    );

    // A rule that answers without a mention, on a plain message.
    fake.text(GROUP, "wxid_a", "请问怎么开票");
    let sent = fake
        .wait_requests("send_message", 1, Duration::from_secs(5))
        .await;
    assert_eq!(sent[0]["params"]["group_id"], GROUP);
    assert_eq!(sent_text(&sent[0]), "开票信息请看群公告");
    assert_eq!(sent[0]["self"]["user_id"], BOT_ACCOUNT);

    // A shipped rule answers only when the bot account is mentioned.
    fake.text(GROUP, "wxid_a", "个税汇算怎么弄");
    let mention = json!([
        {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
        {"type": "text", "data": {"text": " 个税汇算怎么弄"}},
        {"type": "wx.emoji", "data": {"md5": "abc"}}
    ]);
    let id = fake.message(GROUP, "wxid_a", mention.clone());
    let sent = fake
        .wait_requests("send_message", 2, Duration::from_secs(5))
        .await;
    assert!(sent_text(&sent[1]).contains("汇算"), "{}", sent[1]);
    // The same event id again is handled once.
    fake.send(json!({
        "id": id, "time": 1.0, "type": "message", "detail_type": "group", "sub_type": "",
        "self": {"platform": "wechat", "user_id": BOT_ACCOUNT}, "message_id": "again",
        "group_id": GROUP, "user_id": "wxid_a", "message": mention
    }));
    // Unreadable frames are ignored, the connection stays.
    fake.send_text("{not json");
    fake.send(json!({"type": "message", "detail_type": "group"}));
    fake.text(GROUP, "wxid_a", "开票");
    let sent = fake
        .wait_requests("send_message", 3, Duration::from_secs(5))
        .await;
    assert_eq!(sent_text(&sent[2]), "开票信息请看群公告", "{sent:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.requests("send_message").len(),
        3,
        "the repeated event got no second answer"
    );
    // A restart closes the connection and stops in time, although the account is connected;
    // after it the repeated event is still known.
    tokio::time::timeout(Duration::from_secs(15), app.restart())
        .await
        .expect("the service stops with a bot account connected");
    drop(fake);
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    fake.send(json!({
        "id": id, "time": 1.0, "type": "message", "detail_type": "group", "sub_type": "",
        "self": {"platform": "wechat", "user_id": BOT_ACCOUNT}, "message_id": "again",
        "group_id": GROUP, "user_id": "wxid_a", "message": mention
    }));
    fake.text(GROUP, "wxid_a", "开票吗");
    fake.wait_requests("send_message", 4, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.requests("send_message").len(),
        4,
        "handled once, across the restart"
    );
    fake.disconnect().await;
}

#[tokio::test]
async fn joins_are_welcomed_in_one_batch_and_the_bot_account_joining_adopts_the_group() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = Arc::new(Mutex::new(World::with_groups(&[], &[])));
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    fake.wait_requests("get_group_list", 1, Duration::from_secs(5))
        .await;

    // The owner adds the bot account to a new group: adopted, with a greeting.
    world
        .lock()
        .unwrap()
        .groups
        .insert(GROUP.into(), ("新群".into(), vec!["wxid_owner".into()]));
    fake.notice(
        "add-1",
        "group_member_increase",
        "invite",
        GROUP,
        BOT_ACCOUNT,
        "wxid_owner",
    );
    let group = app.wait_group(GROUP, |g| g["status"] == "adopted").await;
    assert_eq!(group["adopted_via"], "add_to_chat", "{group}");
    let sent = fake
        .wait_requests("send_message", 1, Duration::from_secs(5))
        .await;
    assert!(
        sent_text(&sent[0]).contains("我是会计小喇叭"),
        "the greeting: {}",
        sent[0]
    );
    let owner = app.api(&format!("/api/v1/groups/{GROUP}")).await;
    assert_eq!(
        owner["owner"], "wxid_owner",
        "who added the account owns the group: {owner}"
    );

    // Two members join within the batch window (one event delivered twice): one welcome.
    fake.notice(
        "join-a",
        "group_member_increase",
        "join",
        GROUP,
        "wxid_a",
        "",
    );
    fake.notice(
        "join-b",
        "group_member_increase",
        "invite",
        GROUP,
        "wxid_b",
        "wxid_owner",
    );
    fake.notice(
        "join-a",
        "group_member_increase",
        "join",
        GROUP,
        "wxid_a",
        "",
    );
    let sent = fake
        .wait_requests("send_message", 2, Duration::from_secs(10))
        .await;
    assert_eq!(
        sent_mentions(&sent[1]),
        vec!["wxid_a", "wxid_b"],
        "{}",
        sent[1]
    );
    assert!(
        sent_text(&sent[1]).contains("地区-姓名-岗位"),
        "{}",
        sent[1]
    );
    assert!(
        !sent_text(&sent[1]).contains("<font"),
        "Markdown is sent as plain text: {}",
        sent[1]
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        fake.requests("send_message").len(),
        2,
        "each member welcomed once"
    );

    // The account is removed: the group is released.
    fake.notice(
        "left-1",
        "group_member_decrease",
        "kick",
        GROUP,
        BOT_ACCOUNT,
        "wxid_owner",
    );
    app.wait_group(GROUP, |g| g["status"] == "released").await;
    fake.disconnect().await;
}

#[tokio::test]
async fn sends_wait_for_the_account_and_a_welcome_too_old_is_dropped_and_recorded() {
    let scripts = scripts();
    // Welcomes are worth sending for 3 s here (10 minutes by default).
    let app = app_with(&scripts, "[outbox.expire_after_minutes]\nwelcome = 0.05").await;
    let world = world(&[]);
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    app.wait_group(GROUP, |g| g["status"] == "adopted").await;

    // A join, then the link drops before the welcome is due (1 s batch).
    fake.notice(
        "j-1",
        "group_member_increase",
        "join",
        GROUP,
        "wxid_new",
        "",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.disconnect().await;
    let sends = wait_sends(&app, |s| s.iter().any(|e| e["purpose"] == "welcome")).await;
    assert_eq!(
        sends[0]["state"], "pending",
        "waits for the account: {sends:?}"
    );
    assert_eq!(sends[0]["via"], "account");

    // Back within the expiry: the welcome goes out on the new connection.
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    let sent = fake
        .wait_requests("send_message", 1, Duration::from_secs(5))
        .await;
    assert_eq!(sent_mentions(&sent[0]), vec!["wxid_new"]);
    wait_sends(&app, |s| s[0]["state"] == "delivered").await;

    // Another join, and the account stays away past the expiry: recorded, never sent late.
    fake.notice(
        "j-2",
        "group_member_increase",
        "join",
        GROUP,
        "wxid_late",
        "",
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.disconnect().await;
    let sends = wait_sends(&app, |s| {
        s.iter().filter(|e| e["purpose"] == "welcome").count() == 2 && s[0]["state"] == "skipped"
    })
    .await;
    assert!(
        sends[0]["last_error"].as_str().unwrap().contains("expired"),
        "{sends:?}"
    );
    // (The fake's world, and its record of requests, outlives its connections.)
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    fake.wait_requests("get_group_list", 3, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = fake.requests("send_message");
    assert_eq!(sent.len(), 1, "the expired welcome is not sent: {sent:?}");
    fake.disconnect().await;
}

#[tokio::test]
async fn a_refused_reply_is_retried_and_a_silent_link_is_closed() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = world(&[]);
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    app.wait_group(GROUP, |g| g["status"] == "adopted").await;

    // The platform refuses the first try (rate limit): the reply is sent again after a back-off.
    fake.react("send_message", Reaction::Fail(34001));
    fake.text(GROUP, "wxid_a", "开票");
    let sent = fake
        .wait_requests("send_message", 2, Duration::from_secs(5))
        .await;
    assert_eq!(sent_text(&sent[1]), "开票信息请看群公告");
    // A slow answer past the action timeout (2 s) counts as failed and is retried too.
    fake.react("send_message", Reaction::Delay(Duration::from_millis(2500)));
    fake.text(GROUP, "wxid_a", "开票啊");
    fake.wait_requests("send_message", 4, Duration::from_secs(10))
        .await;

    // An implementation that stops talking (no frames, no pongs) is disconnected after 3 of
    // its heartbeat intervals (1.2 s here).
    fake.heartbeat(1200);
    let accounts = app.api("/api/v1/accounts").await;
    assert_eq!(accounts[0]["account"], BOT_ACCOUNT, "{accounts}");
    assert_eq!(accounts[0]["implementation"], "fake", "{accounts}");
    fake.go_silent();
    let started = std::time::Instant::now();
    loop {
        let accounts = app.api("/api/v1/accounts").await;
        if accounts.as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "still connected: {accounts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(3000),
        "closed only after 3 silent intervals: {:?}",
        started.elapsed()
    );
    // A new connection takes over the account.
    let back = app.connect_onebot(BOT_ACCOUNT, &world).await;
    back.wait_requests("get_group_list", 2, Duration::from_secs(5))
        .await;
    back.disconnect().await;
}

/// Polls the group's member list (user ids in the group) until `check` holds.
pub(crate) async fn wait_members(
    app: &TestApp,
    check: impl Fn(&Vec<String>) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let members = app.api(&format!("/api/v1/groups/{GROUP}/members")).await;
        let ids: Vec<String> = members["members"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|m| m["in_group"] == true)
                    .filter_map(|m| m["user_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if check(&ids) {
            return ids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members never matched: {members}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the group's sends until `check` holds.
pub(crate) async fn wait_sends(
    app: &TestApp,
    check: impl Fn(&Vec<serde_json::Value>) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let sends: Vec<serde_json::Value> = serde_json::from_value(
            app.api(&format!("/api/v1/groups/{GROUP}/sends")).await["sends"].clone(),
        )
        .unwrap();
        if !sends.is_empty() && check(&sends) {
            return sends;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sends never matched: {sends:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The account is added by `wxid_owner` (who becomes the owner) to a group of three.
pub(crate) async fn adopted_by_owner(app: &TestApp, world: &Arc<Mutex<World>>) -> FakeOneBot {
    let fake = app.connect_onebot(BOT_ACCOUNT, world).await;
    fake.wait_requests("get_group_list", 1, Duration::from_secs(5))
        .await;
    world.lock().unwrap().groups.insert(
        GROUP.into(),
        (
            "会计交流1群".into(),
            vec![BOT_ACCOUNT.into(), "wxid_owner".into(), "wxid_spam".into()],
        ),
    );
    fake.notice(
        "add",
        "group_member_increase",
        "invite",
        GROUP,
        BOT_ACCOUNT,
        "wxid_owner",
    );
    app.wait_group(GROUP, |g| g["owner"] == "wxid_owner").await;
    // The greeting, and the member list read after the account joined.
    fake.wait_requests("send_message", 1, Duration::from_secs(5))
        .await;
    fake.wait_requests("get_group_member_list", 1, Duration::from_secs(5))
        .await;
    fake
}

pub(crate) fn mention_command(text: &str, target: &str) -> serde_json::Value {
    json!([
        {"type": "mention", "data": {"user_id": BOT_ACCOUNT}},
        {"type": "text", "data": {"text": format!(" {text} ")}},
        {"type": "mention", "data": {"user_id": target}}
    ])
}

#[tokio::test]
async fn a_removal_is_confirmed_by_the_member_list_and_an_unconfirmed_one_is_reported() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = world(&["wx.delete_groupmember"]);
    world.lock().unwrap().groups.clear();
    let fake = adopted_by_owner(&app, &world).await;
    wait_members(&app, |ids| ids.len() == 3).await;

    // A member cannot remove anyone; the owner can.
    fake.message(GROUP, "wxid_spam", mention_command("移出", "wxid_owner"));
    let sent = fake
        .wait_requests("send_message", 2, Duration::from_secs(5))
        .await;
    assert!(
        sent_text(&sent[1]).contains("需要大当家"),
        "refused: {}",
        sent[1]
    );
    fake.message(GROUP, "wxid_owner", mention_command("移出", "wxid_spam"));
    let removal = fake
        .wait_requests("wx.delete_groupmember", 1, Duration::from_secs(5))
        .await;
    assert_eq!(removal[0]["params"]["user_list"], json!(["wxid_spam"]));
    assert_eq!(removal[0]["params"]["group_id"], GROUP);
    let sent = fake
        .wait_requests("send_message", 3, Duration::from_secs(5))
        .await;
    assert!(sent_text(&sent[2]).contains("正在将"), "{}", sent[2]);
    // Confirmed by reading the list again: no notice to the admins, and the list is updated.
    fake.wait_requests("get_group_member_list", 2, Duration::from_secs(5))
        .await;
    wait_members(&app, |ids| !ids.contains(&"wxid_spam".to_owned())).await;

    // The implementation says ok but removes nobody: the owner is told.
    world.lock().unwrap().lie_about_removals = true;
    fake.notice(
        "j-x",
        "group_member_increase",
        "join",
        GROUP,
        "wxid_spam2",
        "",
    );
    wait_members(&app, |ids| ids.contains(&"wxid_spam2".to_owned())).await;
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/groups/{GROUP}/removals"),
            Some(json!({"user_id": "wxid_spam2", "reason": "广告"})),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["outcome"], "still_there");
    fake.message(GROUP, "wxid_owner", mention_command("踢出", "wxid_spam2"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let notice = loop {
        let sent = fake.requests("send_message");
        if let Some(n) = sent.iter().find(|s| sent_text(s).contains("未能确认")) {
            break n.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no notice to the admins: {:?}",
            world.lock().unwrap().requests
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sent_mentions(&notice), vec!["wxid_owner"], "{notice}");

    // Through the API, with an honest implementation: confirmed.
    world.lock().unwrap().lie_about_removals = false;
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/groups/{GROUP}/removals"),
            Some(json!({"user_id": "wxid_spam2"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["outcome"]),
        (200, &json!("confirmed")),
        "{body}"
    );

    // Issue 27 §5: impossible targets are refused, and nothing is asked of the implementation:
    // the bot account itself, someone who never was a member, and one already gone.
    let deletions = fake.requests("wx.delete_groupmember").len();
    for (user, status, outcome) in [
        (BOT_ACCOUNT, 400, "own_account"),
        ("wxid_never_here", 404, "not_a_member"),
        ("wxid_spam2", 404, "not_a_member"),
    ] {
        let (got, body) = app
            .api_call(
                reqwest::Method::POST,
                &format!("/api/v1/groups/{GROUP}/removals"),
                Some(json!({"user_id": user})),
            )
            .await;
        assert_eq!(got.as_u16(), status, "{user}: {body}");
        assert_eq!(body["outcome"], outcome, "{user}: {body}");
    }
    assert_eq!(
        fake.requests("wx.delete_groupmember").len(),
        deletions,
        "no removal was asked for an impossible target"
    );
    fake.disconnect().await;
}

#[tokio::test]
async fn without_a_removal_action_the_admins_are_asked_and_unreported_leaves_are_found() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = world(&[]);
    world.lock().unwrap().groups.clear();
    let fake = adopted_by_owner(&app, &world).await;
    wait_members(&app, |ids| ids.len() == 3).await;

    fake.message(GROUP, "wxid_owner", mention_command("移出", "wxid_spam"));
    let sent = fake
        .wait_requests("send_message", 3, Duration::from_secs(5))
        .await;
    let asked = sent
        .iter()
        .find(|s| sent_text(s).contains("请管理员将成员 名wxid_spam（wxid_spam） 移出本群"))
        .unwrap_or_else(|| panic!("{sent:?}"));
    assert_eq!(sent_mentions(asked), vec!["wxid_owner"]);
    assert!(fake.requests("wx.delete_groupmember").is_empty());
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/groups/{GROUP}/removals"),
            Some(json!({"user_id": "wxid_spam"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // wxid_spam leaves while the account is offline, and nobody reports it: the member list
    // read on reconnect finds it.
    fake.disconnect().await;
    world
        .lock()
        .unwrap()
        .groups
        .get_mut(GROUP)
        .unwrap()
        .1
        .retain(|m| m != "wxid_spam");
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    wait_members(&app, |ids| *ids == ["wxid_owner", BOT_ACCOUNT]).await;
    // A robot group cannot remove anyone.
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups/no-such-group/removals",
            Some(json!({"user_id": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    fake.disconnect().await;
}

#[tokio::test]
async fn the_morning_report_reaches_every_account_group_through_a_link_that_keeps_dropping() {
    let scripts = scripts();
    jobs_send_at_once(scripts.path());
    let app = app_with(&scripts, "").await;
    let groups: Vec<String> = (0..12).map(|i| format!("{i:04}@chatroom")).collect();
    let members: &[&str] = &[BOT_ACCOUNT, "wxid_a"];
    let listed: Vec<(&str, &str, &[&str])> =
        groups.iter().map(|g| (g.as_str(), "群", members)).collect();
    let world = Arc::new(Mutex::new(World::with_groups(&listed, &[])));
    // Every third send is refused for now (a platform rate limit), and a few answers are slow.
    for i in 0..12 {
        let reaction = match i % 3 {
            0 => Reaction::Fail(34002),
            1 => Reaction::Delay(Duration::from_millis(800)),
            _ => continue,
        };
        world
            .lock()
            .unwrap()
            .reactions
            .entry("send_message".into())
            .or_default()
            .push_back(reaction);
    }
    let mut fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    for g in &groups {
        app.wait_group(g, |g| g["status"] == "adopted").await;
    }
    let (status, run) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/jobs/morning-report/run",
            None,
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    // The link drops at random moments and comes back, until the run is done.
    let mut rng_state = 0x2545_f491_u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut drops = 0;
    let done = loop {
        let status = app.api(&format!("/api/v1/runs/{run_id}")).await;
        if status["state"] == "done" && drops >= 3 {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "never done: {status}");
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        tokio::time::sleep(Duration::from_millis(20 + rng_state % 200)).await;
        fake.disconnect().await;
        drops += 1;
        tokio::time::sleep(Duration::from_millis(rng_state % 300)).await;
        fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    };
    assert_eq!(done["planned"], 12, "{done}");
    assert_eq!(done["delivered"], 12, "every group got its report: {done}");
    let sent = fake.requests("send_message");
    assert!(
        sent.len() >= 16,
        "4 refusals were retried: {} sends",
        sent.len()
    );
    for g in &groups {
        let reports = sent
            .iter()
            .filter(|s| s["params"]["group_id"] == g.as_str() && sent_text(s).contains("财税早报"))
            .count();
        assert!(reports >= 1, "{g} got no report");
    }
    fake.disconnect().await;
}

#[tokio::test]
async fn one_connection_carries_two_accounts_and_a_new_connection_takes_an_account_over() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    // An older implementation: it does not even offer get_supported_actions (10002), and it
    // starts with its status instead of `meta.connect`.
    let world = world(&[]);
    world
        .lock()
        .unwrap()
        .supported
        .retain(|a| a != "get_supported_actions");
    world.lock().unwrap().skip_connect = true;
    let first = app.connect_onebot(BOT_ACCOUNT, &world).await;
    first.send(json!({
        "id": "st-2", "time": 1.0, "type": "meta", "detail_type": "status_update", "sub_type": "",
        "status": {"good": true, "bots": [
            {"self": {"platform": "wechat", "user_id": BOT_ACCOUNT}, "online": true},
            {"self": {"platform": "wechat", "user_id": "wxid_second"}, "online": true}
        ]}
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let accounts = loop {
        let accounts = app.api("/api/v1/accounts").await;
        assert!(std::time::Instant::now() < deadline, "{accounts}");
        let all = accounts.as_array().unwrap();
        if all.len() == 2 && all.iter().all(|a| !a["supported_actions"].is_null()) {
            break accounts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        accounts[0]["connection"], accounts[1]["connection"],
        "{accounts}"
    );
    assert_eq!(
        accounts[1]["supported_actions"],
        json!([]),
        "nothing optional is used: {accounts}"
    );

    // A new connection for the first account takes it over; the old one still carries the
    // second account, so it stays open.
    let second = app.connect_onebot(BOT_ACCOUNT, &world).await;
    second
        .wait_requests("get_group_list", 3, Duration::from_secs(5))
        .await;
    let accounts = app.api("/api/v1/accounts").await;
    let of = |account: &str| {
        accounts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == account)
            .map(|a| a["connection"].clone())
    };
    assert_ne!(of(BOT_ACCOUNT), of("wxid_second"), "{accounts}");
    assert!(!first.is_closed());
    // A new connection for the second account too: nothing is left on the old one, which the
    // service closes.
    let third = FakeOneBot::connect(
        &app.onebot_url(),
        Some(ONEBOT_TOKEN),
        false,
        "wxid_second",
        world.clone(),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !first.is_closed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced connection stays open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Issue 27 §13: told why, with an application close code.
    let (code, reason) = first.close_frame().expect("a close frame with a code");
    assert_eq!(code, 4000);
    assert!(reason.contains("replaced"), "{reason}");
    second.disconnect().await;
    third.disconnect().await;
}

/// Over the HTTP webhook an event sent again (the implementation lost the first answer) gets the
/// same reply as the first time, and is handled once.
#[tokio::test]
async fn a_repeated_webhook_event_gets_the_same_reply() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let event = json!({
        "id": "hook-1", "time": 1.0, "type": "message", "detail_type": "group", "sub_type": "",
        "self": {"platform": "wechat", "user_id": BOT_ACCOUNT}, "message_id": "m-hook-1",
        "group_id": GROUP, "user_id": "wxid_a",
        "message": [{"type": "text", "data": {"text": "请问怎么开票"}}], "alt_message": ""
    });
    let post = || {
        app.http
            .post(app.url(&format!("/onebot/v12/{ONEBOT}")))
            .bearer_auth(ONEBOT_TOKEN)
            .json(&event)
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first[0]["action"], "send_message", "{first}");
    assert!(first.to_string().contains("开票信息请看群公告"), "{first}");
    let again = post().await.unwrap();
    assert_eq!(again.status(), 200, "a repeated event keeps its reply");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first);
    let members = app.api(&format!("/api/v1/groups/{GROUP}/members")).await;
    let member = members["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["user_id"] == "wxid_a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(member["messages"], 1, "handled once: {members}");
}

/// A bot's connections are capped: past `max_connections_per_bot` an implementation is refused
/// with 503 before the upgrade, and a place frees when a connection closes.
#[tokio::test]
async fn connections_past_the_cap_are_refused_until_one_closes() {
    let scripts = scripts();
    let app = app_with(&scripts, "max_connections_per_bot = 2").await;
    let world = world(&[]);
    let first = app.connect_onebot("wxid_one", &world).await;
    let _second = app.connect_onebot("wxid_two", &world).await;
    let url = app.onebot_url();
    let third =
        || FakeOneBot::connect(&url, Some(ONEBOT_TOKEN), false, "wxid_three", world.clone());
    match third().await {
        Err(crate::helpers::fake_onebot::Refused(status)) => assert_eq!(status, Some(503)),
        Ok(_) => panic!("a third connection was let in"),
    }
    first.disconnect().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if third().await.is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 27 §13: at shutdown the service closes its OneBot connections with 1001 (going away),
/// so an implementation knows to reconnect later rather than treat it as an error.
#[tokio::test]
async fn shutdown_closes_connections_as_going_away() {
    let scripts = scripts();
    let mut app = app_with(&scripts, "").await;
    let world = world(&[]);
    let fake = app.connect_onebot(BOT_ACCOUNT, &world).await;
    fake.wait_requests("get_group_list", 1, Duration::from_secs(5))
        .await;
    app.stop().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !fake.is_closed() {
        assert!(std::time::Instant::now() < deadline, "still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, reason) = fake.close_frame().expect("a close frame with a code");
    assert_eq!(code, 1001, "{reason}");
    assert!(reason.contains("stopping"), "{reason}");
}

/// `POST /api/v1/simulate` (what `trumpet simulate` asks while the service runs) uses the
/// group's own channel: a bot account hears a message without an @-mention, and the answer is
/// readable text from the service's view of the group.
#[tokio::test]
async fn simulate_asks_the_running_service_with_the_groups_channel() {
    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = world(&[]);
    let fake = adopted_by_owner(&app, &world).await;
    let sent_before = fake.requests("send_message").len();
    let (status, answer) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/simulate",
            Some(json!({"group": GROUP, "from": "wxid_a", "text": "怎么开票", "mention": false})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    let lines: Vec<&str> = answer["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let text = lines.join("\n");
    assert!(text.contains("through a bot account"), "{text}");
    assert!(
        text.contains("the bot account hears every message"),
        "{text}"
    );
    assert!(text.contains("keyword rule \"invoice-anywhere\""), "{text}");
    assert!(text.contains("开票信息请看群公告"), "{text}");
    // Nothing was sent for it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.requests("send_message").len(), sent_before);
    let (status, bad) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/simulate",
            Some(json!({"group": "", "from": "u", "text": "x"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{bad}");
}
