//! Flush step one: the receivers' harvests → one [`IntervalState`] and the receivers' counters
//! per listener. Nothing is resolved here (see [`crate::interval`]).

use std::time::Duration;

use crate::aggregate::Bounds;
use crate::interval::IntervalState;
use crate::parse::Protocol;
use crate::receive::Harvest;
use crate::stats::ReceiverStats;

/// The receivers' share of one interval.
#[derive(Debug)]
pub struct Merged {
    pub state: IntervalState,
    /// Receiver counters summed per listener, in the order listeners first appear.
    pub receivers: Vec<(Protocol, ReceiverStats)>,
}

/// Merges every harvest of the interval ending at `timestamp_ms`.
pub fn merge(
    harvests: Vec<Harvest>,
    timestamp_ms: u64,
    interval: Duration,
    bounds: Bounds,
) -> Merged {
    let mut state = IntervalState::new(timestamp_ms, interval, bounds);
    let mut receivers: Vec<(Protocol, ReceiverStats)> = Vec::new();
    for harvest in harvests {
        match receivers.iter_mut().find(|(p, _)| *p == harvest.protocol) {
            Some((_, s)) => s.add(&harvest.stats),
            None => receivers.push((harvest.protocol, harvest.stats)),
        }
        state.series.merge(harvest.table);
    }
    Merged { state, receivers }
}
