//! WeCom customer groups through a self-built app, end to end: the real service reads a fake of
//! WeCom's server API (tokens that expire, pages, a group that cannot be read) and takes the
//! app's sealed customer-group events at `/wecom/app/{id}`.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use trumpet::domain::BotId;
use trumpet::wire::wecom::crypto::{CallbackCrypto, EncodingAesKey};
use trumpet::wire::wecom::robot::RobotEndpoint;

use crate::helpers::fake_wecom_api::{APP_SECRET, CORP_ID, FakeGroup, FakeWecomApi};
use crate::helpers::*;

pub const APP: &str = "kefu";

/// The service with a `wecom-app` bot reading `fake`, plus `more` TOML.
pub async fn app_reading(
    fake: &FakeWecomApi,
    scripts: Option<&tempfile::TempDir>,
    more: &str,
) -> TestApp {
    spawn_app_with(Options {
        scripts_dir: scripts.map(|s| s.path().to_owned()),
        more: format!(
            r#"
[[bots]]
id = "{APP}"
channel = "wecom-app"
corp_id = "{CORP_ID}"
secret = "{APP_SECRET}"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
api_base = "{base}"
{more}
"#,
            base = fake.base(),
        ),
        ..Options::default()
    })
    .await
}

/// Seals `plaintext` as WeCom seals the app's events (receive id = the corp id).
pub fn sealed(plaintext: &str) -> (String, String) {
    let crypto = CallbackCrypto::new(TOKEN, EncodingAesKey::parse(AES_KEY).unwrap(), CORP_ID);
    RobotEndpoint::new(BotId::parse(APP).unwrap(), crypto, 86_400)
        .forge_callback(
            plaintext,
            &Utc::now().timestamp().to_string(),
            &format!("n{}", rand::random::<u32>()),
            rand::random(),
        )
        .unwrap()
}

pub async fn post_event(app: &TestApp, plaintext: &str) -> reqwest::Response {
    let (query, body) = sealed(plaintext);
    app.http
        .post(app.url(&format!("/wecom/app/{APP}?{query}")))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A `change_external_chat` event as WeCom documents it.
pub fn chat_change(
    chat: &str,
    change: &str,
    detail: &str,
    members: &[&str],
    version: u32,
) -> String {
    let items: String = members
        .iter()
        .map(|m| format!("<Item>{m}</Item>"))
        .collect();
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[{chat}]]></ChatId>\
         <ChangeType><![CDATA[{change}]]></ChangeType><UpdateDetail><![CDATA[{detail}]]></UpdateDetail>\
         <JoinScene>3</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>{n}</MemChangeCnt>\
         <MemChangeList>{items}</MemChangeList><LastMemVer>v{version}</LastMemVer><CurMemVer>v{next}</CurMemVer></xml>",
        now = Utc::now().timestamp(),
        n = members.len(),
        next = version + 1,
    )
}

async fn members(app: &TestApp, chat: &str) -> Vec<Value> {
    let page = app
        .api(&format!("/api/v1/groups/{chat}/members?limit=500"))
        .await;
    serde_json::from_value(page["members"].clone()).unwrap_or_default()
}

