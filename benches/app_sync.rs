//! Syncing a self-built app's customer groups: a fake of WeCom's server API answers every call
//! `--latency-ms` late (50 by default) with `--groups` customer groups (5,000) of `--members`
//! members (200), listed 1,000 a page; an in-process Trumpet with a `wecom-app` bot reads them
//! all at start (`groupchat/list`, then `groupchat/get` a few at a time, within
//! `--per-minute` calls a minute per API path) and stores each group, its owner, name and
//! member list. Prints how long until every group and member list is stored, the calls made,
//! and the process's memory (the fake makes its answers on the fly and keeps nothing).
//!
//! ```sh
//! cargo bench --bench app_sync -- --groups 5000 --members 200 --latency-ms 50 --per-minute 10000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use trumpet::app::App;
use trumpet::config::Config;

#[path = "load/mod.rs"]
#[allow(dead_code)] // This run reads memory only; the rest is for the link runs.
mod load;

const ADMIN: &str = "bench-admin-token-000001";

struct Opts {
    groups: u64,
    members: u64,
    latency_ms: u64,
    per_minute: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        groups: 5000,
        members: 200,
        latency_ms: 50,
        per_minute: 10_000,
    };
    let raw: Vec<String> = std::env::args().collect();
    for pair in raw.windows(2) {
        let Ok(v) = pair[1].parse::<u64>() else {
            continue;
        };
        match pair[0].as_str() {
            "--groups" => o.groups = v.max(1),
            "--members" => o.members = v.max(1),
            "--latency-ms" => o.latency_ms = v,
            "--per-minute" => o.per_minute = v.clamp(1, 10_000),
            _ => {}
        }
    }
    o
}

struct Fake {
    groups: u64,
    members: u64,
    latency: Duration,
    gets: AtomicU64,
    calls: AtomicU64,
}

async fn gettoken(State(fake): State<Arc<Fake>>) -> Json<Value> {
    tokio::time::sleep(fake.latency).await;
    Json(json!({"errcode": 0, "access_token": "BENCHTOKEN", "expires_in": 7200}))
}

async fn api(
    State(fake): State<Arc<Fake>>,
    Path(api): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    tokio::time::sleep(fake.latency).await;
    fake.calls.fetch_add(1, Ordering::Relaxed);
    match api.as_str() {
        "groupchat/list" => {
            let from: u64 = body["cursor"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let to = (from + 1000).min(fake.groups);
            let list: Vec<Value> = (from..to)
                .map(|i| json!({"chat_id": format!("wrbench{i:06}"), "status": 0}))
                .collect();
            let next = if to < fake.groups {
                to.to_string()
            } else {
                String::new()
            };
            Json(json!({"errcode": 0, "group_chat_list": list, "next_cursor": next}))
        }
        "groupchat/get" => {
            fake.gets.fetch_add(1, Ordering::Relaxed);
            let chat = body["chat_id"].as_str().unwrap_or_default().to_owned();
            let owner = format!("owner{}", chat.len() % 50);
            let mut members = vec![
                json!({"userid": owner, "type": 1, "join_time": 1_600_000_000,
                "join_scene": 1, "name": "老师", "group_nickname": ""}),
            ];
            members.extend((1..fake.members).map(|j| {
                json!({"userid": format!("wm{chat}-{j}"), "type": 2, "join_time": 1_600_000_000,
                    "join_scene": 3, "name": format!("学员{j}"), "group_nickname": ""})
            }));
            Json(
                json!({"errcode": 0, "group_chat": {"chat_id": chat, "name": format!("客户群 {chat}"),
                "owner": owner, "member_list": members, "admin_list": []}}),
            )
        }
        _ => Json(json!({"errcode": 0})),
    }
}

fn main() {
    let o = opts();
    let dir = tempfile::tempdir().expect("temporary directory");
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults");
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let fake = Arc::new(Fake {
        groups: o.groups,
        members: o.members,
        latency: Duration::from_millis(o.latency_ms),
        gets: AtomicU64::new(0),
        calls: AtomicU64::new(0),
    });
    let listener = client
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the fake");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let router = axum::Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/externalcontact/{*api}", post(api))
        .with_state(Arc::clone(&fake));
    client.spawn(async move { axum::serve(listener, router).await });

    let rss_before = load::own_mib("VmRSS");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{store}"
[scripts]
dir = "{scripts}"
watch_interval_ms = 0
[admin]
token = "{ADMIN}"
[log]
level = "warn"
[[bots]]
id = "kefu"
channel = "wecom-app"
corp_id = "wwbench"
secret = "bench-secret"
token = "BenchToken123"
encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
api_base = "{base}"
api_per_minute = {per_minute}
"#,
        store = dir.path().join("bench.redb").display(),
        scripts = scripts.display(),
        per_minute = o.per_minute,
    );
    let app = App::build(Config::from_toml_str(&toml).expect("bench config")).expect("app builds");
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let http = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = http.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let serving = server.spawn(async move {
        app.serve(http, async {
            let _ = stopped.await;
        })
        .await
    });
    let result = client.block_on(wait_synced(&o, &fake, addr, started));
    let _ = stop.send(());
    let _ = server.block_on(serving);
    match result {
        Ok(took) => {
            println!(
                "synced {} customer groups of {} members ({} ms per call) in {:.1} s: {} groupchat/get, {} API calls in all",
                o.groups,
                o.members,
                o.latency_ms,
                took.as_secs_f64(),
                fake.gets.load(Ordering::Relaxed),
                fake.calls.load(Ordering::Relaxed),
            );
            println!(
                "process RSS: {rss_before:.1} MiB before the service, {:.1} MiB after the sync, {:.1} MiB peak (the fake keeps nothing)",
                load::own_mib("VmRSS"),
                load::own_mib("VmHWM")
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Waits until every group is adopted and the last one read has its whole member list.
async fn wait_synced(
    o: &Opts,
    fake: &Fake,
    addr: std::net::SocketAddr,
    started: Instant,
) -> Result<Duration, String> {
    let http = reqwest::Client::new();
    let deadline = started + Duration::from_secs(1800);
    let ask = |path: String| {
        let request = http.get(format!("http://{addr}{path}")).bearer_auth(ADMIN);
        async move {
            request
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json::<Value>()
                .await
                .map_err(|e| e.to_string())
        }
    };
    while fake.gets.load(Ordering::Relaxed) < o.groups {
        if Instant::now() > deadline {
            return Err("the groups were never all read".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let adopted = ask("/api/v1/groups?channel=wecom-app&status=adopted&limit=1".into()).await?;
        let last = format!("wrbench{:06}", o.groups - 1);
        let members = ask(format!("/api/v1/groups/{last}/members?limit=1")).await?;
        if adopted["total"].as_u64() == Some(o.groups)
            && members["total"].as_u64() == Some(o.members)
        {
            return Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            return Err(format!("not all stored: {adopted} {members}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
