//! Criterion benchmark of what the operator console asks for, over HTTP against an in-process
//! Trumpet holding 10,000 adopted groups (names, tags, 28 days of talk from 1 to 8 members each,
//! some groups quiet for weeks): `GET /api/v1/overview` (the 概览 page) and pages of
//! `GET /api/v1/groups` (the 群组 page) — the default order, sorted by health, searched by name,
//! filtered by tag and by stage. The target is 300 ms server-side for each with 10,000 groups.
//! Also measured once, outside criterion: the first overview after start (the health ranking
//! computed), and — with `TRUMPET_BENCH_BROWSER=1` and Debian's chromium and chromium-driver —
//! a browser's load of the dashboard, from navigation to its figures drawn.
//!
//! Run: `cargo bench --bench console` (add `TRUMPET_BENCH_BROWSER=1` for the browser's load).
//! Figures are recorded in BENCHMARKS.md.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use trumpet::app::App;
use trumpet::config::Config;
use trumpet::domain::{BotId, ChatId, GroupSettings, Sender};
use trumpet::store::{GroupRecord, GroupStatus, SpeakerTally, Store};

const GROUPS: usize = 10_000;
/// Groups written per transaction while seeding.
const BATCH: usize = 100;
const TOKEN: &str = "console-bench-admin-token";
const TAGS: [&str; 5] = ["会计", "税务", "初级", "中级", "2026届"];

/// 10,000 adopted groups; group `g` talks on the last 28 days with `8 - g % 8` members, except
/// every tenth group, silent for the last three weeks (declining or dead).
fn populate(path: &std::path::Path, now: DateTime<Utc>) {
    let store = Store::open(path).unwrap();
    let bot = BotId::parse("bench").unwrap();
    for batch in 0..GROUPS / BATCH {
        store
            .write(|tx| {
                let mut tally = SpeakerTally::default();
                for g in batch * BATCH..(batch + 1) * BATCH {
                    let chat = ChatId::new(format!("wrkConsole{g:05}"));
                    let mut group = GroupRecord::new(chat.clone(), bot.clone());
                    group.status = GroupStatus::Adopted;
                    group.adopted_at = Some(now - chrono::Duration::days(120));
                    group.webhook_url = Some(format!(
                        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=bench-{g:05}"
                    ));
                    let quiet_since = if g % 10 == 0 { 21 } else { 0 };
                    for day in quiet_since..28 {
                        let at = now - chrono::Duration::days(day);
                        for m in 0..(8 - g % 8) {
                            let member = Sender {
                                user_id: format!("m{m}"),
                                ..Sender::default()
                            };
                            tx.record_message(&mut group, &member, at)?;
                            tally.add(chat.as_str(), &member.user_id, at);
                        }
                    }
                    tx.put_group(&group)?;
                    let settings = GroupSettings {
                        name: format!("{}交流{g}群", TAGS[g % TAGS.len()]),
                        tags: [TAGS[g % TAGS.len()].to_owned()].into(),
                        ..GroupSettings::default()
                    };
                    tx.put_settings(&chat, &settings)?;
                }
                tx.write_speaker_tally(&tally)
            })
            .unwrap();
    }
}

struct Service {
    url: String,
    http: reqwest::Client,
    client: tokio::runtime::Runtime,
    _server: tokio::runtime::Runtime,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Service {
    fn get(&self, path: &str) -> serde_json::Value {
        self.client.block_on(async {
            let response = self
                .http
                .get(format!("{}{path}", self.url))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.json().await.unwrap()
        })
    }
}

fn start(dir: &std::path::Path) -> Service {
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults");
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
token = "{TOKEN}"
[log]
level = "warn"
[[bots]]
id = "bench"
channel = "wecom-robot"
token = "benchtoken"
encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
"#,
        store = dir.join("bench.redb").display(),
        scripts = scripts.display(),
    );
    let app = App::build(Config::from_toml_str(&toml).expect("bench config")).expect("app");
    // The service on its own two threads, as in production; the client on another.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    server.spawn(async move {
        app.serve(listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    Service {
        url,
        http: reqwest::Client::new(),
        client,
        _server: server,
        _stop: stop,
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let seeding = Instant::now();
    populate(&dir.path().join("bench.redb"), Utc::now());
    eprintln!("seeded {GROUPS} groups in {:.1?}", seeding.elapsed());
    let service = start(dir.path());

    // The first look after a start computes the health ranking.
    let first = Instant::now();
    let overview = service.get("/api/v1/overview");
    eprintln!(
        "first overview (health ranking computed): {:.1?}",
        first.elapsed()
    );
    assert_eq!(overview["groups"]["adopted"], GROUPS);

    let mut group = c.benchmark_group("console_10000_groups");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for (name, path) in [
        ("overview", "/api/v1/overview"),
        ("groups_page", "/api/v1/groups?limit=50"),
        (
            "groups_sorted_by_health",
            "/api/v1/groups?sort=health&limit=50",
        ),
        (
            "groups_searched",
            "/api/v1/groups?q=%E7%A8%8E%E5%8A%A1%E4%BA%A4%E6%B5%81&limit=50",
        ),
        (
            "groups_by_tag",
            "/api/v1/groups?tag=%E5%88%9D%E7%BA%A7&sort=members&limit=50",
        ),
        ("groups_by_stage", "/api/v1/groups?stage=declining&limit=50"),
    ] {
        group.bench_function(name, |b| b.iter(|| service.get(path)));
    }
    group.finish();

    if std::env::var_os("TRUMPET_BENCH_BROWSER").is_some() {
        browser_load(&service);
    }
}

/// A headless Chromium signs in and loads the dashboard five times; prints the time from
/// navigation to the figures drawn (the page fetched, its modules, the session and the
/// overview).
fn browser_load(service: &Service) {
    use fantoccini::{ClientBuilder, Locator};
    let (status, body) = service.client.block_on(async {
        let r = service
            .http
            .post(format!("{}/api/v1/operators", service.url))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": "bench", "role": "viewer", "password": "bench password 1"}))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    assert!(status.is_success(), "{body}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = std::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver)");
    let profile = tempfile::tempdir().unwrap();
    let times = service.client.block_on(async {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", format!("--user-data-dir={}", profile.path().display())]}),
        );
        let browser = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(browser) => break browser,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let console = format!("{}/console/", service.url);
        browser.goto(&console).await.unwrap();
        browser
            .find(Locator::Css("input[name=username]"))
            .await
            .unwrap()
            .send_keys("bench")
            .await
            .unwrap();
        browser
            .find(Locator::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys("bench password 1")
            .await
            .unwrap();
        browser
            .find(Locator::Css("#sign-in-form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .wait()
            .for_element(Locator::Css("[data-figure=adopted]"))
            .await
            .unwrap();
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            browser
                .goto(&format!("{console}?reload={}", times.len()))
                .await
                .unwrap();
            browser
                .wait()
                .at_most(Duration::from_secs(30))
                .for_element(Locator::Css("[data-figure=adopted]"))
                .await
                .unwrap();
            times.push(started.elapsed());
        }
        let _ = browser.close().await;
        times
    });
    let _ = driver.kill();
    let _ = driver.wait();
    let mut sorted = times.clone();
    sorted.sort();
    eprintln!(
        "browser load of the dashboard (5 loads): {times:.0?}; median {:.0?}",
        sorted[2]
    );
}

criterion_group!(console, benches);
criterion_main!(console);