/// Polls the member list of `chat` until `check` holds.
async fn wait_members(app: &TestApp, chat: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = members(app, chat).await;
        if check(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "members of {chat} never matched: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn five_groups() -> Vec<(&'static str, FakeGroup)> {
    vec![
        (
            "wrA",
            FakeGroup::with_customers("初级会计1群", "teacher_li", 3),
        ),
        (
            "wrB",
            FakeGroup::with_customers("初级会计2群", "teacher_li", 2),
        ),
        (
            "wrC",
            FakeGroup::with_customers("税务交流群", "teacher_wang", 4),
        ),
        (
            "wrD",
            FakeGroup::with_customers("中级备考群", "teacher_wang", 1),
        ),
        (
            "wrE",
            FakeGroup::with_customers("发票答疑群", "teacher_zhao", 2),
        ),
    ]
}

#[tokio::test]
async fn every_customer_group_is_adopted_across_pages_despite_busy_answers_an_expired_token_and_an_unreadable_group()
 {
    let fake = FakeWecomApi::start(five_groups()).await;
    fake.fail_get("wrD", 60011);
    // The first list call is refused as busy (45009) and tried again; the token expires before
    // the second page.
    fake.busy(1);
    fake.expire_tokens_after(2);
    let app = app_reading(&fake, None, "").await;
    for chat in ["wrA", "wrB", "wrC", "wrD", "wrE"] {
        let g = app.wait_group(chat, |g| g["status"] == "adopted").await;
        assert_eq!(g["channel"], "wecom-app", "{g}");
        assert_eq!(g["adopted_via"], "groupchat_list", "{g}");
        assert_eq!(g["bot"], APP);
    }
    let c = app
        .wait_group("wrC", |g| g["owner"] == "teacher_wang")
        .await;
    assert_eq!(c["name"], "税务交流群");
    // The channel says what it cannot do there.
    let detail = app.api("/api/v1/groups/wrC").await;
    assert_eq!(
        detail["capabilities"]["sees_every_message"], false,
        "{detail}"
    );
    assert_eq!(detail["capabilities"]["reports_joins"], true, "{detail}");
    assert_eq!(
        detail["capabilities"]["can_remove_members"], false,
        "{detail}"
    );
    assert_eq!(detail["capabilities"]["can_post"], false, "{detail}");
    let listed = wait_members(&app, "wrC", |m| m.len() == 5).await;
    assert!(listed.iter().all(|m| m["in_group"] == true), "{listed:#?}");
    assert!(listed.iter().any(|m| m["name"] == "学员0"), "{listed:#?}");
    // The unreadable group is kept from the list alone: no members, no owner yet.
    assert!(members(&app, "wrD").await.is_empty());
    assert_eq!(fake.tokens_issued(), 2, "one refresh after 42001");
    // Three pages and the busy answer's retry (the call refused for its token is not counted).
    assert_eq!(fake.calls("groupchat/list").len(), 4);
}

#[tokio::test]
async fn a_join_is_kept_before_the_answer_and_read_again_for_names() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let app = app_reading(&fake, None, "").await;
    wait_members(&app, "wrA", |m| m.len() == 4).await;

    fake.add_member("wrA", "wmNewcomer", "新学员小周", 3);
    let event = chat_change("wrA", "update", "add_member", &["wmNewcomer"], 4);
    let started = Instant::now();
    let response = post_event(&app, &event).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "the app's events take no reply"
    );
    // Committed before the answer: listed at once.
    let listed = members(&app, "wrA").await;
    assert!(
        listed.iter().any(|m| m["user_id"] == "wmNewcomer"),
        "{listed:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    // Then the group is read again: the newcomer's name fills in.
    wait_members(&app, "wrA", |m| {
        m.iter()
            .any(|m| m["user_id"] == "wmNewcomer" && m["name"] == "新学员小周")
    })
    .await;
    // WeCom's retry of the same event counts nothing twice.
    let again = post_event(&app, &event).await;
    assert_eq!(again.status(), reqwest::StatusCode::OK);
    let health = app.api("/api/v1/groups/wrA/health").await;
    assert_eq!(health["activity"]["joins_7d"], 1, "{health}");

    // An event that says members joined without naming them: the group is read again and the
    // new member counts as a join.
    fake.add_member("wrA", "wmUnnamed", "小吴", 3);
    let unnamed = chat_change("wrA", "update", "add_member", &[], 9);
    assert_eq!(
        post_event(&app, &unnamed).await.status(),
        reqwest::StatusCode::OK
    );
    wait_members(&app, "wrA", |m| {
        m.iter()
            .any(|m| m["user_id"] == "wmUnnamed" && m["name"] == "小吴")
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = app.api("/api/v1/groups/wrA/health").await;
        if health["activity"]["joins_7d"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unnamed join was not counted: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A leave removes the member.
    fake.remove_member("wrA", "wmNewcomer");
    let left = chat_change("wrA", "update", "del_member", &["wmNewcomer"], 5);
    assert_eq!(
        post_event(&app, &left).await.status(),
        reqwest::StatusCode::OK
    );
    let listed = members(&app, "wrA").await;
    assert!(
        !listed.iter().any(|m| m["user_id"] == "wmNewcomer"),
        "{listed:#?}"
    );
}

#[tokio::test]
async fn a_new_group_is_adopted_on_its_event_and_a_dismissed_one_released() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let app = app_reading(&fake, None, "").await;
    app.wait_group("wrE", |g| g["status"] == "adopted").await;

    fake.set_group(
        "wrNew",
        FakeGroup::with_customers("新开班群", "teacher_li", 2),
    );
    let created = chat_change("wrNew", "create", "", &[], 0);
    assert_eq!(
        post_event(&app, &created).await.status(),
        reqwest::StatusCode::OK
    );
    let g = app
        .wait_group("wrNew", |g| {
            g["status"] == "adopted" && g["name"] == "新开班群"
        })
        .await;
    assert_eq!(g["owner"], "teacher_li");

    let dismissed = chat_change("wrE", "dismiss", "", &[], 0);
    assert_eq!(
        post_event(&app, &dismissed).await.status(),
        reqwest::StatusCode::OK
    );
    let g = app.wait_group("wrE", |g| g["status"] == "released").await;
    assert_eq!(g["release_reason"], "dismissed in WeCom");
}

#[tokio::test]
async fn a_group_no_longer_listed_is_released_at_the_next_sync() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let mut app = app_reading(&fake, None, "").await;
    app.wait_group("wrB", |g| g["status"] == "adopted").await;
    fake.remove_group("wrB");
    app.restart().await;
    let g = app.wait_group("wrB", |g| g["status"] == "released").await;
    assert!(
        g["release_reason"]
            .as_str()
            .unwrap()
            .contains("no longer in the app's customer-group list"),
        "{g}"
    );
    app.wait_group("wrA", |g| g["status"] == "adopted").await;
}

#[tokio::test]
async fn the_event_url_verifies_and_forged_or_malformed_events_are_refused() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let app = app_reading(&fake, None, "").await;
    // URL verification: the bare plaintext of echostr.
    let crypto = CallbackCrypto::new(TOKEN, EncodingAesKey::parse(AES_KEY).unwrap(), CORP_ID);
    let echostr = crypto.encrypt(rand::random(), "echo-4711").unwrap();
    let ts = Utc::now().timestamp().to_string();
    let signature = crypto.sign(&ts, "nonce1", &echostr);
    let url = reqwest::Url::parse_with_params(
        &app.url(&format!("/wecom/app/{APP}")),
        &[
            ("msg_signature", signature.as_str()),
            ("timestamp", &ts),
            ("nonce", "nonce1"),
            ("echostr", &echostr),
        ],
    )
    .unwrap();
    let answer = app.http.get(url).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "echo-4711");

    // A forged signature.
    let (query, body) = sealed(&chat_change("wrA", "dismiss", "", &[], 0));
    let forged = query.replace("msg_signature=", "msg_signature=0");
    let response = app
        .http
        .post(app.url(&format!("/wecom/app/{APP}?{forged}")))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Sealed, but not an event that can be read.
    let response = post_event(
        &app,
        "<xml><Event>change_external_chat</Event><ChatId>wrA</ChatId></xml>",
    )
    .await;
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    // Another event of the app: acknowledged, nothing done.
    let other = "<xml><ToUserName>ww</ToUserName><MsgType>event</MsgType><Event>change_external_contact</Event></xml>";
    assert_eq!(
        post_event(&app, other).await.status(),
        reqwest::StatusCode::OK
    );
    // An unknown app.
    let response = app
        .http
        .post(app.url(&format!("/wecom/app/nobody?{query}")))
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    // None of it released the group.
    app.wait_group("wrA", |g| g["status"] == "adopted").await;
}

