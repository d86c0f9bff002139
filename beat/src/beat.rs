//! One beat process: the elector, the firing loop and the metrics endpoint.

use std::sync::Arc;
use std::time::Duration;

use mongodb::options::ClientOptions;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::config::BeatConfig;
use crate::fire::Firer;
use crate::lease::{LeaderWatch, Leadership, MongoLease, run_elector};
use crate::metrics::Metrics;

/// Why a beat could not start.
#[derive(Debug, thiserror::Error)]
pub enum BeatError {
    #[error("MongoDB settings: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
    #[error("elector stopped abnormally: {0}")]
    Elector(#[from] tokio::task::JoinError),
}

/// Runs a beat until `stop` turns true. A leader stops firing, then releases the lease.
pub async fn run(cfg: BeatConfig, stop: watch::Receiver<bool>) -> Result<(), BeatError> {
    let metrics = Arc::new(Metrics::default());
    // The endpoint stops when `run` returns, whichever way.
    let serving = tokio_util::sync::CancellationToken::new();
    let _stop_serving = serving.clone().drop_guard();
    if let Some(addr) = cfg.metrics_addr {
        let bound = maestro_telemetry::serve(addr, metrics.clone(), serving).await?;
        tracing::info!(event = "metrics_listening", addr = %bound);
    }
    let mut opts =
        ClientOptions::parse(secrecy::ExposeSecret::expose_secret(&cfg.mongo_uri)).await?;
    opts.app_name = Some(cfg.lease.holder.clone());
    opts.server_selection_timeout = Some(Duration::from_secs(3));
    opts.connect_timeout = Some(Duration::from_secs(3));
    let db = mongodb::Client::with_options(opts)?.database(&cfg.mongo_database);
    tracing::info!(event = "beat_started", holder = %cfg.lease.holder,
        lease = %cfg.lease_name, ttl_s = cfg.lease.ttl.as_secs_f64(),
        renew_deadline_s = cfg.lease.renew_deadline.as_secs_f64(),
        tick_s = cfg.lease.tick.as_secs_f64(), grace_s = cfg.fire.grace.as_secs_f64());

    let lease = MongoLease::new(db.collection(&cfg.lease_collection), &cfg.lease_name);
    let (tx, rx) = watch::channel(None);
    let elector = tokio::spawn(run_elector(
        lease,
        SystemClock,
        cfg.lease.clone(),
        tx,
        stop.clone(),
        metrics.clone(),
    ));
    let mut firer = Firer::new(
        db.collection(&cfg.schedules_collection),
        cfg.fire.clone(),
        SystemClock,
        metrics,
    );
    fire_loop(&mut firer, rx, stop, cfg.lease.tick).await;
    firer.close().await;
    elector.await?;
    tracing::info!(event = "beat_stopped");
    Ok(())
}

/// Runs a pass at every tick (aligned to the wall clock, so whole-second slots are met just
/// after they fall due) and as soon as leadership is taken. Returns on stop, dropping its
/// view of leadership so the elector knows nothing more will fire.
pub async fn fire_loop<C: Clock>(
    firer: &mut Firer<C>,
    mut lead: LeaderWatch,
    mut stop: watch::Receiver<bool>,
    tick: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_tick(tick)) => {}
            changed = lead.changed() => if changed.is_err() { break },
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        if lead.borrow().filter(Leadership::is_valid).is_none() {
            continue;
        }
        match firer.pass(&lead).await {
            Ok(r) if r.fired + r.republished + r.cas_skipped > 0 => {
                tracing::debug!(
                    event = "pass",
                    fired = r.fired,
                    republished = r.republished,
                    cas_skipped = r.cas_skipped,
                    invalid = r.invalid
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(event = "pass_failed", error = %e, "retrying next tick"),
        }
    }
}

/// The next multiple of `tick` on the wall clock, plus 5 ms so a slot due on the boundary is
/// already due.
fn next_tick(tick: Duration) -> Instant {
    let tick_ms = tick.as_millis().max(1);
    let now_ms = SystemClock.now().timestamp_millis().max(0) as u128;
    let wait = tick_ms - now_ms % tick_ms + 5;
    Instant::now() + Duration::from_millis(wait as u64)
}
