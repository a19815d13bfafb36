//! Broadcasts through the durable outbox: a job run now reaches every adopted group exactly once
//! (retrying 45009, -1, HTTP 500 and timeouts), skips released and opted-out groups, and its counts add up.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

async fn adopt(app: &TestApp, chat: &str, key: &str) {
    let hook = app.fake.webhook_url(key);
    let added = robot_message(
        chat,
        "boss",
        &format!("add-{chat}"),
        &hook,
        &event_body("add_to_chat"),
    );
    app.post_callback(&added).await;
    app.wait_group(chat, |g| g["status"] == "adopted").await;
    app.fake.wait_delivered(key, 1).await; // the adoption greeting
}

/// A service whose jobs send at once whatever the time of day (no quiet hours, no spread); the
/// scripts directory lives as long as the returned guard.
async fn app_sending_now() -> (TestApp, tempfile::TempDir) {
    app_sending_now_with(|_| {}).await
}

/// [`app_sending_now`] with a further edit of the scripts directory before the start.
async fn app_sending_now_with(edit: impl FnOnce(&std::path::Path)) -> (TestApp, tempfile::TempDir) {
    let scripts = scripts_copy();
    edit(scripts.path());
    jobs_send_at_once(scripts.path());
    let app = spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        // The test feeds are served on loopback.
        more: "[feeds]\nallow_private = true\n".into(),
        ..Options::default()
    })
    .await;
    (app, scripts)
}

