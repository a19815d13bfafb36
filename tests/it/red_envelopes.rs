//! Red-envelope tests end to end through the group-robot channel: an admin starts one in the
//! chat (or the operator through the admin API), the envelope is pushed through the webhook,
//! members claim with @-messages carrying the phrase, duplicate and late claims are refused, the
//! window ends on the timer, the results reach the group and its admins, and the ledger is
//! exported.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::fake_wecom::Received;
use crate::helpers::*;

/// The text of a webhook post.
fn content(received: &Received) -> String {
    received.body["text"]["content"]
        .as_str()
        .or(received.body["markdown"]["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Waits for a webhook post to `key` containing `needle`; returns it.
async fn wait_post(app: &TestApp, key: &str, needle: &str) -> Received {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(post) = app
            .fake
            .received(key)
            .into_iter()
            .find(|r| r.answered == 0 && content(r).contains(needle))
        {
            return post;
        }
        assert!(
            Instant::now() < deadline,
            "no post with {needle:?} to {key}: {:?}",
            app.fake.received(key)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The claim phrase an envelope post announces (between 「 and 」).
fn phrase_in(post: &str) -> String {
    let start = post.find('「').expect("a phrase") + '「'.len_utf8();
    let end = start + post[start..].find('」').unwrap();
    post[start..end].to_owned()
}

/// Polls the test until `check` holds.
async fn wait_test(app: &TestApp, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let test = app.api(&format!("/api/v1/red-envelope-tests/{id}")).await;
        if check(&test) {
            return test;
        }
        assert!(Instant::now() < deadline, "test {id} never matched: {test}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ledger(app: &TestApp, id: &str) -> (StatusCode, String) {
    let response = app
        .http
        .get(app.url(&format!("/api/v1/red-envelope-tests/{id}/claims.csv")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn an_admin_runs_a_test_in_the_chat_and_the_group_is_measured() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("env-chat");
    adopt_by(&app, "g-env", "boss", &hook).await;
    let say = |user: &str, id: &str, text: &str| {
        robot_message(
            "g-env",
            user,
            id,
            &hook,
            &text_body(&format!("@会计小喇叭 {text}")),
        )
    };
    let refused = app
        .reply_to(&say("zhangsan", "e-0", "红包测试"))
        .await
        .unwrap();
    assert!(refused.contains("需要大当家"), "{refused}");
    let bad = app
        .reply_to(&say("boss", "e-1", "红包测试 0.02元 3份"))
        .await
        .unwrap();
    assert!(
        bad.contains("没有开始") && bad.contains("每份至少"),
        "{bad}"
    );

    // Three shares, a window of four seconds.
    let ack = app
        .reply_to(&say("boss", "e-2", "红包测试 0.30元 3份 4秒"))
        .await
        .unwrap();
    assert!(ack.contains("0.30 元，3 份"), "{ack}");
    let envelope = content(&wait_post(&app, "env-chat", "口令").await);
    assert!(envelope.contains("@会计小喇叭"), "{envelope}");
    let phrase = phrase_in(&envelope);
    let tests = app.api("/api/v1/groups/g-env/red-envelope-tests").await["tests"].clone();
    let id = tests[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(tests[0]["claim_phrase"], phrase.as_str());
    assert_eq!(tests[0]["started_by"], "chat:boss");
    // Once the post is delivered, the running test says when.
    let running = wait_test(&app, &id, |t| t["posted_at"].is_string()).await;
    assert_eq!(running["state"], "running", "{running}");

    let first = app
        .reply_to(&say("m1", "e-3", &phrase))
        .await
        .expect("a claim is answered");
    assert!(
        first.contains("抢到") && first.contains("还剩 2 份"),
        "{first}"
    );
    assert!(first.contains("<Item><![CDATA[m1]]></Item>"), "{first}");
    let twice = app.reply_to(&say("m1", "e-4", &phrase)).await.unwrap();
    assert!(twice.contains("只能抢一份"), "{twice}");
    // The same phrase typed without the space still claims.
    let second = app
        .reply_to(&say("m2", "e-5", &phrase.replace(' ', "")))
        .await
        .unwrap();
    assert!(second.contains("还剩 1 份"), "{second}");
    // A retried callback gets the same answer and takes no second share.
    let retried = app.reply_to(&say("m2", "e-5", &phrase)).await.unwrap();
    assert_eq!(retried, second);

    // The window ends with two of three shares taken.
    let test = wait_test(&app, &id, |t| t["state"] == "finished").await;
    let late = app.reply_to(&say("m3", "e-6", &phrase)).await.unwrap();
    assert!(late.contains("已经结束"), "{late}");
    assert_eq!(test["verdict"], "alive", "{test}");
    assert!(
        test["posted_at"].is_string(),
        "the envelope was delivered: {test}"
    );
    assert_eq!(test["claims"].as_array().unwrap().len(), 2, "{test}");
    assert_eq!(test["claims"][0]["user_id"], "m1");
    assert_eq!(test["claims"][0]["name"], "用户m1");
    let amounts: u64 = test["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["amount_fen"].as_u64().unwrap())
        .sum();
    assert_eq!(test["claimed_fen"], amounts);
    assert_eq!(test["results"]["claims"], 2);
    assert!(test["results"]["first_claim_secs"].as_u64().unwrap() <= 4);
    assert_eq!(test["results"]["all_claimed_secs"], Value::Null);

    // The group hears how it went; the verdict goes to the operators' alert group, not into
    // the group (issue 27 §2).
    let finished = content(&wait_post(&app, "env-chat", "红包已结束").await);
    assert!(finished.contains("2/3"), "{finished}");
    let report = wait_post(&app, ALERTS_KEY, "红包测试结果").await;
    assert!(
        content(&report).contains("活跃") && content(&report).contains("g-env"),
        "{}",
        content(&report)
    );
    assert!(
        !app.fake
            .received("env-chat")
            .iter()
            .any(|r| content(r).contains("红包测试结果")),
        "the verdict was posted into the group"
    );

    let (status, csv) = ledger(&app, &id).await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[0].starts_with("test_id,chat_id,group,share,user_id,name,amount_fen"),
        "{csv}"
    );
    assert!(rows[0].contains("claimed_at (Asia/Shanghai)"), "{csv}");
    assert!(rows[1].contains(",m1,用户m1,"), "{csv}");
    // Local time to the second, as a spreadsheet shows it: `2026-12-06 09:30:15`.
    let claimed_at = rows[1].split(',').nth(8).unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(claimed_at, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{claimed_at}"
    );
}

#[tokio::test]
async fn the_operator_starts_a_test_through_the_api() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("env-api");
    adopt_by(&app, "g-env-api", "boss", &hook).await;
    let path = "/api/v1/groups/g-env-api/red-envelope-tests";
    let post = |body: Value| app.api_call(reqwest::Method::POST, path, Some(body));

    let (status, body) = post(json!({"total_fen": 10, "shares": 20})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("0.01"), "{body}");
    let (status, _) = post(json!({"window_secs": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(json!({"total": 10})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups/nope/red-envelope-tests",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A push-only group never sends the bot its members' messages: nobody could claim.
    let (status, push_only) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups",
            Some(json!({"webhook_url": app.fake.webhook_url("env-push"), "name": "只推送的群"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{push_only}");
    let chat = push_only["chat_id"].as_str().unwrap();
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/groups/{chat}/red-envelope-tests"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("push-only"),
        "{body}"
    );

    // The defaults of red_envelope.toml: 20.00 yuan, 20 shares, 2 hours.
    let (status, test) = post(json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{test}");
    assert_eq!(
        (&test["total_fen"], &test["shares"], &test["window_secs"]),
        (&json!(2000), &json!(20), &json!(7200))
    );
    let id = test["id"].as_str().unwrap().to_owned();
    let phrase = test["claim_phrase"].as_str().unwrap().to_owned();
    let (status, body) = post(json!({"shares": 5})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["running_id"], id.as_str());

    let envelope = content(&wait_post(&app, "env-api", "口令").await);
    assert!(
        envelope.contains(&phrase) && envelope.contains("20.00"),
        "{envelope}"
    );
    let claim = robot_message(
        "g-env-api",
        "m1",
        "a-1",
        &hook,
        &text_body(&format!("@会计小喇叭 {phrase}")),
    );
    assert!(app.reply_to(&claim).await.unwrap().contains("还剩 19 份"));
    let running = wait_test(&app, &id, |t| t["claims"].as_array().unwrap().len() == 1).await;
    assert_eq!(running["state"], "running");
    assert_eq!(running["verdict"], Value::Null);
    let (_, csv) = ledger(&app, &id).await;
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let (status, _) = ledger(&app, "rt-nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let unauthorized = app
        .http
        .get(app.url(&format!("/api/v1/red-envelope-tests/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}

/// On a bot account members claim with a plain message, and grabs of a real WeChat envelope
/// the account posted (a `wx.` notice) are recorded as claims already paid by WeChat.
#[tokio::test]
async fn on_a_bot_account_any_message_claims_and_wechat_grabs_are_recorded() {
    use crate::helpers::fake_onebot::sent_text;
    use crate::onebot::{
        BOT_ACCOUNT, GROUP, adopted_by_owner, app_with, scripts, wait_members, world,
    };

    let scripts = scripts();
    let app = app_with(&scripts, "").await;
    let world = world(&[]);
    world.lock().unwrap().groups.clear();
    let fake = adopted_by_owner(&app, &world).await;
    let (status, test) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/groups/{GROUP}/red-envelope-tests"),
            Some(json!({"total_fen": 300, "shares": 3, "window_secs": 600})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{test}");
    let id = test["id"].as_str().unwrap().to_owned();
    let phrase = test["claim_phrase"].as_str().unwrap().to_owned();
    let sent_with = |needle: &str| {
        fake.requests("send_message")
            .into_iter()
            .filter(|r| sent_text(r).contains(needle))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent_with(&phrase).is_empty() {
        assert!(Instant::now() < deadline, "the envelope was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let envelope = sent_text(&sent_with(&phrase)[0]);
    assert!(envelope.contains("在群里发送"), "no @ needed: {envelope}");

    // A plain message with the phrase claims; no mention of the bot needed.
    fake.text(GROUP, "wxid_spam", &phrase);
    wait_test(&app, &id, |t| t["claims"].as_array().unwrap().len() == 1).await;
    // The account reports a member grabbing a real envelope it posted.
    fake.send(json!({
        "id": "grab-1", "time": 1, "type": "notice", "detail_type": "wx.red_packet_grabbed",
        "sub_type": "", "self": {"platform": "wechat", "user_id": BOT_ACCOUNT},
        "group_id": GROUP, "user_id": "wxid_owner", "amount": "0.66"
    }));
    let test = wait_test(&app, &id, |t| t["claims"].as_array().unwrap().len() == 2).await;
    assert_eq!(test["claims"][0]["via"], "phrase");
    assert_eq!(test["claims"][1]["via"], "wechat_envelope");
    assert_eq!(test["claims"][1]["user_id"], "wxid_owner");
    assert_eq!(test["claims"][1]["amount_fen"], 66);
    // The same member grabbing again is not a second share.
    fake.send(json!({
        "id": "grab-2", "time": 1, "type": "notice", "detail_type": "wx.red_packet_grabbed",
        "sub_type": "", "self": {"platform": "wechat", "user_id": BOT_ACCOUNT},
        "group_id": GROUP, "user_id": "wxid_owner", "amount": "0.10"
    }));
    // The last share goes to a newcomer: the envelope is empty and the test finished at once.
    fake.notice(
        "join-c",
        "group_member_increase",
        "invite",
        GROUP,
        "wxid_c",
        "wxid_owner",
    );
    wait_members(&app, |ids| ids.contains(&"wxid_c".to_owned())).await;
    fake.text(GROUP, "wxid_c", &format!("抢{phrase}"));
    let test = wait_test(&app, &id, |t| t["state"] == "finished").await;
    assert_eq!(test["claims"].as_array().unwrap().len(), 3, "{test}");
    assert_eq!(test["claims"][2]["user_id"], "wxid_c");
    // Three claimers of three members (the bot account is not counted).
    assert_eq!(test["results"]["claimer_ratio"], 1.0, "{test}");
    assert_eq!(test["results"]["silent_claimers"], 3, "{test}");
    // The verdict goes to the operators' alert group and privately to the owner (issue 27 §2),
    // not into the bot account's group.
    let report = wait_post(&app, ALERTS_KEY, "红包测试结果").await;
    assert!(content(&report).contains(GROUP), "{}", content(&report));
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent_with("红包测试结果").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the owner was never told privately"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for sent in sent_with("红包测试结果") {
        assert_eq!(sent["params"]["detail_type"], "private", "{sent}");
        assert_eq!(sent["params"]["user_id"], "wxid_owner", "{sent}");
    }
    let (_, csv) = ledger(&app, &id).await;
    assert!(
        csv.contains(",wxid_owner,") && csv.contains(",wechat_envelope"),
        "{csv}"
    );
}

#[tokio::test]
async fn scheduled_tests_are_listed_with_their_next_slots() {
    let scripts = scripts_copy();
    let file = scripts.path().join("red_envelope.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(
        "\n[[schedule]]\nname = \"monthly\"\ncron = \"0 20 1 * *\"\ntargets = [\"tag:type:新手群\"]\nshares = 10\n",
    );
    std::fs::write(&file, text).unwrap();
    let app = spawn_app_with(Options {
        scripts_dir: Some(scripts.path().to_owned()),
        ..Options::default()
    })
    .await;
    let schedules = app.api("/api/v1/red-envelope-schedules").await;
    let monthly = &schedules[0];
    assert_eq!(monthly["name"], "monthly");
    assert_eq!(monthly["targets"], json!(["tag:type:新手群"]));
    assert_eq!(
        (
            &monthly["total_fen"],
            &monthly["shares"],
            &monthly["window_secs"]
        ),
        (&json!(2000), &json!(10), &json!(7200)),
        "the defaults fill what the schedule leaves out"
    );
    let next = monthly["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    assert!(
        next[0].as_str().unwrap().ends_with("T20:00:00+08:00"),
        "{next:?}"
    );
}

/// Issue 27 §4: a running test can be stopped — through the API (the group is told), by an
/// admin in the chat, and by releasing its group — and a cancelled test answers claims as
/// cancelled, keeps no results and is not resumed.
#[tokio::test]
async fn a_running_test_is_cancelled_through_the_api_the_chat_or_a_release() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("env-cancel");
    adopt_by(&app, "g-cancel", "boss", &hook).await;
    let say = |user: &str, id: &str, text: &str| {
        robot_message(
            "g-cancel",
            user,
            id,
            &hook,
            &text_body(&format!("@会计小喇叭 {text}")),
        )
    };
    let start = || {
        app.api_call(
            reqwest::Method::POST,
            "/api/v1/groups/g-cancel/red-envelope-tests",
            Some(json!({})),
        )
    };
    let app = &app;
    let cancel = |id: String| async move {
        app.api_call(
            reqwest::Method::POST,
            &format!("/api/v1/red-envelope-tests/{id}/cancel"),
            None,
        )
        .await
    };

    // Through the API.
    let (status, test) = start().await;
    assert_eq!(status, StatusCode::CREATED, "{test}");
    let id = test["id"].as_str().unwrap().to_owned();
    let phrase = test["claim_phrase"].as_str().unwrap().to_owned();
    let claimed = app.reply_to(&say("m1", "c-1", &phrase)).await.unwrap();
    assert!(claimed.contains("抢到"), "{claimed}");
    let (status, cancelled) = cancel(id.clone()).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["cancelled_by"], "admin-api");
    let told = content(&wait_post(app, "env-cancel", "已取消").await);
    assert!(told.contains(&id) && told.contains(&phrase), "{told}");
    let late = app.reply_to(&say("m2", "c-2", &phrase)).await.unwrap();
    assert!(late.contains("已取消"), "{late}");
    let stored = app.api(&format!("/api/v1/red-envelope-tests/{id}")).await;
    assert_eq!(stored["state"], "cancelled", "{stored}");
    assert_eq!(stored["results"], Value::Null, "{stored}");
    assert_eq!(stored["claims"].as_array().unwrap().len(), 1, "{stored}");
    let (status, body) = cancel(id.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cancelled"),
        "{body}"
    );
    let (status, _) = cancel("rt-nope".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // In the chat: members may not, admins may; with nothing running the admin is told so.
    let (status, test) = start().await;
    assert_eq!(status, StatusCode::CREATED, "{test}");
    let id = test["id"].as_str().unwrap().to_owned();
    let refused = app
        .reply_to(&say("m1", "c-3", "取消红包测试"))
        .await
        .unwrap();
    assert!(refused.contains("需要大当家"), "{refused}");
    let done = app
        .reply_to(&say("boss", "c-4", "取消红包测试"))
        .await
        .unwrap();
    assert!(done.contains("已取消"), "{done}");
    let stored = wait_test(app, &id, |t| t["state"] == "cancelled").await;
    assert_eq!(stored["cancelled_by"], "chat:boss", "{stored}");
    let nothing = app
        .reply_to(&say("boss", "c-5", "取消红包测试"))
        .await
        .unwrap();
    assert!(nothing.contains("没有正在进行"), "{nothing}");

    // Releasing the group cancels its test.
    let (status, test) = start().await;
    assert_eq!(status, StatusCode::CREATED, "{test}");
    let id = test["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .api_call(reqwest::Method::DELETE, "/api/v1/groups/g-cancel", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let stored = app.api(&format!("/api/v1/red-envelope-tests/{id}")).await;
    assert_eq!(stored["state"], "cancelled", "{stored}");
    assert_eq!(stored["cancelled_by"], "release", "{stored}");
}

/// Issue 27 §14: the member who takes the last share hears 「抢到」 before the group hears
/// 「红包已抢完」.
#[tokio::test]
async fn the_last_claimer_hears_first_and_the_group_after() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("env-last");
    adopt_by(&app, "g-last", "boss", &hook).await;
    let (status, test) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups/g-last/red-envelope-tests",
            Some(json!({"total_fen": 100, "shares": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{test}");
    let phrase = test["claim_phrase"].as_str().unwrap();
    wait_post(&app, "env-last", "口令").await;
    let claim = robot_message(
        "g-last",
        "m1",
        "last-1",
        &hook,
        &text_body(&format!("@会计小喇叭 {phrase}")),
    );
    let answer = app.reply_to(&claim).await.unwrap();
    assert!(answer.contains("抢到"), "{answer}");
    assert!(
        !app.fake
            .received("env-last")
            .iter()
            .any(|r| content(r).contains("已抢完")),
        "the announcement went out before the claimer's answer"
    );
    wait_post(&app, "env-last", "已抢完").await;
}
