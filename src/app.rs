//! Building the whole service from a [`Config`] and running it until a shutdown signal:
//! store, bot credentials, scripts, de-duplication set, outbox, pipeline and HTTP server.
//!
//! Shutdown is one `CancellationToken`: the signal cancels it, the server stops accepting and
//! finishes requests in flight, the bot accounts' sockets close, and every background loop (the
//! scheduler, envelope timers, the digest, feeds, the scripts watcher, the pruner, the bot
//! accounts' roster syncs, the robot groups' name reads) ends; one `TaskTracker` waits for them. Then the pipeline drains into the store, and queued pushes get
//! `server.shutdown_grace_secs` to go out.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::channels::onebot::{OneBotBot, OneBotChannel};
use crate::channels::robot::RobotChannel;
use crate::config::{BotConfig, BotCredentials, ChannelKind, Config, Secret};
use crate::engine::Scripts;
use crate::http::{AppState, router};
use crate::outbox::{Outbox, OutboxOptions, SendSettings};
use crate::runtime::dedupe::Dedupe;
use crate::runtime::feeds::Feeds;
use crate::runtime::groups::Directory;
use crate::runtime::lanes::Lanes;
use crate::runtime::pipeline::{Pipeline, Work, unix_now};
use crate::runtime::scheduler::Scheduler;
use crate::runtime::welcome::WelcomerTask;
use crate::scripts::ScriptError;
use crate::scripts::live::LiveScripts;
use crate::store::{Store, StoreError, StoredCredentials};
use crate::wire::onebot::hub::Hub;
use crate::wire::wecom::crypto::{CallbackCrypto, EncodingAesKey};
use crate::wire::wecom::robot::RobotEndpoint;
use crate::wire::wecom::robot::webhook::WebhookClient;

