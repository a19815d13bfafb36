//! Welcomes through the admin API's join reports (the group robot cannot see joins): batching,
//! the interval between welcomes, and no second welcome for a rejoin — also after a restart.

use serde_json::json;

use crate::helpers::*;

fn content(r: &fake_wecom::Received) -> String {
    r.body["markdown"]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Reports joins to `g-w` through the admin API.
async fn join(app: &TestApp, members: serde_json::Value, scene: &str) {
    let response = app
        .http
        .post(app.url("/api/v1/groups/g-w/joins"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"members": members, "scene": scene}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
}

#[tokio::test]
async fn joins_are_batched_spaced_out_and_rejoins_are_not_welcomed_twice() {
    let scripts = scripts_copy();
    let welcome = scripts.path().join("welcome.toml");
    let text = std::fs::read_to_string(&welcome)
        .unwrap()
        .replace("batch_window_secs = 30", "batch_window_secs = 1")
        .replace("min_interval_secs = 300", "min_interval_secs = 3");
    std::fs::write(&welcome, text).unwrap();
    let mut app = spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        ..Options::default()
    })
    .await;
    let hook = app.fake.webhook_url("welcome-key");
    let added = robot_message("g-w", "boss", "w-add", &hook, &event_body("add_to_chat"));
    app.post_callback(&added).await;
    app.wait_group("g-w", |g| g["status"] == "adopted").await;
    app.fake.wait_delivered("welcome-key", 1).await; // the adoption greeting

    join(&app, json!([{"user_id": "a", "name": "阿甲"}]), "qrcode").await;
    join(&app, json!([{"user_id": "b", "name": "阿乙"}]), "qrcode").await;
    let got = app.fake.wait_delivered("welcome-key", 2).await;
    let text = content(&got[1]);
    assert!(text.contains("<@a> <@b>"), "one welcome for both: {text}");
    assert!(
        text.contains("扫码加入本群"),
        "the QR-code template: {text}"
    );
    assert!(text.contains("地区-姓名-岗位"), "{text}");

    // A join right after waits for the interval (3 s) since the last welcome; a rejoin of `a`
    // in the same batch is left out.
    join(&app, json!([{"user_id": "c"}, {"user_id": "a"}]), "invited").await;
    let got = app.fake.wait_delivered("welcome-key", 3).await;
    let gap = got[2].at.duration_since(got[1].at);
    assert!(
        gap.as_millis() >= 2500,
        "at most one welcome per interval: {gap:?}"
    );
    let text = content(&got[2]);
    assert!(text.contains("<@c>") && !text.contains("<@a>"), "{text}");

    // Who was welcomed is stored: after a restart `b` is still not welcomed again.
    app.restart().await;
    join(&app, json!([{"user_id": "b"}, {"user_id": "d"}]), "link").await;
    let got = app.fake.wait_delivered("welcome-key", 4).await;
    let text = content(&got[3]);
    assert!(text.contains("<@d>") && !text.contains("<@b>"), "{text}");

    // Bad reports are refused with a reason.
    let refused = app
        .http
        .post(app.url("/api/v1/groups/g-w/joins"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"members": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    let not_adopted = app
        .http
        .post(app.url("/api/v1/groups/g-unknown/joins"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"members": [{"user_id": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_adopted.status(), reqwest::StatusCode::CONFLICT);
}
