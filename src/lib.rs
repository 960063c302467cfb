//! Dialplane: a telephony orchestration engine. This crate is the server around the actor system of
//! `dialplane-actors`: configuration, the warp HTTP layer, authentication, sea-orm storage, the
//! sandbox carrier, live counters, callback delivery and telemetry.
//!
//! [`run`] starts everything on a bound listener and serves until `shutdown` resolves, so tests can
//! bind port 0 and stop the server when they are done.

pub mod agents;
pub mod allocator;
pub mod auth;
pub mod call_view;
pub mod campaigns;
pub mod carriers;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod counters;
pub mod delivery;
pub mod error;
pub mod http;
pub mod ids;
pub mod netguard;
pub mod outbound;
pub mod ratelimit;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod transcribe;
pub mod webhooks;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use dialplane_actors::ports::{LiveCounters, SystemClock};
use dialplane_actors::{CallDeps, CallRegistry, CallSupervisorHandle, RootSupervisor};
use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::carriers::sandbox::SandboxCarrier;
use crate::carriers::sandbox_network::SandboxNetwork;
use crate::config::Config;
use crate::signing::{RecordingUrlSigner, derive_key};
use crate::store::call_store::SeaCallStore;

/// Builds the multi-threaded runtime the server runs on: one worker per core, and each worker
/// returns its heap's free pages to the OS before it parks ([`allocator::collect_before_park`]).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().on_thread_park(allocator::collect_before_park).build()
}

/// Everything request handlers share.
pub struct App {
    pub config: Config,
    /// The URL carriers reach this server at (callback URLs are built on it and verified
    /// against it).
    pub public_url: String,
    pub db: DatabaseConnection,
    pub auth: auth::Authenticator,
    /// Verified against when a login names an unknown email, so timing reveals nothing.
    pub dummy_password_hash: String,
    pub signer: RecordingUrlSigner,
    /// Live call actors by call id; carrier callbacks are routed through it.
    pub registry: Arc<CallRegistry>,
    /// Starts call actors.
    pub calls: Arc<CallSupervisorHandle>,
    /// The call state machine's policy, as the call actors have it.
    pub call_policy: dialplane_actors::fsm::Policy,
    pub counters: Arc<dyn LiveCounters>,
    /// Per-user limits of the `/v1` routes seed 003 limits.
    pub rate_limits: ratelimit::RateLimits,
    pub store: Arc<SeaCallStore>,
    /// Group-commits the hot writes (call creation, transitions, the callback log).
    pub writer: store::writer::Writer,
    /// The built-in fake carrier.
    pub sandbox: Arc<SandboxNetwork>,
    /// Key the sandbox signs its status callbacks with.
    pub sandbox_callback_key: Vec<u8>,
    pub metrics: PrometheusHandle,
    /// Set when a graceful shutdown began: readiness fails and no new call is taken.
    pub draining: AtomicBool,
    /// Webhook subscriptions: their directory and actors.
    pub webhooks: Arc<webhooks::Webhooks>,
    /// Talks to the configured LLM (prompt enhancement).
    pub llm_http: reqwest::Client,
    /// Campaign actors.
    pub campaigns: campaigns::Campaigns,
    /// Routes calls to carrier accounts; knows the accounts and numbers.
    pub carriers: Arc<carriers::router::CarrierRouter>,
    /// Active LiveKit rooms (`livekit:active_calls`).
    pub livekit_rooms: carriers::rooms::ActiveRooms,
    /// Where `campaign.*` events go.
    pub campaign_events: campaigns::store::Events,
}

impl App {
    /// Returns true once a graceful shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Installs the process-wide TLS crypto provider (reqwest is built without one).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Returns the master secret: the configured one, or one generated once and kept in the database.
async fn master_secret(db: &DatabaseConnection, config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.as_bytes().to_vec());
    }
    let mut generated = false;
    let secret = store::get_or_init_setting(db, "jwt_secret", || {
        generated = true;
        ids::random_alphanumeric(64)
    })
    .await?;
    if generated {
        warn!("DIALPLANE_JWT_SECRET is not set; generated a secret and stored it in the database");
    }
    Ok(secret.into_bytes())
}

