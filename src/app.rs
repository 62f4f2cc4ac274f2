//! Building and running the application: the one place that wires configuration, storage, the
//! audit writer and the HTTP router together. Tests build it the same way, on port 0.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::auth::{TokenIssuer, password};
use crate::cache::ReferenceCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::consumers::delivery::DeliveryWorker;
use crate::consumers::kafka::KafkaConsumer;
use crate::consumers::{ConsumerGroup, Consumers};
use crate::relay::Relay;
use crate::service::users::{self, FirstAdmin};
use crate::shutdown::{self, Shutdown};
use crate::state::AppState;
use crate::store::{self, Store};
use crate::telemetry::metrics::Metrics;

pub struct Application {
    listener: TcpListener,
    state: AppState,
    audit_writer: tokio::task::JoinHandle<()>,
    relay: Option<Relay>,
    deliveries: Option<DeliveryWorker>,
    metrics_listener: Option<TcpListener>,
}

/// Binds `HEALTHCORE_METRICS_ADDR`, if set.
async fn bind_metrics(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = config.metrics_addr.filter(|_| config.metrics_enabled) else { return Ok(None) };
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for /metrics"))?;
    Ok(Some(listener))
}

/// Serves `/metrics` on its own listener until `shutdown`, if there is one.
fn spawn_metrics(
    listener: Option<TcpListener>,
    metrics: &Arc<Metrics>,
    config: &Config,
    shutdown: Shutdown,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = listener?;
    let token = config.metrics_token.as_ref().map(|t| Arc::from(t.expose()));
    let exposition = crate::http::metrics::Exposition { metrics: metrics.clone(), token };
    let limits = crate::http::server::ConnectionLimits::from(&config.http);
    Some(tokio::spawn(crate::http::metrics::serve_separately(listener, exposition, limits, shutdown)))
}

/// The relay for this configuration, if this process should move events on: to Kafka when it is
/// configured, else to the consumer groups in this process (with the webhook worker they need).
pub fn relay_for(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    clock: &Clock,
) -> anyhow::Result<(Option<Relay>, Option<DeliveryWorker>)> {
    if !config.relay.enabled {
        return Ok((None, None));
    }
    let wake = store.events_committed();
    if let Some(kafka) = config.kafka.clone() {
        let relay = Relay::new(store.clone(), kafka, config.relay.clone(), wake, metrics.clone())?;
        return Ok((Some(relay.with_clock(clock.clone())), None));
    }
    let consumers = Consumers::new(store.clone(), config.consumers.clone(), metrics.clone()).with_clock(clock.clone());
    let recorded = consumers.deliveries_recorded();
    let worker = DeliveryWorker::new(store.clone(), config.consumers.webhook.clone(), recorded, metrics.clone())?
        .with_clock(clock.clone());
    let sink = Box::new(InProcessConsumers(consumers));
    let relay = Relay::in_process(store.clone(), sink, config.relay.clone(), wake, metrics.clone());
    Ok((Some(relay.with_clock(clock.clone())), Some(worker)))
}

/// Without Kafka, the relay's sink: this process's consumer groups.
struct InProcessConsumers(Consumers);

#[async_trait::async_trait]
impl crate::relay::LocalConsumers for InProcessConsumers {
    async fn deliver(
        &self,
        events: &[store::outbox::OutboxEvent],
        spans: &[tracing::Span],
        shutdown: &mut Shutdown,
    ) -> Result<usize, sea_orm::DbErr> {
        self.0.deliver(events, spans, shutdown).await
    }
}