/// How often old handled ids are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What the services stand on, started before them.
struct Core {
    hub: Arc<Hub>,
    outbox: Outbox,
    pipeline: crate::runtime::pipeline::PipelineHandle,
    dedupe: Arc<Dedupe>,
    speakers: crate::store::SharedTally,
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bot-scripts: {0}")]
    Scripts(#[from] ScriptError),
    #[error("{0}")]
    ScriptsDir(String),
    #[error("stored credentials of bot {bot} are invalid: {reason}")]
    StoredCredentials { bot: String, reason: String },
    #[error("HTTP client: {0}")]
    HttpClient(String),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// Generated credentials still to be shown to the operator (once, when the service listens).
#[derive(Debug, Clone)]
pub struct GeneratedCredentials {
    pub bot: crate::domain::BotId,
    pub callback_url: String,
    pub credentials: BotCredentials,
}

/// A fresh Token (32 letters and digits) and EncodingAESKey.
pub fn generate_credentials() -> BotCredentials {
    let mut rng = rand::rng();
    let token: String = (&mut rng)
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    BotCredentials {
        token: Secret::new(token),
        encoding_aes_key: EncodingAesKey::from_bytes(rng.random()),
    }
}

/// A built service, ready to serve.
pub struct App {
    config: Config,
    store: Store,
    scripts: Arc<LiveScripts>,
    endpoints: HashMap<String, Arc<RobotEndpoint>>,
    /// The AI bots in URL-callback mode.
    aibot_endpoints: HashMap<String, Arc<crate::wire::wecom::aibot::callback::AiBotEndpoint>>,
    /// The self-built apps: each one's event endpoint (receive id = the corp id) and API client.
    apps: Vec<AppParts>,
    generated: Vec<GeneratedCredentials>,
}

/// What a `wecom-app` bot is built from before the runtime starts.
struct AppParts {
    bot: crate::domain::BotId,
    endpoint: RobotEndpoint,
    client: Arc<crate::wire::wecom::app::AppClient>,
    settings: crate::wire::wecom::app::AppSettings,
}

impl App {
    /// Opens the store, resolves every bot's credentials (generating and storing missing ones)
    /// and loads bot-scripts.
    pub fn build(config: Config) -> Result<App, AppError> {
        if let Some(problem) = config.scripts.missing_dir() {
            return Err(AppError::ScriptsDir(problem));
        }
        let store = Store::open_with_cache(&config.storage.path, config.storage.cache_bytes())?;
        let loaded = Scripts::load(&config.scripts.dir)?;
        if loaded.source.is_none() {
            info!(dir = %config.scripts.dir.display(),
                "no bot-scripts there (no messages.toml); using the built-in copy — `trumpet init` writes it there for editing");
        }
        let scripts = Arc::new(LiveScripts::new(loaded, &config.scripts.dir));
        let mut endpoints = HashMap::new();
        let mut generated = Vec::new();
        for bot in config
            .bots
            .iter()
            .filter(|b| b.channel == ChannelKind::WecomRobot)
        {
            let (credentials, fresh) = resolve_credentials(&store, bot)?;
            if fresh {
                generated.push(GeneratedCredentials {
                    bot: bot.id.clone(),
                    callback_url: config.callback_url(&bot.id),
                    credentials: credentials.clone(),
                });
            }
            let crypto = CallbackCrypto::new(
                credentials.token.expose(),
                credentials.encoding_aes_key,
                &bot.receive_id,
            );
            endpoints.insert(
                bot.id.to_string(),
                Arc::new(RobotEndpoint::new(
                    bot.id.clone(),
                    crypto,
                    config.wecom.timestamp_tolerance_secs,
                )),
            );
        }
        let aibot_endpoints = config
            .bots
            .iter()
            .filter(|b| b.channel == ChannelKind::WecomAiBot)
            .filter_map(|b| {
                let credentials = b.credentials.as_ref()?;
                let crypto = CallbackCrypto::new(
                    credentials.token.expose(),
                    credentials.encoding_aes_key.clone(),
                    // The AI bot's plaintext ends with an empty receive id.
                    &b.receive_id,
                );
                Some((
                    b.id.to_string(),
                    Arc::new(crate::wire::wecom::aibot::callback::AiBotEndpoint::new(
                        b.id.clone(),
                        crypto,
                        config.wecom.timestamp_tolerance_secs,
                    )),
                ))
            })
            .collect();
        let mut apps = Vec::new();
        for bot in &config.bots {
            let (Some(settings), Some(credentials)) = (&bot.app, &bot.credentials) else {
                continue;
            };
            let crypto = CallbackCrypto::new(
                credentials.token.expose(),
                credentials.encoding_aes_key.clone(),
                &bot.receive_id,
            );
            let client = crate::wire::wecom::app::AppClient::new(settings)
                .map_err(|e| AppError::HttpClient(e.to_string()))?;
            apps.push(AppParts {
                bot: bot.id.clone(),
                endpoint: RobotEndpoint::new(
                    bot.id.clone(),
                    crypto,
                    config.wecom.timestamp_tolerance_secs,
                ),
                client: Arc::new(client),
                settings: settings.clone(),
            });
        }
        Ok(App {
            config,
            store,
            scripts,
            endpoints,
            aibot_endpoints,
            apps,
            generated,
        })
    }

    /// Credentials still to be shown (generated during [`App::build`], or on a start that never
    /// listened); empty once shown.
    pub fn generated_credentials(&self) -> &[GeneratedCredentials] {
        &self.generated
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let config = &self.config;
        let (dedupe, ttl_secs) = self.load_dedupe().await?;
        // One token stops the service: the server, every background loop and the bot accounts'
        // sockets; one tracker holds the loops, so the drain below waits for each of them.
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let hub = Arc::new(Hub::stopped_by(
            Duration::from_secs(config.onebot.action_timeout_secs),
            stop.clone(),
        ));
        let aibot_links = Arc::new(crate::wire::wecom::aibot::AiBotLinks::default());
        for bot in self.aibot_endpoints.values() {
            aibot_links.callback_only(bot.bot());
        }
        let (outbox, mass) = self.start_outbox(&hub, &aibot_links, &stop)?;
        if let Some(mass) = mass {
            tasks.spawn(mass.run());
        }
        let speakers = crate::store::SharedTally::default();
        let (pipeline, pipeline_task) = Pipeline {
            store: self.store.clone(),
            outbox: outbox.clone(),
            webhook_hosts: config.wecom.webhook_hosts.clone(),
            speakers: Arc::clone(&speakers),
            dedupe: Arc::clone(&dedupe),
            aibots: Arc::new(
                config
                    .bots
                    .iter()
                    .filter(|b| b.channel == ChannelKind::WecomAiBot)
                    .map(|b| b.id.clone())
                    .collect(),
            ),
            apps: Arc::new(
                config
                    .bots
                    .iter()
                    .filter(|b| b.channel == ChannelKind::WecomApp)
                    .map(|b| b.id.clone())
                    .collect(),
            ),
        }
        .spawn();
        if config.scripts.watch_interval_ms > 0 {
            let every = Duration::from_millis(config.scripts.watch_interval_ms);
            tasks.spawn(
                stop.clone()
                    .run_until_cancelled_owned(Arc::clone(&self.scripts).watch(every)),
            );
        }
        tasks.spawn(stop.clone().run_until_cancelled_owned(prune_periodically(
            Arc::clone(&dedupe),
            pipeline.clone(),
            ttl_secs,
        )));
        let core = Core {
            hub: Arc::clone(&hub),
            outbox: outbox.clone(),
            pipeline,
            dedupe,
            speakers,
        };
        let (services, welcomer_task) = self.start_services(core, &stop, &tasks)?;
        self.dial_aibots(&services, &aibot_links, &stop, &tasks);
        let apps = self.start_apps(&services, &stop, &tasks);
        let state = Arc::new(self.app_state(services, hub, apps)?);
        self.announce(listener.local_addr()?);
        let limits = crate::http::serve::Limits {
            header_read: Duration::from_secs(config.server.header_read_timeout_secs),
            idle: Duration::from_secs(config.server.idle_timeout_secs),
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
        };
        let body_timeout = Duration::from_secs(config.server.body_read_timeout_secs);
        let signal = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            signal.cancel();
        });
        // The server drains its requests while the loops and the sockets stop on the same token.
        let served =
            crate::http::serve::serve(listener, router(state, body_timeout), limits, stop).await;
        info!("no longer accepting requests; draining");
        tasks.close();
        tasks.wait().await;
        drain(
            pipeline_task,
            welcomer_task,
            &outbox,
            Duration::from_secs(config.server.shutdown_grace_secs),
        )
        .await;
        served.map_err(AppError::Server)
    }

