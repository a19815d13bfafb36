//! Issue 18: the operator console in a real browser (headless Chromium through ChromeDriver)
//! against the real service: signing in, the overview's figures against the API's, the group
//! list's filters and bulk tagging, a viewer who can change nothing, accounts, and the audit.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::browser::Browser;
use crate::helpers::{TestApp, spawn_app};

const ADMIN: (&str, &str) = ("boss", "boss's long password");
const VIEWER: (&str, &str) = ("kan", "kan's long password");

/// An account made through the admin API (as the 账号 page or `trumpet operator add` would).
async fn add_operator(app: &TestApp, (name, password): (&str, &str), role: &str) {
    let (status, body) = app
        .api_call(
            Method::POST,
            "/api/v1/operators",
            Some(json!({"name": name, "role": role, "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Push-only groups adopted through the API, each with a name and tags.
async fn adopt_groups(app: &TestApp, groups: &[(&str, &[&str])]) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, (name, tags)) in groups.iter().enumerate() {
        let (status, body) = app
            .api_call(
                Method::POST,
                "/api/v1/groups",
                Some(json!({
                    "webhook_url": app.fake.webhook_url(&format!("console-{i}")),
                    "name": name,
                    "tags": tags,
                })),
            )
            .await;
        assert!(status.is_success(), "{body}");
        ids.push(body["chat_id"].as_str().unwrap().to_owned());
    }
    ids
}

/// A browser signed in to the console as `account` (its name shown in the header).
async fn signed_in(app: &TestApp, (name, password): (&str, &str)) -> Browser {
    let browser = Browser::start().await;
    browser.sign_in(&app.url("/console/"), name, password).await;
    browser.wait_text("#who", |t| t.contains(name)).await;
    browser
}

/// The figure the overview shows under `data-figure=name`, as a number.
async fn figure(browser: &Browser, name: &str) -> u64 {
    let text = browser
        .wait_text(&format!("[data-figure={name}] .value"), |t| !t.is_empty())
        .await;
    text.replace(',', "").parse().unwrap()
}

#[tokio::test]
async fn an_operator_signs_in_and_the_overview_shows_the_apis_figures() {
    use crate::helpers::{adopt_by, robot_message, text_body};
    let app = spawn_app().await;
    add_operator(&app, ADMIN, "admin").await;
    adopt_groups(
        &app,
        &[("初级会计一群", &["会计"]), ("税务答疑群", &["税务"])],
    )
    .await;
    // A robot group where three members ask the bot things today.
    let hook = app.fake.webhook_url("console-talk");
    adopt_by(&app, "g-console-talk", "boss", &hook).await;
    for (i, member) in ["m1", "m2", "m3"].iter().enumerate() {
        let asked = robot_message(
            "g-console-talk",
            member,
            &format!("console-talk-{i}"),
            &hook,
            &text_body("@会计小喇叭 个税汇算什么时候开始？"),
        );
        // (A keyword answers once a minute per group: the later ones are heard, not answered.)
        assert!(app.post_callback(&asked).await.status().is_success());
    }
    app.wait_group("g-console-talk", |g| g["messages"] == 3)
        .await;
    let browser = Browser::start().await;
    let console = app.url("/console/");

    // A wrong password is refused with a message, and the form stays.
    browser.sign_in(&console, ADMIN.0, "not the password").await;
    browser
        .wait_text("#sign-in-error", |t| t.contains("用户名或密码错误"))
        .await;
    browser.keep_screenshot("sign-in").await;

    browser.sign_in(&console, ADMIN.0, ADMIN.1).await;
    browser.wait_text("#who", |t| t.contains("boss")).await;
    let overview = app.api("/api/v1/overview").await;
    assert_eq!(overview["groups"]["adopted"], 3);
    assert_eq!(overview["messages_today"], 3);
    assert_eq!(figure(&browser, "adopted").await, 3);
    assert_eq!(
        figure(&browser, "members").await,
        overview["members"].as_u64().unwrap()
    );
    assert_eq!(
        figure(&browser, "messages_today").await,
        overview["messages_today"].as_u64().unwrap()
    );
    assert_eq!(
        figure(&browser, "pending").await,
        overview["pending"]["count"].as_u64().unwrap()
    );
    // Two charts, each an image with a name.
    let charts = browser
        .run(
            "return [...document.querySelectorAll('svg.chart')].map(c => c.getAttribute('aria-label'));",
            vec![],
        )
        .await;
    assert_eq!(charts.as_array().unwrap().len(), 2, "{charts}");
    browser.keep_screenshot("overview").await;

    // Nothing came from another origin.
    let origin = app.url("");
    for address in browser.loaded_from().await {
        assert!(address.starts_with(&origin), "{address} is not {origin}");
    }

    // Signing out leaves the form, and the session is gone for the API too.
    browser.click("#sign-out").await;
    browser
        .wait_text("#sign-in-error", |t| t.contains("已退出登录"))
        .await;
    let status = browser
        .run_async(
            "fetch('/api/v1/overview').then(r => arguments[0](r.status));",
            vec![],
        )
        .await;
    assert_eq!(status, 401);
    browser.close().await;
}

#[tokio::test]
async fn the_group_list_filters_and_tags_in_bulk_and_the_audit_names_who() {
    let app = spawn_app().await;
    add_operator(&app, ADMIN, "admin").await;
    let ids = adopt_groups(
        &app,
        &[
            ("初级会计一群", &["会计"]),
            ("初级会计二群", &["会计"]),
            ("税务答疑群", &["税务"]),
            ("中级会计群", &[]),
        ],
    )
    .await;
    let browser = signed_in(&app, ADMIN).await;
    browser.goto(&app.url("/console/#/groups")).await;
    browser
        .wait_text("[data-total]", |t| t.contains("共 4 个群"))
        .await;

    // Search by name: the rows are the API's answer to the same query.
    browser.type_into("input[name=q]", "初级").await;
    browser.click("form.filters button[type=submit]").await;
    browser
        .wait_text("[data-total]", |t| t.contains("共 2 个群"))
        .await;
    let api = app.api("/api/v1/groups?q=%E5%88%9D%E7%BA%A7").await;
    let mut expected: Vec<String> = api["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["chat_id"].as_str().unwrap().to_owned())
        .collect();
    let mut shown: Vec<String> = serde_json::from_value(
        browser
            .run(
                "return [...document.querySelectorAll('tr[data-chat]')].map(r => r.dataset.chat);",
                vec![],
            )
            .await,
    )
    .unwrap();
    expected.sort();
    shown.sort();
    assert_eq!(shown, expected);

    // Tag both in one go.
    browser.click("input[aria-label='全选本页']").await;
    browser.type_into("input[name=bulk-tag]", "2026届").await;
    browser.click(".bar-actions button").await;
    browser
        .wait_text(".notice.ok", |t| t.contains("已为 2 个群添加标签"))
        .await;
    browser.keep_screenshot("groups").await;
    for id in &ids[..2] {
        let group = app.api(&format!("/api/v1/groups/{id}")).await;
        assert!(
            group["tags"].as_array().unwrap().contains(&json!("2026届")),
            "{group}"
        );
    }
    let untouched = app.api(&format!("/api/v1/groups/{}", ids[2])).await;
    assert_eq!(untouched["tags"], json!(["税务"]));

    // The filter by tag finds them; the audit page names who did it.
    browser
        .goto(&app.url("/console/#/groups?tag=2026%E5%B1%8A"))
        .await;
    browser
        .wait_text("[data-total]", |t| t.contains("共 2 个群"))
        .await;
    browser.goto(&app.url("/console/#/audit")).await;
    let audit = browser
        .wait_text("table", |t| t.contains("/api/v1/bulk/tags"))
        .await;
    assert!(audit.contains("boss"), "{audit}");
    browser.keep_screenshot("audit").await;
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_everything_and_can_change_nothing() {
    let app = spawn_app().await;
    add_operator(&app, VIEWER, "viewer").await;
    let ids = adopt_groups(&app, &[("初级会计一群", &["会计"])]).await;
    let browser = signed_in(&app, VIEWER).await;
    browser.wait_text("#who", |t| t.contains("只读")).await;

    // No account management in the menu, no bulk tagging, no save button, inputs disabled.
    let menu = browser.wait_text("#nav", |t| t.contains("群组")).await;
    assert!(!menu.contains("账号"), "{menu}");
    browser.goto(&app.url("/console/#/groups")).await;
    browser
        .wait_text("[data-total]", |t| t.contains("共 1 个群"))
        .await;
    let controls = browser
        .run(
            "return document.querySelectorAll('input.pick, input[name=bulk-tag]').length;",
            vec![],
        )
        .await;
    assert_eq!(controls, 0);
    browser
        .goto(&app.url(&format!("/console/#/groups/{}", ids[0])))
        .await;
    browser
        .wait_text("#content h1", |t| t.contains("初级会计一群"))
        .await;
    browser.keep_screenshot("group").await;
    let editable = browser
        .run(
            "return [...document.querySelectorAll('#content input, #content button[type=submit]')]\
               .filter(e => !e.disabled && e.name !== 'member' && e.type !== 'submit').map(e => e.outerHTML);",
            vec![],
        )
        .await;
    assert_eq!(editable, json!([]));

    // And the API refuses a change from this session even with its CSRF token.
    let status = browser
        .run_async(
            "const chat = arguments[0], done = arguments[arguments.length - 1];
             fetch('/api/v1/session').then(r => r.json()).then(s =>
               fetch('/api/v1/bulk/tags', {method: 'POST',
                 headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf_token},
                 body: JSON.stringify({chat_ids: [chat], add: ['x']})}))
             .then(r => done(r.status));",
            vec![json!(ids[0])],
        )
        .await;
    assert_eq!(status, 403);
    let group = app.api(&format!("/api/v1/groups/{}", ids[0])).await;
    assert_eq!(group["tags"], json!(["会计"]));
    browser.close().await;
}

#[tokio::test]
async fn an_admin_adds_an_account_in_the_console_and_it_can_sign_in() {
    let app = spawn_app().await;
    add_operator(&app, ADMIN, "admin").await;
    let browser = signed_in(&app, ADMIN).await;
    browser.goto(&app.url("/console/#/accounts")).await;
    browser.type_into("input[name=new-name]", "xiaoli").await;
    browser
        .find("select[name=new-role]")
        .await
        .select_by_value("operator")
        .await
        .unwrap();
    browser
        .type_into("input[name=new-password]", "xiaoli's long password")
        .await;
    browser.click("form[aria-label='添加账号'] button").await;
    browser
        .wait_text(".notice.ok", |t| t.contains("已添加账号 xiaoli"))
        .await;
    browser.keep_screenshot("accounts").await;
    let accounts: Value = app.api("/api/v1/operators").await;
    assert!(
        accounts["operators"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "xiaoli" && a["role"] == "operator"),
        "{accounts}"
    );
    let signed_in = app
        .http
        .post(app.url("/api/v1/session"))
        .json(&json!({"username": "xiaoli", "password": "xiaoli's long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    browser.close().await;
}

#[tokio::test]
async fn a_broadcast_is_previewed_run_and_resent_from_the_console() {
    let scripts = crate::helpers::scripts_copy();
    crate::helpers::jobs_send_at_once(scripts.path());
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        scripts_dir: Some(scripts.path().to_owned()),
        more: "[feeds]\nallow_private = true\n".into(),
        ..Default::default()
    })
    .await;
    add_operator(&app, ADMIN, "admin").await;
    let ids = adopt_groups(
        &app,
        &[
            ("初级会计一群", &[]),
            ("初级会计二群", &[]),
            ("税务答疑群", &[]),
        ],
    )
    .await;
    // The third group's robot fails every attempt of the first run.
    use crate::helpers::fake_wecom::Answer;
    app.fake.script("console-2", &[Answer::Status(500); 5]);

    let browser = signed_in(&app, ADMIN).await;
    browser.goto(&app.url("/console/#/broadcasts")).await;
    browser
        .wait_text("table[aria-label='计划任务']", |t| {
            t.contains("morning-report")
        })
        .await;

    // The preview shows the message the groups would get, and sends nothing.
    browser
        .click("table[aria-label='计划任务'] tbody tr:first-child button.secondary")
        .await;
    let shown = browser
        .wait_text("[data-preview]", |t| t.contains("3 个群将收到"))
        .await;
    let dry = app
        .api_call(
            Method::POST,
            "/api/v1/jobs/morning-report/run?dry_run=true",
            None,
        )
        .await
        .1;
    let first_line = dry["targets"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(shown.contains(&first_line), "{first_line:?} not in {shown}");
    assert!(
        app.fake.all_received().is_empty(),
        "a preview sent something"
    );

    // Run it: confirm, follow the progress, read the receipts.
    browser
        .click("table[aria-label='计划任务'] tbody tr:first-child button:not(.secondary)")
        .await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_text("[data-run]", |t| t.contains("查看回执"))
        .await;
    browser.keep_screenshot("broadcasts").await;
    browser.click("[data-run] a").await;
    let counts = browser
        .wait_text("[data-run-counts]", |t| t.contains("计划 3"))
        .await;
    let run_id = browser
        .wait_text("#content h1", |t| t.starts_with("批次"))
        .await
        .trim_start_matches("批次 ")
        .to_owned();
    let run = app
        .api(&format!(
            "/api/v1/runs/{}",
            run_id.replace('@', "%40").replace(':', "%3A")
        ))
        .await;
    assert_eq!(run["delivered"], 2, "{run}");
    assert_eq!(run["failed"], 1, "{run}");
    assert!(
        counts.contains("送达 2") && counts.contains("失败 1"),
        "{counts}"
    );
    let receipts = browser
        .wait_text("table[aria-label='回执']", |t| t.contains(&ids[2]))
        .await;
    assert!(receipts.contains("失败"), "{receipts}");

    // Resend the failed group: it gets the report now, the others nothing more.
    browser.click("#content > button").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_text(".notice.ok", |t| t.contains("已重新安排 1 个群"))
        .await;
    let delivered = app.fake.wait_delivered("console-2", 1).await;
    assert_eq!(delivered.len(), 1);
    for key in ["console-0", "console-1"] {
        assert_eq!(app.fake.received(key).len(), 1, "{key} got more than one");
    }
    browser.close().await;
}

#[tokio::test]
async fn a_red_envelope_test_is_started_watched_and_cancelled_from_the_console() {
    use crate::helpers::{adopt_by, robot_message, text_body};
    let app = spawn_app().await;
    add_operator(&app, ADMIN, "admin").await;
    let hook = app.fake.webhook_url("console-env");
    adopt_by(&app, "g-console-env", "boss", &hook).await;
    app.api_call(
        Method::PATCH,
        "/api/v1/groups/g-console-env",
        Some(json!({"name": "红包测试群"})),
    )
    .await;

    let browser = signed_in(&app, ADMIN).await;
    browser.goto(&app.url("/console/#/envelopes")).await;
    browser.type_into("input[name=group-search]", "红包").await;
    browser
        .click("form[aria-label='发起红包测试'] button.secondary")
        .await;
    browser
        .wait_text("select[name=group]", |t| t.contains("红包测试群"))
        .await;
    browser.type_into("input[name=shares]", "3").await;
    browser.type_into("input[name=window-minutes]", "30").await;
    browser
        .click("form[aria-label='发起红包测试'] button[type=submit]")
        .await;
    browser
        .wait_text("[data-test-state]", |t| t.contains("进行中"))
        .await;
    let test = &app
        .api("/api/v1/groups/g-console-env/red-envelope-tests")
        .await["tests"][0];
    assert_eq!(
        (&test["shares"], &test["window_secs"]),
        (&json!(3), &json!(1800))
    );
    let (id, phrase) = (
        test["id"].as_str().unwrap().to_owned(),
        test["claim_phrase"].as_str().unwrap().to_owned(),
    );

    // A member claims in the group: the page shows it without being reloaded.
    let claim = robot_message(
        "g-console-env",
        "m1",
        "console-claim-1",
        &hook,
        &text_body(&format!("@会计小喇叭 {phrase}")),
    );
    assert!(app.reply_to(&claim).await.unwrap().contains("还剩 2 份"));
    browser
        .wait_text("table[aria-label='领取记录']", |t| t.contains("m1"))
        .await;
    browser.keep_screenshot("envelope").await;

    // The ledger downloads with the session (same origin), one row per claim.
    let csv = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('a[download]').href).then(r => r.text()).then(done);",
            vec![],
        )
        .await;
    let csv = csv.as_str().unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains(&id), "{csv}");

    browser.click("button.danger").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .wait_text("[data-test-state]", |t| t.contains("已取消"))
        .await;
    let cancelled = app.api(&format!("/api/v1/red-envelope-tests/{id}")).await;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["cancelled_by"], "operator:boss");
    assert_eq!(cancelled["started_by"], "operator:boss");
    browser.close().await;
}

#[tokio::test]
async fn a_finding_is_judged_wrong_in_the_console_and_the_member_is_pardoned() {
    use crate::helpers::{adopt_by, robot_message, text_body};
    let app = spawn_app().await;
    add_operator(&app, ADMIN, "operator").await;
    let hook = app.fake.webhook_url("console-mod");
    adopt_by(&app, "g-console-mod", "boss", &hook).await;
    let spam = robot_message(
        "g-console-mod",
        "member-7",
        "console-spam-1",
        &hook,
        &text_body("@会计小喇叭 发票问题加我薇信 kj12345 详聊"),
    );
    assert_eq!(app.reply_to(&spam).await, None);
    let entry = loop {
        let log = app.api("/api/v1/moderation?chat_id=g-console-mod").await;
        if let Some(entry) = log["entries"].as_array().unwrap().first() {
            break entry.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let id = entry["id"].as_u64().unwrap();

    let browser = signed_in(&app, ADMIN).await;
    browser.goto(&app.url("/console/#/moderation")).await;
    let row = format!("tr[data-entry='{id}']");
    // The finding shows its text, its normalised form and its evidence.
    let shown = browser.wait_text(&row, |t| t.contains("kj12345")).await;
    assert!(
        shown.contains(entry["evidence"].as_str().unwrap()),
        "{shown}"
    );
    // The member had just spoken for the first time: the finding says they were a newcomer.
    assert_eq!(entry["probation"], true, "{entry}");
    assert!(shown.contains("新成员（从严检查）"), "{shown}");
    browser.keep_screenshot("moderation").await;
    browser.click(&format!("{row} button.secondary")).await;
    browser
        .wait_text(".notice.ok", |t| t.contains("已标记为「误判」"))
        .await;
    browser
        .wait_text(&format!("{row} [data-review]"), |t| t.contains("误判"))
        .await;

    let judged = app.api("/api/v1/moderation?chat_id=g-console-mod").await;
    let judged = judged["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(judged["review"]["verdict"], "wrong");
    assert_eq!(judged["review"]["by"], "operator:boss");
    let labels = app.api("/api/v1/moderation/labels").await;
    assert_eq!(labels["labels"][0]["label"], "ham");
    assert_eq!(labels["labels"][0]["entry_id"], id);
    let standing = app.api("/api/v1/moderation?check=pardon").await;
    assert_eq!(standing["entries"][0]["user_id"], "member-7", "{standing}");
    // A report or a pardon is not a finding: it cannot be judged.
    let pardon_id = standing["entries"][0]["id"].as_u64().unwrap();
    let (status, _) = app
        .api_call(
            Method::POST,
            &format!("/api/v1/moderation/{pardon_id}/review"),
            Some(json!({"verdict": "right"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    browser.close().await;
}

#[tokio::test]
async fn a_script_edit_is_checked_refused_with_its_line_then_saved_and_in_force() {
    use crate::helpers::{adopt_by, robot_message, text_body};
    let scripts = crate::helpers::scripts_copy();
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        scripts_dir: Some(scripts.path().to_owned()),
        ..Default::default()
    })
    .await;
    add_operator(&app, ADMIN, "admin").await;
    add_operator(&app, VIEWER, "viewer").await;
    let hook = app.fake.webhook_url("console-scripts");
    adopt_by(&app, "g-console-scripts", "boss", &hook).await;
    let file = scripts.path().join("keywords.toml");
    let original = std::fs::read_to_string(&file).unwrap();

    let browser = signed_in(&app, ADMIN).await;
    browser
        .goto(&app.url("/console/#/scripts?file=keywords.toml"))
        .await;
    browser.find("textarea[name=script]").await;
    let set_text = "document.querySelector('textarea[name=script]').value = arguments[0];";

    // A rule with a misspelt key: refused, the line shown, the file untouched.
    let broken = original.replacen("cooldown_secs = 60", "cooldown_sec = 60", 1);
    let bad_line = broken
        .lines()
        .position(|l| l.starts_with("cooldown_sec ="))
        .unwrap()
        + 1;
    browser.run(set_text, vec![json!(broken)]).await;
    browser.click(".bar-actions button").await;
    let refusal = browser
        .wait_text("[data-script-error]", |t| t.contains("没有保存"))
        .await;
    assert!(refusal.contains(&format!("第 {bad_line} 行")), "{refusal}");
    assert!(refusal.contains("cooldown_sec"), "{refusal}");
    browser.keep_screenshot("scripts").await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    let version = app.api("/api/v1/scripts/status").await["version"].clone();

    // A valid edit: saved, in force at once, in the history with its diff.
    let edited = original.replacen(
        "按月申报的税种，一般在每月1日至15日申报上月税款",
        "按月申报的税种，每月1日至15日申报上月税款（控制台改过）",
        1,
    );
    browser.run(set_text, vec![json!(edited)]).await;
    browser.click(".bar-actions button").await;
    browser
        .wait_text(".notice.ok", |t| t.contains("已保存并生效"))
        .await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
    let status = app.api("/api/v1/scripts/status").await;
    assert!(
        status["version"].as_u64() > version.as_u64(),
        "{status} after {version}"
    );
    let question = robot_message(
        "g-console-scripts",
        "m1",
        "console-script-q",
        &hook,
        &text_body("@会计小喇叭 每月几号申报？"),
    );
    let reply = app.reply_to(&question).await.unwrap();
    assert!(reply.contains("控制台改过"), "{reply}");
    let history = browser
        .wait_text("table[aria-label='修改记录']", |t| t.contains("+1"))
        .await;
    assert!(history.contains("boss"), "{history}");
    let audit = app.api("/api/v1/audit").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "PUT /api/v1/scripts/files/keywords.toml");
    assert!(
        entry["after"]["diff"]
            .as_str()
            .unwrap()
            .contains("控制台改过"),
        "{entry}"
    );

    // A viewer reads the scripts but cannot save.
    browser.click("#sign-out").await;
    browser
        .sign_in(&app.url("/console/"), VIEWER.0, VIEWER.1)
        .await;
    browser.wait_text("#who", |t| t.contains("只读")).await;
    browser
        .goto(&app.url("/console/#/scripts?file=keywords.toml"))
        .await;
    let readonly = browser
        .find("textarea[name=script]")
        .await
        .attr("readonly")
        .await
        .unwrap();
    assert!(readonly.is_some());
    let buttons = browser
        .run(
            "return document.querySelectorAll('.bar-actions button').length;",
            vec![],
        )
        .await;
    assert_eq!(buttons, 0);
    browser.close().await;
}

#[tokio::test]
async fn on_a_phone_the_menu_folds_away_and_the_keyboard_signs_in() {
    let app = spawn_app().await;
    add_operator(&app, ADMIN, "admin").await;
    adopt_groups(&app, &[("初级会计一群", &["会计"])]).await;
    let browser = Browser::start().await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&app.url("/console/")).await;
    // Keyboard only: the name, Tab to the password, Enter to sign in.
    browser.find("input[name=username]").await;
    browser
        .run("document.getElementById('username').focus();", vec![])
        .await;
    let focused = browser.client.active_element().await.unwrap();
    focused
        .send_keys(&format!("{}\u{E004}{}\u{E007}", ADMIN.0, ADMIN.1))
        .await
        .unwrap();
    browser
        .wait_text("[data-figure=adopted] .value", |t| t == "1")
        .await;
    browser.keep_screenshot("phone-overview").await;

    // The menu is folded behind its button, which opens it; a link in it navigates.
    let nav_shown = |browser: &Browser| {
        let browser = browser.client.clone();
        async move {
            browser
                .execute(
                    "return getComputedStyle(document.getElementById('nav')).display !== 'none';",
                    vec![],
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(nav_shown(&browser).await, json!(false));
    browser.click("#menu-toggle").await;
    assert_eq!(nav_shown(&browser).await, json!(true));
    let expanded = browser
        .find("#menu-toggle")
        .await
        .attr("aria-expanded")
        .await
        .unwrap();
    assert_eq!(expanded.as_deref(), Some("true"));
    browser.click("#nav a[href='#/groups']").await;
    browser
        .wait_text("[data-total]", |t| t.contains("共 1 个群"))
        .await;
    assert_eq!(
        nav_shown(&browser).await,
        json!(false),
        "the menu closes after a choice"
    );
    // The table scrolls inside its frame instead of widening the page.
    let page_wider = browser
        .run(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await;
    assert_eq!(page_wider, json!(false));
    browser.keep_screenshot("phone-groups").await;
    browser.close().await;
}

#[tokio::test]
async fn a_customer_groups_run_shows_the_groups_waiting_for_their_owners() {
    use crate::helpers::fake_wecom_api::FakeWecomApi;
    let fake = FakeWecomApi::start(crate::customer_groups::five_groups()).await;
    let (app, _scripts) = crate::customer_groups::app_broadcasting(&fake, "").await;
    add_operator(&app, ADMIN, "admin").await;
    let run_id = app.start_report().await;
    app.wait_run(&run_id, |r| r["awaiting_confirmation"] == 5)
        .await;
    let browser = signed_in(&app, ADMIN).await;
    let link = format!("/console/#/broadcasts?run={}", run_id.replace('@', "%40"));
    browser.goto(&app.url(&link)).await;
    browser
        .wait_text("[data-run-counts]", |t| t.contains("待群主确认 5"))
        .await;
    let receipts = browser
        .wait_text("table[aria-label='回执']", |t| {
            t.contains("待群主确认发送")
        })
        .await;
    assert!(receipts.contains("teacher_li"), "{receipts}");
    // The broadcasts page lists the owners who have not sent, longest waiting first.
    browser.goto(&app.url("/console/#/broadcasts")).await;
    let waiting = browser
        .wait_text("table[aria-label='待群主确认']", |t| {
            t.contains("teacher_zhao")
        })
        .await;
    assert!(
        waiting.contains("teacher_li老师（teacher_li）") && waiting.contains("teacher_wang"),
        "{waiting}"
    );
    browser.close().await;
}
