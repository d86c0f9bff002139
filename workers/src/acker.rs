//! Acks and requeues on the wire, once per delivery, batched. What a delivery's fate is, is
//! decided by the pipeline and carried out by `settle`; this module only sends it.
//!
//! Lifecycle: one acker per consuming channel. Every delivery gets an `AckToken`; the token
//! is consumed by `ack()` or `requeue()` after the outcome is recorded, and a token
//! dropped unsettled (a task aborted at shutdown, a panic unwinding) requeues its message.
//!
//! Acks are batched: completed tags collect in a window, and one `basic.ack(multiple=true)`
//! covers the contiguous prefix. A slow task at a low tag would hold that prefix back and let
//! finished-but-unacked messages fill the prefetch window, so tags completed above a gap are
//! acked one by one at the next flush. A flush happens when `flush_every` acks are waiting,
//! `flush_interval` after the first one waits, and when the acker stops (the channel is only
//! closed after that final flush, so nothing finished is redelivered).

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::metrics::SettleCounters;

/// Longest an ack waits before it is sent, when fewer than `flush_every` are waiting.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Most settlements taken from the queue in one pass.
const SETTLE_BATCH_MAX: usize = 1024;

/// The frame a settled delivery needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Done (whatever the task's outcome): remove it from the queue.
    Ack,
    /// Not done: put it back on the queue for any worker.
    Requeue,
}

/// Settles one delivery exactly once.
#[derive(Debug)]
pub(crate) struct AckToken {
    tag: u64,
    tx: Option<mpsc::UnboundedSender<(u64, Frame)>>,
}

impl AckToken {
    pub(crate) fn ack(mut self) {
        self.send(Frame::Ack);
    }

    pub(crate) fn requeue(mut self) {
        self.send(Frame::Requeue);
    }

    fn send(&mut self, how: Frame) {
        if let Some(tx) = self.tx.take() {
            // The acker is gone only when the channel is: the broker requeues the message then.
            let _ = tx.send((self.tag, how));
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        self.send(Frame::Requeue);
    }
}

/// The handle a consumer holds to make tokens; dropping every handle and token stops the
/// acker after a final flush.
#[derive(Clone)]
pub(crate) struct AckerHandle {
    tx: mpsc::UnboundedSender<(u64, Frame)>,
}

impl AckerHandle {
    pub(crate) fn token(&self, delivery_tag: u64) -> AckToken {
        AckToken {
            tag: delivery_tag,
            tx: Some(self.tx.clone()),
        }
    }
}

/// Starts the acker for `channel`, counting settlements into `counters`; the join handle
/// completes after the final flush.
pub(crate) fn spawn(
    channel: Channel,
    flush_every: usize,
    counters: SettleCounters,
) -> (AckerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(channel, rx, flush_every.max(1), counters));
    (AckerHandle { tx }, task)
}

/// Which completed tags still need an ack on the wire.
///
/// RabbitMQ closes the channel ("unknown delivery tag") when a multiple-ack names a tag that
/// is no longer outstanding, so the multiple-ack names the highest tag of the settled prefix
/// that no single ack, nack or reject has already resolved.
#[derive(Debug, Default)]
struct Window {
    /// Every tag up to here is settled.
    contiguous_upto: u64,
    /// Highest tag of the settled prefix still outstanding at the broker (0: none).
    candidate: u64,
    /// Highest tag a multiple-ack was sent for.
    acked_upto: u64,
    /// Settled tags above `contiguous_upto`, and whether the broker already knows (a single
    /// ack, nack or reject was sent for it).
    above: BTreeMap<u64, bool>,
    /// Acks waiting to be sent.
    waiting: usize,
}

/// What a flush sends: one multiple-ack and single acks for tags above a gap.
#[derive(Debug, Default, PartialEq)]
struct Flush {
    multiple_upto: Option<u64>,
    singles: Vec<u64>,
}

impl Window {
    /// Records a settled tag; `on_wire` when a single frame for it was already sent.
    fn settle(&mut self, tag: u64, on_wire: bool) {
        if tag <= self.contiguous_upto || self.above.contains_key(&tag) {
            return;
        }
        self.above.insert(tag, on_wire);
        if !on_wire {
            self.waiting += 1;
        }
        while let Some(entry) = self.above.first_entry() {
            if *entry.key() != self.contiguous_upto + 1 {
                break;
            }
            self.contiguous_upto = *entry.key();
            if !entry.remove() {
                self.candidate = self.contiguous_upto;
            }
        }
    }

    fn flush(&mut self) -> Flush {
        let mut out = Flush::default();
        if self.candidate > self.acked_upto {
            out.multiple_upto = Some(self.candidate);
            self.acked_upto = self.candidate;
        }
        for (tag, on_wire) in self.above.iter_mut() {
            if !*on_wire {
                out.singles.push(*tag);
                *on_wire = true;
            }
        }
        self.waiting = 0;
        out
    }
}

