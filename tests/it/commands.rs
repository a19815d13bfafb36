//! In-chat commands and group settings through the group-robot channel and the admin API:
//! roles are checked, refusals are clear, changes are stored and survive a restart.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_member_without_permission_is_refused_a_command() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("cmd-refuse");
    adopt_by(&app, "g-cmd", "boss", &hook).await;
    let say = |user: &str, id: &str, text: &str| {
        robot_message(
            "g-cmd",
            user,
            id,
            &hook,
            &text_body(&format!("@会计小喇叭 {text}")),
        )
    };

    let reply = app
        .reply_to(&say("zhangsan", "c-1", "设置大当家 @zhangsan"))
        .await
        .expect("a refusal is an answer, not silence");
    assert!(reply.contains("需要群主才能使用"), "{reply}");
    assert!(reply.contains("你目前是成员"), "{reply}");
    assert!(
        reply.contains("<Item><![CDATA[zhangsan]]></Item>"),
        "{reply}"
    );
    let reply = app
        .reply_to(&say("zhangsan", "c-2", "打标签 province:广东"))
        .await
        .unwrap();
    assert!(reply.contains("需要大当家"), "{reply}");

    let group = app.api("/api/v1/groups/g-cmd").await;
    assert_eq!(group["roles"], json!([]), "nothing changed: {group}");
    assert_eq!(group["tags"], json!([]), "nothing changed: {group}");
}

#[tokio::test]
async fn the_owner_appoints_an_admin_who_tags_the_group_and_switches_a_rule_off() {
    let mut app = spawn_app().await;
    let hook = app.fake.webhook_url("cmd-pyramid");
    adopt_by(&app, "g-pyr", "boss", &hook).await;
    let say = |user: &str, id: &str, text: &str| {
        robot_message(
            "g-pyr",
            user,
            id,
            &hook,
            &text_body(&format!("@会计小喇叭 {text}")),
        )
    };
    // lisi speaks first, so the bot knows the name 用户lisi.
    app.reply_to(&say("lisi", "p-0", "你好")).await;
    app.wait_group("g-pyr", |g| g["members_seen"] == 1).await;

    let reply = app
        .reply_to(&say("boss", "p-1", "设置大当家 @用户lisi"))
        .await
        .unwrap();
    assert!(reply.contains("已将 用户lisi 设为大当家"), "{reply}");
    // Typed with a Chinese input method: full-width colon and letters, an ideographic space.
    let reply = app
        .reply_to(&say(
            "lisi",
            "p-2",
            "打标签 province：广东　ｔｙｐｅ:新手群",
        ))
        .await
        .unwrap();
    assert!(reply.contains("province:广东、type:新手群"), "{reply}");

    // The invoice rule answers until the admin switches it off for this group only.
    assert!(
        app.reply_to(&say("lisi", "p-3", "发票怎么开"))
            .await
            .unwrap()
            .contains("蓝字发票")
    );
    let reply = app
        .reply_to(&say("lisi", "p-4", "关闭规则 invoice"))
        .await
        .unwrap();
    assert!(reply.contains("已关闭关键词规则「invoice」"), "{reply}");
    let reply = app.reply_to(&say("lisi", "p-5", "开发票")).await.unwrap();
    assert!(!reply.contains("蓝字发票"), "switched off here: {reply}");
    let other = robot_message(
        "g-other",
        "lisi",
        "p-6",
        &hook,
        &text_body("@会计小喇叭 开发票"),
    );
    assert!(
        app.reply_to(&other).await.unwrap().contains("蓝字发票"),
        "still on elsewhere"
    );

    // A retried command changes nothing twice and gets the same answer.
    let again = app
        .reply_to(&say("lisi", "p-4", "关闭规则 invoice"))
        .await
        .unwrap();
    assert!(again.contains("已关闭"), "{again}");

    // Stored: the settings survive a restart.
    app.restart().await;
    let group = app.api("/api/v1/groups/g-pyr").await;
    assert_eq!(group["owner"], "boss");
    assert_eq!(
        group["roles"],
        json!([{"user_id": "lisi", "name": "用户lisi", "role": "admin"}])
    );
    assert_eq!(group["tags"], json!(["province:广东", "type:新手群"]));
    assert_eq!(group["disabled_rules"], json!(["invoice"]));
    let stats = app.reply_to(&say("lisi", "p-7", "群统计")).await.unwrap();
    assert!(stats.contains("已记录成员：2 人"), "{stats}");
}

