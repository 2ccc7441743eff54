//! The per-thread aggregation table.

use hashbrown::HashMap;

use crate::aggregate::Value;
use crate::metric::{Metric, SeriesKey};

/// Series → aggregate, written by exactly one receiver thread.
///
/// Lookups use the parser's borrowed [`crate::metric::SeriesRef`], so updating a series the
/// table already holds allocates nothing; only a series' first sample in an interval copies
/// its name and tags.
#[derive(Debug, Default)]
pub struct Table {
    series: HashMap<SeriesKey, Value>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// An empty table with room for `series` series without rehashing.
    pub fn with_capacity(series: usize) -> Table {
        Table {
            series: HashMap::with_capacity(series),
        }
    }

    /// Applies one metric. `stamp` orders absolute gauge sets across threads.
    #[inline]
    pub fn apply(&mut self, metric: &Metric<'_, '_>, stamp: u64) {
        if let Some(v) = self.series.get_mut(&metric.series) {
            v.update(&metric.sample, metric.sample_rate, stamp);
        } else {
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
    }

    /// Folds a value into the series `key` (merging when present).
    pub fn merge_value(&mut self, key: SeriesKey, value: Value) {
        match self.series.get_mut(&key) {
            Some(v) => v.merge(value),
            None => {
                self.series.insert(key, value);
            }
        }
    }

    /// Folds every series of `other` into `self`.
    pub fn merge(&mut self, other: Table) {
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

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
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
}
