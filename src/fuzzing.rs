//! The fuzz harnesses: one function per cargo-fuzz target in `fuzz/`.
//!
//! They live in the library so that `tests/it/fuzz_regressions.rs` replays every checked-in
//! seed and every past crash through exactly the code the fuzzer runs. Each function must
//! not panic for any input; the assertions inside state what must hold for every input.

use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::hll::Hll;
use crate::aggregate::partial::{self, Envelope};
use crate::aggregate::sketch_proto;
use crate::aggregate::timer::Percentile;
use crate::aggregate::{AggregateLimits, Bounds, Samples, SeriesGuard, Table, Value};
use crate::config::Config;
use crate::flush::{CarrySettings, FinalizeSettings, Finalizer, merge};
use crate::metric::Metric;
use crate::parse::json::JsonParser;
use crate::parse::line::LineParser;
use crate::parse::{Handler, Protocol, Reject, Skip};
use crate::receive::Harvest;
use crate::sink::nested::render_nested;
use crate::stats::{self, Detail, FlushFacts, ReceiverStats};

/// A receiver's handler in miniature: a small cardinality guard and a small timer cap, so
/// fuzzed input reaches the refusal and sketch paths too.
struct Receiver {
    table: Table,
    guard: Arc<SeriesGuard>,
}

impl Receiver {
    fn new(guard: &Arc<SeriesGuard>) -> Receiver {
        Receiver {
            table: Table::with_capacity(0, small_bounds()),
            guard: Arc::clone(guard),
        }
    }
}

impl Handler for Receiver {
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        assert!(metric.sample_rate > 0.0 && metric.sample_rate <= 1.0);
        assert!(!metric.series.name.is_empty());
        let _ = self.table.apply_guarded(metric, 1, &self.guard, 0);
    }
    fn reject(&mut self, _reason: Reject, _input: &[u8]) {}
    fn skip(&mut self, _kind: Skip) {}
}

/// Bounds small enough that fuzzed input reaches the sketches of timers and sets.
fn small_bounds() -> Bounds {
    Bounds {
        max_timer_samples: 4,
        max_sketch_bins: 8,
        set_exact_members: 4,
        set_lg_k: 6,
        ..Bounds::default()
    }
}

fn small_guard() -> Arc<SeriesGuard> {
    Arc::new(SeriesGuard::new(&AggregateLimits {
        max_series: 64,
        max_tag_sets_per_name: 8,
        max_gauges: 16,
        ..AggregateLimits::default()
    }))
}

/// The line parser, with and without name sanitizing.
pub fn line_parser(data: &[u8]) {
    let guard = small_guard();
    let mut receiver = Receiver::new(&guard);
    LineParser::new(true).parse_datagram(data, &mut receiver);
    LineParser::new(false).parse_datagram(data, &mut receiver);
}

/// The JSON parser (it parses in place, so on a copy).
pub fn json_parser(data: &[u8]) {
    let guard = small_guard();
    let mut receiver = Receiver::new(&guard);
    JsonParser::new(true).parse_datagram(&mut data.to_vec(), &mut receiver);
}

/// The whole path for one datagram: both parsers into per-thread tables, two flushes
/// (merge, gauge persistence, idle zeros, global tags, sorting), Etsy statistics and the
/// JSON rendering of every series.
pub fn datagram_to_snapshot(data: &[u8]) {
    let guard = small_guard();
    let mut line = Receiver::new(&guard);
    LineParser::new(true).parse_datagram(data, &mut line);
    let mut json = Receiver::new(&guard);
    JsonParser::new(false).parse_datagram(&mut data.to_vec(), &mut json);
    let percentiles: Vec<Percentile> = [90.0, -10.0, 99.9]
        .into_iter()
        .map(|p| Percentile::new(p).unwrap())
        .collect();
    let mut finalizer = Finalizer::new(FinalizeSettings {
        percentiles: Arc::from(percentiles),
        global_tags: vec![("host".into(), "fuzz".into())],
        stats: Some(("rstatsd.".into(), Detail::Full)),
        carry: CarrySettings {
            delete_idle_gauges: false,
            idle_zero_flushes: 1,
            max_gauges: 16,
        },
    });
    let harvest = |table| Harvest {
        protocol: Protocol::Statsd,
        table,
        stats: ReceiverStats::default(),
    };
    // The second flush exercises persisted gauges and idle zeros.
    for tables in [vec![harvest(line.table), harvest(json.table)], vec![]] {
        let merged = merge(
            tables,
            1_795_323_600_000,
            Duration::from_secs(10),
            small_bounds(),
        );
        let internal = stats::collect(&FlushFacts {
            receivers: &merged.receivers,
            ..FlushFacts::default()
        });
        let snapshot = finalizer.finalize(merged.state, &internal);
        let mut out = String::new();
        for i in 0..snapshot.series.len() {
            out.clear();
            render_nested(&mut out, &snapshot, i);
            assert!(out.starts_with('{') && out.ends_with('}'));
        }
    }
}