    /// Starts keeping every `wecom-app` bot's customer groups in sync (on `tasks` until `stop`);
    /// returns them for the callback routes.
    fn start_apps(
        &self,
        services: &Arc<crate::runtime::Services>,
        stop: &CancellationToken,
        tasks: &TaskTracker,
    ) -> crate::channels::app::AppChannel {
        let mut apps = HashMap::new();
        for parts in &self.apps {
            let app = Arc::new(crate::channels::app::CustomerGroups {
                bot: parts.bot.clone(),
                endpoint: parts.endpoint.clone(),
                client: Arc::clone(&parts.client),
                settings: parts.settings.clone(),
                services: Arc::clone(services),
                stop: stop.clone(),
            });
            tasks.spawn(crate::channels::app::sync::run(Arc::clone(&app)));
            tasks.spawn(crate::channels::app::templates::run(Arc::clone(&app)));
            apps.insert(parts.bot.to_string(), app);
        }
        crate::channels::app::AppChannel { apps }
    }

    /// Dials every `wecom-aibot` bot's long connection; each link lives on `tasks` until `stop`.
    fn dial_aibots(
        &self,
        services: &Arc<crate::runtime::Services>,
        links: &Arc<crate::wire::wecom::aibot::AiBotLinks>,
        stop: &CancellationToken,
        tasks: &TaskTracker,
    ) {
        for bot in &self.config.bots {
            let Some(settings) = &bot.aibot else {
                continue;
            };
            let link = Arc::new(crate::channels::aibot::AiBotLink {
                bot: bot.id.clone(),
                settings: settings.clone(),
                timings: self.config.aibot.clone(),
                services: Arc::clone(services),
                links: Arc::clone(links),
                adopted: Arc::default(),
            });
            tasks.spawn(link.run(stop.clone()));
        }
    }

