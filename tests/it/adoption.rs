//! Adoption through the robot channel: add_to_chat, the greeting pushed through the webhook,
//! release, re-adoption, members and the webhook host allow-list.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn add_to_chat_adopts_greets_and_delete_from_chat_releases() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("adopt-key");
    let added = robot_message(
        "chat-a",
        "owner1",
        "ev-1",
        &hook,
        &event_body("add_to_chat"),
    );
    let response = app.post_callback(&added).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "the greeting is pushed, not replied"
    );

    let group = app.wait_group("chat-a", |g| g["status"] == "adopted").await;
    assert_eq!(group["adopter"], "owner1");
    assert_eq!(group["adopter_name"], "用户owner1");
    assert_eq!(group["bot"], BOT);
    assert_eq!(group["can_push"], true);
    assert!(group["adopted_at"].is_string());
    assert!(
        group.get("webhook_url").is_none(),
        "the webhook key is never shown"
    );

    let greeting = app.fake.wait_delivered("adopt-key", 1).await;
    assert_eq!(greeting[0].body["msgtype"], "markdown");
    assert!(
        greeting[0].body["markdown"]["content"]
            .as_str()
            .unwrap()
            .contains("会计小喇叭")
    );

    // Members who speak are recorded.
    for (i, user) in ["m1", "m2", "m1"].iter().enumerate() {
        let msg = robot_message(
            "chat-a",
            user,
            &format!("msg-{i}"),
            &hook,
            &text_body("@bot 你好"),
        );
        app.post_callback(&msg).await;
    }
    let group = app.wait_group("chat-a", |g| g["messages"] == 3).await;
    assert_eq!(group["members_seen"], 2);

    let removed = robot_message(
        "chat-a",
        "owner1",
        "ev-2",
        &hook,
        &event_body("delete_from_chat"),
    );
    app.post_callback(&removed).await;
    let group = app
        .wait_group("chat-a", |g| g["status"] == "released")
        .await;
    assert_eq!(group["members_seen"], 2, "history is kept");
    assert_eq!(group["can_push"], false);

    let again = robot_message(
        "chat-a",
        "owner2",
        "ev-3",
        &hook,
        &event_body("add_to_chat"),
    );
    app.post_callback(&again).await;
    let group = app.wait_group("chat-a", |g| g["status"] == "adopted").await;
    assert_eq!(group["adopter"], "owner2");
    app.fake.wait_delivered("adopt-key", 2).await;
}

#[tokio::test]
async fn a_webhook_outside_the_allow_list_is_refused_and_nothing_is_sent() {
    let app = spawn_app().await;
    let evil = "https://evil.example.com/cgi-bin/webhook/send?key=stolen";
    let added = robot_message(
        "chat-evil",
        "owner",
        "ev-evil",
        evil,
        &event_body("add_to_chat"),
    );
    assert_eq!(app.post_callback(&added).await.status(), StatusCode::OK);
    let group = app
        .wait_group("chat-evil", |g| g["status"] == "adopted")
        .await;
    assert_eq!(group["can_push"], false);
    // A loopback URL on a port that is not allowed is refused too.
    let other_port = "http://127.0.0.1:1/cgi-bin/webhook/send?key=k";
    let added = robot_message(
        "chat-port",
        "owner",
        "ev-port",
        other_port,
        &event_body("add_to_chat"),
    );
    app.post_callback(&added).await;
    let group = app
        .wait_group("chat-port", |g| g["status"] == "adopted")
        .await;
    assert_eq!(group["can_push"], false);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(app.fake.all_received().is_empty());
}

#[tokio::test]
async fn a_group_first_seen_through_a_message_is_adopted_without_a_greeting() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("quiet-key");
    let msg = robot_message("chat-q", "u1", "q-1", &hook, &text_body("@bot 帮助"));
    app.post_callback(&msg).await;
    let group = app.wait_group("chat-q", |g| g["status"] == "adopted").await;
    assert_eq!(group["adopted_via"], "first_message");
    assert!(group["adopter"].is_null());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(app.fake.received("quiet-key").is_empty());
}

