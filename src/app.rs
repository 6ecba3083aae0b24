//! Wires the service together: database, decider, dispatcher, consumer and
//! the HTTP server. `Application::build` binds the listener (port 0 picks a
//! free port, as tests do); `run_until_stopped` serves until a signal.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, AppState, problem};
use crate::broker::BrokerStatus;
use crate::clock::{Clock, SystemClock};
use crate::config::{Settings, redact_url};
use crate::connectors::breaker::Breakers;
use crate::connectors::outbound::OutboundPolicy;
use crate::connectors::registry::Registry;
use crate::connectors::secret::SecretPolicy;
use crate::decisions::{Decider, EvalBudget, Policy, dispatcher::Dispatcher};
use crate::ingest::amqp::Consumer;
use crate::store::{Store, StoreError};
use crate::sync::lifecycle::LifecyclePublisher;
use crate::sync::poller::Poller;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database {url}")]
    Database {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot migrate the database")]
    Migrate(#[source] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("rules file {path}: {errors}")]
    Rules { path: String, errors: String },
    #[error("cannot apply the rules file")]
    ApplyRules(#[source] StoreError),
    #[error(
        "another workbridge is running on the SQLite database {path}: SQLite serves one replica \
         (run several replicas on PostgreSQL)"
    )]
    SqliteInUse { path: String },
    #[error("cannot lock {path}")]
    SqliteLock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// SQLite is single-replica (one writer, one connection): a second service
/// on the same file is refused with a clear error, by an exclusive lock on
/// `<file>.lock` that the OS releases when the process ends, even on a crash.
fn lock_sqlite_file(url: &str) -> Result<Option<std::fs::File>, StartError> {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return Ok(None);
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StartError::SqliteLock { path: lock_path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::SqliteInUse { path: path.to_owned() }),
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::SqliteLock { path: lock_path, source }),
    }
}