fn receipt<'a>(run: &'a Value, chat: &str) -> &'a Value {
    run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == chat)
        .unwrap_or_else(|| panic!("no receipt for {chat}: {run:#}"))
}

/// A service reading `fake` whose jobs send at once, results read every second.
pub async fn app_broadcasting(fake: &FakeWecomApi, more: &str) -> (TestApp, tempfile::TempDir) {
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let app = app_reading(
        fake,
        Some(&scripts),
        &format!("result_poll_secs = 1\n{more}"),
    )
    .await;
    for chat in ["wrA", "wrB", "wrC", "wrD", "wrE"] {
        app.wait_group(chat, |g| g["status"] == "adopted" && !g["owner"].is_null())
            .await;
    }
    (app, scripts)
}

#[tokio::test]
async fn the_morning_report_is_one_task_per_owner_and_delivered_only_once_the_owner_sends_it() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let (app, _scripts) = app_broadcasting(&fake, "").await;
    let run_id = app.start_report().await;
    let tasks = fake.wait_tasks(|t| t.len() == 3).await;
    let mut by_owner: Vec<(String, Vec<String>)> = tasks
        .iter()
        .map(|t| {
            let mut chats = t.chats.clone();
            chats.sort();
            (t.sender.clone(), chats)
        })
        .collect();
    by_owner.sort();
    assert_eq!(
        by_owner,
        vec![
            (
                "teacher_li".to_owned(),
                vec!["wrA".to_owned(), "wrB".to_owned()]
            ),
            (
                "teacher_wang".to_owned(),
                vec!["wrC".to_owned(), "wrD".to_owned()]
            ),
            ("teacher_zhao".to_owned(), vec!["wrE".to_owned()]),
        ]
    );
    assert!(!tasks[0].text.is_empty() && tasks.iter().all(|t| t.text == tasks[0].text));
    // Nothing counts as delivered before WeCom says an owner sent it.
    let run = app
        .wait_run(&run_id, |r| r["awaiting_confirmation"] == 5)
        .await;
    assert_eq!(run["delivered"], 0, "{run:#}");
    assert_eq!(run["state"], "running");
    let waiting = receipt(&run, "wrA");
    assert_eq!(waiting["state"], "awaiting_confirmation");
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap()
            .contains("teacher_li"),
        "{waiting}"
    );

    fake.confirm("teacher_li");
    let run = app.wait_run(&run_id, |r| r["delivered"] == 2).await;
    assert_eq!(receipt(&run, "wrA")["state"], "delivered");
    assert_eq!(receipt(&run, "wrB")["state"], "delivered");
    assert_eq!(receipt(&run, "wrC")["state"], "awaiting_confirmation");
    // The operator sees who is lagging.
    let open = app.api("/api/v1/mass-tasks?open=true").await;
    let lagging: Vec<&str> = open["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["owner"].as_str().unwrap())
        .collect();
    assert_eq!(lagging, ["teacher_wang", "teacher_zhao"], "{open:#}");
    let wang = &open["tasks"][0];
    assert_eq!(wang["sends"]["awaiting_confirmation"], 2, "{wang}");
    assert_eq!(wang["owner_name"], "teacher_wang老师", "{wang}");
    assert!(wang["waiting_minutes"].is_i64(), "{wang}");

    // WeCom's cap: the group had already received its mass sends.
    let zhao = tasks.iter().find(|t| t.sender == "teacher_zhao").unwrap();
    fake.fail_in_task(&zhao.msgid, "wrE", 3);
    fake.confirm("teacher_zhao");
    fake.confirm("teacher_wang");
    let run = app.wait_run(&run_id, |r| r["state"] == "done").await;
    assert_eq!(run["delivered"], 4, "{run:#}");
    assert_eq!(run["failed"], 1, "{run:#}");
    assert!(
        receipt(&run, "wrE")["last_error"]
            .as_str()
            .unwrap()
            .contains("status 3"),
        "{run:#}"
    );
    // Planning the same slot again adds no task.
    app.start_report().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.tasks().len(), 3);
}

