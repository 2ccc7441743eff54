//! Property tests: merging per-thread tables, Etsy statistic invariants, and line-protocol
//! round trips.

use std::collections::BTreeMap;

use proptest::prelude::*;

use rstatsd::aggregate::timer::{Percentile, for_each_stat};
use rstatsd::aggregate::{SetValue, Table, Value};
use rstatsd::metric::{Metric, MetricType, Sample, SeriesKey, SeriesRef, TagRef};
use rstatsd::parse::line::LineParser;
use rstatsd::parse::{Handler, Reject, Skip};

proptest! {
    /// Aggregating a stream across K thread tables and merging them equals aggregating the
    /// whole stream in one table. Every update of a gauge comes from one thread (one client
    /// socket always lands on one receiver), in order.
    #[test]
    fn merged_thread_tables_equal_one_table(ops in prop::collection::vec(op(), 0..200), threads in 1usize..5, assignment in prop::collection::vec(0usize..5, 200)) {
        let mut single = Table::new();
        let mut per_thread: Vec<Table> = (0..threads).map(|_| Table::new()).collect();
        for (i, op) in ops.iter().enumerate() {
            apply(&mut single, op, i as u64);
            let thread = if KINDS[op.kind as usize] == MetricType::Gauge {
                op.key % threads
            } else {
                assignment[i] % threads
            };
            apply(&mut per_thread[thread], op, i as u64);
        }
        let mut merged = Table::new();
        for t in per_thread {
            merged.merge(t);
        }
        prop_assert_eq!(canonical(merged), canonical(single));
    }

    /// Etsy statistics are consistent: lower ≤ mean, median ≤ upper; count_p ≤ samples;
    /// the percentile bound lies within [lower, upper].
    #[test]
    fn timer_statistics_invariants(mut values in prop::collection::vec(-1e6f64..1e6, 1..100), pct in prop::sample::select(vec![50.0, 90.0, 99.9, -10.0, 12.5])) {
        values.sort_by(f64::total_cmp);
        let percentiles = [Percentile::new(pct).unwrap()];
        let mut stats = BTreeMap::new();
        for_each_stat(&values, values.len() as f64, &percentiles, 10.0, |k, v| {
            stats.insert(k.to_string(), v);
        });
        let (lower, upper) = (stats["lower"], stats["upper"]);
        let slack = 1e-9 * upper.abs().max(lower.abs()).max(1.0);
        prop_assert!(lower <= stats["mean"] + slack && stats["mean"] <= upper + slack);
        prop_assert!(lower <= stats["median"] && stats["median"] <= upper);
        prop_assert!(stats["std"] >= 0.0);
        let [count_p, _, bound, _, _] = percentiles[0].names();
        if let Some(k) = stats.get(count_p) {
            prop_assert!(*k >= 1.0 && *k <= values.len() as f64);
            prop_assert!(lower <= stats[bound] && stats[bound] <= upper);
        }
    }

    /// Rendering a metric in the line protocol and parsing it back gives the same metric.
    #[test]
    fn line_protocol_round_trips(
        name in "[a-z][a-z0-9_.]{0,15}",
        kind in 0usize..6,
        int in 0i64..1_000_000,
        frac in prop::sample::select(vec![0.0, 0.5, 0.25, 0.125]),
        member in "[a-z0-9]{1,8}",
        rate in prop::sample::select(vec![1.0, 0.5, 0.1, 0.25]),
        tags in prop::collection::btree_map("[a-z]{1,5}", "[a-z0-9]{0,5}", 0..4),
    ) {
        let (type_str, mtype) = [("c", MetricType::Counter), ("g", MetricType::Gauge), ("ms", MetricType::Timer), ("h", MetricType::Histogram), ("d", MetricType::Distribution), ("s", MetricType::Set)][kind];
        let number = int as f64 + frac;
        let value_text = if mtype == MetricType::Set { member.clone() } else { number.to_string() };
        let mut line = format!("{name}:{value_text}|{type_str}");
        if rate != 1.0 {
            line.push_str(&format!("|@{rate}"));
        }
        if !tags.is_empty() {
            let list: Vec<String> = tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            line.push_str(&format!("|#{}", list.join(",")));
        }
        let mut got = Capture::default();
        LineParser::new(true).parse_datagram(line.as_bytes(), &mut got);
        prop_assert!(got.rejects.is_empty(), "{} rejected: {:?}", line, got.rejects);
        prop_assert_eq!(got.metrics.len(), 1);
        let (gname, gtype, gsample, grate, gtags) = got.metrics.remove(0);
        prop_assert_eq!(gname, name);
        prop_assert_eq!(gtype, mtype);
        let expected = if mtype == MetricType::Set { format!("Member({member:?})") } else { format!("Value({number:?})") };
        prop_assert_eq!(gsample, expected);
        prop_assert_eq!(grate, rate);
        let expected_tags: Vec<(String, String)> = tags.into_iter().collect();
        prop_assert_eq!(gtags, expected_tags);
    }
}

