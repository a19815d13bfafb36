//! `trumpet-load`: posts distinct, correctly signed group-robot callbacks to a Trumpet over
//! HTTP and reports throughput and latency percentiles.
//!
//! By default it starts the real `trumpet` binary (from the same target directory) as a separate
//! process on a free port with a temporary store, so client and server share the machine as they
//! would in a test rig, then stops it with SIGTERM. `--url` targets a running service instead.
//!
//! ```sh
//! cargo build --release --bins
//! target/release/trumpet-load --connections 64 --seconds 10
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use trumpet::channels::wecom::crypto::{CallbackCrypto, EncodingAesKey};
use trumpet::channels::wecom::robot::RobotEndpoint;
use trumpet::domain::BotId;

const TOKEN: &str = "LoadTestToken123";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

#[derive(Debug, Parser)]
#[command(about = "Load generator for Trumpet's group-robot callback endpoint")]
struct Args {
    /// Concurrent connections, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up before measuring (not counted).
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Distinct groups the messages are spread over.
    #[arg(long, default_value_t = 200)]
    groups: usize,
    /// Distinct callbacks prepared (each is sent once; the run stops early if they run out).
    #[arg(long, default_value_t = 600_000)]
    messages: usize,
    /// Worker threads of the client's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
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
}

/// A started `trumpet serve` and its temporary directory (removed on drop).
struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM for a graceful stop; kill as a last resort.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The temporary store goes whichever way the server stopped (it is ~100 MB after a run).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_server(bot: &str, log: &str) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let trumpet: PathBuf = exe.with_file_name("trumpet");
    if !trumpet.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --bins`",
            trumpet.display()
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let dir = std::env::temp_dir().join(format!("trumpet-load-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config = dir.join("trumpet.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\npath = \"{}\"\n[log]\nlevel = \"{log}\"\n\
             [[bots]]\nid = \"{bot}\"\nchannel = \"wecom-robot\"\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\n",
            dir.join("load.redb").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(&trumpet)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", trumpet.display()))?;
    Ok(Server {
        child,
        dir,
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// One prepared request: its URI (parsed once, here, not while measuring) and body.
type Prepared = (hyper::Uri, bytes::Bytes);

/// Prepares the callbacks. The text matches no keyword rule of the shipped scripts, so every
/// callback is normalised, matched and answered (with the fallback reply): the full work, with no
/// cooldown making later callbacks cheaper.
fn prepare(args: &Args, base: &str) -> Result<Vec<Prepared>, String> {
    let crypto = CallbackCrypto::new(TOKEN, EncodingAesKey::parse(AES_KEY).unwrap(), "");
    let endpoint = RobotEndpoint::new(BotId::parse(&args.bot).unwrap(), crypto, 86_400);
    let ts = Utc::now().timestamp().to_string();
    let run = rand::random::<u32>();
    (0..args.messages)
        .map(|i| {
            let chat = format!("wrkLoad{:05}", i % args.groups);
            let user = format!("user{:04}", (i * 7919) % 5000);
            let plaintext = format!(
                "<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=load-{chat}]]></WebhookUrl>\
                 <ChatId><![CDATA[{chat}]]></ChatId><ChatType>group</ChatType>\
                 <From><UserId>{user}</UserId><Name><![CDATA[成员{user}]]></Name></From>\
                 <MsgType>text</MsgType><Text><Content><![CDATA[@会计小喇叭 请问这张单据应该怎么处理 {i}]]></Content></Text>\
                 <MsgId>load-{run}-{i}</MsgId></xml>"
            );
            let (query, body) = endpoint
                .forge_callback(&plaintext, &ts, &format!("n{i}"), rand::random())
                .map_err(|e| e.to_string())?;
            let uri = format!("{base}/wecom/robot/{}?{query}", args.bot)
                .parse::<hyper::Uri>()
                .map_err(|e| e.to_string())?;
            Ok((uri, bytes::Bytes::from(body)))
        })
        .collect()
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

async fn wait_healthy(http: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{base} did not become healthy within 30 s"))
}

async fn run(args: Args) -> Result<(), String> {
    let server = match &args.url {
        Some(_) => None,
        None => Some(start_server(&args.bot, &args.server_log)?),
    };
    let base = args
        .url
        .clone()
        .or_else(|| server.as_ref().map(|s| s.base.clone()))
        .unwrap_or_default();
    let http = reqwest::Client::new();
    wait_healthy(&http, &base).await?;

    eprintln!("preparing {} distinct signed callbacks…", args.messages);
    let requests = Arc::new(prepare(&args, &base)?);
    let body_len = requests.first().map(|r| r.1.len()).unwrap_or(0);
    let authority = requests
        .first()
        .and_then(|r| r.0.authority())
        .map(|a| a.to_string())
        .ok_or("no requests prepared")?;
    let next = Arc::new(AtomicUsize::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let mut sender = connect(&authority).await?;
        let (requests, next, measuring, stop, errors) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&measuring),
            Arc::clone(&stop),
            Arc::clone(&errors),
        );
        let authority = authority.clone();
        tasks.push(tokio::spawn(async move {
            use http_body_util::BodyExt;
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((uri, body)) = requests.get(i) else {
                    break;
                };
                let request = hyper::Request::post(uri.clone())
                    .header(hyper::header::HOST, authority.as_str())
                    .body(http_body_util::Full::new(body.clone()));
                let started = Instant::now();
                let ok = match request {
                    Ok(request) => match sender.send_request(request).await {
                        Ok(response) => {
                            let status = response.status();
                            response.into_body().collect().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if ok {
                        latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !ok {
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

    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())?);
    }
    all.sort_unstable();
    let ran_out = next.load(Ordering::Relaxed) >= requests.len();
    println!(
        "trumpet-load: {} connections, {:.1} s measured, callback body {} bytes",
        args.connections,
        elapsed.as_secs_f64(),
        body_len
    );
    println!("  requests   {}", all.len());
    println!("  errors     {}", errors.load(Ordering::Relaxed));
    println!(
        "  throughput {:.0} callbacks/s",
        all.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&all, 50.0),
        percentile(&all, 90.0),
        percentile(&all, 99.0),
        percentile(&all, 100.0)
    );
    if ran_out {
        println!("  note: all prepared callbacks were sent before the end; raise --messages");
    }
    drop(server);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
