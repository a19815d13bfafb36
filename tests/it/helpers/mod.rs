//! Test harness: `spawn_app()` starts the real service on port 0 with a temporary store, the
//! repository's bot-scripts and a fake WeCom, and talks to it over HTTP as WeCom does.

pub mod browser;
pub mod fake_aibot;
pub mod fake_onebot;
pub mod fake_wecom;
pub mod fake_wecom_api;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use tokio::sync::oneshot;
use trumpet::app::App;
use trumpet::config::Config;
use trumpet::domain::BotId;
use trumpet::wire::wecom::crypto::{CallbackCrypto, EncodingAesKey};
use trumpet::wire::wecom::robot::RobotEndpoint;
use trumpet::wire::wecom::robot::xml::parse_envelope;

pub use fake_wecom::{Answer, FakeWecom, Received};

pub const TOKEN: &str = "TestToken123";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0001";
pub const BOT: &str = "trumpet";
/// The bot-account bot of [`onebot_toml`] and its token.
pub const ONEBOT: &str = "account";
pub const ONEBOT_TOKEN: &str = "onebot-token-for-tests-01";

/// TOML for `Options::more`: a onebot12 bot, short pings (a dead link is found within 3 × 1 s)
/// and quick retries, plus `extra` lines (more tables).
pub fn onebot_toml(extra: &str) -> String {
    format!(
        r#"
[[bots]]
id = "{ONEBOT}"
channel = "onebot12"
access_token = "{ONEBOT_TOKEN}"
per_minute = 600
[onebot]
action_timeout_secs = 2
ping_interval_secs = 1
retry_base_ms = 50
{extra}
"#
    )
}

/// A running service and what tests need to talk to it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub fake: FakeWecom,
    /// Signs and encrypts as WeCom does for the configured bot.
    pub wecom: RobotEndpoint,
    pub crypto: CallbackCrypto,
    pub dir: tempfile::TempDir,
    options: Options,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Additions to the test configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Lines added to the `[server]` table.
    pub server: String,
    /// Lines added to the `[wecom]` table.
    pub wecom: String,
    /// Lines added to the test bot's `[[bots]]` table.
    pub bot: String,
    /// TOML appended at the end (more `[[bots]]`, …).
    pub more: String,
    /// The bot-scripts directory (default: the repository's).
    pub scripts_dir: Option<PathBuf>,
}

/// The webhook key of the operators' alert group in the test configuration.
pub const ALERTS_KEY: &str = "staff-alerts";

/// The test configuration: a store at `store`, WeCom webhooks allowed to `fake` (the operators'
/// alert group among them, as [`ALERTS_KEY`]), and `options`.
pub fn config_toml(store: &std::path::Path, fake: &FakeWecom, options: &Options) -> String {
    let scripts = options
        .scripts_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"));
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{server}
[storage]
path = "{store}"
[scripts]
dir = "{scripts}"
watch_interval_ms = 100
[admin]
token = "{ADMIN_TOKEN}"
[wecom]
webhook_hosts = ["qyapi.weixin.qq.com", "{fake}"]
retry_base_ms = 20
max_attempts = 5
webhook_timeout_secs = 1
{wecom}
[alerts]
webhook_url = "{alerts}"
[[bots]]
id = "{BOT}"
channel = "wecom-robot"
token = "{TOKEN}"
encoding_aes_key = "{AES_KEY}"
{bot}
{more}
"#,
        alerts = fake.webhook_url(ALERTS_KEY),
        server = if options.server.contains("shutdown_grace_secs") {
            options.server.clone()
        } else {
            format!("shutdown_grace_secs = 5\n{}", options.server)
        },
        wecom = options.wecom,
        bot = options.bot,
        more = options.more,
        store = store.display(),
        scripts = scripts.display(),
        fake = fake.host(),
    )
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// Starts the service with additions to the test configuration.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let fake = FakeWecom::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = EncodingAesKey::parse(AES_KEY).unwrap();
    let crypto = CallbackCrypto::new(TOKEN, key, "");
    let mut app = TestApp {
        addr: "127.0.0.1:0".parse().unwrap(),
        http: reqwest::Client::new(),
        wecom: RobotEndpoint::new(BotId::parse(BOT).unwrap(), crypto.clone(), 86_400),
        crypto,
        fake,
        dir,
        options,
        shutdown: None,
        task: None,
    };
    app.start().await;
    app
}

impl TestApp {
    async fn start(&mut self) {
        let toml = config_toml(
            &self.dir.path().join("trumpet.redb"),
            &self.fake,
            &self.options,
        );
        let config = Config::from_toml_str(&toml).expect("test config is valid");
        let app = App::build(config).expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.task = Some(tokio::spawn(async move {
            app.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("service ran");
        }));
    }

    /// Shuts down gracefully and waits until the service has stopped.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Stops and starts again on the same store.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The reverse-WebSocket URL of the OneBot bot.
    pub fn onebot_url(&self) -> String {
        format!("ws://{}/onebot/v12/{ONEBOT}", self.addr)
    }

    /// Connects a fake implementation of `account` with the right token.
    pub async fn connect_onebot(
        &self,
        account: &str,
        world: &std::sync::Arc<std::sync::Mutex<fake_onebot::World>>,
    ) -> fake_onebot::FakeOneBot {
        fake_onebot::FakeOneBot::connect(
            &self.onebot_url(),
            Some(ONEBOT_TOKEN),
            false,
            account,
            std::sync::Arc::clone(world),
        )
        .await
        .expect("the fake implementation connects")
    }

