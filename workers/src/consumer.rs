//! One consuming session over one connection: opens the task channel (prefetch = concurrency
//! x multiplier) and a confirm channel for publishing, consumes every queue, and hands each
//! delivery to `processor::process` while a semaphore bounds how many run at once.
//!
//! Ends when shutdown stops it (running tasks drain within the grace period, acks are flushed,
//! then the channels close and the broker requeues what was prefetched but never started) or
//! when the connection is lost (runs of this session are abandoned: their deliveries died
//! with the channel and the broker redelivers them, so finishing them would only run them
//! twice at once).

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use lapin::Connection;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use maestro_broker::{BrokerError, Publisher, QueueType};
use maestro_results::ResultStore;
use maestro_tasks::Registry;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::acker;
use crate::config::WorkerConfig;
use crate::control;
use crate::events::Events;
use crate::metrics::ConsumingGuard;
use crate::processor;
use crate::session::Session;
use crate::shutdown::Shutdown;
use crate::stats::WorkerState;

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// Shutdown was asked for and the session drained.
    Stopped,
    /// The connection or channel failed; reconnect.
    Lost(BrokerError),
}

/// Consumes until shutdown or connection loss.
pub(crate) async fn consume(
    conn: &Arc<Connection>,
    cfg: Arc<WorkerConfig>,
    registry: Arc<Registry>,
    hostname: Arc<str>,
    store: Option<ResultStore>,
    state: Arc<WorkerState>,
    shutdown: &Shutdown,
) -> Result<SessionEnd, BrokerError> {
    let events = if cfg.events {
        Some(Events::open(conn, state.clone()).await?)
    } else {
        None
    };
    let control = if cfg.remote_control {
        Some(control::spawn(conn, cfg.clone(), registry.clone(), state.clone()).await?)
    } else {
        None
    };
    let heartbeat = match &events {
        Some(ev) => {
            ev.worker("worker-online").await;
            Some(ev.spawn_heartbeat())
        }
        None => None,
    };
    let publisher = Publisher::open(conn).await?;
    let channel = conn.create_channel().await?;
    // Celery asks for a channel-wide (global) prefetch; quorum queues do not support it, so
    // there the limit is per consumer.
    let global = cfg
        .queues
        .iter()
        .all(|q| q.queue_type == QueueType::Classic);
    channel
        .basic_qos(cfg.prefetch_count, BasicQosOptions { global })
        .await?;
    let flush_every = (usize::from(cfg.prefetch_count) / 4).max(1);
    let (acker, acker_task) = acker::spawn(
        channel.clone(),
        flush_every,
        state.metrics.settle_counters(),
    );
    let abort = shutdown.abort.child_token();
    let publisher_lost = tokio_util::sync::CancellationToken::new();
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let session = Arc::new(Session {
        slots: slots.clone(),
        cfg: cfg.clone(),
        registry,
        hostname,
        publisher: publisher.clone(),
        acker,
        abort: abort.clone(),
        publisher_lost: publisher_lost.clone(),
        store,
        conn: conn.clone(),
        state: state.clone(),
        events: events.clone(),
    });
    let lost = || {
        SessionEnd::Lost(BrokerError::Topology {
            name: "publishing channel".into(),
            reason: "the broker closed it (see the publish error above)".into(),
        })
    };

    let mut streams = SelectAll::new();
    let mut tags = Vec::new();
    for q in &cfg.queues {
        let consumer = channel
            .basic_consume(
                q.name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push(consumer.tag());
        let name: Arc<str> = Arc::from(q.name.as_str());
        streams.push(consumer.map(move |d| (name.clone(), d)));
    }

    // Ready from here until the loop ends (shutdown or loss): not while draining.
    let consuming = ConsumingGuard::new(&state.metrics);
    let end = loop {
        if shutdown.stop.is_cancelled() {
            break SessionEnd::Stopped;
        }
        if publisher_lost.is_cancelled() {
            break lost();
        }
        // The delivery first, then a slot: the loop never holds a slot while it waits for the
        // broker, so a run that gave its slot back (a rate-limited one) can always take one
        // again. A delivery dropped here at shutdown is requeued when the channel closes.
        let next = tokio::select! {
            biased;
            d = streams.next() => d,
            _ = shutdown.stop.cancelled() => break SessionEnd::Stopped,
            _ = publisher_lost.cancelled() => break lost(),
        };
        let permit = tokio::select! {
            biased;
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break SessionEnd::Stopped,
            },
            _ = shutdown.stop.cancelled() => break SessionEnd::Stopped,
            _ = publisher_lost.cancelled() => break lost(),
        };
        match next {
            Some((queue, Ok(delivery))) => {
                let s = session.clone();
                shutdown
                    .tasks
                    .spawn(processor::process(s, queue, delivery, permit));
            }
            Some((queue, Err(e))) => {
                warn!(event = "consumer_failed", queue = %queue, error = %e);
                break SessionEnd::Lost(e.into());
            }
            None => {
                break SessionEnd::Lost(BrokerError::Topology {
                    name: cfg
                        .queues
                        .iter()
                        .map(|q| q.name.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    reason: "the broker cancelled the consumer (queue deleted?)".into(),
                });
            }
        }
    };
    drop(consuming);

    if let Some(h) = heartbeat {
        h.abort();
    }
    if let Some(c) = control {
        c.abort();
    }
    match &end {
        SessionEnd::Stopped => {
            for tag in tags {
                let _ = channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await;
            }
            drop(streams);
            let running = shutdown.tasks.len();
            if running > 0 {
                info!(
                    event = "draining",
                    tasks_running = running,
                    grace_secs = cfg.shutdown_grace.as_secs_f64()
                );
            }
            let abandoned = shutdown.drain(cfg.shutdown_grace).await;
            if let Some(ev) = &events {
                ev.worker("worker-offline").await;
            }
            drop(session);
            let _ = acker_task.await;
            publisher.close().await;
            let _ = channel.close(200, "worker shutting down".into()).await;
            info!(event = "stopped", tasks_requeued = abandoned);
        }
        SessionEnd::Lost(_) => {
            abort.cancel();
            drop(streams);
            drop(session);
            acker_task.abort();
        }
    }
    Ok(end)
}
