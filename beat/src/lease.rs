//! Leadership: one lease document `{_id, holder, epoch, expires_at}`.
//!
//! - A follower reads the lease each tick; when it is absent or expired it takes it with one
//!   atomic find-and-modify whose filter requires it to be expired, incrementing `epoch`.
//!   Two followers racing for it: one update matches, the other finds nothing (or, when the
//!   document did not exist yet, loses the insert on the duplicate `_id`).
//! - The leader renews each tick with one find-and-modify filtered on its holder name and
//!   epoch, pushing `expires_at` to now + TTL.
//! - The leader fires only until `renew_deadline` after it sent its last successful renewal
//!   (a monotonic deadline, shorter than the TTL). If renewals fail or hang, it stops firing
//!   at that deadline, `ttl - renew_deadline` before anyone else may take over.
//! - On shutdown the leader stops firing, then releases the lease so a follower takes over at
//!   its next tick.
//!
//! Expiry is judged with each beat's wall clock, so the beats' clocks must agree to within
//! `ttl - renew_deadline` (4 s with the defaults) for the lease alone to keep two leaders
//! apart. Fencing does not depend on it: a fire is a compare-and-set on the schedule
//! (`crate::fire`), so even overlapping leaders cannot fire one slot twice.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mongodb::Collection;
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ReturnDocument;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use crate::clock::Clock;
use crate::metrics::Metrics;

/// Lease timing.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This process's name in the lease document (unique per process).
    pub holder: String,
    /// How long a lease lasts after a renewal (default 10 s).
    pub ttl: Duration,
    /// How long after sending its last successful renewal a leader keeps firing (default 6 s).
    pub renew_deadline: Duration,
    /// How often the lease is renewed or checked (default 1 s).
    pub tick: Duration,
}

impl LeaseConfig {
    /// Checks the timing rules: tick < renew deadline < TTL.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.ttl {
            return Err("the renew deadline must be shorter than the lease TTL".into());
        }
        if self.tick >= self.renew_deadline {
            return Err("the tick must be shorter than the renew deadline".into());
        }
        if self.tick.is_zero() {
            return Err("the tick must be positive".into());
        }
        Ok(())
    }
}

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: String,
    pub epoch: i64,
    pub expires_at: DateTime<Utc>,
}

/// A lease store failure (the database is unreachable, say).
#[derive(Debug, thiserror::Error)]
#[error("lease store: {0}")]
pub struct LeaseError(pub String);