type Captured = (String, MetricType, String, f64, Vec<(String, String)>);

#[derive(Default)]
struct Capture {
    metrics: Vec<Captured>,
    rejects: Vec<Reject>,
}

impl Handler for Capture {
    fn metric(&mut self, m: &Metric<'_, '_>) {
        let sample = match &m.sample {
            Sample::Value(v) => format!("Value({v:?})"),
            Sample::Delta(v) => format!("Delta({v:?})"),
            Sample::Member(s) => format!("Member({:?})", s.to_string()),
        };
        self.metrics.push((
            m.series.name.to_string(),
            m.series.mtype,
            sample,
            m.sample_rate,
            m.series
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }
    fn reject(&mut self, reason: Reject, _input: &[u8]) {
        self.rejects.push(reason);
    }
    fn skip(&mut self, _kind: Skip) {}
}

/// One generated update: series index, kind, value, sample rate.
#[derive(Debug, Clone)]
struct Op {
    key: usize,
    kind: u8,
    value: i32,
    rate: f64,
    member: u8,
}

const KINDS: [MetricType; 5] = [
    MetricType::Counter,
    MetricType::Gauge,
    MetricType::Timer,
    MetricType::Set,
    MetricType::Histogram,
];

fn op() -> impl Strategy<Value = Op> {
    (
        0usize..6,
        0u8..5,
        -1000i32..1000,
        prop::sample::select(vec![1.0, 0.5, 0.25]),
        0u8..20,
    )
        .prop_map(|(key, kind, value, rate, member)| Op {
            key,
            kind,
            value,
            rate,
            member,
        })
}

fn apply(table: &mut Table, op: &Op, stamp: u64) {
    let name = format!("m{}", op.key);
    let tags: Vec<TagRef> = vec![("k", (op.key % 2).to_string().into())];
    let mtype = KINDS[op.kind as usize];
    let member = format!("u{}", op.member);
    let sample = match mtype {
        // Gauges alternate absolute sets and deltas.
        MetricType::Gauge if op.value % 2 == 0 => Sample::Delta(f64::from(op.value)),
        MetricType::Gauge => Sample::Value(f64::from(op.value.abs())),
        MetricType::Set => Sample::Member(member.as_str().into()),
        MetricType::Timer => Sample::Value(f64::from(op.value.abs())),
        _ => Sample::Value(f64::from(op.value)),
    };
    table.apply(
        &Metric {
            series: SeriesRef {
                name: &name,
                mtype,
                tags: &tags,
            },
            sample,
            sample_rate: op.rate,
        },
        stamp,
    );
}

/// A table as comparable data: samples and members sorted.
fn canonical(mut table: Table) -> BTreeMap<SeriesKey, String> {
    table
        .drain()
        .map(|(k, mut v)| {
            if let Some(s) = v.samples_mut() {
                s.values.sort_by(f64::total_cmp);
                return (k, format!("samples {:?} count {}", s.values, s.count));
            }
            let text = match v {
                Value::Set(set) => match *set {
                    SetValue::Exact(exact) => {
                        let mut m: Vec<_> = exact.members().collect();
                        m.sort();
                        format!("set {m:?}")
                    }
                    SetValue::Estimated(hll) => format!("{hll:?}"),
                },
                other => format!("{other:?}"),
            };
            (k, text)
        })
        .collect()
}
