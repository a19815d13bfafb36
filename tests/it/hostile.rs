//! Slow and hostile clients: a header trickled line by line, a body that never arrives, idle
//! keep-alive connections, and shutdown with such clients connected.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Reads until the server closes the connection (or `limit` passes); returns what it said and
/// how long it took.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection was still open after {limit:?}: {}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Starts a client that sends a request line, then a header line every 200 ms, never ending the
/// header; it stops when the server closes the connection.
async fn trickler(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /wecom/robot/trumpet HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    stream
}

#[tokio::test]
async fn a_client_trickling_its_header_is_disconnected() {
    let app = spawn_app_with(Options {
        server: "header_read_timeout_secs = 1".into(),
        ..Options::default()
    })
    .await;
    let mut stream = trickler(&app).await;
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer
                .write_all(format!("X-Line-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let started = Instant::now();
    let closed = async {
        let mut buf = [0u8; 256];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = closed => {}
        () = trickle => panic!("the server kept a trickling client for 10 s"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "disconnected only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408() {
    let app = spawn_app_with(Options {
        server: "body_read_timeout_secs = 1".into(),
        ..Options::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"POST /wecom/robot/trumpet?msg_signature=a&timestamp=1&nonce=n HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n<xml>",
        )
        .await
        .unwrap();
    let (answer, took) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = spawn_app_with(Options {
        server: "idle_timeout_secs = 1".into(),
        ..Options::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, took) = read_until_closed(&mut stream, Duration::from_secs(8)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(7),
        "closed after {took:?}"
    );
}

/// SIGTERM (here: the shutdown signal) with slow clients and idle connections open: the service
/// stops within the grace period instead of waiting on them.
#[tokio::test]
async fn shutdown_does_not_wait_on_slow_or_idle_clients() {
    let mut app = spawn_app_with(Options {
        server: "shutdown_grace_secs = 2\nheader_read_timeout_secs = 60\nidle_timeout_secs = 60"
            .into(),
        ..Options::default()
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(trickler(&app).await);
    }
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("the service stopped");
    // The connections' grace, then the outbox's (nothing queued: at once).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_oversized_body_is_answered_413() {
    let app = spawn_app().await;
    let huge = serde_json::json!({"webhook_url": "x".repeat(300 * 1024)});
    let (status, _) = app
        .api_call(reqwest::Method::POST, "/api/v1/groups", Some(huge))
        .await;
    assert_eq!(status, 413, "an admin body over 256 KiB");
    let response = app
        .http
        .post(app.url("/wecom/robot/trumpet?msg_signature=a&timestamp=1&nonce=n"))
        .body(vec![b'a'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "a callback body over 64 KiB");
}

/// A local HTTP server that counts requests; `redirect_to` makes it answer 302 to that URL.
async fn counting_server(
    redirect_to: Option<String>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let counted = std::sync::Arc::clone(&counted);
        let redirect_to = redirect_to.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            match redirect_to {
                Some(to) => axum::response::Redirect::temporary(&to).into_response(),
                None => (axum::http::StatusCode::OK, "secret").into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, hits)
}

/// Blind SSRF: an image URL in a callback is fetched only from `wecom.media_hosts`, and a
/// redirect from a listed host to an unlisted one is not followed.
#[tokio::test]
async fn images_are_fetched_only_from_media_hosts_and_redirects_stay_there() {
    use std::sync::atomic::Ordering;
    let (internal, internal_hits) = counting_server(None).await;
    let (listed, listed_hits) =
        counting_server(Some(format!("http://{internal}/latest/meta-data"))).await;
    let app = spawn_app_with(Options {
        wecom: format!("media_hosts = [\"{listed}\"]"),
        ..Options::default()
    })
    .await;
    let hook = app.fake.webhook_url("ssrf");
    adopt_by(&app, "g-ssrf", "boss", &hook).await;
    let image = |msg_id: &str, url: &str| {
        robot_message(
            "g-ssrf",
            "stranger",
            msg_id,
            &hook,
            &format!(
                "<MsgType>image</MsgType><Image><ImageUrl><![CDATA[{url}]]></ImageUrl></Image>"
            ),
        )
    };
    let answered = app
        .post_callback(&image(
            "img-1",
            &format!("http://{internal}/latest/meta-data"),
        ))
        .await;
    assert_eq!(answered.status(), 200);
    assert_eq!(
        internal_hits.load(Ordering::SeqCst),
        0,
        "an unlisted host was fetched"
    );
    let answered = app
        .post_callback(&image("img-2", &format!("http://{listed}/a.png")))
        .await;
    assert_eq!(answered.status(), 200);
    assert_eq!(
        listed_hits.load(Ordering::SeqCst),
        1,
        "the listed host is fetched"
    );
    assert_eq!(
        internal_hits.load(Ordering::SeqCst),
        0,
        "a redirect off the list was followed"
    );
}

/// Ids from a callback get the admin API's length limit: a 10,000-character ChatId is refused,
/// and nothing of it is stored.
#[tokio::test]
async fn a_callback_with_an_oversized_id_is_refused_and_nothing_is_kept() {
    let app = spawn_app().await;
    let hook = app.fake.webhook_url("long-ids");
    let long_chat = "c".repeat(10_000);
    for plaintext in [
        robot_message(
            &long_chat,
            "u",
            "m-1",
            &hook,
            &text_body("@会计小喇叭 帮助"),
        ),
        robot_message(
            "g-ok",
            &"u".repeat(129),
            "m-2",
            &hook,
            &text_body("@会计小喇叭 帮助"),
        ),
        robot_message(
            "g-ok",
            "u",
            &"m".repeat(300),
            &hook,
            &text_body("@会计小喇叭 帮助"),
        ),
    ] {
        assert_eq!(app.post_callback(&plaintext).await.status(), 400);
    }
    assert!(app.groups().await.is_empty(), "nothing adopted");
    // A normal one still works.
    let fine = robot_message("g-ok", "u", "m-3", &hook, &text_body("@会计小喇叭 帮助"));
    assert!(app.reply_to(&fine).await.is_some());
}
