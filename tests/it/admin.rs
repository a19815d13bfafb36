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