    /// Starts the runtime's services on `core` — welcomes, feeds and the scheduler, red-envelope
    /// tests, the digest — their loops on `tasks` until `stop`; returns them and the welcomer's
    /// task (drained at shutdown).
    fn start_services(
        &self,
        core: Core,
        stop: &CancellationToken,
        tasks: &TaskTracker,
    ) -> Result<(Arc<crate::runtime::Services>, tokio::task::JoinHandle<()>), AppError> {
        let config = &self.config;
        let directory = Arc::new(Directory::load(self.store.clone())?);
        let (welcomer, welcomer_task) = WelcomerTask {
            store: self.store.clone(),
            directory: Arc::clone(&directory),
            scripts: Arc::clone(&self.scripts),
            outbox: core.outbox.clone(),
            webhook_hosts: config.wecom.webhook_hosts.clone(),
        }
        .spawn();
        let feeds = Feeds::load(self.store.clone(), config.feeds.allow_private)
            .map_err(|e| AppError::HttpClient(e.to_string()))?;
        tasks.spawn(
            stop.clone()
                .run_until_cancelled_owned(feeds.clone().run(Arc::clone(&self.scripts))),
        );
        let scheduler = Scheduler {
            feeds,
            store: self.store.clone(),
            directory: Arc::clone(&directory),
            scripts: Arc::clone(&self.scripts),
            outbox: core.outbox.clone(),
            webhook_hosts: config.wecom.webhook_hosts.clone(),
        };
        tasks.spawn(scheduler.clone().run(stop.clone()));
        let alerts = crate::runtime::alerts::Alerts::new(config.alerts.webhook_url.clone());
        if !alerts.configured() {
            info!(
                "[alerts] webhook_url is not set: members' reports and red-envelope results are kept in the moderation log and the API only"
            );
        }
        let dispatcher = core.outbox.clone();
        let envelopes = Arc::new(crate::runtime::red_envelope::Envelopes::load(
            crate::runtime::red_envelope::EnvelopeDeps {
                store: self.store.clone(),
                scripts: Arc::clone(&self.scripts),
                directory: Arc::clone(&directory),
                webhook_hosts: config.wecom.webhook_hosts.clone(),
                alerts: alerts.clone(),
                dispatch: Arc::new(move |entry| dispatcher.dispatch(entry)),
                clock: Arc::new(chrono::Utc::now),
            },
        )?);
        tasks.spawn(Arc::clone(&envelopes).run(stop.clone()));
        let digest_dispatcher = core.outbox.clone();
        let health = Arc::<crate::runtime::health::cache::RankingCache>::default();
        tasks.spawn(
            crate::runtime::health::DigestTask {
                store: self.store.clone(),
                directory: Arc::clone(&directory),
                scripts: Arc::clone(&self.scripts),
                webhook_hosts: config.wecom.webhook_hosts.clone(),
                dispatch: Arc::new(move |entry| digest_dispatcher.dispatch(entry)),
                speakers: Arc::clone(&core.speakers),
                ranking_cache: Arc::clone(&health),
            }
            .run(stop.clone()),
        );
        let services = crate::runtime::Services {
            accounts: core.hub as Arc<dyn crate::runtime::accounts::BotAccounts>,
            outbox: core.outbox,
            scheduler,
            welcomer,
            dedupe: core.dedupe,
            lanes: Lanes::default(),
            directory,
            cooldowns: Default::default(),
            pipeline: core.pipeline,
            scripts: Arc::clone(&self.scripts),
            store: self.store.clone(),
            moderator: Arc::new(crate::runtime::moderation::Moderator::load(
                &self.store,
                crate::runtime::moderation::FetchPolicy {
                    media: crate::outbound::HostList::new(&config.wecom.media_hosts),
                    files: crate::outbound::HostList::new(&config.onebot.file_hosts),
                },
            )?),
            envelopes,
            speakers: core.speakers,
            alerts,
            tasks: tasks.clone(),
            health,
        };
        let services = Arc::new(services);
        // The learned layer with the operator's labels: the shipped one judges until it is in.
        let teaching = Arc::clone(&services);
        tasks.spawn(async move {
            if let Err(e) = teaching
                .moderator
                .teacher
                .retrain(&teaching.store, &teaching.scripts)
                .await
            {
                error!(error = %e, "the learned layer could not be trained with the operator's labels; the shipped one stays");
            }
        });
        Ok((services, welcomer_task))
    }

