//! Layered settings: embedded defaults → `trumpet.toml` → `TRUMPET_<SECTION>__<KEY>` environment
//! variables, validated once at start-up into a [`Config`] whose values are known to be good.
//!
//! Every validation error names the key it is about; secrets are wrapped in [`Secret`] so that
//! `Debug` output and logs never show them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::domain::BotId;
pub use crate::domain::Secret;
pub use crate::outbox::OutboxConfig;
pub use crate::wire::onebot::OneBotConfig;
use crate::wire::wecom::crypto::EncodingAesKey;

/// The embedded defaults, also shipped as documentation of every key's default.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// Keys whose values are strings, taken verbatim from the environment.
const STRING_KEYS: [&str; 7] = [
    "server.listen",
    "server.public_url",
    "storage.path",
    "scripts.dir",
    "admin.token",
    "log.level",
    "alerts.webhook_url",
];

/// The longest time handled message ids are kept: 30 days.
const MAX_DEDUPE_TTL_HOURS: u64 = 30 * 24;

/// Sends per minute of a `onebot12` bot's unprompted posts when `per_minute` is not set.
pub const DEFAULT_ACCOUNT_PER_MINUTE: u32 = 30;

/// The configuration file read when `--config` is not given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "trumpet.toml";

/// What can go wrong while loading settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// Settings that could not be read, told as an operator reads them ([`describe_load_error`]).
    #[error("{0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// One invalid value: the key (as written in `trumpet.toml`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    server: RawServer,
    storage: StorageConfig,
    scripts: ScriptsConfig,
    admin: RawAdmin,
    log: LogConfig,
    wecom: WecomConfig,
    onebot: OneBotConfig,
    outbox: OutboxConfig,
    feeds: FeedsConfig,
    #[serde(default)]
    alerts: AlertsConfig,
    #[serde(default)]
    bots: Vec<RawBot>,
}

/// Where what is for the operators' eyes only goes: members' reports of other members and
/// red-envelope test results (the verdict on a group is not for its members).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// A WeCom group robot's webhook URL in the operators' own staff group (a credential, like
    /// every webhook URL). Unset: such reports are kept in the moderation log and the API only.
    #[serde(default)]
    pub webhook_url: Option<Secret>,
}

/// Fetching the operator's feeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsConfig {
    /// Fetch feeds (and follow their redirects) to private, loopback and link-local addresses
    /// too; off, only public addresses are fetched.
    pub allow_private: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: SocketAddr,
    #[serde(default)]
    public_url: String,
    shutdown_grace_secs: u64,
    header_read_timeout_secs: u64,
    body_read_timeout_secs: u64,
    idle_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    id: String,
    channel: String,
    token: Option<Secret>,
    encoding_aes_key: Option<Secret>,
    access_token: Option<Secret>,
    #[serde(default)]
    receive_id: String,
    #[serde(default)]
    per_minute: u32,
}

/// The validated configuration of one running service.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub scripts: ScriptsConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub wecom: WecomConfig,
    pub onebot: OneBotConfig,
    pub outbox: OutboxConfig,
    pub feeds: FeedsConfig,
    pub alerts: AlertsConfig,
    pub bots: Vec<BotConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The public base URL operators paste into WeCom (e.g. `https://bot.example.com`); empty
    /// means "the listen address", which is only right for local trials.
    pub public_url: String,
    /// How long shutdown waits for requests and sends in flight before giving up on them.
    pub shutdown_grace_secs: u64,
    /// A request's header must arrive within this (a client trickling it is dropped).
    pub header_read_timeout_secs: u64,
    /// A request's body must arrive within this (answered 408 otherwise).
    pub body_read_timeout_secs: u64,
    /// A keep-alive connection with nothing in flight closes after this long idle.
    pub idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub path: PathBuf,
    /// The store's page cache, in MiB: memory the store may keep for hot pages.
    pub cache_mb: u64,
}

