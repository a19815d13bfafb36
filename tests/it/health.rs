//! Group health over the admin API: the ranking, one group's figures (messages, speakers, the
//! bot's posts and the replies to them), and refusals of bad queries.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn groups_are_ranked_with_the_figures_behind_their_score() {
    let app = spawn_app().await;
    for (chat, key) in [("g-h1", "h1"), ("g-h2", "h2")] {
        adopt_by(&app, chat, "boss", &app.fake.webhook_url(key)).await;
    }
    // The adoption greeting is the bot's post; members answering within 30 minutes reply to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sends = app.api("/api/v1/groups/g-h1/sends").await;
        if sends["sends"][0]["state"] == "delivered" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the greeting was never delivered: {sends}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hook = app.fake.webhook_url("h1");
    for (i, user) in ["m1", "m2", "m1"].iter().enumerate() {
        let said = robot_message(
            "g-h1",
            user,
            &format!("h-{i}"),
            &hook,
            &text_body("@会计小喇叭 你好"),
        );
        app.reply_to(&said).await;
    }
    app.wait_group("g-h1", |g| g["messages"] == 3).await;

    let ranked = app.api("/api/v1/health").await;
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), 2, "{ranked:?}");
    assert_eq!(
        ranked[0]["chat_id"], "g-h2",
        "the quiet group first: {ranked:?}"
    );
    let busy = &ranked[1];
    assert_eq!(busy["stage"], "new", "adopted today: {busy}");
    assert_eq!(busy["stage_text"], "新群");
    assert_eq!(busy["activity"]["messages_7d"], 3, "{busy}");
    assert_eq!(busy["activity"]["speakers_7d"], 2, "{busy}");
    assert_eq!(busy["activity"]["bot_posts_7d"], 1, "{busy}");
    assert_eq!(busy["activity"]["replies_to_posts_7d"], 3, "{busy}");
    assert_eq!(
        busy["members"],
        Value::Null,
        "the robot cannot list members"
    );
    assert!(busy["score"].as_u64().unwrap() > ranked[0]["score"].as_u64().unwrap());
    assert!(!busy["action"].as_str().unwrap().is_empty());

    let one = app.api("/api/v1/groups/g-h1/health").await;
    assert_eq!(one["score"], busy["score"]);
    let (status, _) = app
        .api_call(reqwest::Method::GET, "/api/v1/groups/nope/health", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.api("/api/v1/health?stage=dead").await,
        Value::Array(Vec::new())
    );
    let first = app.api("/api/v1/health?limit=1").await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    let (status, body) = app
        .api_call(reqwest::Method::GET, "/api/v1/health?stage=zombie", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Issue 17 §5: a push-only group has no activity to measure: it is ranked after the measured
/// groups, marked `measured: false`, with the reason — not at the top as the quietest group.
#[tokio::test]
async fn push_only_groups_are_ranked_apart() {
    let app = spawn_app().await;
    adopt_by(&app, "g-heard", "boss", &app.fake.webhook_url("heard")).await;
    let (status, pushed) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups",
            Some(serde_json::json!({"webhook_url": app.fake.webhook_url("pushed"), "name": "只推送"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pushed}");
    let ranked = app.api("/api/v1/health").await;
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), 2, "{ranked:?}");
    assert_eq!(ranked[0]["chat_id"], "g-heard", "{ranked:?}");
    assert_eq!(ranked[0]["measured"], true);
    assert_eq!(ranked[1]["chat_id"], pushed["chat_id"], "{ranked:?}");
    assert_eq!(ranked[1]["measured"], false);
    assert!(
        ranked[1]["reasons"].to_string().contains("只推送的群"),
        "{}",
        ranked[1]
    );
}
