//! Prometheus metrics of one beat, served on `--metrics-addr` at `/metrics` with `/healthz`
//! and `/readyz` (`maestro_telemetry::serve`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The beat's metrics.
pub struct Metrics {
    registry: Registry,
    /// 1 while this beat leads and may fire.
    pub is_leader: Gauge,
    /// The epoch of this beat's current leadership (0 when following).
    pub epoch: Gauge,
    /// Leaderships taken.
    pub takeovers: Counter,
    /// Fires published (confirmed by the broker).
    pub fires: Counter,
    /// Fires not made because the compare-and-set on the schedule lost (another beat fired
    /// the slot, or a newer epoch wrote the schedule).
    pub cas_skipped: Counter,
    /// Due slots folded into one run by the catch-up policy.
    pub missed_slots: Counter,
    /// Fires written but left unpublished by a previous attempt, published again.
    pub pending_republished: Counter,
    /// Publishes that failed (the fire stays pending and is retried).
    pub publish_errors: Counter,
    /// Schedules that cannot be used (bad document), at the last pass.
    pub invalid_schedules: Gauge,
    /// Seconds between a slot's due time and its confirmed publish.
    pub fire_lag_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("maestro_beat");
        let m = Self {
            is_leader: Gauge::default(),
            epoch: Gauge::default(),
            takeovers: Counter::default(),
            fires: Counter::default(),
            cas_skipped: Counter::default(),
            missed_slots: Counter::default(),
            pending_republished: Counter::default(),
            publish_errors: Counter::default(),
            invalid_schedules: Gauge::default(),
            fire_lag_seconds: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
            ]),
            registry: Registry::default(),
        };
        registry.register("is_leader", "1 while this beat leads", m.is_leader.clone());
        registry.register("epoch", "Epoch of the current leadership", m.epoch.clone());
        registry.register("takeovers", "Leaderships taken", m.takeovers.clone());
        registry.register("fires", "Fires published", m.fires.clone());
        registry.register(
            "cas_skipped",
            "Fires skipped because the compare-and-set lost",
            m.cas_skipped.clone(),
        );
        registry.register(
            "missed_slots",
            "Due slots folded into one run by catch-up",
            m.missed_slots.clone(),
        );
        registry.register(
            "pending_republished",
            "Written fires published again after an unconfirmed attempt",
            m.pending_republished.clone(),
        );
        registry.register(
            "publish_errors",
            "Failed publishes",
            m.publish_errors.clone(),
        );
        registry.register(
            "invalid_schedules",
            "Schedules that cannot be used",
            m.invalid_schedules.clone(),
        );
        registry.register(
            "fire_lag_seconds",
            "Due time to confirmed publish",
            m.fire_lag_seconds.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Records leadership (`None` when following).
    pub fn set_leadership(&self, epoch: Option<i64>) {
        self.is_leader.set(i64::from(epoch.is_some()));
        self.epoch.set(epoch.unwrap_or(0));
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl maestro_telemetry::Health for Metrics {
    fn render_metrics(&self) -> String {
        self.render()
    }
}
