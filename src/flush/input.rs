//! What the flusher takes besides its receivers' tables: intervals another stage has
//! already merged and closed (the fleet stage, `src/fleet/`), and the input that produces
//! them ([`IntervalInput`]).

use crossbeam_channel::Sender;

use crate::interval::IntervalState;
use crate::sink::Receipt;

/// An input that closes intervals for the flusher: the aggregator's Kafka consumer.
pub trait IntervalInput: Send {
    /// Stop reading and closing: what it has closed so far is all the final flush gets.
    fn quiesce(&mut self);
    /// The sinks are done: commit what they took, and leave.
    fn finish(self: Box<Self>);
}

/// An interval an aggregator of the fleet stage has closed: merged over every source,
/// ready to finalize. The flusher finalizes and offers it like a local flush, with the
/// receipt that tells the aggregator when its offsets may be committed. Dropped before the
/// flusher took it, it counts as not taken.
#[derive(Debug)]
pub struct ClosedInterval {
    pub state: IntervalState,
    receipt: Receipt,
    handed: Receipt,
}

impl ClosedInterval {
    /// `state`, whose flush reports `(id, taken)` to `done` once every sink is done with it.
    pub fn new(state: IntervalState, id: u64, done: Sender<(u64, bool)>) -> ClosedInterval {
        let receipt = Receipt::new(id, done);
        let handed = receipt.hold();
        ClosedInterval {
            state,
            receipt,
            handed,
        }
    }

    /// Hands it over: the state, and the receipt its flush carries.
    pub fn into_parts(self) -> (IntervalState, Receipt) {
        self.handed.settle();
        (self.state, self.receipt)
    }
}