#[tokio::test]
async fn operators_set_tags_roles_and_rule_switches_through_the_admin_api() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("cmd-api");
    let (status, settings) = app
        .api_put(
            "/api/v1/groups/g-api/tags",
            json!({"tags": ["province:浙江"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["tags"], json!(["province:浙江"]));
    // A zero-width space or a full-width colon makes no second tag.
    let (status, settings) = app
        .api_put(
            "/api/v1/groups/g-api/tags",
            json!({"tags": ["province:浙江", "province:浙江\u{200b}", "province：浙江"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["tags"], json!(["province:浙江"]));
    let (status, body) = app
        .api_put("/api/v1/groups/g-api/tags", json!({"tags": ["有 空格"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("spaces"), "{body}");
    let (status, _) = app
        .api_put("/api/v1/groups/g-api/tags", json!({"labels": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, settings) = app
        .api_put(
            "/api/v1/groups/g-api/roles/wangwu",
            json!({"role": "helper", "name": "王五"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["roles"][0]["role"], "helper");
    let (status, _) = app
        .api_put(
            "/api/v1/groups/g-api/roles/wangwu",
            json!({"role": "emperor"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = app
        .api_put(
            "/api/v1/groups/g-api/rules/no-such-rule",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, settings) = app
        .api_put(
            "/api/v1/groups/g-api/rules/invoice",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["disabled_rules"], json!(["invoice"]));

    // The helper may see statistics now.
    let ask = robot_message(
        "g-api",
        "wangwu",
        "a-1",
        &hook,
        &text_body("@会计小喇叭 群统计"),
    );
    let reply = app.reply_to(&ask).await.unwrap();
    assert!(reply.contains("本群数据"), "{reply}");

    let unauthorized = reqwest::Client::new()
        .put(app.url("/api/v1/groups/g-api/tags"))
        .json(&json!({"tags": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}

/// Issue 17 §6: the group robot cannot remove anyone, so `移出` through a robot callback says
/// what really happens — the owner and admins are asked — instead of "正在将 … 移出本群".
#[tokio::test]
async fn the_robot_says_it_asks_the_admins_to_remove_instead_of_pretending_to() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("cmd-remove");
    adopt_by(&app, "g-rm", "boss", &hook).await;
    let say = |user: &str, id: &str, text: &str| {
        robot_message(
            "g-rm",
            user,
            id,
            &hook,
            &text_body(&format!("@会计小喇叭 {text}")),
        )
    };
    // wangwu speaks first, so the bot knows the name.
    app.reply_to(&say("wangwu", "rm-0", "你好")).await;
    let reply = app
        .reply_to(&say("boss", "rm-1", "移出 @用户wangwu"))
        .await
        .expect("an answer");
    assert!(
        reply.contains("机器人在这个群里不能移人") && reply.contains("已请群主和大当家"),
        "{reply}"
    );
    assert!(!reply.contains("正在将"), "{reply}");
}

/// Issue 27 §11 and §13 through robot callbacks: the bot's own mention at the end and trailing
/// punctuation do not defeat a command, a display name with a space can be named, and removing
/// someone of a higher role is refused for the target's role, not the asker's.
#[tokio::test]
async fn commands_survive_a_trailing_mention_punctuation_and_names_with_spaces() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("cmd-forms");
    adopt_by(&app, "g-forms", "boss", &hook).await;
    let say = |user: &str, id: &str, text: &str| {
        robot_message("g-forms", user, id, &hook, &text_body(text))
            .replace("用户amyw", "Amy Wang")
            .replace("用户amy]", "Amy]")
    };
    app.reply_to(&say("amyw", "f-0", "@会计小喇叭 你好")).await;
    app.reply_to(&say("amy", "f-1", "@会计小喇叭 你好")).await;

    for (id, text) in [
        ("f-2", "帮助 @会计小喇叭"),
        ("f-3", "@会计小喇叭 帮助！"),
        ("f-4", "@会计小喇叭 帮助?"),
    ] {
        let reply = app.reply_to(&say("zhangsan", id, text)).await.expect(text);
        assert!(reply.contains("我是会计小喇叭"), "{text}: {reply}");
    }
    let reply = app
        .reply_to(&say("boss", "f-5", "设置大当家 @Amy Wang @会计小喇叭"))
        .await
        .unwrap();
    assert!(reply.contains("已将 Amy Wang 设为大当家"), "{reply}");
    let group = app.api("/api/v1/groups/g-forms").await;
    let roles = group["roles"].to_string();
    assert!(
        roles.contains("amyw") && !roles.contains("\"amy\""),
        "{group}"
    );

    // An admin asking to remove the owner is told the owner's role protects them.
    let reply = app
        .reply_to(&say("amyw", "f-6", "@会计小喇叭 移出 @用户boss"))
        .await
        .unwrap();
    assert!(
        reply.contains("不能移出") && reply.contains("TA 是群主"),
        "{reply}"
    );
}