/// Applies the configured rules file; a file with errors stops start-up.
async fn apply_rules_file(
    store: &Store,
    path: &std::path::Path,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StartError> {
    let fail = |errors: String| StartError::Rules { path: path.display().to_string(), errors };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let inputs = crate::rules::file::parse(&text).map_err(|e| fail(e.join("; ")))?;
    let txn = store.begin().await.map_err(StartError::ApplyRules)?;
    // As the API refuses a rule whose connector does not exist, so does the file.
    let connectors = crate::store::connectors::names(&txn).await.map_err(StartError::ApplyRules)?;
    let missing = crate::rules::file::check_connectors(&text, &inputs, |c| connectors.contains(c));
    if !missing.is_empty() {
        return Err(fail(missing.join("; ")));
    }
    // Audited as the file's doing, in the transaction that applies it.
    let actor = crate::store::audit::Actor {
        key_id: format!("rules-file:{}", path.display()),
        name: format!("rules file {}", path.display()),
    };
    let applied =
        crate::store::rules::apply_by_name(&txn, &inputs, &actor, now).await.map_err(StartError::ApplyRules)?;
    txn.commit().await.map_err(|e| StartError::ApplyRules(e.into()))?;
    tracing::info!(file = %path.display(), created = applied.created, updated = applied.updated, unchanged = applied.unchanged, "rules file applied");
    Ok(())
}

pub struct Application {
    port: u16,
    server: Server,
    workers: JoinSet<()>,
    cancel: CancellationToken,
    store: Store,
    /// The outbox dispatcher (the delivery loops run clones of it).
    dispatcher: Dispatcher,
    /// The status poller (the polling loop runs a clone of it).
    poller: Poller,
    /// The bounds on rule evaluation: ingest's, and dry runs' and backtests'.
    budgets: (EvalBudget, EvalBudget),
    shutdown_timeout: Duration,
    /// Held for the life of the service (SQLite only).
    _sqlite_lock: Option<std::fs::File>,
}

/// Where connector secrets may come from (`[secrets]`).
fn secret_policy(settings: &Settings) -> Result<SecretPolicy, String> {
    SecretPolicy::new(settings.secrets.dirs.clone(), settings.secrets.env_prefix.clone())
}

/// Where connectors may send requests (`[outbound]`).
fn outbound_policy(settings: &Settings) -> OutboundPolicy {
    OutboundPolicy {
        allow_loopback: settings.outbound.allow_loopback,
        allow_link_local: settings.outbound.allow_link_local,
    }
}

/// Every connector is built by one registry: the HTTP client with the
/// destination policy, the secret policy, and the sandbox EAM.
fn registry(settings: &Settings, secrets: SecretPolicy, store: Store) -> Result<Registry, reqwest::Error> {
    let outbound = outbound_policy(settings);
    let http = crate::connectors::outbound::client(outbound)?;
    Ok(Registry::new(http, secrets, outbound).with_sandbox(Arc::new(crate::sandbox::SandboxConnector::new(store))))
}

/// Installs the one TLS provider (ring) for outbound HTTPS.
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        install_tls_provider();
        let sqlite_lock = lock_sqlite_file(&settings.database.url)?;
        let store = Store::connect(&settings.database.url, settings.database.max_connections)
            .await
            .map_err(|source| StartError::Database { url: redact_url(&settings.database.url), source })?;
        if settings.database.migrate_on_start {
            store.migrate().await.map_err(StartError::Migrate)?;
        }
        if let Some(key) = &settings.admin_key {
            // Seeds the admin key given by WORKBRIDGE_ADMIN_KEY, and revokes
            // the one an earlier value seeded.
            crate::store::api_keys::seed_admin(store.conn(), key, clock.now()).await.map_err(StartError::Migrate)?;
        }
        let secrets = secret_policy(&settings).map_err(StartError::Config)?;
        if let Some(path) = &settings.rules.file {
            apply_rules_file(&store, path, clock.now()).await?;
        }
        let cancel = CancellationToken::new();
        let mut workers = JoinSet::new();
        let wake = Arc::new(Notify::new());
        let policy = Policy {
            sla: settings.sla.clone(),
            inhibit: settings.inhibit.clone(),
            budget: EvalBudget::new(Duration::from_millis(settings.rules.eval_timeout_ms)),
            dry_run_budget: EvalBudget::with_permits(
                Duration::from_millis(settings.rules.eval_timeout_ms),
                settings.rules.dry_run_permits,
            ),
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let budgets = (policy.budget.clone(), policy.dry_run_budget.clone());
        let decider = Decider::new(store.clone(), clock.clone(), wake.clone(), policy).with_metrics(metrics.clone());
        let registry = registry(&settings, secrets, store.clone()).map_err(StartError::HttpClient)?;
        let breakers = Arc::new(Breakers::new(
            settings.outbox.breaker_failures,
            chrono::Duration::milliseconds(settings.outbox.breaker_open_ms as i64),
        ));
        let dispatcher = Dispatcher::new(
            store.clone(),
            clock.clone(),
            registry.clone(),
            settings.outbox.clone(),
            wake,
            breakers.clone(),
        )
        .with_metrics(metrics.clone())
        .with_timers(decider.clone());
        for _ in 0..settings.outbox.workers {
            workers.spawn(dispatcher.clone().run(cancel.child_token()));
        }
        let poller = Poller::new(store.clone(), clock.clone(), registry.clone(), settings.sync.clone());
        workers.spawn(poller.clone().run(cancel.child_token()));
        workers.spawn(decider.clone().run_redecide_jobs(cancel.child_token()));

        let broker = Arc::new(BrokerStatus::default());
        if settings.amqp.enabled {
            for _ in 0..settings.amqp.consumers.max(1) {
                let consumer = Consumer::new(settings.amqp.clone(), decider.clone(), broker.clone());
                workers.spawn(consumer.run(cancel.child_token()));
            }
            let publisher = LifecyclePublisher::new(settings.amqp.clone(), store.clone(), clock.clone());
            workers.spawn(publisher.run(cancel.child_token()));
        }

        let state = AppState {
            store: store.clone(),
            decider,
            clock,
            http: settings.http.clone(),
            broker,
            amqp_enabled: settings.amqp.enabled,
            breakers,
            registry,
            auth_failures: Arc::new(api::auth::AuthFailures::new(
                settings.http.auth_failure_limit,
                settings.http.auth_failure_window_secs,
            )),
        };
        let listener = TcpListener::bind(&settings.http.addr)
            .map_err(|source| StartError::Bind { addr: settings.http.addr.clone(), source })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr: settings.http.addr.clone(), source })?
            .port();
        let json_limit = settings.http.max_body_bytes;
        let server = HttpServer::new(move || {
            let (app, openapi) = App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(web::JsonConfig::default().limit(json_limit).error_handler(problem::json_error))
                .app_data(web::QueryConfig::default().error_handler(problem::query_error))
                .app_data(web::PathConfig::default().error_handler(problem::path_error))
                // Inside the key check: an unknown key is a 401 before any 400.
                .wrap(actix_web::middleware::from_fn(crate::api::extract::check_query))
                .wrap(actix_web::middleware::from_fn(crate::api::auth::authorize))
                .wrap(actix_web::middleware::from_fn(crate::api::headers::security_headers))
                // The path only: query strings can carry what is not for logs.
                .wrap(
                    actix_web::middleware::Logger::new("%{METHOD}xi %U %s %Dms")
                        .custom_request_replace("METHOD", |req| req.method().to_string())
                        .log_target("workbridge::http"),
                )
                .into_utoipa_app()
                .configure(api::routes)
                .openapi(api::openapi())
                .split_for_parts();
            app.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi))
                .service(web::redirect("/docs", "/docs/"))
                .configure(api::console::register)
                .default_service(web::to(problem::not_found))
        })
        .listen(listener)
        .map_err(|source| StartError::Bind { addr: settings.http.addr.clone(), source })?
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .run();
        tracing::info!(port, database = %redact_url(&settings.database.url), amqp = settings.amqp.enabled, "workbridge started");
        let shutdown_timeout = Duration::from_secs(settings.http.shutdown_timeout_secs);
        Ok(Self {
            port,
            server,
            workers,
            cancel,
            store,
            dispatcher,
            poller,
            budgets,
            shutdown_timeout,
            _sqlite_lock: sqlite_lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the HTTP server gracefully (what a signal does).
    pub fn server_handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The database the service uses (tests inspect it).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// The outbox dispatcher: with `outbox.workers = 0` nothing delivers
    /// until `dispatch_once` is called (tests step it).
    pub fn dispatcher(&self) -> Dispatcher {
        self.dispatcher.clone()
    }

    /// The status poller: with `sync.poll_interval_ms = 0` no loop polls,
    /// and each `poll_round` polls every followed order.
    pub fn poller(&self) -> Poller {
        self.poller.clone()
    }

    /// The bounds on rule evaluation, (ingest, dry runs and backtests):
    /// tests occupy them.
    pub fn eval_budgets(&self) -> (EvalBudget, EvalBudget) {
        self.budgets.clone()
    }

    /// Serves until SIGINT/SIGTERM (or `server_handle().stop()`), then stops
    /// consuming, lets the dispatcher finish its current delivery and closes
    /// the database.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let result = self.server.await;
        self.cancel.cancel();
        let drained =
            tokio::time::timeout(self.shutdown_timeout, async { while self.workers.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!(seconds = self.shutdown_timeout.as_secs(), "workers did not stop in time; exiting anyway");
        }
        self.store.close().await;
        tracing::info!("workbridge stopped");
        result
    }
}

/// Checks one stored connector (for `workbridge connectors check`).
pub async fn check_connector(store: &Store, settings: &Settings, name: &str) -> Result<String, String> {
    install_tls_provider();
    let stored = crate::decisions::stored_connectors::get(store.conn(), name)
        .await
        .map_err(|e| format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()))?
        .ok_or_else(|| format!("no connector named {name}"))?;
    let secrets = secret_policy(settings)?;
    let registry = registry(settings, secrets, store.clone()).map_err(|e| e.to_string())?;
    let connector = registry.build(&stored.config).map_err(|e| e.to_string())?;
    connector.check().await.map_err(|e| e.to_string())
}
