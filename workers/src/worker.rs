//! The worker's lifecycle: connect (retrying with backoff), declare Celery's topology, consume
//! until shutdown; when the broker goes away, reconnect and carry on. The health and metrics
//! endpoint (`--metrics-addr`) is served from before the first connection until `run` returns.

use std::sync::Arc;

use backon::Retryable;
use lapin::Connection;
use maestro_broker::connection::reconnect_backoff;
use maestro_broker::{BrokerError, topology};
use maestro_results::{ResultStore, StoreError};
use maestro_tasks::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::canvas::CHORD_UNLOCK;
use crate::config::{ResultBackend, WorkerConfig};
use crate::consumer::{self, SessionEnd};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::stats::WorkerState;

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("metrics endpoint (--metrics-addr): {0}")]
    Metrics(#[from] std::io::Error),
    #[error(transparent)]
    MissingState(#[from] maestro_tasks::MissingState),
}

/// Runs the worker until shutdown. Returns an error only for what retrying cannot fix.
pub async fn run(
    cfg: WorkerConfig,
    registry: Registry,
    shutdown: Shutdown,
) -> Result<(), WorkerError> {
    registry.check_states()?;
    let cfg = Arc::new(cfg);
    let mut registry = registry;
    let builtins = crate::builtins::RegistryHandle::default();
    crate::builtins::add(&mut registry, &builtins);
    let registry = Arc::new(registry);
    builtins.set(&registry);
    let hostname: Arc<str> = Arc::from(cfg.hostname.as_str());
    info!(
        event = "worker_starting",
        node = %cfg.hostname,
        queues = %cfg.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>().join(","),
        concurrency = cfg.concurrency,
        prefetch = cfg.prefetch_count,
        broker = %cfg.broker_display,
        tasks = registry.len(),
    );
    let metrics = Arc::new(Metrics::new(
        cfg.queues.iter().map(|q| q.name.as_str()),
        registry.names().into_iter().chain([CHORD_UNLOCK]),
    ));
    // The endpoint stops when `run` returns, whichever way.
    let serving = CancellationToken::new();
    let _stop_serving = serving.clone().drop_guard();
    if let Some(addr) = cfg.metrics_addr {
        let bound = maestro_telemetry::serve(addr, metrics.clone(), serving).await?;
        info!(event = "metrics_listening", addr = %bound);
    }
    let state = Arc::new(WorkerState::for_worker(
        cfg.hostname.as_str(),
        metrics,
        shutdown.stop.clone(),
        cfg.queues.clone(),
        cfg.concurrency,
    ));
    state.set_task_events(cfg.events);
    crate::revocations::load(&state, &cfg);
    let mut mingled = !cfg.mingle || !cfg.remote_control;
    let store = match &cfg.result_backend {
        ResultBackend::Store { url } => match open_store_until_stopped(url, &cfg, &shutdown).await?
        {
            Some(store) => Some(store),
            None => return Ok(()),
        },
        _ => None,
    };
    loop {
        let Some(conn) = connect_until_stopped(&cfg, &shutdown).await? else {
            return Ok(());
        };
        let conn = Arc::new(conn);
        if let Err(e) = declare(&conn, &cfg, &state).await {
            if !e.is_retryable() {
                let _ = conn.close(200, "topology refused".into()).await;
                return Err(e.into());
            }
            warn!(event = "declare_failed", error = %e, "reconnecting");
            state.metrics.reconnecting();
            let _ = conn.close(200, "reconnecting".into()).await;
            continue;
        }
        if !mingled {
            crate::revocations::mingle(&conn, &state, &cfg).await;
            mingled = true;
        }
        info!(event = "worker_ready", node = %cfg.hostname, "consuming");
        match consumer::consume(
            &conn,
            cfg.clone(),
            registry.clone(),
            hostname.clone(),
            store.clone(),
            state.clone(),
            &shutdown,
        )
        .await
        {
            Ok(SessionEnd::Stopped) => {
                let _ = conn.close(200, "worker stopped".into()).await;
                return Ok(());
            }
            Ok(SessionEnd::Lost(e)) | Err(e) => {
                warn!(event = "connection_lost", error = %e, "reconnecting; unacknowledged messages return to the queue");
                let _ = conn.close(200, "reconnecting".into()).await;
                if shutdown.stop.is_cancelled() {
                    return Ok(());
                }
                state.metrics.reconnecting();
            }
        }
    }
}

/// Connects, retrying with backoff and jitter; `None` when shutdown came first.
async fn connect_until_stopped(
    cfg: &WorkerConfig,
    shutdown: &Shutdown,
) -> Result<Option<Connection>, BrokerError> {
    let name = format!("maestro-worker {}", cfg.hostname);
    let attempt = || async {
        let (conn, i) = cfg.broker.connect(&name).await?;
        if cfg.broker.len() > 1 {
            info!(event = "broker_connected", node = %maestro_broker::connection::redact(&cfg.broker.lapin_urls()[i]));
        }
        Ok::<_, BrokerError>(conn)
    };
    let retrying = attempt
        .retry(reconnect_backoff())
        .when(BrokerError::is_retryable)
        .notify(|e, wait| {
            warn!(event = "broker_unreachable", broker = %cfg.broker_display, error = %e,
                retry_in_ms = wait.as_millis() as u64, "cannot connect to the broker; retrying");
        });
    tokio::select! {
        r = retrying => r.map(Some),
        _ = shutdown.stop.cancelled() => Ok(None),
    }
}

/// Connects to the MongoDB result store, retrying while it is away; `None` when shutdown came
/// first. A malformed URL is an error at once.
async fn open_store_until_stopped(
    url: &str,
    cfg: &WorkerConfig,
    shutdown: &Shutdown,
) -> Result<Option<ResultStore>, BrokerError> {
    let attempt = || ResultStore::connect(url, cfg.result_expires);
    let retrying = attempt
        .retry(reconnect_backoff())
        .when(StoreError::is_retryable)
        .notify(|e, wait| {
            warn!(event = "result_store_unreachable", error = %e, retry_in_ms = wait.as_millis() as u64,
                "cannot reach the result store; retrying");
        });
    tokio::select! {
        r = retrying => r.map(Some).map_err(|e| BrokerError::Topology { name: "--result-backend".into(), reason: e.to_string() }),
        _ = shutdown.stop.cancelled() => Ok(None),
    }
}

/// Celery's topology for every queue, the delay levels, and the dead-letter exchange.
async fn declare(
    conn: &Connection,
    cfg: &WorkerConfig,
    state: &WorkerState,
) -> Result<(), BrokerError> {
    topology::declare_delay_topology(conn, &cfg.delay, cfg.queue_type).await?;
    let dead = topology::declare_dead_letter(
        conn,
        &cfg.dead_letter_exchange,
        &cfg.dead_letter_queue,
        cfg.queue_type,
    )
    .await;
    match dead {
        Ok(()) => {}
        // A classic dead-letter queue whose node is down (clusters): tasks still run; a dead
        // letter published meanwhile is refused and its delivery requeued, not lost.
        Err(e) if e.is_not_found() => {
            warn!(event = "dead_letter_queue_unavailable", queue = %cfg.dead_letter_queue, error = %e,
                "consuming anyway; declare the dead-letter queue as quorum (--queue-type quorum) to avoid this");
        }
        Err(e) => return Err(e),
    }
    for q in &state.queues() {
        topology::declare_task_queue(conn, q).await?;
        topology::bind_delayed_delivery(conn, &cfg.delay, q).await?;
    }
    Ok(())
}