#[tokio::test]
async fn a_lost_answer_and_a_restart_in_the_middle_create_no_second_task() {
    let fake = FakeWecomApi::start(five_groups()).await;
    // WeCom creates the first task but its answer is lost (502).
    fake.lose_next_add();
    let (mut app, _scripts) = app_broadcasting(&fake, "").await;
    let run_id = app.start_report().await;
    fake.wait_tasks(|t| !t.is_empty()).await;
    // Stopped before the next attempt: the task whose answer was lost is in the store, creating.
    app.restart().await;
    let run = app
        .wait_run(&run_id, |r| r["awaiting_confirmation"] == 5)
        .await;
    assert_eq!(run["planned"], 5, "{run:#}");
    let tasks = fake.tasks();
    assert_eq!(
        tasks.len(),
        3,
        "one task per owner, the lost one found again: {tasks:#?}"
    );
    // The corp's mass sends were read to find it.
    assert!(!fake.calls("get_groupmsg_list_v2").is_empty());
    fake.confirm("teacher_li");
    fake.confirm("teacher_wang");
    fake.confirm("teacher_zhao");
    let run = app.wait_run(&run_id, |r| r["state"] == "done").await;
    assert_eq!(run["delivered"], 5, "{run:#}");
    assert_eq!(fake.tasks().len(), 3);
}