    /// What the HTTP routes share: the channels on `services`, the hub and the admin token.
    fn app_state(
        &self,
        services: Arc<crate::runtime::Services>,
        hub: Arc<Hub>,
        apps: crate::channels::app::AppChannel,
    ) -> Result<AppState, AppError> {
        let config = &self.config;
        let onebot = config
            .bots
            .iter()
            .filter_map(|b| {
                let access_token = b.access_token.clone()?;
                Some((
                    b.id.to_string(),
                    OneBotBot {
                        id: b.id.clone(),
                        access_token,
                        connections: Arc::default(),
                    },
                ))
            })
            .collect();
        let names =
            crate::channels::group_names::GroupNames::new(config.wecom.webhook_hosts.clone())
                .map_err(|e| AppError::HttpClient(e.to_string()))?;
        Ok(AppState {
            robot: Arc::new(RobotChannel {
                services: Arc::clone(&services),
                endpoints: self.endpoints.clone(),
                names: Arc::new(names),
            }),
            app: Arc::new(apps),
            aibot_callback: Arc::new(crate::channels::aibot_callback::AiBotCallbackChannel {
                services: Arc::clone(&services),
                endpoints: self.aibot_endpoints.clone(),
            }),
            onebot: Arc::new(OneBotChannel {
                services: Arc::clone(&services),
                bots: onebot,
                config: config.onebot.clone(),
                hub: Arc::clone(&hub),
            }),
            services,
            hub,
            admin_token: config.admin.token.clone(),
            sessions: Arc::default(),
            secure_cookies: config.server.public_url.starts_with("https://"),
            default_bot: config.bots.first().map_or_else(
                || crate::domain::BotId::parse("trumpet").expect("a valid bot id"),
                |b| b.id.clone(),
            ),
        })
    }

    /// Logs what an operator starting the service needs: each bot's URL, and where it listens.
    fn announce(&self, addr: SocketAddr) {
        let config = &self.config;
        if config.admin.token.is_none() {
            warn!("admin.token is not set: the admin API answers 401 to everyone");
        }
        for bot in &config.bots {
            info!(bot = %bot.id, channel = bot.channel.as_str(),
                url = %config.endpoint_url(bot), "bot ready");
        }
        info!(%addr, "serving");
    }

