//! `trumpet-load`: posts distinct, correctly signed group-robot callbacks to a Trumpet over
//! HTTP — each sent once — and reports throughput, latency percentiles (per sender class) and
//! the server's memory: resident at start, after the run, and at its peak.
//!
//! By default it starts the real `trumpet` binary (from the same target directory) as a separate
//! process on a free port with a temporary store, with a fake WeCom for the robots' webhooks, so
//! client and server share the machine as they would in a test rig, then stops it with SIGTERM.
//! `--url` targets a running service instead. `--floor` runs the same requests against an axum
//! server that only reads the body (the HTTP floor) right after, and prints the ratio.
//!
//! ```sh
//! cargo build --release --bins
//! target/release/trumpet-load --mode ordinary --floor           # 20 groups, 100,000 members
//! target/release/trumpet-load --mode flood                      # + 500 members flooding
//! target/release/trumpet-load --messages 1000000 --groups 200 --seconds 0   # 1M, all sent
//! ```

#[path = "../common/mod.rs"]
mod common;
mod floor;
mod traffic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use common::{FakeWecom, ServerProcess, ServerSetup, proc_mib, wait_healthy};
use traffic::{AES_KEY, Class, Prepared, Shape, TOKEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Many members, each speaking rarely.
    Ordinary,
    /// Ordinary traffic with every other callback from a few members flooding.
    Flood,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for Trumpet's group-robot callback endpoint")]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::Ordinary)]
    mode: Mode,
    /// Concurrent connections, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to measure, after the warm-up; 0: send every prepared callback and measure all.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up before measuring (not counted; not with --seconds 0).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Distinct groups the messages are spread over.
    #[arg(long, default_value_t = 20)]
    groups: usize,
    /// Distinct members speaking in ordinary traffic.
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Members flooding in flood mode.
    #[arg(long, default_value_t = 500)]
    flooders: usize,
    /// Distinct callbacks prepared (each is sent once; a timed run stops early if they run out).
    #[arg(long, default_value_t = 400_000)]
    messages: usize,
    /// Worker threads of the client's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Also run the same requests against the HTTP floor (a server that only reads the body).
    #[arg(long)]
    floor: bool,
    /// Target a running service (its bot must use this tool's Token and EncodingAESKey)
    /// instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// The started service's log filter (its log goes to this tool's stderr).
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// The bot id in the callback path.
    #[arg(long, default_value = "trumpet")]
    bot: String,
    /// Internal: serve the HTTP floor on this port (how `--floor` starts its server).
    #[arg(long, hide = true)]
    serve_floor: Option<u16>,
}

/// What one run measured.
#[derive(Default)]
struct Outcome {
    elapsed: Duration,
    latencies: BTreeMap<&'static str, Vec<u32>>,
    statuses: BTreeMap<String, usize>,
    ran_out: bool,
}

impl Outcome {
    fn answered(&self) -> usize {
        self.latencies.values().map(Vec::len).sum()
    }

    fn rate(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64()
    }
}

fn class_name(class: Class) -> &'static str {
    match class {
        Class::Ordinary => "ordinary",
        Class::Flood => "flood",
    }
}

