//! `trumpet-broadcast-load`: the morning report to many groups, measured. It starts a fake WeCom
//! (answering every webhook after `--latency-ms`, enforcing 20 messages a minute per key and
//! counting anything over it), starts the real `trumpet` binary on a temporary store, adopts
//! `--groups` push-only groups with distinct keys through the admin API, runs `morning-report`
//! and waits until every group has it. It reports the time from the run request to the last
//! delivery, the server's peak resident memory, keys over the limit, and — with `--kill-at 0.5`
//! — what a `kill -9` half-way and a restart cost: groups lost (must be 0) and duplicates.
//!
//! ```sh
//! cargo build --release --bins
//! target/release/trumpet-broadcast-load --groups 10000 --latency-ms 50
//! target/release/trumpet-broadcast-load --groups 10000 --latency-ms 50 --kill-at 0.5
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::{Json, Router, routing::post};
use clap::Parser;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "broadcast-load-admin-token";
const PER_KEY_LIMIT: usize = 20;

#[derive(Debug, Parser)]
#[command(about = "Broadcast benchmark: the morning report to many push-only groups")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    groups: usize,
    /// How long the fake WeCom takes to answer each webhook.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Kill the server with SIGKILL once this fraction of groups has the report, then restart it.
    #[arg(long)]
    kill_at: Option<f64>,
    /// Give up after this long.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// The server's log filter (its log goes to this tool's stderr).
    #[arg(long, default_value = "warn")]
    server_log: String,
}

/// What the fake WeCom saw.
#[derive(Default)]
struct Seen {
    /// Delivery times per key (answered errcode 0).
    delivered: HashMap<String, Vec<Instant>>,
    /// Requests per key in the last minute, for the limit.
    recent: HashMap<String, Vec<Instant>>,
    over_limit: usize,
    total: usize,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    latency: Duration,
}