/// The decoders of the sketch formats rstatsd reads back (a DDSketch protobuf when the first
/// byte is even, a DataSketches HyperLogLog when odd): they refuse or decode, never panic,
/// and what they decode encodes and decodes to the same.
pub fn sketch_decoders(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(sketch) = sketch_proto::decode(bytes, 64) {
            let again = sketch_proto::decode(&sketch_proto::encode(&sketch), 64)
                .expect("what rstatsd encodes decodes");
            assert_eq!(again.positive(), sketch.positive());
            assert_eq!(again.negative(), sketch.negative());
            assert_eq!(again.zero_count(), sketch.zero_count());
            if sketch.count() > 0 {
                assert!(sketch.value_at(sketch.count() - 1).is_finite());
            }
        }
    } else if let Ok(hll) = Hll::from_datasketches(bytes) {
        assert_eq!(
            Hll::from_datasketches(&hll.to_datasketches()).as_ref(),
            Ok(&hll)
        );
        assert!(hll.estimate() >= 0.0);
    }
}

/// The partials decoder on any bytes, with the default bounds and small ones: it must not
/// panic, and what it decodes must encode into a message that decodes to the same thing
/// (sketches compared by their bins: a decoded sketch's count of collapsed bins is its own).
pub fn partial_decode(data: &[u8]) {
    for bounds in [Bounds::default(), small_bounds()] {
        let Ok(envelope) = partial::decode(data, &bounds) else {
            continue;
        };
        let mut again = Vec::new();
        match &envelope {
            Envelope::Partial(p) => {
                let ns = match &p.value {
                    Value::Gauge(g) => g.stamp,
                    _ => 0,
                };
                partial::encode_partial(&mut again, &p.origin, p.seq, &p.key, &p.value, ns);
            }
            Envelope::End(end) => partial::encode_end(&mut again, end),
        }
        let twice = partial::decode(&again, &bounds).expect("what rstatsd encodes decodes");
        let same = match (&envelope, &twice) {
            (Envelope::Partial(a), Envelope::Partial(b)) => {
                (&a.origin, a.seq, &a.key) == (&b.origin, b.seq, &b.key)
                    && same_value(&a.value, &b.value)
            }
            (a, b) => a == b,
        };
        assert!(same, "{envelope:?} came back as {twice:?}");
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Timer(x), Value::Timer(y))
        | (Value::Histogram(x), Value::Histogram(y))
        | (Value::Distribution(x), Value::Distribution(y)) => same_samples(x, y),
        _ => a == b,
    }
}

fn same_samples(x: &Samples, y: &Samples) -> bool {
    let sketches = match (&x.sketched, &y.sketched) {
        (None, None) => true,
        (Some(s), Some(t)) => {
            s.totals == t.totals
                && s.sketch.mapping() == t.sketch.mapping()
                && s.sketch.positive() == t.sketch.positive()
                && s.sketch.negative() == t.sketch.negative()
                && s.sketch.zero_count() == t.sketch.zero_count()
        }
        _ => false,
    };
    x.values == y.values && x.count == y.count && sketches
}

/// The configuration loader and validator on arbitrary text.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text) {
        let _ = config.validate();
        let _ = config.aggregation.percentiles();
        let _ = config.limit_values();
    }
}
