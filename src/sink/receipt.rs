//! [`Receipt`]: when every sink is done with a flush, and whether each took it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;

/// Reports when every sink is done with a flush, and whether each *took* it: delivered it,
/// or wrote it to its spool. The aggregator commits its Kafka offsets on it
/// ([`crate::receive::kafka`]): a crash before that point replays the interval instead of
/// losing it, and an interval a sink dropped (a full buffer without a spool, a full queue) is
/// never committed.
///
/// The flush carries the receipt; each sink that queues the flush for later delivery takes a
/// [`Receipt::hold`] and [`Receipt::settle`]s it once delivered or on disk. A hold dropped
/// unsettled marks the flush as not taken. When the last one is gone, `(id, taken)` is sent to
/// the channel given at creation. Being a drop guard, it cannot be forgotten on any path.
#[derive(Debug)]
pub struct Receipt {
    guard: Arc<ReceiptGuard>,
    /// A sink's hold: dropping it unsettled means the sink did not take the flush.
    holder: bool,
}

#[derive(Debug)]
struct ReceiptGuard {
    id: u64,
    done: Sender<(u64, bool)>,
    abandoned: AtomicBool,
}

impl Receipt {
    /// The receipt a flush carries.
    pub fn new(id: u64, done: Sender<(u64, bool)>) -> Receipt {
        Receipt {
            guard: Arc::new(ReceiptGuard {
                id,
                done,
                abandoned: AtomicBool::new(false),
            }),
            holder: false,
        }
    }

    /// A sink's hold on the flush, to settle once it has taken it.
    pub fn hold(&self) -> Receipt {
        Receipt {
            guard: Arc::clone(&self.guard),
            holder: true,
        }
    }

    /// The sink has delivered the flush, or has it on disk.
    pub fn settle(mut self) {
        self.holder = false;
    }

    /// A sink never got the flush (its queue dropped it).
    pub fn abandon(&self) {
        self.guard.abandoned.store(true, Ordering::Relaxed);
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if self.holder {
            self.abandon();
        }
    }
}

impl Drop for ReceiptGuard {
    fn drop(&mut self) {
        let taken = !self.abandoned.load(Ordering::Relaxed);
        let _ = self.done.send((self.id, taken));
    }
}
