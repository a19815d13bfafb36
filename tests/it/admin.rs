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
    assert_eq!(
        right.json::<Vec<serde_json::Value>>().await.unwrap().len(),
        0
    );
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
        ("GET", "/api/v1/scripts/status"),
        ("GET", "/api/v1/feeds"),
        ("POST", "/api/v1/feeds/refresh"),
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
