//! The admin API and the health check.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn healthz_needs_no_token() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn groups_need_the_right_bearer_token() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/groups");
    let none = app.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = app
        .http
        .get(&url)
        .bearer_auth("admin-token-for-tests-0002")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = app
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let page: serde_json::Value = right.json().await.unwrap();
    assert_eq!(page["groups"].as_array().unwrap().len(), 0);
    assert_eq!(page["total"], 0);
    // The scheme is case-insensitive (RFC 7235); the token is not.
    for (value, status) in [
        (format!("bearer {ADMIN_TOKEN}"), StatusCode::OK),
        (format!("BEARER  {ADMIN_TOKEN} "), StatusCode::OK),
        (
            format!("Bearer {}", ADMIN_TOKEN.to_uppercase()),
            StatusCode::UNAUTHORIZED,
        ),
        (format!("Basic {ADMIN_TOKEN}"), StatusCode::UNAUTHORIZED),
        (ADMIN_TOKEN.to_owned(), StatusCode::UNAUTHORIZED),
    ] {
        let answer = app
            .http
            .get(&url)
            .header("Authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{value}");
    }
}

#[tokio::test]
async fn without_an_admin_token_everyone_is_refused() {
    // The harness always sets a token, so this service is built from the defaults directly.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[storage]\npath = \"{}\"\n",
        dir.path().join("s.redb").display()
    );
    let config = trumpet::config::Config::from_toml_str(&toml).unwrap();
    assert!(config.admin.token.is_none());
    let app = trumpet::app::App::build(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(listener, async {
        let _ = rx.await;
    }));
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/groups"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Every admin route is behind the one authentication layer: no token is 401 before the body
/// is read (a malformed body does not turn it into a 400), and a path that is no route stays 404.
#[tokio::test]
async fn every_admin_route_needs_the_token() {
    let app = spawn_app().await;
    let routes = [
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/operators"),
        ("POST", "/api/v1/operators"),
        ("DELETE", "/api/v1/operators/x"),
        ("PUT", "/api/v1/operators/x/password"),
        ("GET", "/api/v1/groups"),
        ("POST", "/api/v1/groups"),
        ("GET", "/api/v1/groups/g1"),
        ("PATCH", "/api/v1/groups/g1"),
        ("DELETE", "/api/v1/groups/g1"),
        ("PUT", "/api/v1/groups/g1/tags"),
        ("GET", "/api/v1/groups/g1/sends"),
        ("GET", "/api/v1/groups/g1/members"),
        ("POST", "/api/v1/groups/g1/removals"),
        ("POST", "/api/v1/groups/g1/joins"),
        ("PUT", "/api/v1/groups/g1/roles/u1"),
        ("PUT", "/api/v1/groups/g1/rules/r1"),
        ("PUT", "/api/v1/groups/g1/approved/u1"),
        ("GET", "/api/v1/groups/g1/red-envelope-tests"),
        ("POST", "/api/v1/groups/g1/red-envelope-tests"),
        ("GET", "/api/v1/groups/g1/health"),
        ("GET", "/api/v1/red-envelope-schedules"),
        ("GET", "/api/v1/red-envelope-tests/t1"),
        ("GET", "/api/v1/red-envelope-tests/t1/claims.csv"),
        ("POST", "/api/v1/red-envelope-tests/t1/cancel"),
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/moderation"),
        ("GET", "/api/v1/moderation/blacklist"),
        ("DELETE", "/api/v1/moderation/blacklist/u1"),
        ("GET", "/api/v1/rules"),
        ("GET", "/api/v1/accounts"),
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/j1/run"),
        ("GET", "/api/v1/runs/r1"),
        ("POST", "/api/v1/runs/r1/resend"),
        ("POST", "/api/v1/simulate"),
        ("GET", "/api/v1/scripts/status"),
        ("GET", "/api/v1/feeds"),
        ("POST", "/api/v1/feeds/refresh"),
        ("GET", "/api/v1/overview"),
        ("POST", "/api/v1/bulk/tags"),
        ("GET", "/api/v1/groups/g1/activity"),
        ("GET", "/api/v1/runs"),
        ("GET", "/api/v1/red-envelope-tests"),
        ("GET", "/api/v1/moderation/approved"),
        ("GET", "/api/v1/moderation/labels"),
        ("POST", "/api/v1/moderation/1/review"),
        ("POST", "/api/v1/moderation/rejudge"),
        ("GET", "/api/v1/scripts/files"),
        ("GET", "/api/v1/scripts/files/keywords.toml"),
        ("PUT", "/api/v1/scripts/files/keywords.toml"),
        ("GET", "/api/v1/scripts/history"),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = app
            .http
            .request(method.clone(), app.url(path))
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            answer.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{method} {path}");
    }
    let nowhere = app
        .http
        .get(app.url("/api/v1/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
}

/// The group list filters and pages: `status`, `tag` (folded like stored tags), `channel`, `q`
/// (name or id), `stage`, and `limit`/`cursor` walking every group once in chat-id order.
#[tokio::test]
async fn the_group_list_filters_and_pages() {
    let app = spawn_app().await;
    adopt_by(&app, "robot-1", "boss", &app.fake.webhook_url("robot-1")).await;
    for (chat, name, tag) in [
        ("push-a", "广州财税1群", "province:广东"),
        ("push-b", "广州财税2群", "province:广东"),
        ("push-c", "北京财税群", "province:北京"),
    ] {
        let (status, _) = app
            .api_call(
                reqwest::Method::POST,
                "/api/v1/groups",
                Some(serde_json::json!({
                    "webhook_url": app.fake.webhook_url(chat),
                    "chat_id": chat,
                    "name": name,
                    "tags": [tag],
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = app
        .api_call(reqwest::Method::DELETE, "/api/v1/groups/push-c", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["chat_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.api("/api/v1/groups").await;
    assert_eq!(ids(&all), ["push-a", "push-b", "push-c", "robot-1"]);
    assert_eq!(all["total"], 4);
    assert_eq!(all["groups"][3]["channel"], "wecom-robot");
    assert_eq!(all["groups"][0]["channel"], "push-only");
    for (query, expected) in [
        ("status=released", vec!["push-c"]),
        ("status=adopted&channel=push-only", vec!["push-a", "push-b"]),
        ("channel=wecom-robot", vec!["robot-1"]),
        // Typed with a Chinese input method: the full-width colon folds like stored tags.
        (
            "tag=province%EF%BC%9A%E5%B9%BF%E4%B8%9C",
            vec!["push-a", "push-b"],
        ),
        ("q=%E5%8C%97%E4%BA%AC", vec!["push-c"]),
        ("q=ROBOT", vec!["robot-1"]),
        ("stage=new", vec!["push-a", "push-b", "robot-1"]),
        ("stage=dead", vec![]),
    ] {
        let page = app.api(&format!("/api/v1/groups?{query}")).await;
        assert_eq!(ids(&page), expected, "{query}: {page}");
        assert!(page["next_cursor"].is_null(), "{query}");
    }
    // Two at a time: every group once, in order, then no cursor.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/groups?limit=2&cursor={c}"),
            None => "/api/v1/groups?limit=2".to_owned(),
        };
        let page = app.api(&path).await;
        walked.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(walked, ["push-a", "push-b", "push-c", "robot-1"]);
    for bad in [
        "limit=0",
        "limit=501",
        "status=gone",
        "channel=fax",
        "stage=asleep",
        "tag=a%20b",
    ] {
        let (status, body) = app
            .api_call(reqwest::Method::GET, &format!("/api/v1/groups?{bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

/// Issue 18: every change made through the admin API is an audit entry — who (the admin token),
/// what (the method and path, the request with secrets replaced), the answer, and the group's
/// settings before and after; reads and refused callers leave none.
#[tokio::test]
async fn changes_through_the_api_are_audited_with_before_and_after() {
    let app = spawn_app().await;
    let (status, group) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/groups",
            Some(serde_json::json!({
                "webhook_url": app.fake.webhook_url("audit-secret-key"),
                "name": "审计群",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let chat = group["chat_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .api_put(
            &format!("/api/v1/groups/{chat}/tags"),
            serde_json::json!({"tags": ["province:广东"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Reads, a simulation, and a change without the token are not entries.
    app.api("/api/v1/groups").await;
    let (status, _) = app
        .api_call(
            reqwest::Method::POST,
            "/api/v1/simulate",
            Some(serde_json::json!({"group": chat, "from": "u1", "text": "开票"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refused = app
        .http
        .put(app.url(&format!("/api/v1/groups/{chat}/tags")))
        .json(&serde_json::json!({"tags": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let audit = app.api("/api/v1/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    let tags = &entries[0];
    assert_eq!(tags["actor"], "admin-token", "{tags}");
    assert_eq!(tags["action"], format!("PUT /api/v1/groups/{chat}/tags"));
    assert_eq!(tags["status"], 200);
    assert_eq!(tags["before"]["tags"], serde_json::json!([]), "{tags}");
    assert_eq!(
        tags["after"]["tags"],
        serde_json::json!(["province:广东"]),
        "{tags}"
    );
    let adoption = &entries[1];
    assert_eq!(adoption["action"], "POST /api/v1/groups");
    assert_eq!(adoption["status"], 201);
    assert_eq!(adoption["request"]["webhook_url"], "***", "{adoption}");
    assert_eq!(adoption["request"]["name"], "审计群");
    assert!(
        !audit.to_string().contains("audit-secret-key"),
        "a webhook key reached the audit trail: {audit}"
    );
    // Paged newest first, filtered by who.
    let page = app.api("/api/v1/audit?limit=1").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .api(&format!("/api/v1/audit?limit=1&cursor={next}"))
        .await;
    assert_eq!(rest["entries"][0]["action"], "POST /api/v1/groups");
    assert_eq!(rest["next_cursor"], serde_json::Value::Null);
    let nobody = app.api("/api/v1/audit?actor=operator:wang").await;
    assert_eq!(nobody["entries"], serde_json::json!([]));
}

/// `POST /api/v1/session` as the console's sign-in form sends it.
async fn sign_in(app: &TestApp, name: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/session"))
        .json(&serde_json::json!({"username": name, "password": password}))
        .send()
        .await
        .unwrap()
}

/// The session a successful sign-in answered: its cookie (`name=value`) and its CSRF token.
async fn session_of(signed_in: reqwest::Response) -> (String, String) {
    assert_eq!(signed_in.status(), StatusCode::OK);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = signed_in.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_owned())
}

/// A request carrying a session `cookie` (`name=value`).
fn with_cookie(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("cookie", cookie.to_owned())
}

/// Issue 18: operators sign in with their name and password and use the admin API with the
/// session cookie (HttpOnly, SameSite=Strict): a viewer reads only, a change needs the session's
/// CSRF token, the audit names the operator, five wrong passwords lock the name out, signing out
/// ends the session, and after a restart the old cookie is refused cleanly.
#[tokio::test]
async fn operators_sign_in_and_their_session_is_role_and_csrf_checked() {
    let mut app = spawn_app().await;
    app.stop().await;
    {
        let store = trumpet::store::Store::open(&app.dir.path().join("trumpet.redb")).unwrap();
        let now = chrono::Utc::now();
        use trumpet::domain::OperatorRole;
        use trumpet::runtime::operators::add;
        add(
            &store,
            "wang",
            OperatorRole::Operator,
            "wang's long password",
            now,
        )
        .unwrap();
        add(
            &store,
            "li",
            OperatorRole::Viewer,
            "li's long password",
            now,
        )
        .unwrap();
    }
    app.restart().await;
    let answer = sign_in(&app, "wang", "wang's long password").await;
    assert_eq!(answer.status(), StatusCode::OK);
    let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["role"], "operator");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();

    let groups = with_cookie(&app, reqwest::Method::GET, "/api/v1/groups", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.status(), StatusCode::OK);
    let tags = serde_json::json!({"tags": ["type:新手群"]});
    let no_csrf = with_cookie(
        &app,
        reqwest::Method::PUT,
        "/api/v1/groups/g1/tags",
        &cookie,
    )
    .json(&tags)
    .send()
    .await
    .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let changed = with_cookie(
        &app,
        reqwest::Method::PUT,
        "/api/v1/groups/g1/tags",
        &cookie,
    )
    .header("x-csrf-token", &csrf)
    .json(&tags)
    .send()
    .await
    .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let audit = app.api("/api/v1/audit").await;
    assert_eq!(audit["entries"][0]["actor"], "operator:wang", "{audit}");
    assert_eq!(
        audit["entries"].as_array().unwrap().len(),
        1,
        "refusals are not changes"
    );

    // A viewer reads, and is refused a change even with its CSRF token.
    let (viewer_cookie, viewer_csrf) =
        session_of(sign_in(&app, "li", "li's long password").await).await;
    let refused = with_cookie(
        &app,
        reqwest::Method::PUT,
        "/api/v1/groups/g1/tags",
        &viewer_cookie,
    )
    .header("x-csrf-token", &viewer_csrf)
    .json(&tags)
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Wrong passwords: refused, then locked out — the right one too.
    for _ in 0..5 {
        assert_eq!(
            sign_in(&app, "li", "not the password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app, "li", "li's long password").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in(&app, "nobody", "whatever it is").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Signing out ends the session.
    let out = with_cookie(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/session",
        &viewer_cookie,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let gone = with_cookie(&app, reqwest::Method::GET, "/api/v1/groups", &viewer_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);

    // A restart forgets sessions: the cookie is refused cleanly and signing in works again.
    app.restart().await;
    let stale = with_cookie(&app, reqwest::Method::GET, "/api/v1/session", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        sign_in(&app, "wang", "wang's long password").await.status(),
        StatusCode::OK
    );
}

/// Issue 18: accounts through the admin API (the console's 账号 page stands on it) — only the
/// admin token or a signed-in admin; passwords never in answers or the audit trail; a new
/// password signs the account out everywhere; the last admin stays.
#[tokio::test]
async fn admins_manage_accounts_through_the_api() {
    let app = spawn_app().await;
    let post = |body: serde_json::Value| {
        app.api_call(reqwest::Method::POST, "/api/v1/operators", Some(body))
    };
    let (status, _) = post(
        serde_json::json!({"name": "boss", "role": "admin", "password": "boss long password"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        post(serde_json::json!({"name": "boss", "role": "viewer", "password": "another password"}))
            .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) =
        post(serde_json::json!({"name": "li", "role": "viewer", "password": "short"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The admin, signed in, adds a viewer; the viewer may not see the accounts.
    let (boss_cookie, boss_csrf) =
        session_of(sign_in(&app, "boss", "boss long password").await).await;
    let added = with_cookie(
        &app,
        reqwest::Method::POST,
        "/api/v1/operators",
        &boss_cookie,
    )
    .header("x-csrf-token", &boss_csrf)
    .json(&serde_json::json!({"name": "li", "role": "viewer", "password": "li's long password"}))
    .send()
    .await
    .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let (li_cookie, _) = session_of(sign_in(&app, "li", "li's long password").await).await;
    let listed = with_cookie(&app, reqwest::Method::GET, "/api/v1/operators", &li_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::FORBIDDEN);
    let listed = app.api("/api/v1/operators").await;
    let names: Vec<&str> = listed["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["boss", "li"]);
    assert!(!listed.to_string().contains("argon2"), "{listed}");

    // A new password signs li out; the old one no longer works.
    let reset = with_cookie(
        &app,
        reqwest::Method::PUT,
        "/api/v1/operators/li/password",
        &boss_cookie,
    )
    .header("x-csrf-token", &boss_csrf)
    .json(&serde_json::json!({"password": "li's new long password"}))
    .send()
    .await
    .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let after = with_cookie(&app, reqwest::Method::GET, "/api/v1/session", &li_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        sign_in(&app, "li", "li's long password").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let (status, _) = app
        .api_call(reqwest::Method::DELETE, "/api/v1/operators/boss", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the last admin stays");
    let (status, _) = app
        .api_call(reqwest::Method::DELETE, "/api/v1/operators/li", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let audit = app.api("/api/v1/audit").await.to_string();
    assert!(audit.contains("operator:boss"), "{audit}");
    assert!(
        !audit.contains("long password"),
        "a password reached the audit trail: {audit}"
    );
}

/// Issue 18: a sign-in always starts a new session — the session cookie a browser brought to it
/// (planted by someone else, or the operator's own earlier one) ends, and the new cookie differs.
#[tokio::test]
async fn signing_in_ends_the_session_the_browser_brought() {
    let app = spawn_app().await;
    for (name, role) in [("wang", "operator"), ("li", "viewer")] {
        let (status, body) = app
            .api_call(
                reqwest::Method::POST,
                "/api/v1/operators",
                Some(serde_json::json!({
                    "name": name, "role": role, "password": format!("{name}'s long password"),
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Someone signs in as the viewer and leaves that cookie in the operator's browser.
    let (planted, _) = session_of(sign_in(&app, "li", "li's long password").await).await;
    let signed_in = app
        .http
        .post(app.url("/api/v1/session"))
        .header("cookie", planted.clone())
        .json(&serde_json::json!({"username": "wang", "password": "wang's long password"}))
        .send()
        .await
        .unwrap();
    let (fresh, _) = session_of(signed_in).await;
    assert_ne!(fresh, planted);
    let old = with_cookie(&app, reqwest::Method::GET, "/api/v1/session", &planted)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let who: serde_json::Value = with_cookie(&app, reqwest::Method::GET, "/api/v1/session", &fresh)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["name"], "wang");
}

/// A group's members can be listed the most talkative first (the console's default), a page at
/// a time in that order; an unknown order is refused.
#[tokio::test]
async fn members_are_listed_by_how_much_they_talk() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("talkers");
    adopt_by(&app, "g-talkers", "boss", &hook).await;
    for (i, member) in ["a", "b", "b", "c", "b", "c"].iter().enumerate() {
        let said = robot_message(
            "g-talkers",
            member,
            &format!("talk-{i}"),
            &hook,
            &text_body("@会计小喇叭 你好"),
        );
        assert!(app.post_callback(&said).await.status().is_success());
    }
    app.wait_group("g-talkers", |g| g["messages"] == 6).await;
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_id = app.api("/api/v1/groups/g-talkers/members").await;
    assert_eq!(ids(&by_id), ["a", "b", "c"]);
    let first = app
        .api("/api/v1/groups/g-talkers/members?sort=messages&limit=2")
        .await;
    assert_eq!(ids(&first), ["b", "c"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .api(&format!(
            "/api/v1/groups/g-talkers/members?sort=messages&limit=2&cursor={}",
            url_escape(&cursor)
        ))
        .await;
    assert_eq!(ids(&rest), ["a"]);
    let (status, _) = app
        .api_call(
            reqwest::Method::GET,
            "/api/v1/groups/g-talkers/members?sort=loudest",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A cursor as a query value.
fn url_escape(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
