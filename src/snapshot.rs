//! The immutable result of one flush, handed to every sink, and the one typed view of it that
//! every output reads.
//!
//! A snapshot keeps the finalized aggregates ([`Value`]): sorted raw samples for timers,
//! members for sets, resolved values for gauges. Sinks and the admin plane read what a series
//! reports only through [`Snapshot::fields`], so every output names and computes statistics
//! the same way:
//!
//! | type | [`Fields`] | output fields |
//! |---|---|---|
//! | counter | `Counter` | `count` (Σ value/rate), `rate` (count / interval seconds) |
//! | trace | `Trace` | `count` (events seen: a trace has no rate) |
//! | gauge | `Gauge` | `value` |
//! | set | `Set` | `count` (distinct members: exact, or the HyperLogLog estimate) |
//! | timer, histogram, distribution | `Timer` | Etsy timer statistics ([`timer::for_each_stat`], or [`timer::for_each_stat_sketched`] past the sample cap) |

use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::timer::{self, Percentile};
use crate::aggregate::{Samples, SetValue, Value};
use crate::metric::SeriesKey;

/// One flush interval's aggregates.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Flush time: the interval boundary, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The configured flush interval (rates divide by this, as in Etsy).
    pub interval: Duration,
    /// Percentile thresholds for timer statistics.
    pub percentiles: Arc<[Percentile]>,
    /// Every series with its aggregate. Timer samples are sorted ascending and gauge values
    /// are absolute.
    pub series: Vec<(SeriesKey, Value)>,
}

/// What one series reports (see the module docs).
#[derive(Debug, Clone, Copy)]
pub enum Fields<'a> {
    Counter { count: f64, rate: f64 },
    Trace { count: f64 },
    Gauge { value: f64 },
    Set { set: &'a SetValue },
    Timer(TimerFields<'a>),
}

/// A timer-like series with what its statistics need.
#[derive(Debug, Clone, Copy)]
pub struct TimerFields<'a> {
    pub samples: &'a Samples,
    percentiles: &'a [Percentile],
    interval_secs: f64,
}

impl TimerFields<'_> {
    /// Calls `emit(name, value)` for every Etsy timer statistic, in Etsy's order.
    pub fn for_each_stat(&self, emit: impl FnMut(&str, f64)) {
        let s = self.samples;
        match &s.sketched {
            None => timer::for_each_stat(
                &s.values,
                s.count,
                self.percentiles,
                self.interval_secs,
                emit,
            ),
            Some(sketched) => timer::for_each_stat_sketched(
                sketched,
                s.count,
                self.percentiles,
                self.interval_secs,
                emit,
            ),
        }
    }
}

impl Fields<'_> {
    /// Calls `emit(field, value)` for each output field (see the module docs).
    pub fn for_each(&self, mut emit: impl FnMut(&str, f64)) {
        match self {
            Fields::Counter { count, rate } => {
                emit("count", *count);
                emit("rate", *rate);
            }
            Fields::Trace { count } => emit("count", *count),
            Fields::Gauge { value } => emit("value", *value),
            Fields::Set { set } => emit("count", set.cardinality()),
            Fields::Timer(t) => t.for_each_stat(emit),
        }
    }

    /// The one number that stands for the series (pystatsd's `value`): the count of a
    /// counter or trace, a gauge's value, a set's cardinality, a timer's mean (0 when idle).
    pub fn primary(&self) -> f64 {
        match self {
            Fields::Counter { count, .. } | Fields::Trace { count } => *count,
            Fields::Gauge { value } => *value,
            Fields::Set { set } => set.cardinality(),
            Fields::Timer(t) => t.samples.mean(),
        }
    }
}

impl Snapshot {
    /// Flush time in whole seconds since the Unix epoch.
    pub fn timestamp_secs(&self) -> u64 {
        self.timestamp_ms / 1000
    }

    /// What `value` reports in this snapshot.
    pub fn fields<'a>(&'a self, value: &'a Value) -> Fields<'a> {
        match value {
            Value::Counter(count) => Fields::Counter {
                count: *count,
                rate: count / self.interval.as_secs_f64(),
            },
            Value::Trace(count) => Fields::Trace { count: *count },
            Value::Gauge(g) => Fields::Gauge { value: g.value },
            Value::Set(set) => Fields::Set { set },
            Value::Timer(samples) | Value::Histogram(samples) | Value::Distribution(samples) => {
                Fields::Timer(TimerFields {
                    samples,
                    percentiles: &self.percentiles,
                    interval_secs: self.interval.as_secs_f64(),
                })
            }
        }
    }
}
