//! Lookups in rounds: a receiver's untagged metrics applied to its [`Table`] a round at a
//! time, so that their cache misses overlap.
//!
//! Looking a series up is a chain of dependent loads (the index slot, the entry, a timer's
//! samples), and in a receiver most of them miss the cache: on this project's 2-vCPU VM,
//! with the senders on the same cores, they were half of a receiver's time at 200,000
//! metrics/s. One miss cost ~180 ns there, eight independent ones ~25 ns each. So a
//! [`Round`] keeps up to [`ROUND`] untagged metrics (their names copied aside, their hashes
//! computed once); [`Round::apply`] then locates every one's index slot, reads every entry
//! ([`Table::touch`]), and only then applies them in order.
//!
//! The caller applies the round before any metric it does not defer (tagged ones, set
//! members), so the table sees every metric in arrival order, exactly as one by one.

use super::Table;
use crate::metric::{Metric, MetricType, Sample, SeriesRef};

/// Untagged metrics looked up together: enough for their misses to overlap, few enough
/// that what a round loads (one to four cache lines each) stays in the L1 cache until it
/// is applied.
pub const ROUND: usize = 128;

/// Metrics waiting to be applied (see the module docs).
#[derive(Debug, Default)]
pub struct Round {
    metrics: Vec<Deferred>,
    /// Their names, back to back.
    names: String,
}

#[derive(Debug)]
struct Deferred {
    hash: u32,
    /// Where the index files `hash` (`Table::locate`), once the round is located.
    located: Option<u32>,
    /// Where its name ends in `Round::names` (it starts where the previous one ends).
    name_end: usize,
    mtype: MetricType,
    /// The value, and whether it is a gauge delta.
    value: f64,
    delta: bool,
    sample_rate: f64,
}

impl Round {
    pub fn new() -> Round {
        Round {
            metrics: Vec::with_capacity(ROUND),
            names: String::with_capacity(ROUND * 32),
        }
    }

    /// Keeps `metric` for the round if it is untagged and numeric, and says whether it did;
    /// anything else the caller applies itself, after [`Round::apply`].
    #[inline]
    pub fn defer(&mut self, metric: &Metric<'_, '_>) -> bool {
        let (value, delta) = match metric.sample {
            Sample::Value(v) => (v, false),
            Sample::Delta(v) => (v, true),
            Sample::Member(_) => return false,
        };
        if !metric.series.tags.is_empty() {
            return false;
        }
        let name = metric.series.name;
        self.names.push_str(name);
        self.metrics.push(Deferred {
            hash: Table::plain_hash(name, metric.series.mtype),
            located: None,
            name_end: self.names.len(),
            mtype: metric.series.mtype,
            value,
            delta,
            sample_rate: metric.sample_rate,
        });
        true
    }

    /// True when the round should be applied before another metric is deferred.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.metrics.len() >= ROUND
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Applies the round to `table`, in the order the metrics were deferred, and empties
    /// it. A series new to the table is inserted only if `admit` allows it; `applied` hears
    /// of every metric and its outcome, as from [`Table::apply_admitted`].
    pub fn apply<E>(
        &mut self,
        table: &mut Table,
        stamp: u64,
        mut admit: impl FnMut(&SeriesRef<'_, '_>) -> Result<(), E>,
        mut applied: impl FnMut(&Metric<'_, '_>, Result<(), E>),
    ) {
        if self.metrics.is_empty() {
            return;
        }
        for m in &mut self.metrics {
            m.located = table.locate(m.hash);
        }
        let located = self
            .metrics
            .iter()
            .filter_map(|m| m.located.map(|entry| (entry, m.mtype)));
        std::hint::black_box(table.touch(located));
        let mut start = 0;
        for m in &self.metrics {
            let metric = Metric {
                series: SeriesRef {
                    name: &self.names[start..m.name_end],
                    mtype: m.mtype,
                    tags: &[],
                },
                sample: if m.delta {
                    Sample::Delta(m.value)
                } else {
                    Sample::Value(m.value)
                },
                sample_rate: m.sample_rate,
            };
            start = m.name_end;
            let outcome = table.apply_located(m.located, m.hash, &metric, stamp, &mut admit);
            applied(&metric, outcome);
        }
        self.metrics.clear();
        self.names.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Bounds;
    use crate::metric::{SeriesKey, TagRef};
    use std::borrow::Cow;
    use std::convert::Infallible;

    fn metric<'a>(
        name: &'a str,
        mtype: MetricType,
        sample: Sample<'a>,
        tags: &'a [TagRef<'a>],
    ) -> Metric<'a, 'a> {
        Metric {
            series: SeriesRef { name, mtype, tags },
            sample,
            sample_rate: 1.0,
        }
    }

    #[test]
    fn rounds_leave_the_table_one_by_one_application_leaves() {
        let tags: [TagRef<'_>; 1] = [("env", Cow::Borrowed("prod"))];
        let names: Vec<String> = (0..300).map(|i| format!("k{}", i % 37)).collect();
        let mut metrics = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let sample = |v: f64| {
                if i % 7 == 3 {
                    Sample::Delta(v)
                } else {
                    Sample::Value(v)
                }
            };
            metrics.push(match i % 5 {
                0 => metric(name, MetricType::Gauge, sample(i as f64), &[]),
                1 => metric(name, MetricType::Timer, Sample::Value(i as f64), &[]),
                2 => metric(name, MetricType::Counter, Sample::Value(1.0), &tags),
                3 => metric(
                    name,
                    MetricType::Set,
                    Sample::Member(Cow::Borrowed(name)),
                    &[],
                ),
                _ => Metric {
                    sample_rate: 0.5,
                    ..metric(name, MetricType::Counter, Sample::Value(2.0), &[])
                },
            });
        }
        let mut direct = Table::with_capacity(0, Bounds::default());
        for m in &metrics {
            direct.apply(m, 0);
        }
        let mut rounds = Table::with_capacity(0, Bounds::default());
        let mut round = Round::new();
        let (mut deferred, mut applied) = (0, 0);
        let admit = |_: &SeriesRef<'_, '_>| Ok::<(), Infallible>(());
        for m in &metrics {
            if round.defer(m) {
                deferred += 1;
                if round.is_full() {
                    round.apply(&mut rounds, 0, admit, |_, r| {
                        assert!(r.is_ok());
                        applied += 1;
                    });
                }
                continue;
            }
            round.apply(&mut rounds, 0, admit, |_, _| applied += 1);
            rounds.apply(m, 0);
        }
        round.apply(&mut rounds, 0, admit, |_, _| applied += 1);
        assert!(round.is_empty());
        // 3 of the 5 kinds are deferred: not the tagged counters nor the set members.
        assert_eq!((deferred, applied), (180, 180));
        assert_eq!(rounds.len(), direct.len());
        for m in &metrics {
            let key = SeriesKey::new(
                m.series.name,
                m.series.mtype,
                m.series.tags.iter().map(|(k, v)| (*k, &**v)),
            );
            assert!(rounds.get(&key).is_some(), "{key:?}");
            assert_eq!(rounds.get(&key), direct.get(&key), "{key:?}");
        }
    }
}