    /// The handled message ids of the last `wecom.dedupe_ttl_hours`, loaded from the store (so
    /// WeCom's retries of messages handled before a restart trigger nothing twice), and that TTL
    /// in seconds.
    async fn load_dedupe(&self) -> Result<(Arc<Dedupe>, i64), AppError> {
        let config = &self.config;
        // Validated to at most 30 days, so this cannot overflow.
        let ttl_secs =
            i64::try_from(config.wecom.dedupe_ttl_hours.saturating_mul(3600)).unwrap_or(i64::MAX);
        let dedupe = Arc::new(Dedupe::with_capacity(
            config.wecom.dedupe_memory_ids,
            ttl_secs,
        ));
        let (store, loading) = (self.store.clone(), Arc::clone(&dedupe));
        let remembered = tokio::task::spawn_blocking(move || {
            let now = unix_now();
            store.each_dedupe_since(now - ttl_secs, |key, at| loading.remember(key, at, now))
        })
        .await
        .map_err(|e| AppError::Server(std::io::Error::other(e)))??;
        info!(ids = remembered, "handled message ids loaded");
        Ok((dedupe, ttl_secs))
    }

    /// The outbox, sending through robot webhooks and the bot accounts of `hub`, with the sends
    /// left unfinished by the last run queued again; and the mass-send tasks of the
    /// `wecom-app` bots, if any (their loop is the caller's to start).
    fn start_outbox(
        &self,
        hub: &Arc<Hub>,
        aibots: &Arc<crate::wire::wecom::aibot::AiBotLinks>,
        stop: &CancellationToken,
    ) -> Result<(Outbox, Option<Arc<crate::outbox::mass_send::MassSender>>), AppError> {
        let config = &self.config;
        let client = WebhookClient::new(Duration::from_secs(config.wecom.webhook_timeout_secs))
            .map_err(|e| AppError::HttpClient(e.to_string()))?;
        let mass = (!self.apps.is_empty()).then(|| {
            let apps = self
                .apps
                .iter()
                .map(|parts| {
                    let app = crate::outbox::mass_send::MassApp {
                        client: Arc::clone(&parts.client),
                        settings: parts.settings.clone(),
                    };
                    (parts.bot.clone(), app)
                })
                .collect();
            Arc::new(crate::outbox::mass_send::MassSender::new(
                self.store.clone(),
                apps,
                config.outbox.clone(),
                stop.clone(),
            ))
        });
        let outbox = Outbox::start_with(
            client,
            SendSettings {
                per_minute: config.wecom.webhook_per_minute,
                // WeCom measures its minute when requests arrive, we when they leave: a second
                // of margin keeps network jitter from putting two sends 59.9 s apart there.
                window: Duration::from_secs(61),
                retry_base: Duration::from_millis(config.wecom.retry_base_ms),
                max_attempts: config.wecom.max_attempts,
                webhook_hosts: config.wecom.webhook_hosts.clone(),
                bot_limits: config
                    .bots
                    .iter()
                    .map(|b| (b.id.clone(), b.per_minute))
                    .collect(),
                global_per_second: config.wecom.global_per_second,
                retry_after_timeout: config.wecom.retry_after_timeout,
            },
            OutboxOptions {
                hub: Arc::clone(hub),
                aibots: Arc::clone(aibots),
                account_retry_base: Duration::from_millis(config.onebot.retry_base_ms),
                account_max_attempts: config.onebot.max_attempts,
                expiry: config.outbox.clone(),
                max_running_lanes: crate::outbox::MAX_RUNNING_LANES,
                mass: mass.clone(),
            },
            self.store.clone(),
        )?;
        Ok((outbox, mass))
    }

    /// Binds `server.listen` and serves until Ctrl-C or SIGTERM. Once it listens, `announce`
    /// is given the credentials still to be shown (generated on this start or on one that
    /// never listened), and they count as shown: a start that fails to listen (the port taken)
    /// shows nothing, and the next good one shows them.
    pub async fn run(self, announce: impl FnOnce(&[GeneratedCredentials])) -> Result<(), AppError> {
        let shutdown = shutdown_signal();
        let addr: SocketAddr = self.config.server.listen;
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            AppError::Server(std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} (server.listen): {e}"),
            ))
        })?;
        if !self.generated.is_empty() {
            announce(&self.generated);
            let marked = self.store.write(|tx| {
                for generated in &self.generated {
                    if let Some(mut stored) = tx.bot_credentials(&generated.bot)? {
                        stored.shown = true;
                        tx.put_bot_credentials(&generated.bot, &stored)?;
                    }
                }
                Ok(())
            });
            if let Err(e) = marked {
                warn!(error = %e, "the credentials were shown but not recorded as shown: they will be shown again");
            }
        }
        self.serve(listener, shutdown).await
    }
}