/// Connects to the database and applies pending migrations; `metrics` count the store's work.
pub async fn open_store(config: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<Store> {
    let url = config.database_url.expose();
    let (max, limits) = (config.db_max_connections, config.db_limits);
    let store = Store::connect_observed(url, max, limits, metrics.clone()).await.map_err(|err| {
        // The driver's message may quote a value of the URL it could not use.
        let reason = store::redact_secrets_in(&err.to_string(), url);
        anyhow::anyhow!("cannot open the database at {}: {reason}", store::redact_url(url))
    })?;
    if !config.metrics_enabled {
        metrics.disable_query_timing();
    }
    let applied = store::migrate(&store).await.context("database migration failed")?;
    if applied > 0 {
        tracing::info!(applied, backend = store.backend().as_str(), "database migrations applied");
    }
    Ok(store)
}

/// Builds the request state for a process that runs no relay (the seed command). Returns the
/// audit writer's task so the caller can wait for it to drain at shutdown.
pub async fn build_state(
    config: Arc<Config>,
    store: Store,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(AppState, tokio::task::JoinHandle<()>)> {
    let (shared, audit_writer) = build_shared(config, store, metrics).await?;
    Ok((AppState::new(shared), audit_writer))
}

/// Builds what the request state shares: store, audit writer, token issuer. Returns the writer's
/// task so the caller can wait for it to drain at shutdown.
async fn build_shared(
    config: Arc<Config>,
    store: Store,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(crate::state::Shared, tokio::task::JoinHandle<()>)> {
    let signing_key = config.signing_key()?;
    let tokens = TokenIssuer::new(&signing_key, config.token_ttl_seconds);
    let audit_store = store.dedicated(1).await.context("cannot open the audit writer's connection")?;
    let (audit, audit_writer) = AuditLog::spawn(audit_store, config.audit_batch_max, metrics.clone());
    let decoy_password_hash: Arc<str> = password::hash_blocking(password::generate()).await.into();
    let passwords = match config.password_hash_concurrency {
        Some(concurrency) => password::PasswordWork::new(concurrency),
        None => password::PasswordWork::sized_for(
            std::thread::available_parallelism().map_or(1, usize::from),
            password::memory_limit(),
        ),
    };
    let cache = ReferenceCache::new(Duration::from_secs(config.cache_ttl_seconds), metrics.clone());
    let account_changes = crate::cache::AccountChanges::default();
    let login_throttle = crate::auth::throttle::LoginThrottle::new(config.login_throttle);
    let state = crate::state::Shared {
        store,
        clock: Clock::default(),
        metrics,
        audit,
        tokens,
        config,
        decoy_password_hash,
        passwords,
        login_throttle,
        cache,
        account_changes,
        relay: None,
    };
    Ok((state, audit_writer))
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        // Fail on a missing signing key before touching the database.
        config.signing_key()?;
        let metrics = Arc::new(Metrics::new());
        let store = open_store(&config, &metrics).await?;
        announce_first_admin(
            users::ensure_first_admin(&store, config.admin_password.as_ref().map(|s| s.expose())).await?,
        );
        let (mut shared, audit_writer) = build_shared(config.clone(), store.clone(), metrics.clone()).await?;
        // Every worker of this process reads the requests' clock.
        let (relay, deliveries) = relay_for(&config, &store, &metrics, &shared.clock)?;
        shared.relay = relay.as_ref().map(Relay::state);
        let state = AppState::new(shared);
        let listener =
            TcpListener::bind(config.bind).await.with_context(|| format!("cannot listen on {}", config.bind))?;
        let metrics_listener = bind_metrics(&config).await?;
        Ok(Application { listener, state, audit_writer, relay, deliveries, metrics_listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (bounded by the grace
    /// period) and waits for the audit writer to commit what it holds.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, state, audit_writer, relay, deliveries, metrics_listener } = self;
        let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
        let store = state.store.clone();
        let metrics = state.metrics.clone();
        let (stop_relay, relay_stopping) = shutdown::channel();
        let deliveries = deliveries.map(|worker| tokio::spawn(worker.run(relay_stopping.clone())));
        let metrics_server = spawn_metrics(metrics_listener, &metrics, &state.config, relay_stopping.clone());
        let scheduler = state.config.jobs.enabled.then(|| {
            let scheduler = crate::jobs::Scheduler::new(store.clone(), state.config.clone(), metrics.clone())
                .with_clock(state.clock.clone());
            tokio::spawn(scheduler.run(relay_stopping.clone()))
        });
        let accounts = tokio::spawn(crate::cache::follow_account_changes(
            store.clone(),
            state.cache.users.clone(),
            state.account_changes.clone(),
            relay_stopping.clone(),
        ));
        let notifier = tokio::spawn(crate::relay::notify_other_processes(
            store.clone(),
            store.events_committed(),
            relay.as_ref().map(Relay::state),
            relay_stopping.clone(),
        ));
        let relay = relay.map(|relay| tokio::spawn(relay.run(relay_stopping, grace)));
        let limits = crate::http::server::ConnectionLimits::from(&state.config.http);
        let app = crate::http::router(state);
        tracing::info!(address = %listener.local_addr()?, backend = store.backend().as_str(), "HealthCore is serving");
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = crate::http::server::serve(listener, app, limits, metrics, async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            let _ = stopping_tx.send(());
        });
        let mut serve = tokio::spawn(serve);
        tokio::select! {
            result = &mut serve => result?,
            _ = async { let _ = stopping_rx.await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish within the grace period");
                serve.abort();
            }
        }
        // The router (and with it every AuditLog handle) is gone now, so the writer drains and stops.
        let _ = tokio::time::timeout(Duration::from_secs(10), audit_writer).await;
        // Requests are done, so no new events: the relay stops taking rows and flushes what is in flight.
        stop_relay.stop();
        if let Some(relay) = relay {
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), relay).await;
        }
        if let Some(deliveries) = deliveries {
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), deliveries).await;
        }
        let _ = notifier.await;
        let _ = accounts.await;
        if let Some(scheduler) = scheduler {
            let _ = tokio::time::timeout(grace + Duration::from_secs(1), scheduler).await;
        }
        if let Some(metrics_server) = metrics_server {
            let _ = metrics_server.await;
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn announce_first_admin(outcome: FirstAdmin) {
    match outcome {
        FirstAdmin::NotNeeded => {}
        FirstAdmin::CreatedWithConfiguredPassword => {
            tracing::info!(
                username = "admin",
                "created the first admin user with the password from HEALTHCORE_ADMIN_PASSWORD"
            );
        }
        FirstAdmin::CreatedWithGeneratedPassword(generated) => {
            // Deliberately printed to the terminal, not logged: logs are shipped and kept, and a
            // password must not end up in them.
            eprintln!();
            eprintln!("  First start: created user 'admin' with the generated password:");
            eprintln!();
            eprintln!("      {generated}");
            eprintln!();
            eprintln!("  It is shown only this once. To choose a password instead, start with an empty database");
            eprintln!("  and HEALTHCORE_ADMIN_PASSWORD set, or create another admin with");
            eprintln!("  `healthcore user create --username NAME --role admin --password-stdin`.");
            eprintln!();
        }
    }
}

/// Resolves when the process receives SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// `healthcore relay`: publish the outbox until SIGTERM, without serving HTTP.
pub async fn run_relay(config: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config, &metrics).await?;
    if config.kafka.is_none() {
        anyhow::bail!("KAFKA_BOOTSTRAP_SERVERS: is required to run the relay (set KAFKA_ENABLED=true with brokers)");
    }
    let relay = Relay::new(
        store.clone(),
        config.kafka.clone().expect("checked above"),
        config.relay.clone(),
        store.events_committed(),
        metrics.clone(),
    )?;
    let (stop, stopping) = shutdown::channel();
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let metrics_server = spawn_metrics(bind_metrics(&config).await?, &metrics, &config, stopping.clone());
    let running = tokio::spawn(relay.run(stopping, grace));
    shutdown_signal().await;
    stop.stop();
    let _ = running.await;
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    store.close().await;
    Ok(())
}

/// `healthcore consume --group NAME`: one consumer group reading Kafka until SIGTERM, with the
/// webhook worker when the group sends webhooks.
pub async fn run_consumer(config: Config, group: ConsumerGroup) -> anyhow::Result<()> {
    let Some(kafka) = config.kafka.clone() else {
        anyhow::bail!(
            "KAFKA_BOOTSTRAP_SERVERS: is required to consume from Kafka (without it `serve` runs every consumer in-process)"
        );
    };
    let metrics = Arc::new(Metrics::new());
    let store = open_store(&config, &metrics).await?;
    let (stop, stopping) = shutdown::channel();
    let metrics_server = spawn_metrics(bind_metrics(&config).await?, &metrics, &config, stopping.clone());
    let consumers = Consumers::new(store.clone(), config.consumers.clone(), metrics.clone());
    let deliveries = if group.sends_webhooks() {
        let recorded = consumers.deliveries_recorded();
        let worker = DeliveryWorker::new(store.clone(), config.consumers.webhook.clone(), recorded, metrics)?;
        Some(tokio::spawn(worker.run(stopping.clone())))
    } else {
        None
    };
    let consumer = KafkaConsumer::new(consumers, group, kafka)?;
    let mut running = tokio::spawn(consumer.run(stopping));
    // The consumer ends on SIGTERM, or by itself if it cannot start (topics, subscription).
    let ended = tokio::select! {
        _ = shutdown_signal() => None,
        result = &mut running => Some(result),
    };
    stop.stop();
    let result = match ended {
        Some(result) => result,
        None => running.await,
    };
    if let Some(deliveries) = deliveries {
        let _ = tokio::time::timeout(Duration::from_secs(config.shutdown_grace_seconds), deliveries).await;
    }
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    store.close().await;
    result?
}