/// Where the lease lives.
pub trait LeaseStore: Send + Sync + 'static {
    /// The current lease, if any.
    fn read(&self) -> impl Future<Output = Result<Option<LeaseRecord>, LeaseError>> + Send;
    /// Extends `holder`'s lease at `epoch` to `now + ttl`; false when it no longer holds it.
    fn renew(
        &self,
        holder: &str,
        epoch: i64,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, LeaseError>> + Send;
    /// Takes the lease when it is absent or expired at `now`; the new epoch when taken.
    fn take_over(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<i64>, LeaseError>> + Send;
    /// Gives the lease up (expires it now) if `holder` still holds it at `epoch`.
    fn release(
        &self,
        holder: &str,
        epoch: i64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;
}

/// The lease in a MongoDB collection, one document per lease name.
#[derive(Clone)]
pub struct MongoLease {
    coll: Collection<Document>,
    name: String,
}

impl MongoLease {
    pub fn new(coll: Collection<Document>, name: impl Into<String>) -> Self {
        Self {
            coll,
            name: name.into(),
        }
    }
}

fn bson_time(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    crate::clock::to_bson(t)
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn store_err(e: mongodb::error::Error) -> LeaseError {
    LeaseError(e.to_string())
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

impl LeaseStore for MongoLease {
    async fn read(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        let doc = self
            .coll
            .find_one(doc! {"_id": &self.name})
            .await
            .map_err(store_err)?;
        Ok(doc.and_then(|d| {
            Some(LeaseRecord {
                holder: d.get_str("holder").ok()?.to_owned(),
                epoch: d
                    .get_i64("epoch")
                    .ok()
                    .or_else(|| d.get_i32("epoch").ok().map(i64::from))?,
                expires_at: crate::clock::from_bson(*d.get_datetime("expires_at").ok()?),
            })
        }))
    }

    async fn renew(
        &self,
        holder: &str,
        epoch: i64,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, LeaseError> {
        let updated = self
            .coll
            .find_one_and_update(
                doc! {"_id": &self.name, "holder": holder, "epoch": epoch},
                doc! {"$set": {"expires_at": bson_time(after(now, ttl)), "renewed_at": bson_time(now)}},
            )
            .await
            .map_err(store_err)?;
        Ok(updated.is_some())
    }

    async fn take_over(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Option<i64>, LeaseError> {
        let result = self
            .coll
            .find_one_and_update(
                doc! {"_id": &self.name, "expires_at": {"$lt": bson_time(now)}},
                doc! {
                    "$set": {"holder": holder, "expires_at": bson_time(after(now, ttl)),
                             "renewed_at": bson_time(now), "acquired_at": bson_time(now)},
                    "$inc": {"epoch": 1_i64},
                },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match result {
            Ok(Some(d)) if d.get_str("holder").ok() == Some(holder) => Ok(d
                .get_i64("epoch")
                .ok()
                .or_else(|| d.get_i32("epoch").ok().map(i64::from))),
            Ok(_) => Ok(None),
            // The lease exists and has not expired: the upsert tried to insert a second
            // document with the same `_id`.
            Err(e) if is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn release(
        &self,
        holder: &str,
        epoch: i64,
        now: DateTime<Utc>,
    ) -> Result<(), LeaseError> {
        self.coll
            .update_one(
                doc! {"_id": &self.name, "holder": holder, "epoch": epoch},
                doc! {"$set": {"expires_at": bson_time(now - TimeDelta::milliseconds(1))}},
            )
            .await
            .map_err(store_err)?;
        Ok(())
    }
}

/// Leadership as the firing loop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub epoch: i64,
    /// Fire only before this instant.
    pub valid_until: Instant,
}

impl Leadership {
    /// Whether this leadership may still fire.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// Current leadership, `None` when following.
pub type LeaderWatch = watch::Receiver<Option<Leadership>>;

/// Runs the election until `stop` turns true, publishing leadership changes on `tx`. On stop,
/// a leader withdraws (sends `None`), waits for `fire_idle` (the firing loop's last use of
/// its leadership), then releases the lease.
pub async fn run_elector<S: LeaseStore, C: Clock>(
    store: S,
    clock: C,
    cfg: LeaseConfig,
    tx: watch::Sender<Option<Leadership>>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) {
    let mut current: Option<Leadership> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let sent = Instant::now();
        let now = clock.now();
        let deadline = sent + cfg.renew_deadline;
        match current {
            Some(lead) => {
                match timeout(
                    cfg.renew_deadline,
                    store.renew(&cfg.holder, lead.epoch, now, cfg.ttl),
                )
                .await
                {
                    Ok(Ok(true)) => {
                        current = Some(Leadership {
                            epoch: lead.epoch,
                            valid_until: deadline,
                        });
                        // Same epoch: update the deadline without waking the firing loop.
                        tx.send_if_modified(|v| {
                            *v = current;
                            false
                        });
                    }
                    Ok(Ok(false)) => {
                        tracing::warn!(
                            event = "leadership_lost",
                            epoch = lead.epoch,
                            "the lease was taken over; no longer firing"
                        );
                        current = None;
                        tx.send_replace(None);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(event = "lease_renew_failed", error = %e);
                    }
                    Err(_) => {
                        tracing::warn!(event = "lease_renew_failed", error = "timed out");
                    }
                }
                if let Some(lead) = current.filter(|l| !l.is_valid()) {
                    tracing::warn!(
                        event = "leadership_lapsed",
                        epoch = lead.epoch,
                        "could not renew the lease before the renew deadline; no longer firing"
                    );
                    current = None;
                    tx.send_replace(None);
                }
            }
            None => {
                let attempt = async {
                    match store.read().await? {
                        Some(rec) if rec.expires_at >= now => Ok(None),
                        _ => store.take_over(&cfg.holder, now, cfg.ttl).await,
                    }
                };
                match timeout(cfg.renew_deadline, attempt).await {
                    Ok(Ok(Some(epoch))) => {
                        tracing::info!(event = "leadership_taken", epoch, holder = %cfg.holder);
                        metrics.takeovers.inc();
                        current = Some(Leadership {
                            epoch,
                            valid_until: deadline,
                        });
                        tx.send_replace(current);
                    }
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::warn!(event = "lease_check_failed", error = %e),
                    Err(_) => tracing::warn!(event = "lease_check_failed", error = "timed out"),
                }
            }
        }
        metrics.set_leadership(current.map(|l| l.epoch));
        tokio::select! {
            _ = tokio::time::sleep_until(sent + cfg.tick) => {}
            _ = stop.changed() => {}
        }
    }
    if let Some(lead) = current {
        tx.send_replace(None);
        metrics.set_leadership(None);
        // The firing loop holds the sender's receivers; wait until it has seen the withdrawal
        // and finished the fire in progress, so nothing fires after the release.
        tx.closed().await;
        match store.release(&cfg.holder, lead.epoch, clock.now()).await {
            Ok(()) => tracing::info!(event = "leadership_released", epoch = lead.epoch),
            Err(e) => tracing::warn!(event = "lease_release_failed", error = %e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An in-process lease with the same compare-and-set rules as `MongoLease`, and switches
    /// that make calls fail or hang, to drive timing with a paused clock. The MongoDB
    /// implementation is tested against a real server in `tests/live_beat.rs`.
    #[derive(Clone, Default)]
    struct MemLease {
        rec: Arc<Mutex<Option<LeaseRecord>>>,
        hang: Arc<AtomicBool>,
    }

    impl MemLease {
        async fn gate(&self) {
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
        }
        fn get(&self) -> Option<LeaseRecord> {
            self.rec.lock().expect("lock").clone()
        }
    }

    impl LeaseStore for MemLease {
        async fn read(&self) -> Result<Option<LeaseRecord>, LeaseError> {
            self.gate().await;
            Ok(self.get())
        }
        async fn renew(
            &self,
            holder: &str,
            epoch: i64,
            now: DateTime<Utc>,
            ttl: Duration,
        ) -> Result<bool, LeaseError> {
            self.gate().await;
            let mut rec = self.rec.lock().expect("lock");
            match rec.as_mut() {
                Some(r) if r.holder == holder && r.epoch == epoch => {
                    r.expires_at = after(now, ttl);
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        async fn take_over(
            &self,
            holder: &str,
            now: DateTime<Utc>,
            ttl: Duration,
        ) -> Result<Option<i64>, LeaseError> {
            self.gate().await;
            let mut rec = self.rec.lock().expect("lock");
            let epoch = match rec.as_ref() {
                Some(r) if r.expires_at >= now => return Ok(None),
                Some(r) => r.epoch + 1,
                None => 1,
            };
            *rec = Some(LeaseRecord {
                holder: holder.into(),
                epoch,
                expires_at: after(now, ttl),
            });
            Ok(Some(epoch))
        }
        async fn release(
            &self,
            holder: &str,
            epoch: i64,
            now: DateTime<Utc>,
        ) -> Result<(), LeaseError> {
            let mut rec = self.rec.lock().expect("lock");
            if let Some(r) = rec
                .as_mut()
                .filter(|r| r.holder == holder && r.epoch == epoch)
            {
                r.expires_at = now - TimeDelta::milliseconds(1);
            }
            Ok(())
        }
    }

    fn cfg(holder: &str) -> LeaseConfig {
        LeaseConfig {
            holder: holder.into(),
            ttl: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(6),
            tick: Duration::from_secs(1),
        }
    }

    struct Beat {
        rx: LeaderWatch,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(store: &MemLease, clock: TokioClock, holder: &str) -> Beat {
        let (tx, rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_elector(
            store.clone(),
            clock,
            cfg(holder),
            tx,
            stop_rx,
            Arc::new(Metrics::default()),
        ));
        Beat { rx, stop, task }
    }

    fn leading(b: &Beat) -> Option<i64> {
        b.rx.borrow().filter(Leadership::is_valid).map(|l| l.epoch)
    }

    async fn advance(d: Duration) {
        // Step a tick at a time so every loop runs at each step.
        let step = Duration::from_millis(250);
        let mut left = d;
        while !left.is_zero() {
            let s = step.min(left);
            tokio::time::advance(s).await;
            tokio::task::yield_now().await;
            left -= s;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_leader_and_takeover_after_ttl_with_a_new_epoch() {
        let store = MemLease::default();
        let clock = TokioClock::starting_at(Utc::now());
        let a = start(&store, clock, "a");
        advance(Duration::from_millis(500)).await;
        let b = start(&store, clock, "b");
        advance(Duration::from_secs(5)).await;
        assert_eq!(leading(&a), Some(1));
        assert_eq!(leading(&b), None);

        // a dies without releasing: b leads within TTL + one tick, with epoch 2.
        a.task.abort();
        let died = tokio::time::Instant::now();
        while leading(&b).is_none() {
            advance(Duration::from_millis(250)).await;
            assert!(
                died.elapsed() <= Duration::from_secs(11),
                "no takeover within TTL + tick"
            );
        }
        assert!(
            died.elapsed() >= Duration::from_secs(8),
            "took over before the lease expired"
        );
        assert_eq!(leading(&b), Some(2));
        b.stop.send_replace(true);
        drop(b.rx);
        b.task.await.expect("elector");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_stops_firing_before_the_lease_expires() {
        let store = MemLease::default();
        let clock = TokioClock::starting_at(Utc::now());
        let a = start(&store, clock, "a");
        advance(Duration::from_secs(2)).await;
        assert_eq!(leading(&a), Some(1));
        let last_expiry = store.get().expect("lease").expires_at;

        store.hang.store(true, Ordering::SeqCst); // the database stops answering
        let cut = clock.now();
        let mut stopped_at = None;
        for _ in 0..60 {
            advance(Duration::from_millis(250)).await;
            if leading(&a).is_none() {
                stopped_at = Some(clock.now());
                break;
            }
        }
        let stopped_at = stopped_at.expect("leader kept firing with no renewals");
        assert!(
            stopped_at <= cut + TimeDelta::seconds(6),
            "fired past the renew deadline"
        );
        assert!(stopped_at < last_expiry, "fired until the lease expired");
        a.task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn release_on_shutdown_lets_a_follower_take_over_at_once() {
        let store = MemLease::default();
        let clock = TokioClock::starting_at(Utc::now());
        let a = start(&store, clock, "a");
        advance(Duration::from_secs(1)).await;
        let b = start(&store, clock, "b");
        advance(Duration::from_secs(2)).await;
        assert_eq!(leading(&a), Some(1));
        a.stop.send_replace(true);
        drop(a.rx);
        advance(Duration::from_millis(250)).await;
        a.task.await.expect("elector");
        advance(Duration::from_millis(1250)).await;
        assert_eq!(leading(&b), Some(2));
        b.task.abort();
    }

    #[test]
    fn timing_rules() {
        assert!(cfg("x").validate().is_ok());
        let mut c = cfg("x");
        c.renew_deadline = c.ttl;
        assert!(c.validate().is_err());
        let mut c = cfg("x");
        c.tick = c.renew_deadline;
        assert!(c.validate().is_err());
    }
}
