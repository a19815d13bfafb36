//! Checking a loaded configuration before anything starts: hosts, the WeCom and OneBot
//! settings, each bot's id, channel, secrets and URLs, the admin token and the log filter — each
//! problem named with its key, all of them reported at once.

use super::*;

impl RawSettings {
    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, reason: String| {
            problems.push(Problem {
                key: key.to_owned(),
                reason,
            })
        };

        let public_url = self.server.public_url.trim().to_owned();
        self.validate_service(&public_url, &mut problem);
        validate_wecom(&self.wecom, &mut problem);
        validate_onebot(&self.onebot, &mut problem);
        validate_aibot(&self.aibot, &mut problem);
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
        validate_outbox(&self.outbox, &mut problem);

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
            aibot: self.aibot,
            outbox: self.outbox,
            feeds: self.feeds,
            alerts: self.alerts,
            bots,
        })
    }

    /// The server, storage, scripts, admin and log settings (`public_url` trimmed).
    fn validate_service(&self, public_url: &str, problem: &mut impl FnMut(&str, String)) {
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
        if !public_url.is_empty() {
            match url::Url::parse(public_url) {
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
    }
}

/// Each `[outbox.expire_after_minutes]` key is a send purpose, each value a span up to a week.
fn validate_outbox(outbox: &OutboxConfig, problem: &mut impl FnMut(&str, String)) {
    for (purpose, minutes) in &outbox.expire_after_minutes {
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
}

/// Checks a list of `host`, `host:port` or `*.domain` entries.
pub(super) fn validate_hosts(key: &str, hosts: &[String], problem: &mut impl FnMut(&str, String)) {
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

pub(super) fn validate_wecom(w: &WecomConfig, problem: &mut impl FnMut(&str, String)) {
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

/// The AI bots' link timings: each within a range that keeps a link alive and a refusal slow.
pub(super) fn validate_aibot(a: &super::AiBotConfig, problem: &mut impl FnMut(&str, String)) {
    for (key, value, range) in [
        ("aibot.ping_interval_secs", a.ping_interval_secs, 1..=300),
        ("aibot.ack_timeout_secs", a.ack_timeout_secs, 1..=60),
        ("aibot.reconnect_max_secs", a.reconnect_max_secs, 1..=600),
    ] {
        if !range.contains(&value) {
            problem(
                key,
                format!("must be {} to {}, got {value}", range.start(), range.end()),
            );
        }
    }
}

pub(super) fn validate_onebot(o: &OneBotConfig, problem: &mut impl FnMut(&str, String)) {
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

pub(super) fn validate_bot(
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
        "wecom-aibot" => Some(ChannelKind::WecomAiBot),
        "wecom-app" => Some(ChannelKind::WecomApp),
        other => {
            problem(
                &key("channel"),
                format!(
                    "unsupported channel {other:?}; supported: \"wecom-robot\", \"onebot12\", \"wecom-aibot\", \"wecom-app\""
                ),
            );
            None
        }
    };
    if channel != Some(ChannelKind::WecomApp) {
        refuse_set(
            &key,
            &[
                ("corp_id", raw.corp_id.is_some()),
                ("api_base", raw.api_base.is_some()),
                ("sync_interval_minutes", raw.sync_interval_minutes.is_some()),
                ("result_poll_secs", raw.result_poll_secs.is_some()),
                ("remind_after_minutes", raw.remind_after_minutes.is_some()),
                ("api_per_minute", raw.api_per_minute.is_some()),
            ],
            "is for wecom-app bots",
            problem,
        );
    }
    if channel == Some(ChannelKind::WecomApp) {
        return app_bot(&key, id, raw, problem);
    }
    if channel == Some(ChannelKind::OneBot12) {
        return onebot_bot(&key, id, raw, problem);
    }
    if channel == Some(ChannelKind::WecomAiBot) {
        return aibot_bot(&key, id, raw, problem);
    }
    refuse_set(
        &key,
        &[
            ("bot_id", raw.bot_id.is_some()),
            ("secret", raw.secret.is_some()),
            ("ws_url", raw.ws_url.is_some()),
        ],
        "is for wecom-aibot bots",
        problem,
    );
    if raw.access_token.is_some() {
        problem(
            &key("access_token"),
            "is for onebot12 bots; a wecom-robot bot uses token and encoding_aes_key".into(),
        );
    }
    let credentials = robot_credentials(&key, raw.token, raw.encoding_aes_key, problem);
    Some(BotConfig {
        id: id?,
        channel: channel?,
        credentials: credentials?,
        access_token: None,
        receive_id: raw.receive_id,
        per_minute: raw.per_minute,
        aibot: None,
        app: None,
    })
}

/// Unprompted posts a minute of an AI bot unless the operator says otherwise (the limit peers
/// report; unconfirmed by WeCom's documents).
pub const DEFAULT_AIBOT_PER_MINUTE: u32 = 30;

/// A `wecom-aibot` bot in URL-callback mode: the Token and EncodingAESKey of its API
/// configuration (both required: WeCom's console shows them), nothing for the long connection.
fn aibot_callback_bot(
    key: &dyn Fn(&str) -> String,
    id: Option<BotId>,
    raw: RawBot,
    problem: &mut impl FnMut(&str, String),
) -> Option<BotConfig> {
    refuse_set(
        key,
        &[
            ("bot_id", raw.bot_id.is_some()),
            ("secret", raw.secret.is_some()),
            ("ws_url", raw.ws_url.is_some()),
            ("access_token", raw.access_token.is_some()),
        ],
        "is not for a wecom-aibot bot in URL-callback mode (token and encoding_aes_key); a long-connection bot has bot_id and secret instead",
        problem,
    );
    let credentials = robot_credentials(key, raw.token, raw.encoding_aes_key, problem);
    Some(BotConfig {
        id: id?,
        channel: ChannelKind::WecomAiBot,
        credentials: credentials?,
        access_token: None,
        receive_id: raw.receive_id,
        per_minute: raw.per_minute,
        aibot: None,
        app: None,
    })
}

/// A `wecom-aibot` bot: its BotID, Secret and the URL it dials (no robot or OneBot secrets) —
/// or, given `token` and `encoding_aes_key`, one in URL-callback mode.
fn aibot_bot(
    key: &dyn Fn(&str) -> String,
    id: Option<BotId>,
    raw: RawBot,
    problem: &mut impl FnMut(&str, String),
) -> Option<BotConfig> {
    if raw.token.is_some() || raw.encoding_aes_key.is_some() {
        return aibot_callback_bot(key, id, raw, problem);
    }
    if raw.access_token.is_some() {
        problem(
            &key("access_token"),
            "is not for wecom-aibot bots, which use bot_id and secret".into(),
        );
    }
    let bot_id = required_id(
        &key("bot_id"),
        raw.bot_id,
        128,
        "must be the BotID from the WeCom admin console (1 to 128 characters, no spaces)",
        "missing: a wecom-aibot bot needs its BotID (WeCom admin console → the AI bot → API mode: long connection)",
        problem,
    );
    let secret = required_secret(
        &key("secret"),
        raw.secret,
        "missing: a wecom-aibot bot needs the Secret shown beside its BotID",
        problem,
    );
    let ws_url = url_of(
        &key("ws_url"),
        raw.ws_url,
        super::DEFAULT_AIBOT_WS_URL,
        ["ws", "wss"],
        problem,
    );
    Some(BotConfig {
        id: id?,
        channel: ChannelKind::WecomAiBot,
        credentials: None,
        access_token: None,
        receive_id: raw.receive_id,
        // WeCom is reported to take about 30 unprompted posts a minute from an AI bot.
        per_minute: if raw.per_minute == 0 {
            DEFAULT_AIBOT_PER_MINUTE
        } else {
            raw.per_minute
        },
        aibot: Some(super::AiBotSettings {
            bot_id: bot_id?,
            secret: secret?,
            ws_url: ws_url?,
        }),
        app: None,
    })
}

/// A `wecom-app` bot: the corp id, the app's secret, its API, and the Token and EncodingAESKey
/// of its customer-contact event server (both required).
fn app_bot(
    key: &dyn Fn(&str) -> String,
    id: Option<BotId>,
    raw: RawBot,
    problem: &mut impl FnMut(&str, String),
) -> Option<BotConfig> {
    use crate::wire::wecom::app;
    refuse_set(
        key,
        &[
            ("bot_id", raw.bot_id.is_some()),
            ("ws_url", raw.ws_url.is_some()),
            ("access_token", raw.access_token.is_some()),
            ("receive_id", !raw.receive_id.is_empty()),
        ],
        "is not for wecom-app bots (corp_id, secret, token, encoding_aes_key; the corp id is the receive id)",
        problem,
    );
    let corp_id = required_id(
        &key("corp_id"),
        raw.corp_id,
        64,
        "must be the corp id from the WeCom admin console (我的企业 → 企业ID, no spaces)",
        "missing: a wecom-app bot needs the corp id (WeCom admin console → 我的企业 → 企业ID)",
        problem,
    );
    let secret = required_secret(
        &key("secret"),
        raw.secret,
        "missing: a wecom-app bot needs its app's Secret (应用管理 → the app → Secret)",
        problem,
    );
    let api_base = url_of(
        &key("api_base"),
        raw.api_base,
        app::DEFAULT_API_BASE,
        ["http", "https"],
        problem,
    );
    let mut ranged = |field: &str, value: u64, range: std::ops::RangeInclusive<u64>| {
        if !range.contains(&value) {
            problem(
                &key(field),
                format!(
                    "must be between {} and {}, got {value}",
                    range.start(),
                    range.end()
                ),
            );
        }
        value
    };
    let sync_minutes = ranged(
        "sync_interval_minutes",
        raw.sync_interval_minutes
            .unwrap_or(DEFAULT_APP_SYNC_MINUTES),
        1..=10_080,
    );
    let poll_secs = ranged(
        "result_poll_secs",
        raw.result_poll_secs.unwrap_or(DEFAULT_APP_RESULT_POLL_SECS),
        1..=86_400,
    );
    let per_minute = ranged(
        "api_per_minute",
        u64::from(raw.api_per_minute.unwrap_or(DEFAULT_APP_API_PER_MINUTE)),
        1..=10_000,
    );
    // Minutes, fractions allowed (0.5 is half a minute).
    let remind_minutes = raw
        .remind_after_minutes
        .unwrap_or(DEFAULT_APP_REMIND_AFTER_MINUTES);
    let remind_secs = if (0.0..=10_080.0).contains(&remind_minutes) {
        (remind_minutes * 60.0).round() as u64
    } else {
        problem(
            &key("remind_after_minutes"),
            format!("must be between 0 and 10080, got {remind_minutes}"),
        );
        0
    };
    // Required: the console's 接收事件服务器 form makes them (随机获取) and the app's events are
    // not served without them.
    let credentials = match (&raw.token, &raw.encoding_aes_key) {
        (None, None) => {
            problem(
                &key("token"),
                "missing: a wecom-app bot needs the Token and EncodingAESKey of its event server (客户联系 → 客户 → API → 接收事件服务器; 随机获取 makes both)".into(),
            );
            None
        }
        _ => robot_credentials(key, raw.token, raw.encoding_aes_key, problem).flatten(),
    };
    let corp_id = corp_id?;
    Some(BotConfig {
        id: id?,
        channel: ChannelKind::WecomApp,
        credentials: Some(credentials?),
        access_token: None,
        // WeCom seals an app's callbacks with the corp id.
        receive_id: corp_id.clone(),
        per_minute: raw.per_minute,
        aibot: None,
        app: Some(app::AppSettings {
            corp_id,
            secret: secret?,
            api_base: api_base?,
            sync_interval_secs: sync_minutes * 60,
            result_poll_secs: poll_secs,
            remind_after_secs: remind_secs,
            api_per_minute: u32::try_from(per_minute).unwrap_or(u32::MAX),
        }),
    })
}

/// How often a `wecom-app` bot reads every customer group again unless the operator says.
pub const DEFAULT_APP_SYNC_MINUTES: u64 = 60;
/// How often unfinished mass-send tasks' results are read.
pub const DEFAULT_APP_RESULT_POLL_SECS: u64 = 300;
/// When owners who have not confirmed a task are first reminded (0: never).
pub const DEFAULT_APP_REMIND_AFTER_MINUTES: f64 = 60.0;
/// WeCom's documented base limit is 2,000 calls a minute per corp and API (and 30,000 an
/// hour); the default stays under it so that other apps of the corp keep room.
pub const DEFAULT_APP_API_PER_MINUTE: u32 = 1000;

/// A URL setting (`default` when unset) with a host and one of `schemes`.
fn url_of(
    key: &str,
    value: Option<String>,
    default: &str,
    schemes: [&str; 2],
    problem: &mut impl FnMut(&str, String),
) -> Option<String> {
    let value = value.unwrap_or_else(|| default.to_owned());
    match url::Url::parse(&value) {
        Ok(u) if schemes.contains(&u.scheme()) && u.host_str().is_some() => Some(value),
        _ => {
            problem(
                key,
                format!(
                    "must be a {}:// or {}:// URL, got {value:?}",
                    schemes[0], schemes[1]
                ),
            );
            None
        }
    }
}

/// A required id from WeCom's console (`value`, trimmed): 1 to `max` bytes, no spaces.
fn required_id(
    key: &str,
    value: Option<String>,
    max: usize,
    invalid: &str,
    missing: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<String> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() && v.len() <= max && !v.contains(char::is_whitespace) => Some(v),
        Some(_) => {
            problem(key, invalid.into());
            None
        }
        None => {
            problem(key, missing.into());
            None
        }
    }
}

/// A required secret from WeCom's console: not empty, no spaces (a pasted one often has some).
fn required_secret(
    key: &str,
    value: Option<Secret>,
    missing: &str,
    problem: &mut impl FnMut(&str, String),
) -> Option<Secret> {
    match value {
        Some(s) if !s.expose().trim().is_empty() && !s.expose().contains(char::is_whitespace) => {
            Some(s)
        }
        Some(_) => {
            problem(key, "must not be empty or contain spaces".into());
            None
        }
        None => {
            problem(key, missing.into());
            None
        }
    }
}

/// Reports each of `fields` that is set (`true`) as not belonging to this kind of bot, for
/// `reason`.
fn refuse_set(
    key: &dyn Fn(&str) -> String,
    fields: &[(&str, bool)],
    reason: &str,
    problem: &mut impl FnMut(&str, String),
) {
    for (field, set) in fields {
        if *set {
            problem(&key(field), reason.to_owned());
        }
    }
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
pub(super) fn shows_the_service(filter: &str) -> bool {
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

/// A `onebot12` bot: its `access_token` (no robot secrets) and its per-minute limit.
fn onebot_bot(
    key: &dyn Fn(&str) -> String,
    id: Option<BotId>,
    raw: RawBot,
    problem: &mut impl FnMut(&str, String),
) -> Option<BotConfig> {
    refuse_set(
        key,
        &[
            ("token", raw.token.is_some()),
            ("encoding_aes_key", raw.encoding_aes_key.is_some()),
        ],
        "is for wecom-robot bots; a onebot12 bot uses access_token",
        problem,
    );
    let access_token = match raw.access_token {
        Some(t)
            if t.expose().chars().count() >= 16 && !t.expose().contains(char::is_whitespace) =>
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
    Some(BotConfig {
        id: id?,
        channel: ChannelKind::OneBot12,
        credentials: None,
        access_token: Some(access_token?),
        aibot: None,
        app: None,
        receive_id: raw.receive_id,
        // A WeChat account that posts much faster than a person risks being limited or
        // banned by the platform: a modest default unless the operator says otherwise.
        per_minute: if raw.per_minute == 0 {
            DEFAULT_ACCOUNT_PER_MINUTE
        } else {
            raw.per_minute
        },
    })
}

/// A `wecom-robot` bot's secrets: both or neither (`Some(None)`: generated at first start);
/// `None` when they are wrong.
fn robot_credentials(
    key: &dyn Fn(&str) -> String,
    token: Option<Secret>,
    encoding_aes_key: Option<Secret>,
    problem: &mut impl FnMut(&str, String),
) -> Option<Option<BotCredentials>> {
    match (token, encoding_aes_key) {
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
    }
}
