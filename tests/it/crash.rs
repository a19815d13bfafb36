//! The real `trumpet` binary killed with SIGKILL: straight after answering callbacks (every
//! answered event is kept), and in the middle of a broadcast and started again after a scheduled
//! slot went by while it was down (no planned send is lost, delivery resumes by itself,
//! duplicates stay within the sends in flight, and the missed slot is caught up or, past its
//! `catch_up_within_minutes`, recorded as skipped).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};
use trumpet::domain::BotId;
use trumpet::wire::wecom::crypto::{CallbackCrypto, EncodingAesKey};
use trumpet::wire::wecom::robot::RobotEndpoint;

use crate::helpers::*;

const GROUPS: usize = 30;

/// A child process killed (SIGKILL) when dropped, so that a failing test leaves none behind.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary serving on `port` with the test configuration; its log goes to `log`.
fn start_binary(config: &std::path::Path, port: u16, log: &std::path::Path) -> Process {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_trumpet"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("TRUMPET_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn,trumpet::schedule=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Process)
        .unwrap()
}

/// An HTTP client that gives up after 30 s: a server that stops answering fails the test
/// instead of hanging it.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

struct Binary {
    http: reqwest::Client,
    base: String,
}

impl Binary {
    /// Waits until `process` answers its health check; a process that exits fails at once.
    async fn wait_healthy(&self, process: &mut Process, log: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .is_err()
        {
            if let Ok(Some(status)) = process.0.try_wait() {
                panic!(
                    "the service exited ({status}); its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the service never answered; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    /// The run `run_id` once `check` accepts it.
    async fn wait_run(&self, run_id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let response = self
                .http
                .get(format!("{}/api/v1/runs/{run_id}", self.base))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            if response.status().is_success() {
                let run: Value = response.json().await.unwrap();
                if check(&run) {
                    return run;
                }
                assert!(
                    Instant::now() < deadline,
                    "run {run_id} never got there: {run}"
                );
            } else {
                assert!(Instant::now() < deadline, "run {run_id} never appeared");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The next whole minute after `at`.
fn next_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = at.with_second(0).unwrap().with_nanosecond(0).unwrap();
    floor + chrono::Duration::minutes(1)
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// Morning reports each key received.
fn reports(fake: &FakeWecom, key: &str) -> usize {
    fake.received(key)
        .iter()
        .filter(|r| {
            r.answered == 0
                && r.body["markdown"]["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("财税早报"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_broadcast_and_a_slot_missed_while_down_lose_nothing() {
    // The first process must die before the next minute: start early in a minute.
    if Utc::now().second() > 25 {
        sleep_until(next_minute(Utc::now()) + chrono::Duration::seconds(1)).await;
    }
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scripts = scripts_copy();
    jobs_send_at_once(scripts.path());
    let schedules = scripts.path().join("schedules.toml");
    let mut text = std::fs::read_to_string(&schedules).unwrap();
    // Two jobs due every minute: one catches a missed slot up, one may not.
    for (name, catch_up) in [("minutely", 120), ("strict", 0)] {
        text.push_str(&format!(
            "\n[[job]]\nname = \"{name}\"\ncron = \"* * * * *\"\ntargets = \"all\"\ncatch_up_within_minutes = {catch_up}\nformat = \"text\"\ncontent = \"{name} {{{{ job.slot }}}}\"\n"
        ));
    }
    std::fs::write(&schedules, text).unwrap();
    let config = dir.path().join("trumpet.toml");
    std::fs::write(
        &config,
        config_toml(
            &dir.path().join("trumpet.redb"),
            &fake,
            &Options {
                // Slow enough to kill it half-way: 30 groups take about 6 s.
                wecom: "global_per_second = 5".into(),
                scripts_dir: Some(scripts.path().to_owned()),
                ..Options::default()
            },
        ),
    )
    .unwrap();
    let log = dir.path().join("trumpet.log");
    let port = restartable_port();
    let binary = Binary {
        http: client(),
        base: format!("http://127.0.0.1:{port}"),
    };

    let started = Utc::now();
    let mut first = start_binary(&config, port, &log);
    binary.wait_healthy(&mut first, &log).await;
    for i in 0..GROUPS {
        binary
            .call(
                reqwest::Method::POST,
                "/api/v1/groups",
                Some(json!({"webhook_url": fake.webhook_url(&format!("crash-{i}")), "chat_id": format!("crash-{i}")})),
            )
            .await;
    }
    let run = binary
        .call(
            reqwest::Method::POST,
            "/api/v1/jobs/morning-report/run",
            None,
        )
        .await;
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let delivered = |fake: &FakeWecom| {
        (0..GROUPS)
            .filter(|i| reports(fake, &format!("crash-{i}")) > 0)
            .count()
    };
    while delivered(&fake) < 8 {
        assert!(Instant::now() < deadline, "the broadcast never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first); // SIGKILL
    let killed_at = delivered(&fake);
    // What the killed process had recorded as delivered: the rest of what WeCom received may
    // go again (an outcome is written within milliseconds, but not before the answer).
    let recorded = {
        let store = trumpet::store::Store::open(&dir.path().join("trumpet.redb")).unwrap();
        let page = trumpet::store::ReceiptPage {
            state: None,
            after: None,
            limit: 1,
        };
        store
            .run_report(&run_id, &page)
            .unwrap()
            .unwrap()
            .counts
            .delivered
    };
    let missed_slot = next_minute(started);
    assert!(
        Utc::now() < missed_slot,
        "the first process was meant to die before {missed_slot}"
    );
    assert!(killed_at < GROUPS, "killed half-way, not after the end");

    // Down while the next minute's slot goes by.
    sleep_until(missed_slot + chrono::Duration::seconds(2)).await;
    let mut second = start_binary(&config, port, &log);
    binary.wait_healthy(&mut second, &log).await;

    // The broadcast resumes by itself: every group gets its report.
    let done = binary.wait_run(&run_id, |r| r["state"] == "done").await;
    assert_eq!(done["planned"], GROUPS, "{done}");
    assert_eq!(done["delivered"], GROUPS, "{done}");
    let mut duplicates = 0;
    for i in 0..GROUPS {
        let n = reports(&fake, &format!("crash-{i}"));
        assert!(n >= 1, "crash-{i} lost its report");
        duplicates += n - 1;
    }
    // Only a send that reached WeCom but whose outcome was not yet written can go twice.
    assert!(
        duplicates <= killed_at - recorded,
        "{duplicates} duplicates; {killed_at} reports had arrived, {recorded} were recorded"
    );

    // The slot missed while down: caught up for one job, recorded as skipped for the other.
    let slot = missed_slot.format("%Y%m%dT%H%MZ");
    let caught_up = binary
        .wait_run(&format!("minutely@{slot}"), |r| r["state"] == "done")
        .await;
    assert_eq!(caught_up["trigger"], "catch_up", "{caught_up}");
    assert_eq!(caught_up["delivered"], GROUPS, "{caught_up}");
    let skipped = binary
        .wait_run(&format!("strict@{slot}"), |r| r["state"] == "done")
        .await;
    assert_eq!(skipped["trigger"], "missed", "{skipped}");
    assert_eq!(skipped["skipped"], GROUPS, "{skipped}");
    assert_eq!(skipped["delivered"], 0, "{skipped}");

    drop(second);
}

/// A free port below Linux's ephemeral range (32768–60999): the binary binds it again after each
/// kill, and in between no other test's outgoing connection or `bind(0)` can take it.
fn restartable_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A test configuration for the real binary on a free port, with the default options.
struct Setup {
    fake: FakeWecom,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    port: u16,
    binary: Binary,
}

async fn setup() -> Setup {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trumpet.toml");
    std::fs::write(
        &config,
        config_toml(&dir.path().join("trumpet.redb"), &fake, &Options::default()),
    )
    .unwrap();
    let port = restartable_port();
    Setup {
        fake,
        log: dir.path().join("trumpet.log"),
        _dir: dir,
        config,
        port,
        binary: Binary {
            http: client(),
            base: format!("http://127.0.0.1:{port}"),
        },
    }
}

/// Posts a signed `add_to_chat` callback for `chat` to the binary; true when it was answered 200.
async fn adopt_on(binary: &Binary, endpoint: &RobotEndpoint, fake: &FakeWecom, chat: &str) -> bool {
    let plaintext = robot_message(
        chat,
        "owner",
        &format!("add-{chat}"),
        &fake.webhook_url(chat),
        &event_body("add_to_chat"),
    );
    let (query, body) = endpoint
        .forge_callback(
            &plaintext,
            &Utc::now().timestamp().to_string(),
            chat,
            rand::random(),
        )
        .unwrap();
    let response = binary
        .http
        .post(format!("{}/wecom/robot/{BOT}?{query}", binary.base))
        .body(body)
        .send()
        .await;
    response.is_ok_and(|r| r.status().is_success())
}

/// An answered callback is a kept callback: three rounds of 40 adoptions at once, each round
/// followed by SIGKILL straight after the last answer, and every answered adoption is there
/// after the restart. (Before answers waited for their commit, about one in six was lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_straight_after_answers_keeps_every_answered_adoption() {
    let Setup {
        fake,
        _dir,
        config,
        log,
        port,
        binary,
    } = setup().await;
    let binary = std::sync::Arc::new(binary);
    let crypto = CallbackCrypto::new(TOKEN, EncodingAesKey::parse(AES_KEY).unwrap(), "");
    let endpoint = std::sync::Arc::new(RobotEndpoint::new(
        BotId::parse(BOT).unwrap(),
        crypto,
        86_400,
    ));
    let mut answered = Vec::new();
    for round in 0..3 {
        let mut process = start_binary(&config, port, &log);
        binary.wait_healthy(&mut process, &log).await;
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..40 {
            let chat = format!("kill-{round}-{i:02}");
            let (binary, endpoint, fake) = (
                std::sync::Arc::clone(&binary),
                std::sync::Arc::clone(&endpoint),
                fake.clone(),
            );
            calls.spawn(async move {
                adopt_on(&binary, &endpoint, &fake, &chat)
                    .await
                    .then_some(chat)
            });
        }
        while let Some(done) = calls.join_next().await {
            answered.extend(done.unwrap());
        }
        drop(process); // SIGKILL, straight after the last answer
    }
    assert_eq!(answered.len(), 120, "every callback was answered");

    let mut process = start_binary(&config, port, &log);
    binary.wait_healthy(&mut process, &log).await;
    let groups = binary
        .call(
            reqwest::Method::GET,
            "/api/v1/groups?status=adopted&limit=500",
            None,
        )
        .await;
    let adopted: std::collections::HashSet<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["status"] == "adopted")
        .filter_map(|g| g["chat_id"].as_str())
        .collect();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|chat| !adopted.contains(chat.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of 120 answered adoptions lost: {lost:?}",
        lost.len()
    );
}

/// Unauthenticated paths reach the log: a path with a newline and an ANSI escape neither forges
/// a log line nor colours it, and a log that is not a terminal has no colour codes at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_path_cannot_forge_log_lines() {
    let Setup {
        _dir,
        config,
        log,
        port,
        binary,
        ..
    } = setup().await;
    let mut process = start_binary(&config, port, &log);
    binary.wait_healthy(&mut process, &log).await;
    let forged =
        "x%0A2026-12-05T00:00:00.000000Z%20%20INFO%20trumpet:%20admin%20token%20accepted%1B%5B31m";
    for path in [
        format!("/wecom/robot/{forged}"),
        format!("/onebot/v12/{forged}"),
    ] {
        let status = binary
            .http
            .post(format!("{}{path}", binary.base))
            .body("<xml/>")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }
    drop(process);
    let written = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&written);
    assert!(
        !written.contains(&0x1b),
        "colour codes in a log file:\n{text}"
    );
    assert!(
        text.lines()
            .all(|l| !l.starts_with("2026-12-05T00:00:00.000000Z")),
        "a forged line:\n{text}"
    );
    assert!(
        text.contains("unknown bot"),
        "the refusals are logged:\n{text}"
    );
}