#[tokio::test]
async fn owners_who_have_not_sent_are_reminded_and_an_expired_task_is_stopped() {
    let fake = FakeWecomApi::start(five_groups()).await;
    // Reminded after 1.2 s; the broadcast expires after 6 s.
    let (app, _scripts) = app_broadcasting(
        &fake,
        "remind_after_minutes = 0.02\n[outbox.expire_after_minutes]\nbroadcast = 0.1\n",
    )
    .await;
    let run_id = app.start_report().await;
    fake.wait_tasks(|t| t.len() == 3).await;
    fake.confirm("teacher_li");
    fake.wait_tasks(|t| {
        t.iter()
            .filter(|t| t.sender != "teacher_li")
            .all(|t| t.reminders >= 1)
    })
    .await;
    let run = app.wait_run(&run_id, |r| r["state"] == "done").await;
    assert_eq!(run["delivered"], 2, "{run:#}");
    assert_eq!(run["skipped"], 3, "{run:#}");
    assert!(
        receipt(&run, "wrC")["last_error"]
            .as_str()
            .unwrap()
            .contains("stopped in WeCom"),
        "{run:#}"
    );
    assert_eq!(fake.calls("cancel_groupmsg_send").len(), 2);
    let li = fake
        .tasks()
        .into_iter()
        .find(|t| t.sender == "teacher_li")
        .unwrap();
    assert_eq!(li.reminders, 0, "an owner who sent is not reminded");
}

/// Polls the fake's welcome templates until `check` holds.
async fn wait_templates(
    fake: &FakeWecomApi,
    check: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
) -> std::collections::BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let templates = fake.templates();
        if check(&templates) {
            return templates;
        }
        assert!(
            Instant::now() < deadline,
            "templates never matched: {templates:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn welcome_templates_follow_the_welcome_file() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let scripts = scripts_copy();
    let app = app_reading(&fake, Some(&scripts), "").await;
    // The shipped template is created at start.
    let first = wait_templates(&fake, |t| t.len() == 1).await;
    let (id, text) = first.iter().next().unwrap();
    assert!(text.contains("%NICKNAME%"), "{text}");

    // Its text edited: the same template changes (owners keep what they attached).
    let file = scripts.path().join("welcome.toml");
    let edited = std::fs::read_to_string(&file).unwrap().replace(
        "🎉 欢迎 %NICKNAME% 加入本群！",
        "👋 %NICKNAME% 你好，欢迎入群！",
    );
    std::fs::write(&file, &edited).unwrap();
    let changed = wait_templates(&fake, |t| {
        t.get(id)
            .is_some_and(|text| text.contains("你好，欢迎入群"))
    })
    .await;
    assert_eq!(changed.len(), 1);
    assert_eq!(fake.calls("group_welcome_template/add").len(), 1);

    // A second entry added, the first removed.
    let start = edited.find("[[wecom_template]]").unwrap();
    let replaced = format!(
        "{}[[wecom_template]]\nname = \"考证群\"\ncontent = \"欢迎 %NICKNAME%，备考资料见群公告\"\n",
        &edited[..start]
    );
    std::fs::write(&file, replaced).unwrap();
    let last = wait_templates(&fake, |t| t.len() == 1 && !t.contains_key(id)).await;
    assert!(last.values().next().unwrap().contains("备考资料"));
    fake.wait_calls("group_welcome_template/del", 1).await;
    drop(app);
}

#[tokio::test]
async fn a_raid_in_a_customer_group_is_told_to_the_operators() {
    let fake = FakeWecomApi::start(five_groups()).await;
    let app = app_reading(&fake, None, "").await;
    wait_members(&app, "wrB", |m| m.len() == 3).await;
    // Eleven members within the shipped raid window (10 joins in 60 s).
    let raiders: Vec<String> = (0..11).map(|i| format!("wmRaider{i}")).collect();
    let names: Vec<&str> = raiders.iter().map(String::as_str).collect();
    let event = chat_change("wrB", "update", "add_member", &names, 3);
    assert_eq!(
        post_event(&app, &event).await.status(),
        reqwest::StatusCode::OK
    );
    let alerts = app.fake.wait_delivered(ALERTS_KEY, 1).await;
    let text = alerts[0].body["text"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("冲群警报") && text.contains("wrB"), "{text}");
    // Nothing was posted to the group itself (the app cannot).
    assert!(fake.tasks().is_empty());
}

#[tokio::test]
async fn a_send_expired_before_it_is_planned_goes_into_no_task() {
    let fake = FakeWecomApi::start(five_groups()).await;
    // Expired after 1.2 s, planned 3 s after it is due: never planned.
    let (app, _scripts) =
        app_broadcasting(&fake, "[outbox.expire_after_minutes]\nbroadcast = 0.02\n").await;
    let run_id = app.start_report().await;
    let run = app.wait_run(&run_id, |r| r["state"] == "done").await;
    assert_eq!(run["skipped"], 5, "{run:#}");
    assert!(
        receipt(&run, "wrA")["last_error"]
            .as_str()
            .unwrap()
            .starts_with("expired"),
        "{run:#}"
    );
    assert!(fake.tasks().is_empty());
}
