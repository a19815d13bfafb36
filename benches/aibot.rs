//! Load run of the WeCom AI bot's long connection: a fake of WeCom's WebSocket takes the link
//! an in-process Trumpet dials, and pushes `aibot_msg_callback` frames at a fixed rate (2,000 a
//! second by default, over 200 groups) on that one link; for each it measures the time from
//! pushing it to receiving the `aibot_respond_msg` on its `req_id` (every message @-mentions the
//! bot with a question no keyword rule knows, so each one is normalised, moderated, matched,
//! committed and answered with the fallback). The fake acks every frame at once, or replies
//! `--ack-delay-ms` late (a slow peer: each callback's handler waits for its ack, and at most
//! 512 wait at once). Prints throughput and latency percentiles.
//!
//! ```sh
//! cargo bench --bench aibot -- --rate 2000 --seconds 10 [--ack-delay-ms 400]
//! ```
//!
//! Not a criterion benchmark: a latency distribution under a steady stream is what matters here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use trumpet::app::App;
use trumpet::config::Config;

const BOT_ID: &str = "aibench";
const SECRET: &str = "bench-secret";

#[path = "load/mod.rs"]
mod load;
use load::{Args, Run, args};

fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("temporary directory");
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults");

    // The fake WeCom on the client's runtime; the service on its own (as it runs in production).
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let listener = client
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the fake");
    let ws_url = format!("ws://{}", listener.local_addr().expect("address"));
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{store}"
[scripts]
dir = "{scripts}"
watch_interval_ms = 0
[log]
level = "warn"
[[bots]]
id = "bench"
channel = "wecom-aibot"
bot_id = "{BOT_ID}"
secret = "{SECRET}"
ws_url = "{ws_url}"
"#,
        store = dir.path().join("bench.redb").display(),
        scripts = scripts.display(),
    );
    let config = Config::from_toml_str(&toml).expect("bench config");
    let app = App::build(config).expect("app builds");
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let http = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.spawn(async move {
        app.serve(http, async {
            let _ = stopped.await;
        })
        .await
    });
    let result = client.block_on(load(listener, &args));
    let _ = stop.send(());
    let _ = server.block_on(serving);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn load(listener: tokio::net::TcpListener, args: &Args) -> Result<(), String> {
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .map_err(|_| "the service never dialled".to_owned())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let socket = tokio_tungstenite::accept_async(tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if sink.send(frame).await.is_err() {
                return;
            }
        }
    });
    // Pushed, not yet answered: the push instant of each callback's req_id.
    let waiting: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let unmatched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<()>();
    {
        let (out, waiting, latencies, unmatched) = (
            out.clone(),
            Arc::clone(&waiting),
            Arc::clone(&latencies),
            Arc::clone(&unmatched),
        );
        let mut subscribed_tx = Some(subscribed_tx);
        let ack_delay = Duration::from_millis(args.ack_delay_ms);
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let arrived = Instant::now();
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let req_id = frame["headers"]["req_id"].as_str().unwrap_or_default();
                match frame["cmd"].as_str().unwrap_or_default() {
                    "aibot_subscribe" => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    "aibot_respond_msg" => match waiting.lock().unwrap().remove(req_id) {
                        Some(at) => latencies.lock().unwrap().push((at, arrived - at)),
                        None => {
                            unmatched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    },
                    _ => {}
                }
                let ack = json!({"headers": {"req_id": req_id}, "errcode": 0, "errmsg": "ok"});
                let ack = Message::Text(ack.to_string().into());
                if ack_delay.is_zero() || frame["cmd"] != "aibot_respond_msg" {
                    let _ = out.send(ack);
                } else {
                    let out = out.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(ack_delay).await;
                        let _ = out.send(ack);
                    });
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| "no subscription".to_owned())?
        .map_err(|_| "the link closed".to_owned())?;
    let groups: Vec<String> = (0..args.groups)
        .map(|i| format!("wrkbench{i:05}"))
        .collect();

    let total = args.rate * (args.warmup_seconds + args.seconds);
    let started = Instant::now();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let group = &groups[i as usize % groups.len()];
        let req_id = format!("req{i}");
        let callback = json!({
            "cmd": "aibot_msg_callback",
            "headers": {"req_id": req_id},
            "body": {
                "msgid": format!("msg{i}"), "aibotid": BOT_ID, "chatid": group,
                "chattype": "group", "from": {"userid": format!("user{}", i % 5000)},
                "msgtype": "text",
                "text": {"content": format!("@会计小喇叭 请问这张单据应该怎么处理 {i}")},
            },
        });
        let text = callback.to_string();
        waiting.lock().unwrap().insert(req_id, Instant::now());
        let _ = out.send(Message::Text(text.into()));
    }
    let sending_took = started.elapsed();
    let unmatched = unmatched.load(std::sync::atomic::Ordering::Relaxed);
    load::finish(
        Run {
            sent_what: "callbacks",
            reply_what: "aibot_respond_msg",
            total,
            started,
            sending_took,
            latencies,
            unmatched,
        },
        args,
    )
    .await
}
