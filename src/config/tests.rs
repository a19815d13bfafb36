//! Tests for layered loading and validation.

use super::*;

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

fn problems(toml: &str) -> Vec<Problem> {
    match Config::from_toml_str(toml) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn embedded_defaults_are_valid_and_match_the_documented_values() {
    let c = Config::from_toml_str("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.storage.path, PathBuf::from("data/trumpet.redb"));
    assert_eq!(c.storage.cache_bytes(), 32 << 20);
    assert_eq!(c.scripts.dir, PathBuf::from("bot-scripts"));
    assert!(c.admin.token.is_none());
    assert_eq!(c.bots.len(), 1);
    assert_eq!(c.bots[0].id.as_str(), "trumpet");
    assert!(c.bots[0].credentials.is_none(), "generated on first start");
    assert_eq!(
        c.wecom.webhook_hosts,
        vec!["qyapi.weixin.qq.com", "in.qyapi.weixin.qq.com"]
    );
    assert_eq!(
        c.callback_url(&c.bots[0].id),
        "http://127.0.0.1:8080/wecom/robot/trumpet"
    );
}

#[test]
fn a_file_overrides_defaults_and_replaces_the_bot_list() {
    let c = Config::from_toml_str(&format!(
        r#"
        [server]
        listen = "0.0.0.0:9000"
        public_url = "https://bot.example.com/"
        [admin]
        token = "0123456789abcdef"
        [[bots]]
        id = "ops"
        channel = "wecom-robot"
        token = "abc123"
        encoding_aes_key = "{KEY}"
        receive_id = "ww123"
        "#
    ))
    .unwrap();
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.bots.len(), 1);
    assert_eq!(c.bots[0].receive_id, "ww123");
    assert_eq!(
        c.callback_url(&c.bots[0].id),
        "https://bot.example.com/wecom/robot/ops"
    );
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let p = problems(
        r#"
        [storage]
        cache_mb = 2
        [admin]
        token = "short"
        [wecom]
        webhook_hosts = ["https://qyapi.weixin.qq.com/x"]
        webhook_per_minute = 25
        dedupe_ttl_hours = 1
        [[bots]]
        id = "bad id"
        channel = "carrier-pigeon"
        token = "no spaces allowed"
        encoding_aes_key = "tooshort"
        "#,
    );
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "storage.cache_mb",
        "admin.token",
        "wecom.webhook_hosts[0]",
        "wecom.webhook_per_minute",
        "wecom.dedupe_ttl_hours",
        "bots[0].id",
        "bots[0].channel",
        "bots[0].token",
        "bots[0].encoding_aes_key",
    ] {
        assert!(keys.contains(&key), "{key} missing from {p:?}");
    }
    let aes = p
        .iter()
        .find(|p| p.key == "bots[0].encoding_aes_key")
        .unwrap();
    assert!(aes.reason.contains("43"), "{aes}");
}

#[test]
fn half_configured_credentials_and_duplicate_ids_are_refused() {
    let p = problems(
        r#"
        [[bots]]
        id = "a"
        channel = "wecom-robot"
        token = "abc123"
        [[bots]]
        id = "a"
        channel = "wecom-robot"
        "#,
    );
    assert!(
        p.iter().any(|p| p.key == "bots[0].encoding_aes_key"),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.key == "bots[1].id" && p.reason.contains("another")),
        "{p:?}"
    );
}

#[test]
fn type_errors_name_the_key() {
    let err = Config::from_toml_str("[server]\nlisten = \"not an address\"").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("listen"), "{text}");
}