/// Creates the configured superuser if missing, or a first `admin@localhost` when there are no users.
async fn bootstrap_admin(db: &DatabaseConnection, config: &Config) -> anyhow::Result<()> {
    if let Some(admin) = &config.admin {
        if store::users::find_by_email(db, &admin.email).await?.is_none() {
            let hash = auth::hash_password(&admin.password)?;
            store::users::create(db, &admin.email, &hash, "superuser").await?;
            info!(email = %admin.email, "created the configured superuser");
        }
        return Ok(());
    }
    if store::users::count(db).await? == 0 {
        let password = ids::random_alphanumeric(20);
        let hash = auth::hash_password(&password)?;
        store::users::create(db, "admin@localhost", &hash, "superuser").await?;
        println!(
            "created superuser admin@localhost with password {password} (shown once; change it or set DIALPLANE_ADMIN_*)"
        );
    }
    Ok(())
}

/// Starts Dialplane on `listener` and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    install_crypto_provider();
    let metrics = telemetry::metrics_handle();
    let addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };

    let db = store::connect(&config.database_url, config.db_acquire_timeout).await?;
    let timers_db = store::open_for_timers(&db, &config.database_url, config.db_acquire_timeout).await?;
    let master = master_secret(&db, &config).await?;
    bootstrap_admin(&db, &config).await?;

    let (counters, request_counts): (Arc<dyn LiveCounters>, Arc<dyn ratelimit::RequestCounts>) = match &config.redis_url
    {
        Some(url) => {
            let redis = counters::RedisCounters::connect(url, &config.redis_prefix).await?;
            let requests = ratelimit::RedisCounts::new(redis.connection(), &config.redis_prefix);
            (Arc::new(redis), Arc::new(requests))
        }
        None => (Arc::new(counters::InProcessCounters::default()), Arc::new(ratelimit::InProcessCounts::default())),
    };
    let outbox_ready = Arc::new(Notify::new());
    let signer = RecordingUrlSigner::new(derive_key(&master, "recording-urls"), &public_url);
    let (webhooks, webhooks_woken) = webhooks::Webhooks::load(&db).await?;
    let writer_db = store::open_for_writer(&db, &config.database_url, config.db_acquire_timeout).await?;
    let writer = store::writer::Writer::start(store::writer::WriterContext {
        db: writer_db.clone(),
        signer: signer.clone(),
        outbox_ready: outbox_ready.clone(),
        subscriptions: webhooks.directory.clone(),
        wake_subscriptions: webhooks.wake_sender(),
    });
    let store = Arc::new(SeaCallStore::new(db.clone(), writer.clone()));
    let sandbox_callback_key = derive_key(&master, "sandbox-callbacks");
    let sandbox_api_key = hex::encode(derive_key(&master, "sandbox-api"));
    let sandbox = Arc::new(SandboxNetwork::new(
        db.clone(),
        writer.clone(),
        sandbox_callback_key.clone(),
        sandbox_api_key.clone(),
        config.sandbox_time_scale,
        &public_url,
    )?);
    let registry = Arc::new(CallRegistry::default());
    let (pacer, livekit_rooms) = match &config.redis_url {
        Some(url) => (
            carriers::pacer::Pacer::with_redis(url, &config.redis_prefix).await?,
            carriers::rooms::ActiveRooms::with_redis(url, &config.livekit_active_calls_key).await?,
        ),
        None => (
            carriers::pacer::Pacer::in_process(),
            carriers::rooms::ActiveRooms::in_process(&config.livekit_active_calls_key),
        ),
    };
    let carrier_router = Arc::new(carriers::router::CarrierRouter::new(
        Arc::new(SandboxCarrier::new(
            config.sandbox_url.as_ref().map_or(public_url.as_str(), |url| url.as_str()),
            &public_url,
            sandbox_api_key,
        )?),
        pacer,
        &public_url,
        config.allow_private_callbacks,
    ));
    // Calls resumed below may belong to carrier accounts: the directory is read first.
    carrier_router.reload(&db).await?;
    let call_policy = config.call_policy();
    let deps = Arc::new(CallDeps {
        carrier: carrier_router.clone(),
        store: store.clone(),
        counters: counters.clone(),
        transcriber: Arc::new(transcribe::SandboxTranscriber),
        clock: Arc::new(SystemClock),
        registry: registry.clone(),
        policy: call_policy.clone(),
        watchdog_interval: Duration::from_millis(config.watchdog_interval_ms),
        stage_attempts: 5,
    });
    let (root, calls) =
        RootSupervisor::start(deps).await.map_err(|e| anyhow::anyhow!("actor system did not start: {e}"))?;

    let dummy_password_hash = auth::hash_password(&ids::random_alphanumeric(16))?;
    let app = Arc::new(App {
        auth: auth::Authenticator::new(&master),
        config: config.clone(),
        public_url: public_url.clone(),
        db: db.clone(),
        dummy_password_hash,
        signer,
        registry,
        calls: calls.clone(),
        call_policy,
        counters,
        rate_limits: ratelimit::RateLimits::new(request_counts),
        store,
        writer,
        sandbox,
        sandbox_callback_key,
        metrics,
        draining: AtomicBool::new(false),
        webhooks: webhooks.clone(),
        llm_http: crate::outbound::client_builder()
            .user_agent(concat!("Dialplane/", env!("CARGO_PKG_VERSION")))
            .build()?,
        campaigns: campaigns::Campaigns::default(),
        carriers: carrier_router.clone(),
        livekit_rooms,
        campaign_events: campaigns::store::Events {
            directory: webhooks.directory.clone(),
            wake: webhooks.wake_sender(),
        },
    });

    // The live counters are rebuilt before any call actor runs: a rebuild that raced a resumed
    // call's end could put the ended call back in the counters (until the next rebuild).
    reconcile_counters(&app, &db).await;
    // Calls a previous run left unfinished get their actors back.
    let unfinished = store::calls::unfinished(&db).await?;
    if !unfinished.is_empty() {
        info!(count = unfinished.len(), "resuming unfinished calls");
    }
    for row in unfinished {
        match store::calls::record_of(&row) {
            Ok((record, state)) => {
                calls.start_call(record, state);
            }
            Err(e) => warn!(call.id = %row.id, error = %e, "unfinished call could not be resumed"),
        }
    }

    // The sandbox carrier, like a real one, carries on with the calls it had.
    let resumed = app.sandbox.resume().await?;
    if resumed > 0 {
        info!(count = resumed, "sandbox carrier resumed its calls");
    }

    let (stop_tasks, tasks_stopped) = watch::channel(false);
    let post = Arc::new(webhooks::sender::SignedPost::new(config.webhook_timeout, config.allow_private_callbacks)?);
    webhooks
        .start(
            db.clone(),
            app.writer.clone(),
            webhooks_woken,
            post.clone(),
            config.delivery_policy(),
            config.webhook_max_in_flight,
        )
        .await?;
    app.campaigns
        .start(
            &db,
            dialplane_actors::CampaignDeps {
                store: Arc::new(campaigns::store::SeaCampaignStore {
                    db: db.clone(),
                    events: app.campaign_events.clone(),
                    workspace_max_concurrent: config.workspace_max_concurrent,
                }),
                launcher: Arc::new(campaigns::launcher::CampaignCallLauncher {
                    db: db.clone(),
                    writer: app.writer.clone(),
                    calls: calls.clone(),
                    carriers: app.carriers.clone(),
                    counters: app.counters.clone(),
                    call_policy: app.call_policy.clone(),
                }),
                counters: app.counters.clone(),
                clock: Arc::new(SystemClock),
                tick_interval: Duration::from_millis(config.campaign_tick_ms),
                workspace_turns: Default::default(),
            },
        )
        .await?;
    let worker = Arc::new(delivery::DeliveryWorker::new(
        timers_db.clone(),
        app.writer.clone(),
        outbox_ready,
        config.delivery_policy(),
        post,
    ));
    let delivery = tokio::spawn(worker.run(tasks_stopped.clone()));
    let metrics_upkeep = tokio::spawn(telemetry::keep_metrics_up(app.metrics.clone(), tasks_stopped.clone()));
    let maintenance = tokio::spawn(maintain(app.clone(), timers_db.clone(), tasks_stopped));

    // Shutdown: stop taking calls and fail readiness at once, let live calls finish (up to the
    // drain timeout), then stop serving. Carrier callbacks are served until the very end.
    let (stop_serving, serving_stopped) = tokio::sync::oneshot::channel::<()>();
    let draining_app = app.clone();
    let drain_timeout = config.drain_timeout;
    tokio::spawn(async move {
        shutdown.await;
        draining_app.draining.store(true, Ordering::SeqCst);
        // Campaigns stop admitting calls at once; running ones resume at the next start.
        draining_app.campaigns.shutdown().await;
        info!(live_calls = draining_app.registry.len(), "draining");
        let deadline = tokio::time::Instant::now() + drain_timeout;
        // The database is the truth: a call just created may not have its actor yet.
        let unfinished = |app: Arc<App>| async move {
            app.registry.len().max(store::calls::count_unfinished(&app.db).await.unwrap_or(0) as usize)
        };
        let mut left = unfinished(draining_app.clone()).await;
        while left > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = unfinished(draining_app.clone()).await;
        }
        if left > 0 {
            warn!(live_calls = left, "drain timeout; these calls resume at the next start");
        }
        let _ = stop_serving.send(());
    });

    allocator::delay_returning_freed_memory();
    info!(listen = %addr, public_url = %public_url, database = if config.database_url.starts_with("sqlite") { "sqlite" } else { "postgres" }, "dialplane listening");
    warp::serve(http::routes(app.clone()))
        .incoming(listener)
        .graceful(async move {
            let _ = serving_stopped.await;
        })
        .run()
        .await;

    info!("shutting down");
    app.campaigns.shutdown().await;
    RootSupervisor::shutdown(root, &calls).await;
    webhooks.shutdown().await;
    let _ = stop_tasks.send(true);
    let _ = delivery.await;
    let _ = maintenance.await;
    let _ = metrics_upkeep.await;
    timers_db.close().await.ok();
    writer_db.close().await.ok();
    db.close().await.ok();
    Ok(())
}