impl StorageConfig {
    /// The page cache in bytes.
    pub fn cache_bytes(&self) -> usize {
        usize::try_from(self.cache_mb << 20).unwrap_or(usize::MAX)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptsConfig {
    pub dir: PathBuf,
    /// How often the directory is checked for edits, in milliseconds; 0 turns reloading off.
    pub watch_interval_ms: u64,
}

impl ScriptsConfig {
    /// The directory's problem, if any: a `dir` the operator chose that does not exist. Only the
    /// default `bot-scripts` may be missing (a first start runs on the built-in copy); a path
    /// written on purpose and mistyped must not silently run the built-in rules instead.
    pub fn missing_dir(&self) -> Option<String> {
        (self.dir != Path::new(DEFAULT_SCRIPTS_DIR) && !self.dir.exists()).then(|| {
            format!(
                "scripts.dir {dir} does not exist (only the default {DEFAULT_SCRIPTS_DIR} may be missing, for the built-in copy; `trumpet init {dir}` writes the shipped ones there)",
                dir = self.dir.display()
            )
        })
    }
}

/// The scripts directory when none is configured.
pub const DEFAULT_SCRIPTS_DIR: &str = "bot-scripts";

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Bearer token for `/api/v1`; `None` means the admin API refuses everyone.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter directive such as `info` or `trumpet=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    /// Hosts (`host` or `host:port`) that webhook URLs may point at.
    pub webhook_hosts: Vec<String>,
    /// Hosts images in callbacks (`ImageUrl`) may be fetched from, for the QR check (`host`,
    /// `host:port` or `*.domain`); redirects must stay on them.
    pub media_hosts: Vec<String>,
    /// Callbacks whose timestamp is further than this from now are refused.
    pub timestamp_tolerance_secs: u64,
    /// How long handled MsgIds are remembered, so that WeCom's retries trigger nothing twice.
    pub dedupe_ttl_hours: u64,
    /// Handled ids kept in memory (8 bytes each, about 19 bytes with the table around them); past this the oldest are looked up in the
    /// store instead.
    pub dedupe_memory_ids: usize,
    /// Messages per minute per robot webhook key (WeCom allows 20).
    pub webhook_per_minute: u32,
    /// Sends per second across every key and bot: what the service puts on the wire at most.
    pub global_per_second: u32,
    pub webhook_timeout_secs: u64,
    /// First back-off after a retryable errcode; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// Attempts per message before it is recorded as failed.
    pub max_attempts: u32,
    /// Retry a webhook send that got no answer within `webhook_timeout_secs`. It may have
    /// arrived: on, a group may get it twice; off (default), it is recorded as `timed_out`.
    pub retry_after_timeout: bool,
}

/// The channels a bot can be served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A WeCom group robot with a message-receive URL (callbacks in, a push webhook out).
    WecomRobot,
    /// A bot account driven by a OneBot 12 implementation.
    OneBot12,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::WecomRobot => "wecom-robot",
            ChannelKind::OneBot12 => "onebot12",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub id: BotId,
    pub channel: ChannelKind,
    /// Token and EncodingAESKey; `None` means "generate on first start and keep in the store".
    /// Robot bots only.
    pub credentials: Option<BotCredentials>,
    /// The token a OneBot implementation must present (OneBot bots only; always set for them).
    pub access_token: Option<Secret>,
    /// Checked against each decrypted message only when non-empty.
    pub receive_id: String,
    /// Sends per minute across all of this bot's groups; 0: no limit beyond the per-key and
    /// global ones.
    pub per_minute: u32,
}

/// The pair an operator pastes into the WeCom console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotCredentials {
    pub token: Secret,
    pub encoding_aes_key: EncodingAesKey,
}

impl Config {
    /// Loads the layered settings. `file` is `--config`; without it `./trumpet.toml` is read when
    /// present.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULTS_TOML));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        figment = figment.merge(Env::prefixed("TRUMPET_").split("__"));
        // Env values are parsed as TOML-like values, so a token of digits would become a number
        // (losing any leading zero). Keys that are strings are read again as raw strings.
        for key in STRING_KEYS {
            let var = format!("TRUMPET_{}", key.to_uppercase().replace('.', "__"));
            if let Ok(value) = std::env::var(&var) {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        Self::from_figment(figment)
    }

    /// Loads from the embedded defaults plus a TOML string (used by tests and `check`).
    pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
        Self::from_figment(
            Figment::new()
                .merge(Toml::string(DEFAULTS_TOML))
                .merge(Toml::string(toml)),
        )
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let raw: RawSettings = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe_load_error(e)))?;
        raw.validate()
    }

    fn base_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The URL to paste into the WeCom console for `bot`.
    pub fn callback_url(&self, bot: &BotId) -> String {
        format!("{}/wecom/robot/{bot}", self.base_url())
    }

    /// The reverse-WebSocket URL a OneBot implementation connects to for `bot` (the same path
    /// takes webhook POSTs over http(s)).
    pub fn onebot_url(&self, bot: &BotId) -> String {
        let base = self.base_url();
        let ws = match base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", base.trim_start_matches("http://")),
        };
        format!("{ws}/onebot/v12/{bot}")
    }

    /// Where `bot`'s peer sends its events, by channel.
    pub fn endpoint_url(&self, bot: &BotConfig) -> String {
        match bot.channel {
            ChannelKind::WecomRobot => self.callback_url(&bot.id),
            ChannelKind::OneBot12 => self.onebot_url(&bot.id),
        }
    }
}

impl RawSettings {
    fn validate(self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, reason: String| {
            problems.push(Problem {
                key: key.to_owned(),
                reason,
            })
        };

        for (key, secs) in [
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
            ),
            (
                "server.body_read_timeout_secs",
                self.server.body_read_timeout_secs,
            ),
            ("server.idle_timeout_secs", self.server.idle_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                problem(key, format!("must be 1 to 3600 seconds, got {secs}"));
            }
        }
        let public_url = self.server.public_url.trim().to_owned();
        if !public_url.is_empty() {
            match url::Url::parse(&public_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => problem(
                    "server.public_url",
                    format!("{public_url:?} is not an http(s) URL"),
                ),
            }
        }
        if self.storage.path.as_os_str().is_empty() {
            problem("storage.path", "must not be empty".into());
        }
        if !(4..=4096).contains(&self.storage.cache_mb) {
            problem(
                "storage.cache_mb",
                format!("must be 4 to 4096, got {}", self.storage.cache_mb),
            );
        }
        if self.scripts.dir.as_os_str().is_empty() {
            problem("scripts.dir", "must not be empty".into());
        }
        if let Some(token) = &self.admin.token
            && token.expose().chars().count() < 16
        {
            problem(
                "admin.token",
                "must be at least 16 characters (or unset to disable the admin API)".into(),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            problem("log.level", format!("not a valid filter: {e}"));
        } else if !shows_the_service(&self.log.level) {
            problem(
                "log.level",
                format!(
                    "{:?} names neither a level (trace, debug, info, warn, error, off) nor the service (trumpet=…): the service's own lines, errors included, would not be shown",
                    self.log.level
                ),
            );
        }
        validate_wecom(&self.wecom, &mut problem);
        validate_onebot(&self.onebot, &mut problem);
        if let Some(url) = &self.alerts.webhook_url
            && let Err(e) = crate::wire::wecom::robot::webhook::WebhookUrl::parse(
                url.expose(),
                &self.wecom.webhook_hosts,
            )
        {
            problem(
                "alerts.webhook_url",
                format!("must be a WeCom group robot webhook URL on wecom.webhook_hosts: {e}"),
            );
        }
        for (purpose, minutes) in &self.outbox.expire_after_minutes {
            if !crate::outbox::SEND_PURPOSES.contains(&purpose.as_str()) {
                let hint = nearest(purpose, &crate::outbox::SEND_PURPOSES)
                    .map_or_else(String::new, |near| format!(" (did you mean `{near}`?)"));
                problem(
                    &format!("outbox.expire_after_minutes.{purpose}"),
                    format!(
                        "no send has this purpose{hint}: the purposes are {}",
                        crate::outbox::SEND_PURPOSES.join(", ")
                    ),
                );
            }
            if !(minutes.is_finite() && *minutes >= 0.0 && *minutes <= 10_080.0) {
                problem(
                    &format!("outbox.expire_after_minutes.{purpose}"),
                    format!("must be 0 to 10080 minutes (a week), got {minutes}"),
                );
            }
        }

        let mut bots = Vec::new();
        if self.bots.is_empty() {
            problem("bots", "at least one [[bots]] entry is required".into());
        }
        let mut seen_ids = std::collections::HashSet::new();
        for (i, raw) in self.bots.into_iter().enumerate() {
            if !seen_ids.insert(raw.id.clone()) {
                problem(
                    &format!("bots[{i}].id"),
                    format!("{:?} is used by another bot", raw.id),
                );
            }
            if let Some(bot) = validate_bot(i, raw, &mut problem) {
                bots.push(bot);
            }
        }

        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Config {
            server: ServerConfig {
                listen: self.server.listen,
                public_url,
                shutdown_grace_secs: self.server.shutdown_grace_secs,
                header_read_timeout_secs: self.server.header_read_timeout_secs,
                body_read_timeout_secs: self.server.body_read_timeout_secs,
                idle_timeout_secs: self.server.idle_timeout_secs,
            },
            storage: self.storage,
            scripts: self.scripts,
            admin: AdminConfig {
                token: self.admin.token,
            },
            log: self.log,
            wecom: self.wecom,
            onebot: self.onebot,
            outbox: self.outbox,
            feeds: self.feeds,
            alerts: self.alerts,
            bots,
        })
    }
}

/// Checks a list of `host`, `host:port` or `*.domain` entries.
fn validate_hosts(key: &str, hosts: &[String], problem: &mut impl FnMut(&str, String)) {
    for (i, host) in hosts.iter().enumerate() {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        let ok = !bare.is_empty()
            && !bare.contains("://")
            && !bare.contains('/')
            && !bare.contains('*')
            && url::Url::parse(&format!("https://{bare}/")).is_ok();
        if !ok {
            problem(
                &format!("{key}[{i}]"),
                format!("{host:?} is not a host, host:port or *.domain"),
            );
        }
    }
}

fn validate_wecom(w: &WecomConfig, problem: &mut impl FnMut(&str, String)) {
    validate_hosts("wecom.media_hosts", &w.media_hosts, problem);
    for (i, host) in w.webhook_hosts.iter().enumerate() {
        let ok = !host.is_empty()
            && !host.contains("://")
            && !host.contains('/')
            && url::Url::parse(&format!("https://{host}/")).is_ok();
        if !ok {
            problem(
                &format!("wecom.webhook_hosts[{i}]"),
                format!("{host:?} is not a host or host:port"),
            );
        }
    }
    if w.timestamp_tolerance_secs == 0 {
        problem("wecom.timestamp_tolerance_secs", "must be positive".into());
    }
    if !(24..=MAX_DEDUPE_TTL_HOURS).contains(&w.dedupe_ttl_hours) {
        problem(
            "wecom.dedupe_ttl_hours",
            format!(
                "must be 24 to {MAX_DEDUPE_TTL_HOURS} (WeCom retries within a day; ids are kept in memory), got {}",
                w.dedupe_ttl_hours
            ),
        );
    }
    if !(10_000..=100_000_000).contains(&w.dedupe_memory_ids) {
        problem(
            "wecom.dedupe_memory_ids",
            format!(
                "must be 10000 to 100000000 (about 19 bytes each), got {}",
                w.dedupe_memory_ids
            ),
        );
    }
    if !(1..=20).contains(&w.webhook_per_minute) {
        problem(
            "wecom.webhook_per_minute",
            format!(
                "must be 1..=20 (WeCom refuses more), got {}",
                w.webhook_per_minute
            ),
        );
    }
    if !(1..=10_000).contains(&w.global_per_second) {
        problem(
            "wecom.global_per_second",
            format!("must be 1..=10000, got {}", w.global_per_second),
        );
    }
    if w.webhook_timeout_secs == 0 {
        problem("wecom.webhook_timeout_secs", "must be positive".into());
    }
    if w.max_attempts == 0 {
        problem("wecom.max_attempts", "must be at least 1".into());
    }
}

fn validate_onebot(o: &OneBotConfig, problem: &mut impl FnMut(&str, String)) {
    validate_hosts("onebot.file_hosts", &o.file_hosts, problem);
    if !(1..=10_000).contains(&o.max_connections_per_bot) {
        problem(
            "onebot.max_connections_per_bot",
            format!("must be 1 to 10000, got {}", o.max_connections_per_bot),
        );
    }
    let positive = [
        ("onebot.action_timeout_secs", o.action_timeout_secs),
        ("onebot.ping_interval_secs", o.ping_interval_secs),
        ("onebot.sync_interval_minutes", o.sync_interval_minutes),
        ("onebot.retry_base_ms", o.retry_base_ms),
        ("onebot.max_attempts", u64::from(o.max_attempts)),
    ];
    for (key, value) in positive {
        if value == 0 {
            problem(key, "must be positive".into());
        }
    }
    if !(2..=10).contains(&o.heartbeat_misses) {
        problem(
            "onebot.heartbeat_misses",
            format!("must be 2 to 10, got {}", o.heartbeat_misses),
        );
    }
}

fn validate_bot(
    i: usize,
    raw: RawBot,
    problem: &mut impl FnMut(&str, String),
) -> Option<BotConfig> {
    let key = |field: &str| format!("bots[{i}].{field}");
    let id = match BotId::parse(&raw.id) {
        Ok(id) => Some(id),
        Err(reason) => {
            problem(&key("id"), reason);
            None
        }
    };
    let channel = match raw.channel.as_str() {
        "wecom-robot" => Some(ChannelKind::WecomRobot),
        "onebot12" => Some(ChannelKind::OneBot12),
        other => {
            problem(
                &key("channel"),
                format!("unsupported channel {other:?}; supported: \"wecom-robot\", \"onebot12\""),
            );
            None
        }
    };
    if channel == Some(ChannelKind::OneBot12) {
        for (field, set) in [
            ("token", raw.token.is_some()),
            ("encoding_aes_key", raw.encoding_aes_key.is_some()),
        ] {
            if set {
                problem(
                    &key(field),
                    "is for wecom-robot bots; a onebot12 bot uses access_token".into(),
                );
            }
        }
        let access_token = match raw.access_token {
            Some(t)
                if t.expose().chars().count() >= 16
                    && !t.expose().contains(char::is_whitespace) =>
            {
                Some(t)
            }
            Some(_) => {
                problem(
                    &key("access_token"),
                    "must be at least 16 characters without spaces".into(),
                );
                None
            }
            None => {
                problem(
                    &key("access_token"),
                    "missing: a onebot12 bot needs the token its implementation presents".into(),
                );
                None
            }
        };
        return Some(BotConfig {
            id: id?,
            channel: ChannelKind::OneBot12,
            credentials: None,
            access_token: Some(access_token?),
            receive_id: raw.receive_id,
            // A WeChat account that posts much faster than a person risks being limited or
            // banned by the platform: a modest default unless the operator says otherwise.
            per_minute: if raw.per_minute == 0 {
                DEFAULT_ACCOUNT_PER_MINUTE
            } else {
                raw.per_minute
            },
        });
    }
    if raw.access_token.is_some() {
        problem(
            &key("access_token"),
            "is for onebot12 bots; a wecom-robot bot uses token and encoding_aes_key".into(),
        );
    }
    let credentials = match (raw.token, raw.encoding_aes_key) {
        (None, None) => Some(None),
        (Some(token), Some(aes_key)) => {
            let token_ok = validate_token(token.expose())
                .map_err(|reason| problem(&key("token"), reason))
                .is_ok();
            let aes_key = EncodingAesKey::parse(aes_key.expose())
                .map_err(|e| problem(&key("encoding_aes_key"), e.to_string()))
                .ok();
            match (token_ok, aes_key) {
                (true, Some(encoding_aes_key)) => Some(Some(BotCredentials {
                    token,
                    encoding_aes_key,
                })),
                _ => None,
            }
        }
        (Some(_), None) => {
            problem(
                &key("encoding_aes_key"),
                "missing: set both token and encoding_aes_key, or neither to have them generated"
                    .into(),
            );
            None
        }
        (None, Some(_)) => {
            problem(
                &key("token"),
                "missing: set both token and encoding_aes_key, or neither to have them generated"
                    .into(),
            );
            None
        }
    };
    Some(BotConfig {
        id: id?,
        channel: channel?,
        credentials: credentials?,
        access_token: None,
        receive_id: raw.receive_id,
        per_minute: raw.per_minute,
    })
}

/// WeCom accepts 3–32 letters and digits as a Token.
pub fn validate_token(token: &str) -> Result<(), String> {
    let len = token.chars().count();
    if !(3..=32).contains(&len) {
        return Err(format!("must be 3 to 32 characters, got {len}"));
    }
    if !token.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("must contain only letters and digits".into());
    }
    Ok(())
}

/// Whether a log filter lets the service's own lines through at some level: one of its
/// directives is a bare level (`info`) or names the service's target (`trumpet`, `trumpet::…`).
/// A word that is neither (`verbose`) is read by tracing as a target, and silences everything.
fn shows_the_service(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    filter
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .any(|directive| {
            let target = directive
                .split(['=', '['])
                .next()
                .unwrap_or_default()
                .trim();
            let bare_level = !directive.contains('=')
                && LEVELS
                    .iter()
                    .any(|level| target.eq_ignore_ascii_case(level));
            bare_level || target == "trumpet" || target.starts_with("trumpet::")
        })
}

/// figment's errors as an operator reads them: the key as written (no profile prefix), the file
/// and line it is on (or the environment variable), and for an unknown key the known key nearest
/// to it.
fn describe_load_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let place = match e.metadata.as_ref() {
                Some(m) => match &m.source {
                    Some(figment::Source::File(path)) => match line_of(path, &e.path) {
                        Some(line) => format!(" ({}:{line})", path.display()),
                        None => format!(" ({})", path.display()),
                    },
                    _ if m.name.contains("environment") => format!(
                        " (environment variable TRUMPET_{})",
                        e.path.join("__").to_uppercase()
                    ),
                    _ => String::new(),
                },
                None => String::new(),
            };
            match &e.kind {
                figment::error::Kind::UnknownField(found, expected) => {
                    let hint = nearest(found, expected)
                        .map(|known| format!(": did you mean `{known}`?"))
                        .unwrap_or_else(|| format!("; known here: {}", expected.join(", ")));
                    format!("unknown setting `{key}`{place}{hint}")
                }
                kind => format!("{kind}: `{key}`{place}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 1-based line of `path`'s file where `key` (the last element, under its table) is set.
fn line_of(path: &Path, key: &[String]) -> Option<usize> {
    let (name, tables) = key.split_last()?;
    // Array indices (`bots.0`) are not written in the file: match the table by its names.
    let table: Vec<&str> = tables
        .iter()
        .map(String::as_str)
        .filter(|t| t.parse::<usize>().is_err())
        .collect();
    let table = table.join(".");
    let text = std::fs::read_to_string(path).ok()?;
    let mut current = String::new();
    let mut anywhere = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
            continue;
        }
        let sets = line
            .strip_prefix(name.as_str())
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if sets {
            if current == table {
                return Some(number + 1);
            }
            anywhere.get_or_insert(number + 1);
        }
    }
    anywhere
}

/// The known key closest to `found` by edit distance, when it is close enough to be a typo.
fn nearest<'a>(found: &str, known: &[&'a str]) -> Option<&'a str> {
    let found: Vec<char> = found.chars().collect();
    known
        .iter()
        .map(|k| (edit_distance(&found, &k.chars().collect::<Vec<_>>()), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
