//! Lookups in rounds: a receiver's untagged metrics applied to its [`Table`] a round at a
//! time, so that their cache misses overlap.
//!
//! Looking a series up is a chain of dependent loads (the index slot, then the entry; a
//! timer's sample goes to the table's log, see [`Table::settle`]), and in a receiver most
//! of them miss the cache: on this project's 2-vCPU VM, with the senders on the same cores,
//! they were half of a receiver's time at 200,000 metrics/s. One miss cost ~180 ns there, eight independent ones ~25 ns each. So a
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
        std::hint::black_box(table.touch(self.metrics.iter().filter_map(|m| m.located)));
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
        // 1,000 metrics over 60 names (one longer than a name kept inline), mostly
        // untagged numbers, so rounds fill up with repeated series and series new to the
        // table; a set member or a tagged counter every 150 applies a round early. The
        // cardinality guard admits only the first 45 series: which ones depends on order.
        let tags: [TagRef<'_>; 1] = [("env", Cow::Borrowed("prod"))];
        let names: Vec<String> = (0..60)
            .map(|i| match i {
                7 => "a.name.longer.than.twenty.three.bytes".to_string(),
                _ => format!("k{i}"),
            })
            .collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut metrics = Vec::new();
        for i in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let name = &names[(x % 60) as usize];
            let v = (x >> 40) as f64;
            metrics.push(match (i % 300, x % 6) {
                (299, _) => metric(name, MetricType::Counter, Sample::Value(1.0), &tags),
                (149, _) => metric(
                    name,
                    MetricType::Set,
                    Sample::Member(Cow::Borrowed(name)),
                    &[],
                ),
                (_, 0) => metric(name, MetricType::Gauge, Sample::Value(v), &[]),
                (_, 1) => metric(name, MetricType::Gauge, Sample::Delta(v), &[]),
                (_, 2) => metric(name, MetricType::Timer, Sample::Value(v), &[]),
                (_, 3) => Metric {
                    sample_rate: 0.5,
                    ..metric(name, MetricType::Counter, Sample::Value(2.0), &[])
                },
                _ => metric(name, MetricType::Counter, Sample::Value(1.0), &[]),
            });
        }
        let limit = |admitted: &std::cell::Cell<usize>| {
            let n = admitted.get();
            admitted.set(n + 1);
            if n < 45 { Ok(()) } else { Err("full") }
        };

        let (mut direct, admitted) = (
            Table::with_capacity(0, Bounds::default()),
            Default::default(),
        );
        let (mut direct_ok, mut direct_refused) = (0, 0);
        for m in &metrics {
            match direct.apply_admitted(m, 0, |_| limit(&admitted)) {
                Ok(()) => direct_ok += 1,
                Err(_) => direct_refused += 1,
            }
        }

        let (mut rounds, admitted) = (
            Table::with_capacity(0, Bounds::default()),
            Default::default(),
        );
        let mut round = Round::new();
        let (mut ok, mut refused, mut deferred, mut full) = (0, 0, 0, 0);
        let mut outcome = |r: Result<(), &str>| match r {
            Ok(()) => ok += 1,
            Err(_) => refused += 1,
        };
        for m in &metrics {
            if round.defer(m) {
                deferred += 1;
                if round.is_full() {
                    full += 1;
                    round.apply(&mut rounds, 0, |_| limit(&admitted), |_, r| outcome(r));
                }
                continue;
            }
            round.apply(&mut rounds, 0, |_| limit(&admitted), |_, r| outcome(r));
            outcome(rounds.apply_admitted(m, 0, |_| limit(&admitted)));
        }
        round.apply(&mut rounds, 0, |_| limit(&admitted), |_, r| outcome(r));
        assert!(round.is_empty());

        // 3 set members and 3 tagged counters were applied directly, the rest deferred; each
        // stretch of 149 between them filled one round.
        assert_eq!(deferred, 1000 - 6);
        assert_eq!(full, 6);
        assert!(direct_refused > 0);
        assert_eq!((ok, refused), (direct_ok, direct_refused));
        assert_eq!(rounds.len(), 45);
        assert_eq!(rounds.len(), direct.len());
        direct.settle();
        rounds.settle();
        for m in &metrics {
            let key = SeriesKey::new(
                m.series.name,
                m.series.mtype,
                m.series.tags.iter().map(|(k, v)| (*k, &**v)),
            );
            assert_eq!(rounds.get(&key), direct.get(&key), "{key:?}");
        }
    }
}