/// Read-your-writes: once WeCom has its answer, the admin API shows the adoption — no waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_adoption_is_listed_at_once() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        let app = std::sync::Arc::clone(&app);
        calls.spawn(async move {
            let chat = format!("ryw-{i:02}");
            let hook = app.fake.webhook_url(&chat);
            let added = robot_message(
                &chat,
                "owner",
                &format!("add-{chat}"),
                &hook,
                &event_body("add_to_chat"),
            );
            assert_eq!(app.post_callback(&added).await.status(), StatusCode::OK);
            // Straight after the answer, not polled.
            let groups = app.groups().await;
            assert!(
                groups
                    .iter()
                    .any(|g| g["chat_id"] == chat && g["status"] == "adopted"),
                "{chat} answered but not listed"
            );
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
}

/// An adoption whose webhook URL is not known yet (missing or refused) keeps its greeting on the
/// group, and the first event that brings a usable URL sends it — once.
#[tokio::test]
async fn the_greeting_waits_for_a_webhook_url() {
    let app = spawn_app().await;
    let added = robot_message(
        "chat-wait",
        "owner",
        "ev-wait",
        "",
        &event_body("add_to_chat"),
    );
    app.post_callback(&added).await;
    let group = app
        .wait_group("chat-wait", |g| g["status"] == "adopted")
        .await;
    assert_eq!(group["can_push"], false);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(app.fake.all_received().is_empty());

    let hook = app.fake.webhook_url("late-key");
    let msg = robot_message("chat-wait", "u1", "m-wait-1", &hook, &text_body("大家好"));
    app.post_callback(&msg).await;
    app.fake.wait_delivered("late-key", 1).await;
    assert!(
        app.fake.received("late-key")[0]
            .body
            .to_string()
            .contains("会计小喇叭"),
        "the greeting: {:?}",
        app.fake.received("late-key")
    );
    let again = robot_message("chat-wait", "u1", "m-wait-2", &hook, &text_body("再说一句"));
    app.post_callback(&again).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.fake.received("late-key").len(),
        1,
        "the greeting went once"
    );
}

/// A robot group gets the name WeCom tells through the callback's one-time chat-info link (the
/// robot hears no name otherwise); an operator's name is never replaced.
#[tokio::test]
async fn a_robot_group_learns_its_name_from_the_chat_info_link() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("named-key");
    let info = app
        .fake
        .chat_info_url("code-1", "chat-named", "广州财税交流1群");
    let added = robot_message(
        "chat-named",
        "owner",
        "ev-named",
        &hook,
        &event_body("add_to_chat"),
    )
    .replace("<From>", &chat_info_tag(&info));
    app.post_callback(&added).await;
    let group = app
        .wait_group("chat-named", |g| g["name"] == "广州财税交流1群")
        .await;
    assert_eq!(group["status"], "adopted");
    // Named now: later callbacks' links are not used.
    let info = app.fake.chat_info_url("code-2", "chat-named", "别的名字");
    let msg = robot_message(
        "chat-named",
        "u1",
        "m-named",
        &hook,
        &text_body("@bot 帮助"),
    )
    .replace("<From>", &chat_info_tag(&info));
    app.post_callback(&msg).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.fake.chat_info_asked(), ["code-1"]);

    // A group the operator named keeps its name.
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups",
            Some(serde_json::json!({
                "webhook_url": app.fake.webhook_url("op-key"),
                "chat_id": "chat-op",
                "name": "运营起的名字",
            })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let info = app.fake.chat_info_url("code-3", "chat-op", "WeCom 的名字");
    let msg = robot_message(
        "chat-op",
        "u1",
        "m-op",
        &app.fake.webhook_url("op-key"),
        &text_body("@bot 帮助"),
    )
    .replace("<From>", &chat_info_tag(&info));
    app.post_callback(&msg).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let group = app.wait_group("chat-op", |_| true).await;
    assert_eq!(group["name"], "运营起的名字");
    assert!(!app.fake.chat_info_asked().contains(&"code-3".to_owned()));
}

/// The one-time chat-info link WeCom puts in a robot callback, as the tag before `<From>`.
fn chat_info_tag(url: &str) -> String {
    format!("<GetChatInfoUrl><![CDATA[{url}]]></GetChatInfoUrl><From>")
}