/// Config credentials win; otherwise the stored ones; otherwise fresh ones are generated and
/// stored. The flag says whether they are still to be shown to the operator (generated now, or
/// on a start that never listened).
fn resolve_credentials(store: &Store, bot: &BotConfig) -> Result<(BotCredentials, bool), AppError> {
    if let Some(credentials) = &bot.credentials {
        return Ok((credentials.clone(), false));
    }
    let stored = store.write(|tx| match tx.bot_credentials(&bot.id)? {
        Some(stored) => {
            let show = !stored.shown;
            Ok((stored, show))
        }
        None => {
            let fresh = generate_credentials();
            let stored = StoredCredentials {
                token: fresh.token.expose().to_owned(),
                encoding_aes_key: fresh.encoding_aes_key.as_str().to_owned(),
                shown: false,
            };
            tx.put_bot_credentials(&bot.id, &stored)?;
            Ok((stored, true))
        }
    })?;
    let (stored, fresh) = stored;
    let invalid = |reason: String| AppError::StoredCredentials {
        bot: bot.id.to_string(),
        reason,
    };
    crate::config::validate_token(&stored.token).map_err(invalid)?;
    let key =
        EncodingAesKey::parse(&stored.encoding_aes_key).map_err(|e| invalid(e.to_string()))?;
    Ok((
        BotCredentials {
            token: Secret::new(stored.token),
            encoding_aes_key: key,
        },
        fresh,
    ))
}

async fn prune_periodically(
    dedupe: Arc<Dedupe>,
    pipeline: crate::runtime::pipeline::PipelineHandle,
    ttl_secs: i64,
) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        let before = unix_now() - ttl_secs;
        let removed = dedupe.prune(before, unix_now());
        if removed > 0 {
            info!(removed, "forgot old handled message ids in memory");
        }
        if pipeline.submit(Work::PruneDedupe { before }).await.is_err() {
            return;
        }
    }
}

/// After the server and the background loops stopped: the pipeline commits what it holds, the
/// welcomer ends, and queued sends get `grace` to go out.
async fn drain(
    pipeline_task: tokio::task::JoinHandle<()>,
    welcomer_task: tokio::task::JoinHandle<()>,
    outbox: &Outbox,
    grace: Duration,
) {
    // With the handlers' state gone, the pipeline commits what it holds and ends.
    if let Err(e) = pipeline_task.await {
        error!(error = %e, "pipeline task failed");
    }
    // The welcomer stops once the last handle (in the router's state) is gone.
    match tokio::time::timeout(Duration::from_secs(5), welcomer_task).await {
        Ok(Err(e)) => error!(error = %e, "welcomer task failed"),
        Err(_) => warn!("the welcomer did not stop in time"),
        Ok(Ok(())) => {}
    }
    if outbox.shutdown(grace).await {
        info!("every queued send finished");
    }
    let stats = outbox.stats();
    info!(
        delivered = stats.delivered,
        failed = stats.failed,
        skipped = stats.skipped,
        retries = stats.retries,
        resumed = stats.resumed,
        "stopped"
    );
}

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this
/// is called, not when the future is first polled, so a signal that arrives while the server is
/// still starting is not lost (and does not kill the process with the default action).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    error!(error = %e, "cannot listen for {name}");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = wait(interrupt, "Ctrl-C") => info!("Ctrl-C received; shutting down"),
            () = wait(terminate, "SIGTERM") => info!("SIGTERM received; shutting down"),
        }
    }
}
