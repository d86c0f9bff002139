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
use lapin::types::ShortString as ConsumerTag;
use maestro_broker::{BrokerError, Publisher, QueueType};
use maestro_results::ResultStore;
use maestro_tasks::Registry;
use tokio::sync::{Semaphore, mpsc};
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

/// What a consumer yields.
type DeliveryResult = Result<lapin::message::Delivery, lapin::Error>;
/// Tags a delivery with its queue's name.
type Label = Box<dyn FnMut(DeliveryResult) -> (Arc<str>, DeliveryResult) + Send>;
/// One queue's deliveries, each with the queue's name.
type QueueStream = futures_util::stream::Map<lapin::Consumer, Label>;

/// Starts consuming `queue` on `channel`.
async fn consume_queue(
    channel: &lapin::Channel,
    queue: &str,
) -> Result<(ConsumerTag, QueueStream), BrokerError> {
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let tag = consumer.tag();
    let name: Arc<str> = Arc::from(queue);
    let label: Label = Box::new(move |d| (name.clone(), d));
    Ok((tag, consumer.map(label)))
}

/// Carries out remote control's `add_consumer` / `cancel_consumer` (a failure is logged: the
/// reply went out already, as Celery's does).
async fn change_consumers(
    channel: &lapin::Channel,
    conn: &Arc<Connection>,
    cfg: &WorkerConfig,
    state: &WorkerState,
    tags: &mut Vec<(String, ConsumerTag)>,
    streams: &mut SelectAll<QueueStream>,
    command: control::ConsumerCommand,
) {
    match command {
        control::ConsumerCommand::Add(name) => {
            if tags.iter().any(|(q, _)| *q == name) {
                return;
            }
            let q = maestro_broker::TaskQueue::named(&name, cfg.queue_type);
            let added = async {
                maestro_broker::topology::declare_task_queue(conn, &q).await?;
                maestro_broker::topology::bind_delayed_delivery(conn, &cfg.delay, &q).await?;
                consume_queue(channel, &name).await
            }
            .await;
            match added {
                Ok((tag, stream)) => {
                    tags.push((name.clone(), tag));
                    streams.push(stream);
                    state.add_queue(q);
                    info!(event = "consumer_added", queue = %name, "by remote control");
                }
                Err(e) => warn!(event = "consumer_not_added", queue = %name, error = %e),
            }
        }
        control::ConsumerCommand::Cancel(name) => {
            let Some(i) = tags.iter().position(|(q, _)| *q == name) else {
                return;
            };
            let (_, tag) = tags.remove(i);
            // The queue's stream ends once the broker confirms; prefetched deliveries of it
            // still run.
            let _ = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await;
            state.remove_queue(&name);
            info!(event = "consumer_cancelled", queue = %name, "by remote control");
        }
    }
}

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
    // Worker events unless --without-heartbeat; task events as `state` says (-E, or remote
    // control), so the channel is there whenever either may be sent.
    let events = if cfg.heartbeat || cfg.events || cfg.remote_control {
        Some(Events::open(conn, state.clone()).await?)
    } else {
        None
    };
    let heartbeat = match events.as_ref().filter(|_| cfg.heartbeat) {
        Some(ev) => {
            ev.worker("worker-online").await;
            Some(ev.spawn_heartbeat())
        }
        None => None,
    };
    let publisher = Publisher::open(conn)
        .await?
        .with_signing(cfg.signing.clone());
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
    let slots = Arc::new(Semaphore::new(state.concurrency()));
    let (commands_tx, mut commands) = mpsc::unbounded_channel();
    let control = if cfg.remote_control {
        let c = control::Control {
            cfg: cfg.clone(),
            registry: registry.clone(),
            state: state.clone(),
            store: store.clone(),
            events: events.clone(),
            slots: slots.clone(),
            consumers: commands_tx,
        };
        Some(control::spawn(conn, c).await?)
    } else {
        None
    };
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
    let mut tags: Vec<(String, ConsumerTag)> = Vec::new();
    for q in &state.queues() {
        let (tag, stream) = consume_queue(&channel, &q.name).await?;
        tags.push((q.name.clone(), tag));
        streams.push(stream);
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
        // Every delivery goes to its own run at once: the run takes a concurrency slot when it
        // is about to start (prefetch bounds how many wait). Remote control's consumer changes
        // come in between deliveries.
        let next = tokio::select! {
            biased;
            d = streams.next(), if !streams.is_empty() => d,
            command = commands.recv() => {
                if let Some(command) = command {
                    change_consumers(&channel, conn, &cfg, &state, &mut tags, &mut streams, command).await;
                }
                continue;
            }
            _ = shutdown.stop.cancelled() => break SessionEnd::Stopped,
            _ = publisher_lost.cancelled() => break lost(),
        };
        match next {
            Some((queue, Ok(delivery))) => {
                let s = session.clone();
                // Boxed: the run's future is about 11 KB (every state of a task's run), and
                // tokio moves a spawned future by value into its task cell and again on
                // completion; a box moves as a pointer (bench/instructions.py counted three
                // copies per message before).
                shutdown
                    .tasks
                    .spawn(Box::pin(processor::process(s, queue, delivery)));
            }
            Some((queue, Err(e))) => {
                warn!(event = "consumer_failed", queue = %queue, error = %e);
                break SessionEnd::Lost(e.into());
            }
            None => {
                break SessionEnd::Lost(BrokerError::Topology {
                    name: state
                        .queues()
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
    let stopped = matches!(end, SessionEnd::Stopped);
    if let Some(c) = control {
        c.stop(stopped).await;
    }
    match &end {
        SessionEnd::Stopped => {
            for (_, tag) in tags {
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
            if let Some(ev) = events.as_ref() {
                if cfg.heartbeat {
                    ev.worker("worker-offline").await;
                }
                ev.close().await;
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
