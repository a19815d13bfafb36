//! What the load tools share: a fake WeCom webhook endpoint that behaves like WeCom's (answers
//! after a latency, 20 messages a minute per key, errcode 45009 past it), and the real `trumpet`
//! binary started as a separate process on a temporary store, with its memory read from /proc.

#![allow(dead_code)] // each tool uses a part of this

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

/// WeCom's limit per robot key.
pub const PER_KEY_LIMIT: usize = 20;

/// What the fake WeCom saw.
#[derive(Default)]
pub struct Seen {
    /// Delivery times per key (answered errcode 0).
    pub delivered: HashMap<String, Vec<Instant>>,
    /// Requests per key in the last minute, for the limit.
    recent: HashMap<String, Vec<Instant>>,
    pub over_limit: usize,
    pub total: usize,
}

/// A fake WeCom webhook endpoint (`POST /cgi-bin/webhook/send?key=…`).
#[derive(Clone)]
pub struct FakeWecom {
    pub seen: Arc<Mutex<Seen>>,
    latency: Duration,
    /// `host:port` to put into `wecom.webhook_hosts`.
    pub host: String,
}

impl FakeWecom {
    /// Starts the fake on a free loopback port of the current runtime.
    pub async fn start(latency: Duration) -> Result<FakeWecom, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let host = listener
            .local_addr()
            .map_err(|e| e.to_string())?
            .to_string();
        let fake = FakeWecom {
            seen: Arc::default(),
            latency,
            host,
        };
        let app = Router::new()
            .route("/cgi-bin/webhook/send", post(webhook))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(fake)
    }

    /// A webhook URL of this fake for `key`.
    pub fn url(&self, key: &str) -> String {
        format!("http://{}/cgi-bin/webhook/send?key={key}", self.host)
    }

    /// Keys delivered to and deliveries in all.
    pub fn delivered(&self) -> (usize, usize) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let keys = seen.delivered.len();
        let deliveries = seen.delivered.values().map(Vec::len).sum();
        (keys, deliveries)
    }
}

async fn webhook(
    State(fake): State<FakeWecom>,
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

/// A free loopback port (bound and released; fine for a tool).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A `trumpet serve` started by a tool, its temporary directory and config (removed on drop).
pub struct ServerProcess {
    child: Child,
    exe: PathBuf,
    config: PathBuf,
    pub dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// Changes the shipped bot-scripts copied for a run (the folder is the argument).
pub type ScriptsEdit = dyn Fn(&Path) -> Result<(), String>;

/// What to start the server with.
pub struct ServerSetup<'a> {
    /// A prefix for the temporary directory's name.
    pub name: &'a str,
    /// `trumpet.toml` lines after `[server] listen` and `[storage] path` (sections of their own).
    pub extra_config: String,
    /// Copy the shipped bot-scripts into the directory, changed by this first.
    pub scripts: Option<&'a ScriptsEdit>,
}

impl ServerProcess {
    /// Starts the `trumpet` binary that sits beside the current executable.
    pub fn start(setup: ServerSetup<'_>) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("trumpet");
        if !exe.exists() {
            return Err(format!(
                "{} not found: build it with `cargo build --release --bins`",
                exe.display()
            ));
        }
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("{}-{}", setup.name, rand::random::<u64>()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut scripts_line = String::new();
        if let Some(edit) = setup.scripts {
            let scripts = dir.join("bot-scripts");
            copy_dir(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"),
                &scripts,
            )
            .map_err(|e| e.to_string())?;
            edit(&scripts)?;
            scripts_line = format!("[scripts]\ndir = \"{}\"\n", scripts.display());
        }
        let config = dir.join("trumpet.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 2\n\
                 [storage]\npath = \"{}\"\n{scripts_line}{}",
                dir.join("load.redb").display(),
                setup.extra_config
            ),
        )
        .map_err(|e| e.to_string())?;
        let child = Self::spawn(&exe, &config, &dir)?;
        Ok(ServerProcess {
            child,
            exe,
            config,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (no shutdown at all).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again on the same store and config.
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = Self::spawn(&self.exe, &self.config, &self.dir)?;
        Ok(())
    }

    /// Stops the process with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_hard();
    }
}

impl Drop for ServerProcess {
    /// On any way out (an error included): no server left running, no temporary store left.
    fn drop(&mut self) {
        self.kill_hard();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A field of `/proc/<pid>/status` in MiB (`VmRSS`: now, `VmHWM`: the peak).
pub fn proc_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
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

/// Waits until `base/healthz` answers 200 (30 s at most).
pub async fn wait_healthy(http: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{base} did not become healthy within 30 s"))
}