/// Opens one HTTP/1.1 connection to `authority` (host:port).
async fn connect(
    authority: &str,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect {authority}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

/// Drives `requests` at `base` over `connections` closed-loop connections. With `cycle` the
/// requests are sent round and round (for the floor, which does nothing with them).
async fn drive(
    requests: Arc<Vec<Prepared>>,
    base: &str,
    connections: usize,
    warmup: Duration,
    measure: Option<Duration>,
    cycle: bool,
) -> Result<Outcome, String> {
    let authority = base.trim_start_matches("http://").to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    let measuring = Arc::new(AtomicBool::new(measure.is_none()));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut sender = connect(&authority).await?;
        let (requests, next, measuring, stop, statuses) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&measuring),
            Arc::clone(&stop),
            Arc::clone(&statuses),
        );
        let authority = authority.clone();
        tasks.push(tokio::spawn(async move {
            use http_body_util::BodyExt;
            let mut latencies: BTreeMap<&'static str, Vec<u32>> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let mut i = next.fetch_add(1, Ordering::Relaxed);
                if cycle {
                    i %= requests.len();
                }
                let Some(prepared) = requests.get(i) else {
                    break;
                };
                let request = hyper::Request::post(prepared.uri.clone())
                    .header(hyper::header::HOST, authority.as_str())
                    .body(http_body_util::Full::new(prepared.body.clone()));
                let started = Instant::now();
                let status = match request {
                    Ok(request) => match sender.send_request(request).await {
                        Ok(response) => {
                            let status = response.status();
                            match response.into_body().collect().await {
                                Ok(_) => Ok(status),
                                Err(e) => Err(format!("body: {e}")),
                            }
                        }
                        Err(e) => Err(format!("request: {e}")),
                    },
                    Err(e) => Err(format!("build: {e}")),
                };
                let ok = matches!(&status, Ok(s) if s.is_success());
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        latencies
                            .entry(class_name(prepared.class))
                            .or_default()
                            .push(micros);
                    } else {
                        let key = match &status {
                            Ok(s) => s.as_u16().to_string(),
                            Err(e) => e.clone(),
                        };
                        *statuses
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(key)
                            .or_default() += 1;
                    }
                }
                if status.is_err() {
                    // The connection may be gone: open another one.
                    match connect(&authority).await {
                        Ok(fresh) => sender = fresh,
                        Err(_) => break,
                    }
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    let timed = match measure {
        Some(measure) => {
            tokio::time::sleep(warmup).await;
            measuring.store(true, Ordering::Relaxed);
            let started = Instant::now();
            tokio::time::sleep(measure).await;
            measuring.store(false, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
            Some(started.elapsed())
        }
        None => None,
    };
    let mut outcome = Outcome::default();
    for task in tasks {
        for (class, mut list) in task.await.map_err(|e| e.to_string())? {
            outcome
                .latencies
                .entry(class)
                .or_default()
                .append(&mut list);
        }
    }
    outcome.elapsed = timed.unwrap_or_else(|| started.elapsed());
    for list in outcome.latencies.values_mut() {
        list.sort_unstable();
    }
    outcome.statuses = std::mem::take(&mut *statuses.lock().unwrap_or_else(|e| e.into_inner()));
    outcome.ran_out = !cycle && measure.is_some() && next.load(Ordering::Relaxed) >= requests.len();
    Ok(outcome)
}

fn report(title: &str, outcome: &Outcome) {
    println!("{title}");
    println!(
        "  answered   {} in {:.1} s",
        outcome.answered(),
        outcome.elapsed.as_secs_f64()
    );
    println!("  throughput {:.0} callbacks/s", outcome.rate());
    let mut all: Vec<u32> = outcome.latencies.values().flatten().copied().collect();
    all.sort_unstable();
    let mut classes: Vec<(&str, &[u32])> = vec![("all", &all)];
    if outcome.latencies.len() > 1 {
        classes.extend(outcome.latencies.iter().map(|(k, v)| (*k, v.as_slice())));
    }
    for (class, list) in classes {
        println!(
            "  latency    {class:<9} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} answers)",
            percentile(list, 50.0),
            percentile(list, 90.0),
            percentile(list, 99.0),
            percentile(list, 100.0),
            list.len()
        );
    }
    if outcome.statuses.is_empty() {
        println!("  errors     0");
    }
    for (status, count) in &outcome.statuses {
        println!("  errors     {count} × {status}");
    }
    if outcome.ran_out {
        println!("  note: all prepared callbacks were sent before the end; raise --messages");
    }
}

async fn run(args: Args) -> Result<(), String> {
    let fake = FakeWecom::start(Duration::from_millis(50)).await?;
    let mut server = match &args.url {
        Some(_) => None,
        None => Some(ServerProcess::start(ServerSetup {
            name: "trumpet-load",
            extra_config: format!(
                "[log]\nlevel = \"{log}\"\n[wecom]\nwebhook_hosts = [\"{fake}\"]\n\
                 [[bots]]\nid = \"{bot}\"\nchannel = \"wecom-robot\"\ntoken = \"{TOKEN}\"\n\
                 encoding_aes_key = \"{AES_KEY}\"\n",
                log = args.server_log,
                fake = fake.host,
                bot = args.bot,
            ),
            scripts: None,
        })?),
    };
    let base = args
        .url
        .clone()
        .or_else(|| server.as_ref().map(|s| s.base.clone()))
        .unwrap_or_default();
    let http = reqwest::Client::new();
    wait_healthy(&http, &base).await?;
    let pid = server.as_ref().map(ServerProcess::pid);
    let rss_start = pid.and_then(|p| proc_mib(p, "VmRSS"));

    let shape = Shape {
        messages: args.messages,
        groups: args.groups,
        members: args.members,
        flooders: args.flooders,
        flood_every: if args.mode == Mode::Flood { 2 } else { 0 },
        bot: args.bot.clone(),
        webhook: {
            let fake = fake.clone();
            Box::new(move |group| fake.url(&format!("load-{group:05}")))
        },
    };
    eprintln!(
        "preparing {} distinct signed callbacks ({:?}: {} groups, {} members{})…",
        args.messages,
        args.mode,
        args.groups,
        args.members,
        if args.mode == Mode::Flood {
            format!(", {} flooding", args.flooders)
        } else {
            String::new()
        }
    );
    let requests = Arc::new(traffic::prepare(&shape)?);
    let body_len = requests.first().map(|r| r.body.len()).unwrap_or(0);
    let measure = (args.seconds > 0).then(|| Duration::from_secs(args.seconds));
    let warmup = Duration::from_secs(args.warmup_seconds);
    let outcome = drive(
        Arc::clone(&requests),
        &base,
        args.connections,
        warmup,
        measure,
        false,
    )
    .await?;
    // What the server still holds once the burst is over and its queues have drained.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = pid.and_then(|p| proc_mib(p, "VmRSS"));
    let rss_peak = pid.and_then(|p| proc_mib(p, "VmHWM"));
    if let Some(server) = server.as_mut() {
        server.stop();
    }
    let (keys, posts) = fake.delivered();

    println!(
        "trumpet-load: {:?} mode, {} connections, {} groups, callback body {} bytes",
        args.mode, args.connections, args.groups, body_len
    );
    report("trumpet", &outcome);
    if let (Some(start), Some(after), Some(peak)) = (rss_start, rss_after, rss_peak) {
        println!("  server RSS at start {start:.1} MiB, after {after:.1} MiB, peak {peak:.1} MiB");
    }
    println!("  posts the fake WeCom received: {posts} to {keys} robots");

    if args.floor {
        drop(server);
        let floor = floor::FloorProcess::start()?;
        wait_healthy(&http, &floor.base).await?;
        let floor_outcome = drive(
            requests,
            &floor.base,
            args.connections,
            warmup,
            measure,
            true,
        )
        .await?;
        let peak = proc_mib(floor.pid(), "VmHWM");
        report(
            "HTTP floor (reads the body, answers an empty 200)",
            &floor_outcome,
        );
        if let Some(peak) = peak {
            println!("  floor server peak RSS {peak:.1} MiB");
        }
        println!(
            "trumpet / floor: {:.1} %",
            100.0 * outcome.rate() / floor_outcome.rate()
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some(port) = args.serve_floor {
        return match floor::serve(port) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("floor server: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
