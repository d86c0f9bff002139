//! Cancellation, owned in one place.
//!
//! Phase 1 (SIGTERM or SIGINT): `stop` is cancelled, consumers stop taking messages, running
//! tasks go on. Phase 2: the drain deadline (computed once, `grace` after the signal) passes,
//! or a second signal arrives: `abort` is cancelled, tasks still running are dropped and their
//! messages requeued. The process then flushes acks, closes the channel (the broker requeues
//! whatever was prefetched and never started) and exits 0.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The worker's shutdown state.
#[derive(Clone)]
pub struct Shutdown {
    /// Cancelled when the worker must stop taking messages.
    pub stop: CancellationToken,
    /// Cancelled when running tasks must be abandoned (their messages requeued).
    pub abort: CancellationToken,
    /// Every task run, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT: the first stops consuming, the second aborts.
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        let mut signals = maestro_telemetry::Signals::new()?;
        let me = self.clone();
        tokio::spawn(async move {
            let mut seen = 0u32;
            loop {
                let name = signals.recv().await;
                seen += 1;
                if seen == 1 {
                    info!(
                        event = "shutdown_requested",
                        signal = name,
                        "stopping: no new tasks, running ones may finish"
                    );
                    me.stop.cancel();
                } else {
                    warn!(
                        event = "shutdown_forced",
                        signal = name,
                        "second signal: requeueing running tasks now"
                    );
                    me.abort.cancel();
                }
            }
        });
        Ok(())
    }

    /// Waits for running tasks until `grace` has passed (one deadline, from now), then aborts
    /// the rest. Returns how many were still running at the deadline.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.tasks.close();
        let deadline = Instant::now() + grace;
        tokio::select! {
            _ = self.tasks.wait() => return 0,
            _ = tokio::time::sleep_until(deadline) => {},
            _ = self.abort.cancelled() => {},
        }
        let left = self.tasks.len();
        if left > 0 {
            warn!(
                event = "shutdown_deadline",
                tasks_left = left,
                "grace period over: requeueing tasks still running"
            );
        }
        self.abort.cancel();
        // Aborted runs drop their futures and tokens promptly; wait for that bookkeeping.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
        left
    }
}
