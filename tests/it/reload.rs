//! Editing bot-scripts while the service runs: a valid edit changes the answer without a
//! restart; a broken edit keeps the previous version and is reported with file and line.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

async fn wait_status(app: &TestApp, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.api("/api/v1/scripts/status").await;
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "status never matched: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn edits_apply_without_a_restart_and_broken_edits_keep_the_old_version() {
    let scripts = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"),
        scripts.path(),
    );
    let app = spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        ..Options::default()
    })
    .await;
    let hook = app.fake.webhook_url("reload");
    let ask = |chat: &str, id: &str| {
        robot_message(
            chat,
            "zhaoliu",
            id,
            &hook,
            &text_body("@会计小喇叭 印花税怎么交"),
        )
    };
    let reply = app.reply_to(&ask("r1", "r-1")).await.unwrap();
    assert!(reply.contains("买卖合同0.3‰"), "{reply}");
    let status = app.api("/api/v1/scripts/status").await;
    assert_eq!(status["version"], 1);
    assert_eq!(status["from_dir"], true);

    // A valid edit: the stamp-duty answer changes.
    let file = scripts.path().join("keywords.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        original.replace("买卖合同0.3‰", "买卖合同万分之三（已更新）"),
    )
    .unwrap();
    wait_status(&app, |s| s["version"] == 2).await;
    let reply = app.reply_to(&ask("r2", "r-2")).await.unwrap();
    assert!(reply.contains("万分之三（已更新）"), "{reply}");

    // A broken edit: reported with file and line, and the edited version stays in force.
    let broken = original.replacen("match = \"regex\"", "match = \"fuzzy\"", 1);
    let line = broken.lines().position(|l| l.contains("fuzzy")).unwrap() + 1;
    std::fs::write(&file, broken).unwrap();
    let status = wait_status(&app, |s| !s["error"].is_null()).await;
    assert_eq!(status["version"], 2);
    assert!(
        status["error"]["file"]
            .as_str()
            .unwrap()
            .ends_with("keywords.toml"),
        "{status}"
    );
    assert_eq!(status["error"]["line"], line, "{status}");
    assert!(
        status["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("fuzzy"),
        "{status}"
    );
    let reply = app.reply_to(&ask("r3", "r-3")).await.unwrap();
    assert!(
        reply.contains("万分之三（已更新）"),
        "still the last good version: {reply}"
    );

    // Fixing it clears the error.
    std::fs::write(&file, &original).unwrap();
    let status = wait_status(&app, |s| s["version"] == 3).await;
    assert!(status["error"].is_null(), "{status}");
}

#[tokio::test]
async fn the_rules_in_force_are_listed() {
    let app = spawn_app().await;
    let rules = app.api("/api/v1/rules").await;
    let rules = rules.as_array().unwrap();
    assert!(rules.len() >= 20);
    let invoice = rules.iter().find(|r| r["id"] == "invoice").unwrap();
    assert_eq!(invoice["kind"], "keyword");
    assert_eq!(invoice["scope"], "global");
    assert_eq!(invoice["match"], "contains");
    assert!(
        invoice["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "发票")
    );
    assert_eq!(invoice["enabled"], true);
    let human = rules.iter().find(|r| r["id"] == "human-service").unwrap();
    assert_eq!(human["hours"][0], "09:00-18:00");
    let set_admin = rules.iter().find(|r| r["id"] == "set_admin").unwrap();
    assert_eq!(
        (&set_admin["kind"], &set_admin["role"]),
        (&"command".into(), &"owner".into())
    );
    let newbies = rules
        .iter()
        .find(|r| r["kind"] == "welcome" && r["scope"] == "tag:type:新手群")
        .unwrap();
    assert_eq!(newbies["id"], "welcome:any");
    let contacts = rules
        .iter()
        .find(|r| r["kind"] == "moderation" && r["id"] == "contacts")
        .unwrap();
    assert_eq!(
        (
            &contacts["match"],
            &contacts["action"],
            &contacts["members"]
        ),
        (&"contacts".into(), &"warn".into(), &"probation".into())
    );
    let links = rules.iter().find(|r| r["id"] == "newcomer-links").unwrap();
    assert_eq!(links["members"], "probation");
    assert!(
        links["patterns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "gov.cn")
    );
    let jobs = app.api("/api/v1/jobs").await;
    let morning = &jobs[0];
    assert_eq!(morning["name"], "morning-report");
    assert_eq!(morning["cron"], "30 7 * * *");
    assert_eq!(morning["timezone"], "Asia/Shanghai");
    let next = morning["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    assert!(
        next.iter()
            .all(|t| t.as_str().unwrap().ends_with("T07:30:00+08:00")),
        "{next:?}"
    );
    let anonymous = app.http.get(app.url("/api/v1/rules")).send().await.unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
}
