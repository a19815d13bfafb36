//! Layered settings: embedded defaults → `trumpet.toml` → `TRUMPET_<SECTION>__<KEY>` environment
//! variables, validated once at start-up into a [`Config`] whose values are known to be good.
//!
//! Every validation error names the key it is about; secrets are wrapped in [`Secret`] so that
//! `Debug` output and logs never show them. Checks are in [`validate`]; a file that does not
//! load is explained by [`diagnose`].

mod diagnose;
mod validate;

use diagnose::{describe_load_error, nearest};
pub use validate::validate_token;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use crate::domain::BotId;

pub use crate::domain::Secret;

pub use crate::outbox::OutboxConfig;

pub use crate::wire::onebot::OneBotConfig;
pub use crate::wire::wecom::aibot::{AiBotConfig, AiBotSettings, DEFAULT_AIBOT_WS_URL};

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
    aibot: AiBotConfig,
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
    /// A `wecom-aibot` bot's id in WeCom (its BotID).
    bot_id: Option<String>,
    /// A `wecom-aibot` bot's Secret.
    secret: Option<Secret>,
    /// Where a `wecom-aibot` bot dials (tests point it at a local fake).
    ws_url: Option<String>,
    /// A `wecom-app` bot's corp id (`ww…`).
    corp_id: Option<String>,
    /// Where a `wecom-app` bot's server API is (tests point it at a local fake).
    api_base: Option<String>,
    /// How often a `wecom-app` bot reads every customer group again, in minutes.
    sync_interval_minutes: Option<u64>,
    /// How often a `wecom-app` bot reads the results of unfinished mass-send tasks, in seconds.
    result_poll_secs: Option<u64>,
    /// After how many minutes an owner who has not confirmed a mass-send task is reminded.
    remind_after_minutes: Option<f64>,
    /// Calls per minute a `wecom-app` bot makes to any one API path.
    api_per_minute: Option<u32>,
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
    pub aibot: AiBotConfig,
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
    /// A WeCom AI bot (智能机器人) over its long connection: the service dials out.
    WecomAiBot,
    /// A WeCom self-built app (自建应用) with customer-contact rights: customer groups.
    WecomApp,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::WecomRobot => "wecom-robot",
            ChannelKind::OneBot12 => "onebot12",
            ChannelKind::WecomAiBot => "wecom-aibot",
            ChannelKind::WecomApp => "wecom-app",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BotConfig {
    pub id: BotId,
    pub channel: ChannelKind,
    /// Token and EncodingAESKey; `None` means "generate on first start and keep in the store".
    /// Robot bots, and AI bots in URL-callback mode (always set for them).
    pub credentials: Option<BotCredentials>,
    /// The token a OneBot implementation must present (OneBot bots only; always set for them).
    pub access_token: Option<Secret>,
    /// Checked against each decrypted message only when non-empty.
    pub receive_id: String,
    /// Sends per minute across all of this bot's groups; 0: no limit beyond the per-key and
    /// global ones.
    pub per_minute: u32,
    /// Where and as whom a `wecom-aibot` bot dials (AI bots on the long connection only; an AI
    /// bot in URL-callback mode has `credentials` instead).
    pub aibot: Option<AiBotSettings>,
    /// A `wecom-app` bot's corp, secret and API (its callbacks use `credentials`, with the corp
    /// id as the receive id).
    pub app: Option<crate::wire::wecom::app::AppSettings>,
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

    /// The URL to paste into the WeCom console for an AI bot in URL-callback mode.
    pub fn aibot_callback_url(&self, bot: &BotId) -> String {
        format!("{}/wecom/aibot/{bot}", self.base_url())
    }

    /// The URL to paste into the WeCom console for a self-built app's customer-contact events.
    pub fn app_callback_url(&self, bot: &BotId) -> String {
        format!("{}/wecom/app/{bot}", self.base_url())
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
            // On the long connection the service dials out: what it dials is the endpoint.
            ChannelKind::WecomAiBot => match &bot.aibot {
                Some(aibot) => aibot.ws_url.clone(),
                None => self.aibot_callback_url(&bot.id),
            },
            ChannelKind::WecomApp => self.app_callback_url(&bot.id),
        }
    }
}

#[cfg(test)]
mod tests;
