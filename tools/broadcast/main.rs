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

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

use common::{FakeWecom, ServerProcess, ServerSetup, proc_mib, wait_healthy};

const ADMIN_TOKEN: &str = "broadcast-load-admin-token";

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

/// The shipped scripts, with the report sent at once (no spread, no quiet hours) and the evening
/// column job switched off so that it cannot fire during the measurement.
fn edit_scripts(scripts: &Path) -> Result<(), String> {
    let schedules = scripts.join("schedules.toml");
    let text = std::fs::read_to_string(&schedules)
        .map_err(|e| e.to_string())?
        .replace("quiet_hours = [\"22:00-07:00\"]\n", "")
        .replace("spread_minutes = 10", "spread_minutes = 0")
        .replace(
            "name = \"weekly-column\"\n",
            "name = \"weekly-column\"\nenabled = false\n",
        );
    std::fs::write(&schedules, text).map_err(|e| e.to_string())
}

fn start_server(fake: &FakeWecom, log: &str) -> Result<ServerProcess, String> {
    ServerProcess::start(ServerSetup {
        name: "trumpet-broadcast",
        extra_config: format!(
            "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[log]\nlevel = \"{log}\"\n\
             [wecom]\nwebhook_hosts = [\"{}\"]\n",
            fake.host
        ),
        scripts: Some(&edit_scripts),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let fake = FakeWecom::start(Duration::from_millis(args.latency_ms)).await?;
    let fake_host = fake.host.clone();
    let mut server = start_server(&fake, &args.server_log)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| e.to_string())?;
    wait_healthy(&http, &server.base).await?;
    eprintln!(
        "log filter {}; adopting {} groups…",
        args.server_log, args.groups
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
    let adopt_peak = proc_mib(server.pid(), "VmHWM").unwrap_or(f64::NAN);
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
        let (groups, _) = fake.delivered();
        if let Some(rss) = proc_mib(server.pid(), "VmHWM") {
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
    // After a kill, the life that resumed the unsent reports from the store has its own peak.
    let last_life_peak = proc_mib(server.pid(), "VmHWM");
    if let Some(rss) = last_life_peak {
        peak_rss = peak_rss.max(rss);
    }
    server.stop();

    let (groups, deliveries) = fake.delivered();
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
        println!(
            "restarted peak RSS     {:.1} MiB (the life that resumed {} unsent reports)",
            last_life_peak.unwrap_or(f64::NAN),
            args.groups - at
        );
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