/// Rebuilds the live counters from the calls the database has live.
async fn reconcile_counters(app: &App, db: &DatabaseConnection) {
    // What the counters hold is read first: what they count after it, the rebuild leaves alone.
    let before = match app.counters.counted().await {
        Ok(before) => before,
        Err(e) => return warn!(error = %e, "live counters could not be read for reconciliation"),
    };
    match store::calls::counted_live(db).await {
        Ok(rows) => {
            let live: Vec<_> =
                rows.iter().filter_map(|row| store::calls::record_of(row).ok().map(|(record, _)| record)).collect();
            if let Err(e) = app.counters.reconcile(&before, &live).await {
                warn!(error = %e, "live counters could not be reconciled");
            }
        }
        Err(e) => warn!(error = %e, "live calls could not be read for reconciliation"),
    }
}

/// Periodic upkeep: rebuilds the live counters from the database every
/// `counter_reconcile_interval` (at start, `run` rebuilt them before resuming calls), so they
/// recover from crashes and counter-store outages; reloads the webhook subscriptions and carrier
/// accounts, and forgets Idempotency-Keys older than 48 hours and expired refresh tokens. It
/// reads and deletes through `db`, the timers' connection ([`store::open_for_timers`]).
async fn maintain(app: Arc<App>, db: DatabaseConnection, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(app.config.counter_reconcile_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick comes at once, while resumed calls may be ending: the counters were just
    // rebuilt, so that tick leaves them alone.
    let mut counters_fresh = true;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.changed() => return,
        }
        if !std::mem::take(&mut counters_fresh) {
            reconcile_counters(&app, &db).await;
        }
        // Subscriptions changed by other nodes.
        match app.webhooks.directory.reload(&db).await {
            Ok(()) => {
                for id in app.webhooks.directory.enabled_ids() {
                    app.webhooks.ensure(&id);
                }
            }
            Err(e) => warn!(error = %e, "webhook subscriptions could not be reloaded"),
        }
        // Carrier accounts and numbers changed by other nodes.
        if let Err(e) = app.carriers.reload(&db).await {
            warn!(error = %e, "carrier accounts could not be reloaded");
        }
        let horizon = chrono::Utc::now() - chrono::Duration::hours(48);
        if let Err(e) = store::calls::forget_idempotency_keys(&db, horizon).await {
            warn!(error = %e, "old idempotency keys could not be deleted");
        }
        if let Err(e) = store::refresh_tokens::forget_expired(&db, chrono::Utc::now()).await {
            warn!(error = %e, "expired refresh tokens could not be deleted");
        }
    }
}