async fn webhook(
    State(fake): State<Fake>,
    Query(query): Query<HashMap<String, String>>,
    Json(_body): Json<Value>,
) -> Json<Value> {
    tokio::time::sleep(fake.latency).await;
    let key = query.get("key").cloned().unwrap_or_default();
    let now = Instant::now();
    let mut seen = fake.seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.total += 1;
    let recent = seen.recent.entry(key.clone()).or_default();
    recent.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
    recent.push(now);
    if recent.len() > PER_KEY_LIMIT {
        seen.over_limit += 1;
        return Json(json!({"errcode": 45009, "errmsg": "api freq out of limit"}));
    }
    seen.delivered.entry(key).or_default().push(now);
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

struct Server {
    child: Child,
    config: PathBuf,
    exe: PathBuf,
    dir: PathBuf,
    base: String,
    log: String,
}

impl Server {
    fn spawn(exe: &Path, config: &Path, dir: &Path) -> Result<Child, String> {
        Command::new(exe)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))
    }

    /// The peak resident memory of the current process, in MiB (Linux).
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    fn kill_hard(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    fn restart(&mut self) -> Result<(), String> {
        self.child = Self::spawn(&self.exe, &self.config, &self.dir)?;
        Ok(())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Server {
    /// On any way out (an error included): no server left running, no temporary store left.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn start_server(fake_host: &str, log: &str) -> Result<Server, String> {
    let exe = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("trumpet");
    if !exe.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --bins`",
            exe.display()
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("trumpet-broadcast-{}", rand::random::<u64>()));
    // The shipped scripts, with the report sent at once (no spread, no quiet hours) and the
    // evening column job switched off so that it cannot fire during the measurement.
    let scripts = dir.join("bot-scripts");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("bot-scripts"),
        &scripts,
    )
    .map_err(|e| e.to_string())?;
    let schedules = scripts.join("schedules.toml");
    let text = std::fs::read_to_string(&schedules)
        .map_err(|e| e.to_string())?
        .replace("quiet_hours = [\"22:00-07:00\"]\n", "")
        .replace("spread_minutes = 10", "spread_minutes = 0")
        .replace(
            "name = \"weekly-column\"\n",
            "name = \"weekly-column\"\nenabled = false\n",
        );
    std::fs::write(&schedules, text).map_err(|e| e.to_string())?;
    let config = dir.join("trumpet.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 2\n\
             [storage]\npath = \"{}\"\n[scripts]\ndir = \"{}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
             [log]\nlevel = \"{log}\"\n[wecom]\nwebhook_hosts = [\"{fake_host}\"]\n",
            dir.join("bench.redb").display(),
            scripts.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Server::spawn(&exe, &config, &dir)?;
    Ok(Server {
        child,
        config,
        exe,
        dir,
        base: format!("http://127.0.0.1:{port}"),
        log: log.to_owned(),
    })
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the server did not become healthy within 30 s".into())
}

fn delivered_groups(fake: &Fake) -> (usize, usize) {
    let seen = fake.seen.lock().unwrap_or_else(|e| e.into_inner());
    let groups = seen.delivered.len();
    let deliveries = seen.delivered.values().map(Vec::len).sum();
    (groups, deliveries)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let fake = Fake {
        seen: Arc::default(),
        latency: Duration::from_millis(args.latency_ms),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let fake_host = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let app = Router::new()
        .route("/cgi-bin/webhook/send", post(webhook))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut server = start_server(&fake_host, &args.server_log)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;
    wait_healthy(&http, &server.base).await?;
    eprintln!(
        "log filter {}; adopting {} groups…",
        server.log, args.groups
    );

    let adopt_started = Instant::now();
    let base = server.base.clone();
    let (client, host) = (http.clone(), fake_host.clone());
    let mut pending = bounded(args.groups, 32, move |i| {
        let (http, base, fake_host) = (&client, &base, &host);
        let http = http.clone();
        let base = base.clone();
        let url = format!("http://{fake_host}/cgi-bin/webhook/send?key=bench-{i:05}");
        async move {
            let r = http
                .post(format!("{base}/api/v1/groups"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({"webhook_url": url, "chat_id": format!("bench-{i:05}")}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("adopting group {i}: {}", r.status()))
            }
        }
    });
    while let Some(result) = pending.join_next().await {
        result.map_err(|e| e.to_string())??;
    }
    let adopt_secs = adopt_started.elapsed().as_secs_f64();
    let adopt_peak = server.peak_rss_mib().unwrap_or(f64::NAN);
    eprintln!(
        "adopted {} groups in {adopt_secs:.1} s; server peak RSS so far {adopt_peak:.1} MiB",
        args.groups
    );

    let started = Instant::now();
    let run: Value = http
        .post(format!("{}/api/v1/jobs/morning-report/run", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let run_id = run["run_id"]
        .as_str()
        .ok_or_else(|| format!("no run id in {run}"))?
        .to_owned();
    let mut peak_rss: f64 = 0.0;
    let mut killed_at: Option<(usize, f64)> = None;
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let all_delivered = loop {
        let (groups, _) = delivered_groups(&fake);
        if let Some(rss) = server.peak_rss_mib() {
            peak_rss = peak_rss.max(rss);
        }
        if groups >= args.groups {
            break started.elapsed();
        }
        if let Some(fraction) = args.kill_at {
            if killed_at.is_none() && groups as f64 >= fraction * args.groups as f64 {
                server.kill_hard();
                killed_at = Some((groups, started.elapsed().as_secs_f64()));
                eprintln!("killed with SIGKILL after {groups} groups; restarting");
                server.restart()?;
                wait_healthy(&http, &server.base).await?;
            }
        }
        if Instant::now() > deadline {
            server.stop();
            return Err(format!(
                "timed out: {groups} of {} groups have the report after {} s",
                args.groups, args.timeout_secs
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Let in-flight retries settle, then read the run's own account.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts: Value = http
        .get(format!("{}/api/v1/runs/{run_id}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(rss) = server.peak_rss_mib() {
        peak_rss = peak_rss.max(rss);
    }
    server.stop();

    let (groups, deliveries) = delivered_groups(&fake);
    let seen = fake.seen.lock().unwrap_or_else(|e| e.into_inner());
    println!("groups                 {}", args.groups);
    println!("fake latency           {} ms", args.latency_ms);
    println!(
        "all delivered after    {:.2} s",
        all_delivered.as_secs_f64()
    );
    println!("adopted in             {adopt_secs:.1} s (peak RSS then {adopt_peak:.1} MiB)");
    println!("server peak RSS        {peak_rss:.1} MiB (VmHWM, max over process lives)");
    println!("requests               {}", seen.total);
    println!("over 20/min per key    {}", seen.over_limit);
    println!("groups lost            {}", args.groups - groups);
    println!("duplicates             {}", deliveries - groups);
    if let Some((at, secs)) = killed_at {
        println!("killed (SIGKILL)       after {at} groups, at {secs:.2} s");
    }
    println!(
        "run {run_id}: state {} planned {} delivered {} failed {} skipped {} pending {}",
        counts["state"],
        counts["planned"],
        counts["delivered"],
        counts["failed"],
        counts["skipped"],
        counts["pending"]
    );
    Ok(())
}

/// Runs `make(i)` for `0..n` with at most `width` at a time.
fn bounded<F, Fut>(n: usize, width: usize, make: F) -> tokio::task::JoinSet<Result<(), String>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..width {
        let make = Arc::clone(&make);
        let next = Arc::clone(&next);
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok(());
                }
                make(i).await?;
            }
        });
    }
    set
}
