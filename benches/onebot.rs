//! Load run of the bot-account channel: one OneBot 12 connection sends group-message events at a
//! fixed rate (2,000 a second by default) to an in-process Trumpet, and measures, for each
//! event, the time from sending it to receiving the `send_message` action it causes (every
//! message @-mentions the bot with a question no keyword rule knows, so each one is normalised,
//! matched and answered with the fallback). The fake implementation answers every action at
//! once. Prints throughput and latency percentiles.
//!
//! ```sh
//! cargo bench --bench onebot -- --rate 2000 --seconds 10
//! ```
//!
//! Not a criterion benchmark: a latency distribution under a steady stream is what matters here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use trumpet::app::App;
use trumpet::config::Config;

const TOKEN: &str = "onebot-bench-token-0001";
const ACCOUNT: &str = "wxid_bench";

#[path = "load/mod.rs"]
mod load;
use load::{Args, Run, args};

fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("temporary directory");
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
[log]
level = "warn"
[[bots]]
id = "bench"
channel = "onebot12"
access_token = "{TOKEN}"
"#,
        store = dir.path().join("bench.redb").display(),
        scripts = scripts.display(),
    );
    let config = Config::from_toml_str(&toml).expect("bench config");
    let app = App::build(config).expect("app builds");

    // The service on its own runtime (as it runs in production), the client on another.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.spawn(async move {
        app.serve(listener, async {
            let _ = stopped.await;
        })
        .await
    });

    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client runtime");
    let result = client.block_on(load(addr, &args));
    let _ = stop.send(());
    let _ = server.block_on(serving);
    match result {
        Ok(()) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

async fn load(addr: std::net::SocketAddr, args: &Args) -> Result<(), String> {
    let mut request = format!("ws://{addr}/onebot/v12/bench")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "12.bench".parse().unwrap());
    // Without Nagle, as an implementation should connect: small frames go out at once.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if sink.send(frame).await.is_err() {
                return;
            }
        }
    });
    let groups: Vec<String> = (0..args.groups)
        .map(|i| format!("{i:05}@chatroom"))
        .collect();
    // Sent, not yet answered: per group, the send instants in order (each event gets one reply).
    let waiting: Arc<Mutex<HashMap<String, VecDeque<Instant>>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let unmatched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (out, waiting, latencies, unmatched) = (
            out.clone(),
            Arc::clone(&waiting),
            Arc::clone(&latencies),
            Arc::clone(&unmatched),
        );
        let group_list = groups.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let Message::Text(text) = frame else { continue };
                let arrived = Instant::now();
                let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let action = request["action"].as_str().unwrap_or_default();
                let data = match action {
                    "send_message" => {
                        let group = request["params"]["group_id"].as_str().unwrap_or_default();
                        let sent = waiting
                            .lock()
                            .unwrap()
                            .get_mut(group)
                            .and_then(VecDeque::pop_front);
                        match sent {
                            Some(at) => latencies.lock().unwrap().push((at, arrived - at)),
                            None => {
                                unmatched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        json!({"message_id": "x", "time": 0})
                    }
                    "get_supported_actions" => json!(["send_message", "get_group_list"]),
                    "get_group_list" => Value::Array(
                        group_list
                            .iter()
                            .map(|g| json!({"group_id": g, "group_name": "压测群"}))
                            .collect(),
                    ),
                    "get_group_member_list" => json!([]),
                    "get_status" => {
                        json!({"good": true, "bots": [{"self": {"platform": "wechat", "user_id": ACCOUNT}, "online": true}]})
                    }
                    _ => Value::Null,
                };
                let answer = json!({"status": "ok", "retcode": 0, "data": data, "message": "", "echo": request["echo"]});
                let _ = out.send(Message::Text(answer.to_string().into()));
            }
        });
    }
    let send = |v: Value| {
        let _ = out.send(Message::Text(v.to_string().into()));
    };
    send(
        json!({"id": "c", "time": 0.0, "type": "meta", "detail_type": "connect", "sub_type": "",
        "version": {"impl": "bench", "version": "1", "onebot_version": "12"}}),
    );
    // Let the service adopt the groups before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let total = args.rate * (args.warmup_seconds + args.seconds);
    let started = Instant::now();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let group = &groups[i as usize % groups.len()];
        let event = json!({
            "id": format!("ev{i}"), "time": 0.0, "type": "message", "detail_type": "group",
            "sub_type": "", "self": {"platform": "wechat", "user_id": ACCOUNT},
            "message_id": format!("m{i}"), "group_id": group, "user_id": format!("wxid_{}", i % 5000),
            "message": [
                {"type": "mention", "data": {"user_id": ACCOUNT}},
                {"type": "text", "data": {"text": format!(" 请问这张单据应该怎么处理 {i}")}}
            ],
            "alt_message": ""
        });
        let text = event.to_string();
        waiting
            .lock()
            .unwrap()
            .entry(group.clone())
            .or_default()
            .push_back(Instant::now());
        let _ = out.send(Message::Text(text.into()));
    }
    let sending_took = started.elapsed();
    let unmatched = unmatched.load(std::sync::atomic::Ordering::Relaxed);
    load::finish(
        Run {
            sent_what: "events",
            reply_what: "send_message",
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