    /// Posts a signed, encrypted callback carrying `plaintext`, as WeCom would.
    pub async fn post_callback(&self, plaintext: &str) -> reqwest::Response {
        let nonce = format!("n{}", rand::random::<u32>());
        let (query, body) = self
            .wecom
            .forge_callback(
                plaintext,
                &Utc::now().timestamp().to_string(),
                &nonce,
                rand::random(),
            )
            .unwrap();
        self.http
            .post(self.url(&format!("/wecom/robot/{BOT}?{query}")))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts `plaintext` as a callback and returns the decrypted passive reply, if any.
    pub async fn reply_to(&self, plaintext: &str) -> Option<String> {
        let response = self.post_callback(plaintext).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        self.open_reply(&response.text().await.unwrap())
    }

    /// Decrypts a passive reply after checking its signature; `None` for an empty answer.
    pub fn open_reply(&self, body: &str) -> Option<String> {
        if body.is_empty() {
            return None;
        }
        let encrypt = parse_envelope(body).expect("reply envelope");
        let field = |name: &str| {
            let start = body.find(&format!("<{name}>")).unwrap() + name.len() + 2;
            let end = body.find(&format!("</{name}>")).unwrap();
            body[start..end]
                .trim_start_matches("<![CDATA[")
                .trim_end_matches("]]>")
                .to_owned()
        };
        self.crypto
            .verify(
                &field("TimeStamp"),
                &field("Nonce"),
                &encrypt,
                &field("MsgSignature"),
            )
            .expect("reply signature verifies");
        Some(self.crypto.decrypt(&encrypt).unwrap().message)
    }

    /// `GET path` on the admin API with the admin token, as JSON.
    pub async fn api(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `PUT path` on the admin API with the admin token and a JSON body.
    pub async fn api_put(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        self.api_call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `method path` on the admin API with the admin token and an optional JSON body.
    pub async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Starts the morning report now; returns its run id.
    pub async fn start_report(&self) -> String {
        let (status, body) = self
            .api_call(
                reqwest::Method::POST,
                "/api/v1/jobs/morning-report/run",
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        body["run_id"].as_str().unwrap().to_owned()
    }

    /// Polls run `run_id` until `done` holds for it (15 s at most); returns it.
    pub async fn wait_run(&self, run_id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let run = self.api(&format!("/api/v1/runs/{run_id}")).await;
            if done(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "the run never got there: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /api/v1/groups` with the admin token (tests have fewer groups than a page holds).
    pub async fn groups(&self) -> Vec<Value> {
        let page = self.api("/api/v1/groups?limit=500").await;
        assert!(
            page["next_cursor"].is_null(),
            "more groups than a page: {page}"
        );
        serde_json::from_value(page["groups"].clone()).unwrap()
    }

    /// Polls the groups API until `check` holds for the group `chat`, returning it.
    pub async fn wait_group(&self, chat: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let groups = self.groups().await;
            if let Some(g) = groups.iter().find(|g| g["chat_id"] == chat)
                && check(g)
            {
                return g.clone();
            }
            assert!(
                Instant::now() < deadline,
                "group {chat} never matched: {groups:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Adopts `chat` through the group robot with `owner` as the adopter (an `add_to_chat` event
/// carrying `hook`) and waits until it is recorded.
pub async fn adopt_by(app: &TestApp, chat: &str, owner: &str, hook: &str) {
    let added = robot_message(
        chat,
        owner,
        &format!("add-{chat}"),
        hook,
        &event_body("add_to_chat"),
    );
    app.post_callback(&added).await;
    app.wait_group(chat, |g| g["status"] == "adopted" && g["owner"] == owner)
        .await;
}

/// A decrypted group-robot message as WeCom documents it.
pub fn robot_message(
    chat: &str,
    user: &str,
    msg_id: &str,
    webhook_url: &str,
    body: &str,
) -> String {
    format!(
        "<xml><WebhookUrl><![CDATA[{webhook_url}]]></WebhookUrl><ChatId><![CDATA[{chat}]]></ChatId>\
         <ChatType>group</ChatType><From><UserId>{user}</UserId><Name><![CDATA[用户{user}]]></Name>\
         <Alias><![CDATA[{user}]]></Alias></From>{body}<MsgId>{msg_id}</MsgId></xml>"
    )
}

pub fn text_body(text: &str) -> String {
    format!("<MsgType>text</MsgType><Text><Content><![CDATA[{text}]]></Content></Text>")
}

pub fn event_body(event: &str) -> String {
    format!("<MsgType>event</MsgType><Event><EventType><![CDATA[{event}]]></EventType></Event>")
}

/// Copies `from` into `to` with its subdirectories (a scripts directory a test may edit).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Edits the scripts in `dir` so that their jobs send at once whatever the time of day (no
/// quiet hours, no spread).
pub fn jobs_send_at_once(dir: &std::path::Path) {
    let file = dir.join("schedules.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("quiet_hours = [\"22:00-07:00\"]\n", "")
        .replace("spread_minutes = 10", "spread_minutes = 0");
    std::fs::write(&file, text).unwrap();
}

/// A copy of the repository's bot-scripts in a temporary directory.
pub fn scripts_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts/defaults"),
        dir.path(),
    );
    dir
}
