//! The SQRL login service a site operator runs.
//!
//! A visitor opens the login page, sees a QR code (and a "sign in with SQRL"
//! link for the same device), confirms in a SQRL app, and the page logs in by
//! itself. Every protocol decision is made by [`sqrl_core::server`]; this crate
//! supplies HTTP ([`axum`]), durable state ([`store::Store`], SQLite by default),
//! live page updates ([`notify::Notifier`]) and the web pages.
//!
//! Start one in-process (tests, benches) on an ephemeral port:
//!
//! ```no_run
//! # async fn example() -> Result<(), sqrl_server::StartError> {
//! let config = sqrl_server::config::Config::for_tests("/tmp/sqrl-example.db");
//! let server = sqrl_server::start(config).await?;
//! println!("login page at {}/", server.base_url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod app;
pub mod browser;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod error;
pub mod html;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod oidc;
pub mod qr;
pub mod ratelimit;
pub mod retry;
pub mod return_to;
pub mod routes;
mod serve;
pub mod store;
pub mod streams;
pub mod token;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::{Config, PublicOrigin};
use crate::notify::{InProcessNotifier, Notifier};
use crate::store::postgres::PostgresStore;
use crate::store::postgres::listen::PostgresNotifier;
use crate::store::sqlite::SqliteStore;
use crate::store::{Database, Store};

/// How often expired rows are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The listener could not be bound, or TLS files not read.
    #[error("{context}: {source}")]
    Io {
        /// What was being attempted.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The configuration does not make a valid service.
    #[error(transparent)]
    State(#[from] app::StateError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// A running service.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    pruner: JoinHandle<()>,
    deliverer: JoinHandle<((), ())>,
}

impl RunningServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The public origin (`http://127.0.0.1:PORT` for a test server).
    pub fn base_url(&self) -> String {
        self.state.origin.http_origin()
    }

    /// The public origin.
    pub fn origin(&self) -> &PublicOrigin {
        &self.state.origin
    }

    /// The service's clock (tests move it forward to expire nuts).
    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    /// The shared state (tests and benches read metrics from it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections, ends live event streams, waits for
    /// requests in flight (up to a grace period) and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.pruner.abort();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "server ended with an error"),
            Err(error) => tracing::warn!(%error, "server task failed"),
        }
        // Webhook POSTs in flight finish (each within its timeout) and their
        // outcome is recorded; the worker claims nothing more.
        let webhook_grace = self.state.config.webhook_delivery.timeout + SHUTDOWN_GRACE;
        if tokio::time::timeout(webhook_grace, self.deliverer)
            .await
            .is_err()
        {
            tracing::warn!("webhook deliveries still in flight at shutdown were abandoned");
        }
    }
}

/// Opens the database of `config` and starts the service: SQLite with
/// in-process notifications, or PostgreSQL with notifications shared by every
/// instance on the same database.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let connections = config.db_connections;
    let events = webhooks::deliver::routes(&config.webhooks);
    let (store, notifier): (Arc<dyn Store>, Arc<dyn Notifier>) = match &config.db {
        Database::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, connections))
                .await
                .map_err(|e| StartError::Store(store::StoreError::Task(e.to_string())))??
                .with_max_logins_in_flight(config.max_logins_in_flight)
                .with_events(events);
            (Arc::new(store), Arc::new(InProcessNotifier::new()))
        }
        Database::Postgres(url) => {
            let store = PostgresStore::connect(url, connections)
                .await?
                .with_events(events);
            let notifier = PostgresNotifier::start(&store);
            (Arc::new(store), Arc::new(notifier))
        }
    };
    tracing::info!(database = %config.db.describe(), "storage ready");
    start_with(config, store, notifier).await
}

/// Starts the service on the given storage and notifier. The store records
/// login events only for the routes it was given
/// (`with_events(webhooks::deliver::routes(&config.webhooks))`).
pub async fn start_with(
    config: Config,
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
) -> Result<RunningServer, StartError> {
    let listener = serve::bind(config.bind).map_err(io(format!("binding {}", config.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the bound address"))?;
    let origin = config.origin_for(addr);
    let tls = match &config.tls {
        Some(files) => Some(
            serve::tls_acceptor(files)
                .map_err(|(context, source)| StartError::Io { context, source })?,
        ),
        None => None,
    };
    let (stop, stopped) = watch::channel(false);
    let state = AppState::new(config, origin, store, notifier, Clock::new(), stopped)?;
    let server = tokio::spawn(serve::serve(
        listener,
        app::router(state.clone()),
        state.clone(),
        tls,
        stop.subscribe(),
        SHUTDOWN_GRACE,
    ));

    let pruner = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(PRUNE_INTERVAL);
            loop {
                interval.tick().await;
                match state.store.prune(state.clock.now()).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::debug!(rows, "pruned expired rows"),
                    Err(error) => tracing::warn!(%error, "pruning failed"),
                }
            }
        })
    };

    // Login events, and logout tokens for relying parties: one outbox.
    let deliverer = tokio::spawn(futures_util::future::join(
        webhooks::deliver::run(state.clone(), stop.subscribe()),
        oidc::logout::run(state.clone(), stop.subscribe()),
    ));

    tracing::info!(%addr, origin = %state.origin.http_origin(), links = %state.origin.sqrl_origin(), "listening");
    if let Some(warning) = state.origin.reachability_warning(addr) {
        tracing::warn!("{warning}");
    }
    Ok(RunningServer {
        addr,
        state,
        stop,
        server,
        pruner,
        deliverer,
    })
}

/// Starts the service and runs it until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let server = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}
