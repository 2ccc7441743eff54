//! The mergeable state of one flush interval: every series' aggregate as the receivers left
//! it, nothing resolved yet.
//!
//! [`IntervalState`] is what flushing's first step ([`crate::flush::merge()`]) produces from the
//! receivers' tables and what its second step ([`crate::flush::Finalizer`]) turns into a
//! [`crate::snapshot::Snapshot`]. Gauge deltas are still deltas (resolving them needs the
//! previous interval), no global tags are applied and no internal statistics are mixed in, so
//! two states of the same interval — two receivers, or two hosts — merge exactly
//! ([`IntervalState::merge`]). A sink that ships partial aggregates to be merged elsewhere is
//! handed this state ([`crate::sink::Sink::wants_interval_state`]).
//!
//! A leaf: it imports only the aggregate types, so every stage may import it.

use std::time::Duration;

use crate::aggregate::{Bounds, Table};

/// One interval's series with their mergeable aggregates.
#[derive(Debug, Clone)]
pub struct IntervalState {
    /// The interval's end (the flush boundary), in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The interval's length.
    pub interval: Duration,
    /// Every series and its aggregate.
    pub series: Table,
}

impl IntervalState {
    /// An empty state; merged series stay within `bounds`.
    pub fn new(timestamp_ms: u64, interval: Duration, bounds: Bounds) -> IntervalState {
        IntervalState {
            timestamp_ms,
            interval,
            series: Table::with_capacity(0, bounds),
        }
    }

    /// Folds `other`, a state of the same interval, into this one.
    pub fn merge(&mut self, other: IntervalState) {
        debug_assert_eq!(
            (self.timestamp_ms, self.interval),
            (other.timestamp_ms, other.interval)
        );
        self.series.merge(other.series);
    }
}