async fn run_done(app: &TestApp, run_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = app.api(&format!("/api/v1/runs/{run_id}")).await;
        if run["state"] == "done" {
            return run;
        }
        assert!(Instant::now() < deadline, "the run never finished: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_run_reaches_every_adopted_group_once_and_its_counts_add_up() {
    let (app, _scripts) = app_sending_now().await;
    for (chat, key) in [
        ("b1", "k-b1"),
        ("b2", "k-b2"),
        ("b-out", "k-out"),
        ("b-gone", "k-gone"),
        ("b-fail", "k-fail"),
    ] {
        adopt(&app, chat, key).await;
    }
    // b1's webhook is busy at first; b-fail's never recovers (5 attempts: recorded as failed);
    // b-out opted out; b-gone's robot was removed.
    app.fake.script("k-fail", &[Answer::Status(503); 5]);
    app.fake.script(
        "k-b1",
        &[
            Answer::Errcode(45009),
            Answer::Errcode(-1),
            Answer::Status(500),
        ],
    );
    let (status, _) = app
        .api_put(
            "/api/v1/groups/b-out/rules/morning-report",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let hook = app.fake.webhook_url("k-gone");
    app.post_callback(&robot_message(
        "b-gone",
        "boss",
        "del-b-gone",
        &hook,
        &event_body("delete_from_chat"),
    ))
    .await;
    app.wait_group("b-gone", |g| g["status"] == "released")
        .await;

    let run = |app: &TestApp| {
        let request = app
            .http
            .post(app.url("/api/v1/jobs/morning-report/run"))
            .bearer_auth(ADMIN_TOKEN)
            .send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
            response.json::<Value>().await.unwrap()["run_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let run_id = run(&app).await;
    assert!(run_id.starts_with("morning-report@"), "{run_id}");
    let done = run_done(&app, &run_id).await;
    assert_eq!(done["job"], "morning-report");
    assert_eq!(done["planned"], 3, "b1, b2 and b-fail: {done}");
    assert_eq!(done["delivered"], 2, "{done}");
    assert_eq!(done["failed"], 1, "{done}");
    assert_eq!(done["timed_out"], 0, "{done}");
    let sum: u64 = ["delivered", "failed", "skipped", "timed_out", "pending"]
        .iter()
        .map(|k| done[*k].as_u64().unwrap())
        .sum();
    assert_eq!(done["planned"].as_u64().unwrap(), sum);
    let b1 = done["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "b1")
        .unwrap();
    assert_eq!(
        b1["attempts"], 4,
        "three refusals, then delivered (timeouts: pushes.rs): {b1}"
    );
    let failed = done["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == "b-fail")
        .unwrap();
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 5, "{failed}");
    assert!(
        failed["last_error"].as_str().unwrap().contains("503"),
        "the reason is kept: {failed}"
    );

    assert_eq!(
        done["receipts_next"],
        Value::Null,
        "one page holds all three"
    );
    // Receipts come in pages (counts are always over the whole run) and by state.
    let base = format!("/api/v1/runs/{run_id}");
    let first = app.api(&format!("{base}?limit=2")).await;
    assert_eq!(first["planned"], 3);
    assert_eq!(first["receipts"].as_array().unwrap().len(), 2, "{first}");
    let next = first["receipts_next"].as_u64().expect("a next page");
    let second = app.api(&format!("{base}?limit=2&after={next}")).await;
    assert_eq!(second["receipts"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["receipts_next"], Value::Null);
    let pages: Vec<&Value> = first["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["receipts"].as_array().unwrap())
        .collect();
    let all: Vec<&Value> = done["receipts"].as_array().unwrap().iter().collect();
    assert_eq!(pages, all, "the pages are the whole list, in order");
    let only_failed = app.api(&format!("{base}?state=failed")).await;
    let groups: Vec<&Value> = only_failed["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["group"])
        .collect();
    assert_eq!(groups, ["b-fail"], "{only_failed}");
    let bad = app
        .http
        .get(app.url(&format!("{base}?state=lost")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Running the same slot again sends nothing new.
    assert_eq!(run(&app).await, run_id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (key, expected) in [
        ("k-b1", 2),
        ("k-b2", 2),
        ("k-out", 1),
        ("k-gone", 1),
        ("k-fail", 1),
    ] {
        let delivered = app
            .fake
            .received(key)
            .into_iter()
            .filter(|r| r.answered == 0)
            .count();
        assert_eq!(delivered, expected, "{key}: greeting + at most one report");
    }
    let report = app.fake.wait_delivered("k-b2", 2).await;
    let content = report[1].body["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("财税早报"), "{content}");

    let unknown = app
        .http
        .post(app.url("/api/v1/jobs/no-such-job/run"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    let missing = app
        .http
        .get(app.url("/api/v1/runs/nope"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
}

/// Runs the morning report now; returns the response body.
async fn run_report(app: &TestApp) -> Value {
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/jobs/morning-report/run",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    body
}

#[tokio::test]
async fn push_only_groups_are_adopted_by_webhook_url_get_broadcasts_and_can_be_released() {
    let (app, _scripts) = app_sending_now().await;
    let post = |body: Value| app.api_call(reqwest::Method::POST, "/api/v1/groups", Some(body));

    let (status, p1) = post(json!({
        "webhook_url": app.fake.webhook_url("k-p1"),
        "name": "广州财税交流1群",
        "tags": ["province:广东"],
    }))
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{p1}");
    let p1_id = p1["chat_id"].as_str().unwrap().to_owned();
    assert!(p1_id.starts_with("push-"), "{p1}");
    assert_eq!(p1["status"], "adopted");
    assert_eq!(p1["adopted_via"], "api");
    assert_eq!(p1["name"], "广州财税交流1群");
    assert_eq!(p1["tags"], json!(["province:广东"]));
    assert_eq!(p1["can_push"], true);
    assert!(
        !p1.to_string().contains("k-p1"),
        "the key never shows: {p1}"
    );

    // The same URL again is the same group; another id with the same robot is refused.
    let (status, again) = post(json!({"webhook_url": app.fake.webhook_url("k-p1")})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{again}");
    assert_eq!(again["chat_id"], p1_id.as_str());
    let (status, same) = post(json!({
        "webhook_url": app.fake.webhook_url("k-p1"),
        "name": "广州财税交流1群",
        "tags": ["province:广东"],
    }))
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{same}");
    // Issue 17 §5: another name for an adopted robot is not a silent rename.
    let (status, renamed) = post(json!({
        "webhook_url": app.fake.webhook_url("k-p1"),
        "name": "别的名字",
    }))
    .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{renamed}");
    let reason = renamed["error"].as_str().unwrap();
    assert!(
        reason.contains("name") && reason.contains("PATCH"),
        "{reason}"
    );
    let kept = app.api(&format!("/api/v1/groups/{p1_id}")).await;
    assert_eq!(kept["name"], "广州财税交流1群", "{kept}");
    let (status, clash) = post(json!({
        "webhook_url": app.fake.webhook_url("k-p1"),
        "chat_id": "other",
    }))
    .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{clash}");

    let (status, p2) = post(json!({
        "webhook_url": app.fake.webhook_url("k-p2"),
        "chat_id": "my-group-2",
        "name": "深圳群",
    }))
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{p2}");
    assert_eq!(p2["chat_id"], "my-group-2");

    // Bad input: a host not in wecom.webhook_hosts, not a URL, a bad tag, unknown fields.
    for body in [
        json!({"webhook_url": "https://evil.example.com/cgi-bin/webhook/send?key=x"}),
        json!({"webhook_url": "not a url"}),
        json!({"webhook_url": app.fake.webhook_url("k-p3"), "tags": [" "]}),
        json!({"webhook_url": app.fake.webhook_url("k-p3"), "timezone": "Mars/Base"}),
        json!({"webhook_url": app.fake.webhook_url("k-p3"), "colour": "red"}),
        json!({"name": "no url"}),
    ] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    assert_eq!(
        app.groups().await.len(),
        2,
        "nothing adopted by a refused request"
    );

    // Both get the report, with their own names in the variables.
    let run = run_report(&app).await;
    let done = run_done(&app, run["run_id"].as_str().unwrap()).await;
    assert_eq!(done["planned"], 2, "{done}");
    assert_eq!(done["delivered"], 2, "{done}");
    app.fake.wait_delivered("k-p1", 1).await;
    app.fake.wait_delivered("k-p2", 1).await;

    // Released: no longer listed as pushable, and the next run leaves it out.
    let (status, released) = app
        .api_call(reqwest::Method::DELETE, "/api/v1/groups/my-group-2", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{released}");
    assert_eq!(released["status"], "released");
    assert_eq!(released["can_push"], false);
    let (status, _) = app
        .api_call(reqwest::Method::DELETE, "/api/v1/groups/nope", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    // A name and a time zone set later; a bad zone is refused.
    let path = format!("/api/v1/groups/{p1_id}");
    let (status, patched) = app
        .api_call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"name": "广州1群", "timezone": "Asia/Hong_Kong"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "广州1群");
    assert_eq!(patched["timezone"], "Asia/Hong_Kong");
    let (status, _) = app
        .api_call(
            reqwest::Method::PATCH,
            &path,
            Some(json!({"timezone": "Nowhere/City"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);

    // Re-adopting the released group by its URL brings it back.
    let (status, back) = post(json!({
        "webhook_url": app.fake.webhook_url("k-p2"),
        "chat_id": "my-group-2",
    }))
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{back}");
    assert_eq!(
        back["name"], "深圳群",
        "what the request leaves out is kept: {back}"
    );
}

/// Runs the `trumpet` binary with `args` against `app`; returns (exit code, stdout, stderr).
async fn trumpet_cli(app: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trumpet"));
    command
        .args(args)
        .arg("--server")
        .arg(app.url(""))
        .env("TRUMPET_ADMIN__TOKEN", ADMIN_TOKEN)
        .current_dir(std::env::temp_dir());
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_broadcast_command_dry_runs_then_runs_and_follows_the_run() {
    let (app, _scripts) = app_sending_now().await;
    for (id, key, name) in [
        ("c1", "k-c1", "广州1群"),
        ("c2", "k-c2", "深圳2群"),
        ("c3", "k-c3", "北京3群"),
    ] {
        let (status, _) = app
            .api_call(
                reqwest::Method::POST,
                "/api/v1/groups",
                Some(
                    json!({"webhook_url": app.fake.webhook_url(key), "chat_id": id, "name": name}),
                ),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED);
    }

    // c2 keeps Hong Kong time: the same offset as the job's zone, so the same slot and run.
    let (status, _) = app
        .api_call(
            reqwest::Method::PATCH,
            "/api/v1/groups/c2",
            Some(json!({"timezone": "Asia/Hong_Kong"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);

    let (code, out, err) = trumpet_cli(&app, &["broadcast", "morning-report", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    // One report for both groups: shown once, with the groups that would get it.
    assert!(out.contains("run: morning-report@"), "{out}");
    // c2's zone is planned after the job's own.
    assert!(
        out.contains("── message 1 of 1, to 3 group(s): c1, c3, c2"),
        "{out}"
    );
    assert_eq!(out.matches("财税早报").count(), 1, "{out}");
    assert!(
        out.contains("财税早报"),
        "the rendered report is shown: {out}"
    );
    assert!(
        out.contains("3 groups, 3 would be sent, 0 skipped; nothing was sent"),
        "{out}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.fake.all_received().is_empty(),
        "a dry run sends nothing"
    );

    // c3's webhook refuses for good: the run fails there, and says so with its exit code.
    app.fake.script("k-c3", &[Answer::Errcode(45002)]);
    let (code, out, err) = trumpet_cli(&app, &["broadcast", "morning-report"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("3 planned, 2 delivered, 1 failed, 0 skipped"),
        "{out}"
    );
    assert_eq!(
        out.matches(" planned, ").count(),
        1,
        "one run, told once: {out}"
    );
    assert!(out.contains("  failed c3: "), "{out}");
    assert_eq!(app.fake.received("k-c1").len(), 1);
    assert_eq!(app.fake.received("k-c2").len(), 1);
    // Running the same slot again plans nothing new: this run failed nowhere (exit 0), and the
    // earlier failure is told as such.
    let (code, out, err) = trumpet_cli(&app, &["broadcast", "morning-report"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("nothing new to send"), "{out}");
    assert!(
        out.contains("(1 failed in an earlier run of this slot)"),
        "{out}"
    );
    assert!(!out.contains("  failed c3: "), "not this run's: {out}");
    assert_eq!(app.fake.received("k-c1").len(), 1);

    // The failed group gets the slot again when asked; the groups that have it do not.
    let run_id = out
        .lines()
        .find_map(|l| {
            l.split(':')
                .next()
                .filter(|id| id.starts_with("morning-report@"))
        })
        .expect("the run is named")
        .to_owned();
    let (code, out, err) = trumpet_cli(&app, &["broadcast", "--resend", &run_id]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    app.fake.wait_delivered("k-c3", 1).await;
    assert_eq!(app.fake.received("k-c1").len(), 1);
    assert_eq!(app.fake.received("k-c2").len(), 1);
    // Now every group has it: a resend finds nobody.
    let (status, again) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/runs/{run_id}/resend"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    assert_eq!(again["queued"], 0, "{again}");
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/runs/nope@20260101T0000Z/resend",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    let (code, _, err) = trumpet_cli(&app, &["broadcast", "no-such-job"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("404") && err.contains("no-such-job"), "{err}");

    // Nobody listening: a clear error, exit 2.
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_trumpet"))
            .args([
                "broadcast",
                "morning-report",
                "--server",
                "http://127.0.0.1:9",
            ])
            .env("TRUMPET_ADMIN__TOKEN", ADMIN_TOKEN)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cannot reach the service"), "{err}");
}

/// A feed server: `/rss` and `/atom` with entries from an hour ago, `/old` with entries from last
/// month, `/broken` answering 500, `/slow` answering after 3 s, `/garbage` an HTML page.
async fn start_feed_server() -> String {
    use axum::routing::get;
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
    let rss = |when: chrono::DateTime<chrono::Utc>, title: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>财税快讯</title>
<item><title>{title}</title><link>https://example.com/news/1</link><pubDate>{}</pubDate></item>
<item><title>个税汇算提醒</title><link>https://example.com/news/2</link><pubDate>{}</pubDate></item>
</channel></rss>"#,
            when.to_rfc2822(),
            (when - chrono::Duration::minutes(5)).to_rfc2822()
        )
    };
    // A title that would close the digest's markdown link early and link elsewhere, and an
    // escaped one that must keep its text (issue 27 §6).
    let fresh = rss(
        hour_ago,
        "增值税新规解读 [重要] 申报期限(12月)](http://evil.example) &lt;延续&gt;",
    );
    let old = rss(month_ago, "上个月的旧闻");
    let atom = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>会计学堂</title><id>x</id>
<updated>{0}</updated><entry><title>本周直播课</title><id>1</id><link href="https://example.com/course"/><updated>{0}</updated></entry></feed>"#,
        hour_ago.to_rfc3339()
    );
    let app = axum::Router::new()
        .route("/rss", get(move || async move { fresh }))
        .route("/old", get(move || async move { old }))
        .route("/atom", get(move || async move { atom }))
        .route(
            "/broken",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "oops") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/garbage",
            get(|| async { "<html><body>502 Bad Gateway</body></html>" }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn the_morning_report_quotes_feeds_and_a_broken_feed_is_reported_not_blocking() {
    let feeds = start_feed_server().await;
    let (app, _scripts) = app_sending_now_with(|dir| {
        let mut text = String::new();
        for (name, path) in [
            ("news", "rss"),
            ("course", "atom"),
            ("stale", "old"),
            ("down", "broken"),
            ("slow", "slow"),
            ("garbage", "garbage"),
        ] {
            text.push_str(&format!(
                "[[feed]]\nname = \"{name}\"\nurl = \"{feeds}/{path}\"\ntimeout_secs = 1\n\n"
            ));
        }
        std::fs::write(dir.join("content/feeds.toml"), text).unwrap();
    })
    .await;
    let (status, statuses) = app
        .api_call(reqwest::Method::POST, "/api/v1/feeds/refresh", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{statuses}");
    let by_name = |name: &str| {
        statuses
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {statuses}"))
    };
    assert_eq!(by_name("news")["state"], "ok", "{statuses}");
    assert_eq!(by_name("news")["entries"], 2);
    assert_eq!(by_name("course")["title"], "会计学堂");
    for (name, error) in [
        ("down", "HTTP 500"),
        ("slow", "timed out after 1 s"),
        ("garbage", "not an RSS or Atom feed"),
    ] {
        let feed = by_name(name);
        assert_eq!(feed["state"], "failing", "{feed}");
        // The background task fetches at start too: one or two attempts by now.
        assert!(feed["consecutive_failures"].as_u64() >= Some(1), "{feed}");
        let reason = feed["last_error"].as_str().unwrap();
        assert!(reason.contains(error), "{name}: {reason}");
    }
    // The same health through the read-only endpoint.
    let listed = app.api("/api/v1/feeds").await;
    assert_eq!(listed.as_array().unwrap().len(), 6);

    adopt(&app, "f1", "k-f1").await;
    let run_id = run_report(&app).await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = run_done(&app, &run_id).await;
    assert_eq!(
        done["delivered"], 1,
        "three broken feeds do not hold the report: {done}"
    );
    let report = app.fake.received("k-f1").last().unwrap().body["markdown"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    for quoted in [
        "**财税快讯**",
        "[增值税新规解读 ［重要］ 申报期限(12月)］(http://evil.example) ＜延续＞](https://example.com/news/1)",
        "个税汇算提醒",
        "**会计学堂**",
        "本周直播课",
    ] {
        assert!(report.contains(quoted), "{quoted} missing from {report}");
    }
    assert!(!report.contains("](http://evil"), "{report}");
    assert!(
        !report.contains("上个月的旧闻"),
        "entries older than max_age_hours are left out: {report}"
    );
}

/// Issue 27 §8: a job whose last slot is more than 32 days ago (a quarterly or yearly
/// reminder) cannot be run for its current slot — the refusal says how to ask for the next —
/// and its next slot can be previewed and run now, once: the slot when it comes adds nothing.
#[tokio::test]
async fn a_job_with_no_recent_slot_runs_its_next_slot_on_request() {
    use chrono::Datelike;
    // A yearly slot about two months ahead: its last one was some ten months ago.
    let ahead = chrono::Utc::now() + chrono::Duration::days(60);
    let cron = format!("0 9 {} {} *", ahead.day().min(28), ahead.month());
    let (app, _scripts) = app_sending_now_with(|dir| {
        let file = dir.join("schedules.toml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(&format!(
            "\n[[job]]\nname = \"yearly-reminder\"\ncron = \"{cron}\"\ntimezone = \"Asia/Shanghai\"\ntargets = \"all\"\nformat = \"text\"\ncontent = \"📌 年度汇算提醒 {{{{ date.month }}}}月{{{{ date.day }}}}日\"\n"
        ));
        std::fs::write(&file, text).unwrap();
    })
    .await;
    adopt(&app, "y1", "k-y1").await;

    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/jobs/yearly-reminder/run",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("slot=next"),
        "{body}"
    );
    let (status, preview) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/jobs/yearly-reminder/run?dry_run=true&slot=next",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{preview}");
    let expected = format!("年度汇算提醒 {}月{}日", ahead.month(), ahead.day().min(28));
    assert!(preview.to_string().contains(&expected), "{preview}");
    assert_eq!(preview["planned"], 1, "{preview}");

    // Run by hand through the CLI: sent now, not at the slot two months away.
    let (code, stdout, stderr) =
        trumpet_cli(&app, &["broadcast", "yearly-reminder", "--next"]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let delivered = app.fake.wait_delivered("k-y1", 2).await; // the greeting, then the reminder
    assert!(
        delivered
            .iter()
            .any(|r| r.body.to_string().contains(&expected)),
        "{delivered:?}"
    );
    // Asking again adds nothing: the slot is planned.
    let (status, again) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/jobs/yearly-reminder/run?slot=next",
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["queued"], 0, "{again}");
}

/// Inside the job's quiet hours a run by hand is refused before anything is planned, with when
/// they end — the preview says so too — and `--now` sends anyway.
#[tokio::test]
async fn a_run_inside_quiet_hours_is_refused_unless_overridden() {
    use chrono::Timelike;
    let local = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let minute = |offset: i64| {
        let t = local + chrono::Duration::minutes(offset);
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    let window = format!("{}-{}", minute(-60), minute(60));
    let (app, _scripts) = app_sending_now_with(|dir| {
        let file = dir.join("schedules.toml");
        let text = std::fs::read_to_string(&file).unwrap().replacen(
            "quiet_hours = [\"22:00-07:00\"]\n",
            &format!("quiet_hours = [\"{window}\"]\n"),
            1,
        );
        std::fs::write(&file, text).unwrap();
    })
    .await;
    adopt(&app, "q1", "k-q1").await;

    let (code, out, err) = trumpet_cli(&app, &["broadcast", "morning-report", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("a run now would be refused"), "{out}");
    assert!(out.contains("quiet hours"), "{out}");

    let (code, out, err) = trumpet_cli(&app, &["broadcast", "morning-report"]).await;
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("409") && err.contains("quiet hours"), "{err}");
    // The window's end is not quiet (a minute may have passed since it was computed).
    assert!(
        [minute(60), minute(61)]
            .iter()
            .any(|end| err.contains(&format!("until {end}"))),
        "{err}"
    );
    assert!(err.contains("--now"), "{err}");
    // Refused before planning: nothing sent, and the slot is still there to send (below).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.fake.received("k-q1").len(),
        1,
        "only the adoption greeting"
    );

    let (code, out, err) = trumpet_cli(&app, &["broadcast", "morning-report", "--now"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("1 planned, 1 delivered"), "{out}");
    app.fake.wait_delivered("k-q1", 2).await;
}

/// `trumpet simulate` asks the running service (whose store is locked to it) and prints its
/// answer.
#[tokio::test]
async fn simulate_asks_the_running_service() {
    let (app, _scripts) = app_sending_now().await;
    adopt(&app, "sim-1", "k-sim-1").await;
    let (code, out, err) = trumpet_cli(
        &app,
        &[
            "simulate",
            "--group",
            "sim-1",
            "--from",
            "u1",
            "--mention",
            "@会计小喇叭 帮助",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("asked   the running service at"), "{out}");
    assert!(out.contains("through the group robot"), "{out}");
    assert!(out.contains("decided help"), "{out}");
}