async fn run(
    channel: Channel,
    mut rx: mpsc::UnboundedReceiver<(u64, Frame)>,
    flush_every: usize,
    counters: SettleCounters,
) {
    let mut window = Window::default();
    let mut batch = Vec::with_capacity(SETTLE_BATCH_MAX);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let received = match deadline {
            Some(at) => tokio::select! {
                n = rx.recv_many(&mut batch, SETTLE_BATCH_MAX) => Some(n),
                _ = tokio::time::sleep_until(at) => None,
            },
            None => Some(rx.recv_many(&mut batch, SETTLE_BATCH_MAX).await),
        };
        match received {
            Some(0) => break,
            Some(_) => {
                let mut requeued = 0u64;
                let received = batch.len() as u64;
                for (tag, how) in batch.drain(..) {
                    let on_wire = match how {
                        Frame::Ack => false,
                        Frame::Requeue => {
                            requeue(&channel, tag).await;
                            requeued += 1;
                            true
                        }
                    };
                    window.settle(tag, on_wire);
                }
                counters.acks.inc_by(received - requeued);
                counters.requeues.inc_by(requeued);
                if window.waiting >= flush_every {
                    send(&channel, window.flush()).await;
                    deadline = None;
                } else if window.waiting > 0 && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + FLUSH_INTERVAL);
                }
            }
            None => {
                send(&channel, window.flush()).await;
                deadline = None;
            }
        }
    }
    send(&channel, window.flush()).await;
    debug!(event = "acker_stopped", acked_upto = window.acked_upto);
}

async fn send(channel: &Channel, flush: Flush) {
    if let Some(upto) = flush.multiple_upto
        && let Err(e) = channel
            .basic_ack(upto, BasicAckOptions { multiple: true })
            .await
    {
        warn!(event = "ack_failed", delivery_tag = upto, error = %e, "ack not sent; the broker will redeliver");
    }
    for tag in flush.singles {
        if let Err(e) = channel
            .basic_ack(tag, BasicAckOptions { multiple: false })
            .await
        {
            warn!(event = "ack_failed", delivery_tag = tag, error = %e, "ack not sent; the broker will redeliver");
        }
    }
}

async fn requeue(channel: &Channel, tag: u64) {
    if let Err(e) = channel
        .basic_nack(
            tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
    {
        warn!(event = "requeue_failed", delivery_tag = tag, error = %e, "the broker will redeliver");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_acks_become_one_multiple_ack() {
        let mut w = Window::default();
        for tag in [2, 1, 3] {
            w.settle(tag, false);
        }
        assert_eq!(w.waiting, 3);
        assert_eq!(
            w.flush(),
            Flush {
                multiple_upto: Some(3),
                singles: vec![]
            }
        );
        assert_eq!(w.flush(), Flush::default());
    }

    #[test]
    fn tags_above_a_gap_are_acked_singly_and_never_twice() {
        let mut w = Window::default();
        w.settle(1, false);
        w.settle(3, false);
        w.settle(4, false);
        assert_eq!(
            w.flush(),
            Flush {
                multiple_upto: Some(1),
                singles: vec![3, 4]
            }
        );
        w.settle(5, false);
        assert_eq!(
            w.flush(),
            Flush {
                multiple_upto: None,
                singles: vec![5]
            }
        );
        // The slow task at tag 2 finishes: 3..=5 were acked singly, so the multiple-ack must
        // name 2, the highest tag still outstanding (naming 5 would close the channel).
        w.settle(2, false);
        assert_eq!(
            w.flush(),
            Flush {
                multiple_upto: Some(2),
                singles: vec![]
            }
        );
        assert!(w.above.is_empty());
    }

    #[test]
    fn requeued_tags_close_gaps_without_an_ack() {
        let mut w = Window::default();
        w.settle(2, false);
        w.settle(1, true);
        assert_eq!(
            w.flush(),
            Flush {
                multiple_upto: Some(2),
                singles: vec![]
            }
        );
        w.settle(3, true);
        assert_eq!(w.waiting, 0);
        assert_eq!(w.flush(), Flush::default());
        // A requeued tag at the top of the prefix is never named by a multiple-ack.
        w.settle(5, false);
        w.settle(4, true);
        assert_eq!(
            w.flush(),
            Flush {
                multiple_upto: Some(5),
                singles: vec![]
            }
        );
        w.settle(6, true);
        assert_eq!(w.flush(), Flush::default());
    }

    #[test]
    fn a_dropped_token_requeues() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handle = AckerHandle { tx };
        drop(handle.token(7));
        handle.token(8).ack();
        assert_eq!(rx.try_recv().ok(), Some((7, Frame::Requeue)));
        assert_eq!(rx.try_recv().ok(), Some((8, Frame::Ack)));
    }
}
