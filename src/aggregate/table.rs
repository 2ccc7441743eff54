//! The per-thread aggregation table.

use std::convert::Infallible;

use hashbrown::HashMap;

use crate::aggregate::{Bounds, Refusal, SeriesGuard, Value};
use crate::metric::{Metric, SeriesKey, SeriesRef};

/// Series → aggregate, written by exactly one receiver thread.
///
/// Lookups use the parser's borrowed [`crate::metric::SeriesRef`], so updating a series the
/// table already holds allocates nothing; only a series' first sample in an interval copies
/// its name and tags.
#[derive(Debug, Clone)]
pub struct Table {
    series: HashMap<SeriesKey, Value>,
    /// When timers and sets switch to their sketches.
    bounds: Bounds,
    /// Samples and members that went into a sketch (a timer's DDSketch, a set's
    /// HyperLogLog) instead of being kept exactly.
    sketched: u64,
}

impl Default for Table {
    fn default() -> Self {
        Table::with_capacity(0, Bounds::EXACT)
    }
}

impl Table {
    /// An empty table that keeps every timer sample and set member exactly.
    pub fn new() -> Table {
        Table::default()
    }

    /// An empty table with room for `series` series without rehashing, within `bounds`.
    pub fn with_capacity(series: usize, bounds: Bounds) -> Table {
        Table {
            series: HashMap::with_capacity(series),
            bounds,
            sketched: 0,
        }
    }

    /// Applies one metric. `stamp` orders absolute gauge sets across threads.
    #[inline]
    pub fn apply(&mut self, metric: &Metric<'_, '_>, stamp: u64) {
        let Ok(()) = self.apply_admitted(metric, stamp, |_| Ok::<(), Infallible>(()));
    }

    /// Applies one metric; a series new to this table is inserted only if the cardinality
    /// guard admits it in the receiver's interval `generation`.
    #[inline]
    pub fn apply_guarded(
        &mut self,
        metric: &Metric<'_, '_>,
        stamp: u64,
        guard: &SeriesGuard,
        generation: u32,
    ) -> Result<(), Refusal> {
        self.apply_admitted(metric, stamp, |series| {
            guard.admit(series.name, !series.tags.is_empty(), generation)
        })
    }

    /// Applies one metric; a series new to this table is inserted only if `admit` allows it
    /// (the cardinality guard), else `admit`'s error is returned and nothing changes.
    #[inline]
    pub fn apply_admitted<E>(
        &mut self,
        metric: &Metric<'_, '_>,
        stamp: u64,
        admit: impl FnOnce(&SeriesRef<'_, '_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(v) = self.series.get_mut(&metric.series) {
            if !v.update(&metric.sample, metric.sample_rate, stamp, &self.bounds) {
                self.sketched += 1;
            }
        } else {
            admit(&metric.series)?;
            self.series.insert(
                metric.series.to_key(),
                Value::new(
                    metric.series.mtype,
                    &metric.sample,
                    metric.sample_rate,
                    stamp,
                ),
            );
        }
        Ok(())
    }

    /// Folds a value into the series `key` (merging when present).
    pub fn merge_value(&mut self, key: SeriesKey, value: Value) {
        match self.series.get_mut(&key) {
            Some(v) => v.merge(value, &self.bounds),
            None => {
                self.series.insert(key, value);
            }
        }
    }

    /// Folds every series of `other` into `self`.
    pub fn merge(&mut self, other: Table) {
        self.sketched += other.sketched;
        if self.series.is_empty() {
            // Cheapest case (one receiver, or the first table): adopt the map.
            let _ = std::mem::replace(&mut self.series, other.series);
            return;
        }
        self.series.reserve(other.series.len());
        for (key, value) in other.series {
            self.merge_value(key, value);
        }
    }

    /// When timers and sets switch to their sketches.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Samples and members this table (and the tables merged into it) sent into a sketch.
    pub fn sketched(&self) -> u64 {
        self.sketched
    }

    pub fn get(&self, key: &SeriesKey) -> Option<&Value> {
        self.series.get(key)
    }

    /// Moves every series out, leaving the table empty with its capacity kept.
    pub fn drain(&mut self) -> impl Iterator<Item = (SeriesKey, Value)> + '_ {
        self.series.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{MetricType, Sample, SeriesRef, TagRef};

    fn metric<'r>(name: &'r str, tags: &'r [TagRef<'r>], v: f64) -> Metric<'r, 'r> {
        Metric {
            series: SeriesRef {
                name,
                mtype: MetricType::Counter,
                tags,
            },
            sample: Sample::Value(v),
            sample_rate: 1.0,
        }
    }

    #[test]
    fn apply_and_merge() {
        let tags: Vec<TagRef> = vec![("env", "x".into())];
        let mut a = Table::new();
        a.apply(&metric("c", &tags, 1.0), 0);
        a.apply(&metric("c", &tags, 2.0), 0);
        a.apply(&metric("c", &[], 5.0), 0);
        assert_eq!(a.len(), 2);
        let mut b = Table::new();
        b.apply(&metric("c", &tags, 10.0), 0);
        b.merge(a);
        let key = SeriesKey::new("c", MetricType::Counter, [("env", "x")]);
        assert_eq!(b.get(&key), Some(&Value::Counter(13.0)));
        let plain = SeriesKey::new("c", MetricType::Counter, Vec::<(&str, &str)>::new());
        assert_eq!(b.get(&plain), Some(&Value::Counter(5.0)));
    }

    #[test]
    fn refused_series_are_not_inserted_but_known_ones_update() {
        let mut t = Table::new();
        t.apply(&metric("known", &[], 1.0), 0);
        let refuse = |_: &SeriesRef<'_, '_>| Err("full");
        assert_eq!(
            t.apply_admitted(&metric("new", &[], 1.0), 0, refuse),
            Err("full")
        );
        assert_eq!(
            t.apply_admitted(&metric("known", &[], 2.0), 0, refuse),
            Ok(())
        );
        assert_eq!(t.len(), 1);
        let key = SeriesKey::new("known", MetricType::Counter, Vec::<(&str, &str)>::new());
        assert_eq!(t.get(&key), Some(&Value::Counter(3.0)));
    }
}
