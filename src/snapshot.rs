//! The immutable result of one flush, handed to every sink.
//!
//! A snapshot keeps *mergeable* values ([`Value`]): sorted raw samples for timers, members for
//! sets, resolved values for gauges. Sinks derive their output fields through
//! [`Snapshot::for_each_field`], so every output format names statistics the same way.

use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::Value;
use crate::aggregate::timer::{self, Percentile};
use crate::metric::{MetricType, SeriesKey};

/// One flush interval's aggregates.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Flush time: the interval boundary, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The configured flush interval (rates divide by this, as in Etsy).
    pub interval: Duration,
    /// Percentile thresholds for timer statistics.
    pub percentiles: Arc<[Percentile]>,
    /// Every series with its aggregate. `Value::Samples` values are sorted ascending and
    /// `Value::Gauge` values are absolute.
    pub series: Vec<(SeriesKey, Value)>,
}

impl Snapshot {
    /// Flush time in whole seconds since the Unix epoch.
    pub fn timestamp_secs(&self) -> u64 {
        self.timestamp_ms / 1000
    }

    /// Calls `emit(field, value)` for each output field of one series:
    ///
    /// | type | fields |
    /// |---|---|
    /// | counter | `count` (Σ value/rate), `rate` (count / interval seconds) |
    /// | trace | `count` |
    /// | gauge | `value` |
    /// | set | `count` (distinct members) |
    /// | timer, histogram, distribution | Etsy timer statistics ([`timer::for_each_stat`]) |
    pub fn for_each_field(
        &self,
        mtype: MetricType,
        value: &Value,
        mut emit: impl FnMut(&str, f64),
    ) {
        let secs = self.interval.as_secs_f64();
        match value {
            Value::Counter(sum) => {
                emit("count", *sum);
                if mtype == MetricType::Counter {
                    emit("rate", sum / secs);
                }
            }
            Value::Gauge(g) => emit("value", g.value),
            Value::Set(members) => emit("count", members.len() as f64),
            Value::Samples(s) => match &s.totals {
                None => timer::for_each_stat(&s.values, s.count, &self.percentiles, secs, emit),
                Some(totals) => timer::for_each_stat_sampled(
                    &s.values,
                    totals,
                    s.count,
                    &self.percentiles,
                    secs,
                    emit,
                ),
            },
        }
    }
}