#[test]
fn unknown_keys_are_refused() {
    let err = Config::from_toml_str("[server]\nlisten_on = \"127.0.0.1:1\"").unwrap_err();
    assert!(err.to_string().contains("listen_on"), "{err}");
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
fn a_typo_names_the_file_and_line_and_the_key_it_meant() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "typo.toml",
            "[server]\nlisten = \"127.0.0.1:7000\"\n\n[wecom]\nwebhook_per_minut = 3\n",
        )?;
        let err = Config::load(Some(Path::new("typo.toml")))
            .unwrap_err()
            .to_string();
        // figment gives the file's full path.
        assert!(
            err.starts_with("unknown setting `wecom.webhook_per_minut` (/")
                && err.ends_with("/typo.toml:5): did you mean `webhook_per_minute`?"),
            "{err}"
        );
        assert!(!err.contains("default."), "no profile prefix: {err}");
        jail.create_file("far.toml", "[server]\nzzz = 1\n")?;
        let err = Config::load(Some(Path::new("far.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("far.toml:2); known here: listen,"), "{err}");
        jail.set_env("TRUMPET_SERVER__SHUTDWON_GRACE_SECS", "3");
        let err = Config::load(Some(Path::new("far.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(environment variable TRUMPET_SERVER__SHUTDWON_GRACE_SECS): did you mean `shutdown_grace_secs`?"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn edit_distance_counts_single_changes() {
    let d = |a: &str, b: &str| {
        super::diagnose::edit_distance(
            &a.chars().collect::<Vec<_>>(),
            &b.chars().collect::<Vec<_>>(),
        )
    };
    assert_eq!(d("shutdwon", "shutdown"), 2);
    assert_eq!(d("listen", "listen"), 0);
    assert_eq!(d("", "abc"), 3);
    assert_eq!(d("群机器人", "群机器"), 1);
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let c = Config::from_toml_str(&format!(
        r#"
        [admin]
        token = "admin-secret-0123456789"
        [[bots]]
        id = "x"
        channel = "wecom-robot"
        token = "TopSecretToken1"
        encoding_aes_key = "{KEY}"
        "#
    ))
    .unwrap();
    let debug = format!("{c:?}");
    for secret in ["admin-secret-0123456789", "TopSecretToken1", KEY] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
fn environment_variables_override_the_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("custom.toml", "[server]\nlisten = \"127.0.0.1:7000\"\n")?;
        jail.set_env("TRUMPET_SERVER__LISTEN", "127.0.0.1:7001");
        jail.set_env("TRUMPET_STORAGE__PATH", "/tmp/x.redb");
        jail.set_env("TRUMPET_ADMIN__TOKEN", "0123456789012345");
        jail.set_env(
            "TRUMPET_WECOM__WEBHOOK_HOSTS",
            "[\"qyapi.weixin.qq.com\", \"127.0.0.1:9\"]",
        );
        let c = Config::load(Some(Path::new("custom.toml"))).expect("loads");
        assert_eq!(c.server.listen.port(), 7001);
        assert_eq!(c.storage.path, PathBuf::from("/tmp/x.redb"));
        assert_eq!(c.wecom.webhook_hosts.len(), 2);
        let token = c.admin.token.expect("token from the environment");
        assert_eq!(
            token.expose(),
            "0123456789012345",
            "digits stay a string, zero kept"
        );
        Ok(())
    });
}

#[test]
fn a_missing_config_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/trumpet.toml"))).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile(_)), "{err}");
}

#[test]
fn an_absurd_dedupe_ttl_is_refused_not_overflowed() {
    let p = problems("[wecom]\ndedupe_ttl_hours = 9000000000000000000\n");
    assert!(p.iter().any(|p| p.key == "wecom.dedupe_ttl_hours"), "{p:?}");
}

#[test]
fn a_onebot_bot_needs_its_own_token_and_gets_a_modest_send_rate() {
    let c = Config::from_toml_str(
        r#"
        [[bots]]
        id = "account"
        channel = "onebot12"
        access_token = "a-long-enough-token-01"
        "#,
    )
    .unwrap();
    let bot = &c.bots[0];
    assert_eq!(bot.channel, ChannelKind::OneBot12);
    assert_eq!(bot.per_minute, DEFAULT_ACCOUNT_PER_MINUTE);
    assert_eq!(
        c.endpoint_url(bot),
        "ws://127.0.0.1:8080/onebot/v12/account"
    );
    let p = problems(
        r#"
        [onebot]
        heartbeat_misses = 1
        [outbox.expire_after_minutes]
        welcome = -1
        [[bots]]
        id = "short"
        channel = "onebot12"
        access_token = "short"
        [[bots]]
        id = "none"
        channel = "onebot12"
        token = "abc123"
        [[bots]]
        id = "robot"
        channel = "wecom-robot"
        access_token = "a-long-enough-token-01"
        "#,
    );
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "onebot.heartbeat_misses",
        "outbox.expire_after_minutes.welcome",
        "bots[0].access_token",
        "bots[1].access_token",
        "bots[1].token",
        "bots[2].access_token",
    ] {
        assert!(keys.contains(&key), "{key} missing from {p:?}");
    }
}

#[test]
fn a_log_filter_that_would_hide_the_service_is_refused() {
    for level in [
        "info",
        "warn,hyper=debug",
        "trumpet=debug",
        "trumpet::outbox=trace",
        "OFF",
    ] {
        let toml = format!("[log]\nlevel = \"{level}\"");
        assert!(Config::from_toml_str(&toml).is_ok(), "{level} is fine");
    }
    for level in ["verbose", "hyper=debug", "trumpets=info"] {
        let toml = format!("[log]\nlevel = \"{level}\"");
        let problems = problems(&toml);
        assert!(
            problems
                .iter()
                .any(|p| p.key == "log.level" && p.reason.contains("would not be shown")),
            "{level}: {problems:?}"
        );
    }
}

#[test]
fn the_alert_target_must_be_an_allowed_webhook() {
    assert!(
        Config::from_toml_str("")
            .unwrap()
            .alerts
            .webhook_url
            .is_none()
    );
    let ok =
        "[alerts]\nwebhook_url = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=staff\"";
    assert!(
        Config::from_toml_str(ok)
            .unwrap()
            .alerts
            .webhook_url
            .is_some()
    );
    for url in [
        "https://evil.example/cgi-bin/webhook/send?key=staff",
        "not a url",
    ] {
        let toml = format!("[alerts]\nwebhook_url = \"{url}\"");
        let problems = problems(&toml);
        assert!(
            problems.iter().any(|p| p.key == "alerts.webhook_url"),
            "{url}: {problems:?}"
        );
    }
}

#[test]
fn an_unknown_send_purpose_is_refused_with_the_known_ones() {
    let ok = "[outbox.expire_after_minutes]\nred_envelope = 30\nhealth_digest = 60\n";
    assert!(Config::from_toml_str(ok).is_ok());
    let problems = problems("[outbox.expire_after_minutes]\nwelcom = 5\n");
    let problem = problems
        .iter()
        .find(|p| p.key == "outbox.expire_after_minutes.welcom")
        .expect("refused");
    assert!(
        problem.reason.contains("did you mean `welcome`")
            && problem.reason.contains("moderation_warning"),
        "{problem}"
    );
}

#[test]
fn an_aibot_needs_its_bot_id_and_secret_and_dials_wecom_by_default() {
    let c = Config::from_toml_str(
        r#"
        [[bots]]
        id = "ai"
        channel = "wecom-aibot"
        bot_id = "aibk7Xn2"
        secret = "the-secret"
        "#,
    )
    .unwrap();
    let bot = &c.bots[0];
    assert_eq!(bot.channel, ChannelKind::WecomAiBot);
    let aibot = bot.aibot.as_ref().unwrap();
    assert_eq!(aibot.bot_id, "aibk7Xn2");
    assert_eq!(aibot.ws_url, DEFAULT_AIBOT_WS_URL);
    assert_eq!(c.endpoint_url(bot), DEFAULT_AIBOT_WS_URL);
    assert!(
        !format!("{bot:?}").contains("the-secret"),
        "the secret is never printed"
    );
    assert_eq!(c.aibot.ping_interval_secs, 30);
    assert_eq!(bot.per_minute, super::validate::DEFAULT_AIBOT_PER_MINUTE);

    let p = problems(
        r#"
        [aibot]
        ping_interval_secs = 0
        [[bots]]
        id = "nothing"
        channel = "wecom-aibot"
        [[bots]]
        id = "wrong"
        channel = "wecom-aibot"
        bot_id = "has space"
        secret = ""
        ws_url = "https://openws.work.weixin.qq.com"
        token = "TestToken123"
        [[bots]]
        id = "robot"
        channel = "wecom-robot"
        secret = "for-an-aibot"
        "#,
    );
    for key in [
        "aibot.ping_interval_secs",
        "bots[0].bot_id",
        "bots[0].secret",
        "bots[1].bot_id",
        "bots[1].secret",
        "bots[1].ws_url",
        "bots[1].encoding_aes_key",
        "bots[2].secret",
    ] {
        assert!(p.iter().any(|p| p.key == key), "{key} not reported: {p:?}");
    }
}

#[test]
fn an_aibot_with_token_and_key_is_in_url_callback_mode() {
    let c = Config::from_toml_str(
        r#"
        [[bots]]
        id = "aiurl"
        channel = "wecom-aibot"
        token = "TestToken123"
        encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
        "#,
    )
    .unwrap();
    let bot = &c.bots[0];
    assert!(bot.aibot.is_none());
    assert!(bot.credentials.is_some());
    assert_eq!(
        c.endpoint_url(bot),
        "http://127.0.0.1:8080/wecom/aibot/aiurl"
    );
}

#[test]
fn an_app_needs_its_corp_and_secret_and_seals_with_the_corp_id() {
    let c = Config::from_toml_str(
        r#"
        [[bots]]
        id = "kefu"
        channel = "wecom-app"
        corp_id = "ww0123456789abcdef"
        secret = "app-secret-value"
        token = "TestToken123"
        encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
        "#,
    )
    .unwrap();
    let bot = &c.bots[0];
    assert_eq!(bot.channel, ChannelKind::WecomApp);
    assert_eq!(bot.receive_id, "ww0123456789abcdef");
    let app = bot.app.as_ref().unwrap();
    assert_eq!(app.api_base, crate::wire::wecom::app::DEFAULT_API_BASE);
    assert_eq!(app.result_poll_secs, 300);
    assert_eq!(app.sync_interval_secs, 3600);
    assert_eq!(app.remind_after_secs, 3600);
    assert!(!format!("{bot:?}").contains("app-secret-value"));
    assert_eq!(c.endpoint_url(bot), "http://127.0.0.1:8080/wecom/app/kefu");

    let p = problems(
        r#"
        [[bots]]
        id = "nothing"
        channel = "wecom-app"
        [[bots]]
        id = "wrong"
        channel = "wecom-app"
        corp_id = "ww 1"
        secret = "x"
        api_base = "ftp://example.com"
        result_poll_secs = 0
        bot_id = "aibot-only"
        receive_id = "ww1"
        [[bots]]
        id = "robot"
        channel = "wecom-robot"
        corp_id = "ww1"
        "#,
    );
    for key in [
        "bots[0].corp_id",
        "bots[0].secret",
        "bots[0].token",
        "bots[1].corp_id",
        "bots[1].api_base",
        "bots[1].result_poll_secs",
        "bots[1].bot_id",
        "bots[1].receive_id",
        "bots[2].corp_id",
    ] {
        assert!(p.iter().any(|p| p.key == key), "{key} not reported: {p:?}");
    }
}
