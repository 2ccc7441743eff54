use super::encode::{encode_origin, uint_field};
use super::*;
use crate::aggregate::hll::Hll;

use crate::aggregate::set::SetValue;
use crate::aggregate::sketch::Mapping;
use crate::aggregate::{Bounds, Gauge, sketch_proto};
use crate::format::protobuf::{
    self as pb, double_field, len_field, message_field, packed_doubles, varint_field,
};
use crate::metric::Sample;
use proptest::prelude::*;

fn origin() -> Origin {
    Origin {
        source_id: "web-042".into(),
        source_epoch_ms: 1_795_000_000_000,
        interval_start_ms: 1_795_323_600_000,
        interval_ms: 10_000,
    }
}

/// Small caps, so that a few samples or members reach the sketch and the HLL.
fn small() -> Bounds {
    Bounds {
        max_timer_samples: 4,
        set_exact_members: 4,
        set_lg_k: 8,
        ..Bounds::default()
    }
}

fn key(name: &str, mtype: MetricType) -> SeriesKey {
    SeriesKey::new(name, mtype, [("env", "prod"), ("az", "b")])
}

fn value(mtype: MetricType, samples: &[Sample<'_>], bounds: &Bounds) -> Value {
    let mut v = Value::empty(mtype);
    for (i, s) in samples.iter().enumerate() {
        v.update(s, 0.5, i as u64, bounds);
    }
    v
}

fn numbers(n: u32) -> Vec<Sample<'static>> {
    (1..=n)
        .map(|i| Sample::Value(f64::from(i) * 1.25))
        .collect()
}

fn members(range: std::ops::Range<u32>) -> Vec<Sample<'static>> {
    range
        .map(|i| Sample::Member(format!("user-{i}").into()))
        .collect()
}

fn encoded(seq: Option<u32>, key: &SeriesKey, value: &Value, ns: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_partial(&mut out, &origin(), seq, key, value, ns);
    out
}

fn decoded(bytes: &[u8], bounds: &Bounds) -> Partial {
    match decode(bytes, bounds) {
        Ok(Envelope::Partial(p)) => p,
        other => panic!("not a partial: {other:?}"),
    }
}

/// Encodes and decodes; the partial must come back equal.
fn round_trip(key: SeriesKey, value: Value, bounds: &Bounds) -> Value {
    let p = decoded(&encoded(Some(7), &key, &value, 0), bounds);
    assert_eq!((p.origin, p.seq, &p.key), (origin(), Some(7), &key));
    assert_eq!(p.value, value, "{key:?}");
    p.value
}

#[test]
fn every_value_kind_round_trips() {
    let b = Bounds::default();
    round_trip(key("hits", MetricType::Counter), Value::Counter(12.5), &b);
    round_trip(
        SeriesKey::new("bare", MetricType::Counter, [("", ""); 0]),
        Value::Counter(0.0),
        &b,
    );
    round_trip(key("events", MetricType::Trace), Value::Trace(3.0), &b);
    let delta = value(MetricType::Gauge, &[Sample::Delta(-2.5)], &b);
    round_trip(key("queue", MetricType::Gauge), delta, &b);
    for mtype in [
        MetricType::Timer,
        MetricType::Histogram,
        MetricType::Distribution,
    ] {
        let raw = round_trip(key("t", mtype), value(mtype, &numbers(3), &b), &b);
        assert_eq!(raw.clone().samples_mut().unwrap().values.len(), 3);
    }
    let set = value(MetricType::Set, &members(0..3), &b);
    assert!(matches!(&set, Value::Set(s) if matches!(**s, SetValue::Exact(_))));
    round_trip(key("users", MetricType::Set), set, &b);
    let empty = Value::empty(MetricType::Set);
    round_trip(key("nobody", MetricType::Set), empty, &b);
}

#[test]
fn an_absolute_gauge_carries_its_wall_clock_time() {
    let g = value(
        MetricType::Gauge,
        &[Sample::Value(10.0), Sample::Delta(1.0)],
        &Bounds::default(),
    );
    let bytes = encoded(
        None,
        &key("g", MetricType::Gauge),
        &g,
        1_795_323_605_123_456_789,
    );
    let p = decoded(&bytes, &Bounds::default());
    assert_eq!(
        p.value,
        Value::Gauge(Gauge {
            value: 11.0,
            absolute: true,
            stamp: 1_795_323_605_123_456_789,
        })
    );
}

#[test]
fn sketched_timers_and_hll_sets_round_trip() {
    let b = small();
    let timer = value(MetricType::Timer, &numbers(50), &b);
    let Value::Timer(s) = &timer else { panic!() };
    assert!(s.values.is_empty() && s.sketched.is_some());
    assert_eq!(s.sketched.as_ref().unwrap().sketch.collapsed(), 0);
    round_trip(key("t", MetricType::Timer), timer, &b);
    let d = value(MetricType::Distribution, &numbers(9), &b);
    round_trip(key("d", MetricType::Distribution), d, &b);

    let set = value(MetricType::Set, &members(0..100), &b);
    assert!(matches!(&set, Value::Set(s) if matches!(**s, SetValue::Estimated(_))));
    round_trip(key("u", MetricType::Set), set, &b);
}

#[test]
fn decoded_state_fits_the_readers_bounds() {
    let exact = Bounds::EXACT;
    let (b, key) = (small(), key("t", MetricType::Timer));
    // Raw samples beyond the reader's cap: the sketch the reader would have built.
    let raw = value(MetricType::Timer, &numbers(10), &exact);
    let p = decoded(&encoded(None, &key, &raw, 0), &b);
    assert_eq!(p.value, value(MetricType::Timer, &numbers(10), &b));
    // A big exact set becomes the reader's HLL.
    let key = SeriesKey::new("u", MetricType::Set, [("", ""); 0]);
    let set = value(MetricType::Set, &members(0..10), &exact);
    let p = decoded(&encoded(None, &key, &set, 0), &b);
    assert_eq!(p.value, value(MetricType::Set, &members(0..10), &b));
    // A finer HLL is folded to the reader's precision.
    let fine = Bounds { set_lg_k: 12, ..b };
    let set = value(MetricType::Set, &members(0..100), &fine);
    let Value::Set(s) = decoded(&encoded(None, &key, &set, 0), &b).value else {
        panic!()
    };
    let SetValue::Estimated(h) = *s else { panic!() };
    assert_eq!(h.lg_k(), 8);
    let SetValue::Estimated(direct) = *value_set(&members(0..100), &b) else {
        panic!()
    };
    assert_eq!(*h, *direct);
    // A sketch of another accuracy is refused.
    let timer = value(MetricType::Timer, &numbers(10), &b);
    let other = Bounds {
        sketch: Mapping::with_scale(4),
        ..b
    };
    assert_eq!(
        decode(&encoded(None, &key_t(), &timer, 0), &other),
        Err(BadPartial::SketchAccuracy)
    );
}

fn value_set(m: &[Sample<'_>], b: &Bounds) -> Box<SetValue> {
    match value(MetricType::Set, m, b) {
        Value::Set(s) => s,
        _ => unreachable!(),
    }
}

fn key_t() -> SeriesKey {
    key("t", MetricType::Timer)
}

#[test]
fn interval_end_round_trips() {
    for end in [
        IntervalEnd {
            origin: origin(),
            partials: 1234,
            partitions: 12,
            last: true,
        },
        IntervalEnd {
            origin: Origin {
                source_id: String::new(),
                source_epoch_ms: 0,
                interval_start_ms: 0,
                interval_ms: 0,
            },
            partials: 0,
            partitions: 0,
            last: false,
        },
    ] {
        let mut out = Vec::new();
        encode_end(&mut out, &end);
        assert_eq!(
            decode(&out, &Bounds::default()),
            Ok(Envelope::End(end.clone()))
        );
    }
}

#[test]
fn seq_absent_is_not_seq_zero() {
    let (k, v) = (key("c", MetricType::Counter), Value::Counter(1.0));
    let (none, zero) = (encoded(None, &k, &v, 0), encoded(Some(0), &k, &v, 0));
    assert_ne!(none, zero);
    assert_eq!(decoded(&none, &Bounds::default()).seq, None);
    assert_eq!(decoded(&zero, &Bounds::default()).seq, Some(0));
}

#[test]
fn merging_decoded_partials_is_merging_the_states() {
    let b = small();
    let cases = [
        (
            MetricType::Counter,
            value(MetricType::Counter, &numbers(3), &b),
            value(MetricType::Counter, &numbers(5), &b),
        ),
        (
            MetricType::Timer,
            value(MetricType::Timer, &numbers(2), &b),
            value(MetricType::Timer, &numbers(2), &b),
        ),
        (
            MetricType::Timer,
            value(MetricType::Timer, &numbers(3), &b),
            value(MetricType::Timer, &numbers(30), &b),
        ),
        (
            MetricType::Set,
            value(MetricType::Set, &members(0..3), &b),
            value(MetricType::Set, &members(2..4), &b),
        ),
        (
            MetricType::Set,
            value(MetricType::Set, &members(0..3), &b),
            value(MetricType::Set, &members(2..60), &b),
        ),
    ];
    for (mtype, a, c) in cases {
        let k = key("m", mtype);
        let mut want = a.clone();
        want.merge(c.clone(), &b);
        let mut got = decoded(&encoded(None, &k, &a, 0), &b).value;
        got.merge(decoded(&encoded(None, &k, &c, 0), &b).value, &b);
        assert_eq!(got, want, "{mtype}");
    }
}

/// An envelope of `version` around a partial body that `body` writes.
fn envelope(version: u64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    uint_field(&mut out, 1, version);
    message_field(&mut out, 2, body);
    out
}

/// A partial body: origin, name, type, then `rest`.
fn body(name: &str, mtype: u64, rest: impl FnOnce(&mut Vec<u8>)) -> impl FnOnce(&mut Vec<u8>) {
    move |out| {
        encode_origin(out, &origin());
        len_field(out, 3, name.as_bytes());
        varint_field(out, 4, mtype);
        rest(out);
    }
}

fn tag(out: &mut Vec<u8>, k: &str, v: &str) {
    message_field(out, 5, |out| {
        len_field(out, 1, k.as_bytes());
        len_field(out, 2, v.as_bytes());
    });
}

fn reason(bytes: &[u8]) -> &'static str {
    match decode(bytes, &Bounds::default()) {
        Err(e) => e.detail(),
        Ok(e) => panic!("decoded {e:?}"),
    }
}

#[test]
fn what_is_refused() {
    let sum = |v: f64| move |out: &mut Vec<u8>| double_field(out, 6, v);
    assert_eq!(
        reason(&envelope(2, body("c", 1, sum(1.0)))),
        "a newer major version than this reader's"
    );
    assert_eq!(reason(&envelope(0, body("c", 1, sum(1.0)))), "no version");
    assert_eq!(reason(&[8, 1]), "neither a partial nor an interval end");
    assert_eq!(reason(&[]), "no version");
    let no_origin = envelope(1, |out| {
        len_field(out, 3, b"c");
        varint_field(out, 4, 1);
        double_field(out, 6, 1.0);
    });
    assert_eq!(reason(&no_origin), "no origin");
    let no_name = envelope(1, |out| {
        encode_origin(out, &origin());
        varint_field(out, 4, 1);
        double_field(out, 6, 1.0);
    });
    assert_eq!(reason(&no_name), "no name");
    assert_eq!(reason(&envelope(1, body("", 1, sum(1.0)))), "empty name");
    let latin1 = envelope(1, |out| {
        encode_origin(out, &origin());
        len_field(out, 3, b"caf\xe9");
        varint_field(out, 4, 1);
        double_field(out, 6, 1.0);
    });
    assert_eq!(reason(&latin1), "a string is not UTF-8");
    let bad_tag = envelope(
        1,
        body("c", 1, |out| {
            message_field(out, 5, |out| len_field(out, 2, b"\xff"));
            double_field(out, 6, 1.0);
        }),
    );
    assert_eq!(reason(&bad_tag), "a string is not UTF-8");
    assert_eq!(
        reason(&envelope(1, body("c", 0, sum(1.0)))),
        "metric type unspecified"
    );
    assert_eq!(
        reason(&envelope(1, body("c", 8, sum(1.0)))),
        "unknown metric type"
    );
    let mismatch = "the value's kind is not the metric type's";
    let set_counter = body("c", 1, |out| message_field(out, 9, |_| {}));
    assert_eq!(reason(&envelope(1, set_counter)), mismatch);
    assert_eq!(reason(&envelope(1, body("g", 3, sum(1.0)))), mismatch);
    assert_eq!(reason(&envelope(1, body("c", 1, |_| {}))), "no value");
    for v in [f64::NAN, f64::INFINITY] {
        assert_eq!(
            reason(&envelope(1, body("c", 1, sum(v)))),
            "a sum is not finite"
        );
        assert_eq!(
            reason(&envelope(1, body("c", 2, sum(v)))),
            "a sum is not finite"
        );
    }
    let tagged = |tags: &'static [(&'static str, &'static str)]| {
        envelope(
            1,
            body("c", 1, move |out| {
                for (k, v) in tags {
                    tag(out, k, v);
                }
                double_field(out, 6, 1.0);
            }),
        )
    };
    let unsorted = "tags are not sorted by key, or a key repeats";
    assert_eq!(reason(&tagged(&[("b", "1"), ("a", "2")])), unsorted);
    assert_eq!(reason(&tagged(&[("a", "1"), ("a", "2")])), unsorted);
    let ok = decoded(&tagged(&[("a", "1"), ("b", "")]), &Bounds::default());
    assert_eq!(
        ok.key,
        SeriesKey::new("c", MetricType::Counter, [("a", "1"), ("b", "")])
    );
    // Wrong wire type for a known field.
    let varint_sum = body("c", 1, |out| varint_field(out, 6, 1));
    assert_eq!(
        reason(&envelope(1, varint_sum)),
        "a field has the wrong wire type"
    );
    // Samples and sets.
    let samples =
        |f: fn(&mut Vec<u8>)| envelope(1, body("t", 4, move |out| message_field(out, 8, f)));
    assert_eq!(
        reason(&samples(|out| packed_doubles(out, 2, &[1.0, f64::NAN]))),
        "a sample is not finite"
    );
    assert_eq!(
        reason(&samples(|out| double_field(out, 1, -1.0))),
        "a samples count is not finite and non-negative"
    );
    assert_eq!(
        reason(&samples(|out| len_field(out, 2, &[0; 7]))),
        "packed doubles are not a whole number of doubles"
    );
    let sketch = sketch_proto::encode(&crate::aggregate::sketch::Sketch::new(
        Bounds::default().sketch,
        64,
    ));
    let with_sketch = |values: &[f64], totals: bool| {
        let sketch = sketch.clone();
        let values = values.to_vec();
        envelope(
            1,
            body("t", 4, move |out| {
                message_field(out, 8, |out| {
                    packed_doubles(out, 2, &values);
                    len_field(out, 3, &sketch);
                    if totals {
                        message_field(out, 4, |out| varint_field(out, 1, 1));
                    }
                })
            }),
        )
    };
    assert_eq!(
        reason(&with_sketch(&[1.0], false)),
        "raw samples alongside a sketch"
    );
    assert_eq!(
        reason(&with_sketch(&[], false)),
        "a sketch without its totals"
    );
    assert_eq!(
        reason(&with_sketch(&[], true)),
        "the totals' count is not the sketch's"
    );
    assert_eq!(
        reason(&samples(|out| message_field(out, 4, |_| {}))),
        "totals without a sketch"
    );
    let sets = |f: fn(&mut Vec<u8>)| envelope(1, body("s", 7, move |out| message_field(out, 9, f)));
    assert_eq!(
        reason(&sets(|out| {
            len_field(out, 1, b"x");
            len_field(out, 2, &Hll::new(8).to_datasketches());
        })),
        "members alongside an HLL"
    );
    assert_eq!(
        reason(&sets(|out| len_field(out, 2, b"not an hll"))),
        "shorter than its preamble"
    );
    let gauge = envelope(
        1,
        body("g", 3, |out| {
            message_field(out, 7, |out| double_field(out, 1, f64::INFINITY))
        }),
    );
    assert_eq!(reason(&gauge), "a gauge value is not finite");
    let mut end = Vec::new();
    varint_field(&mut end, 1, 1);
    message_field(&mut end, 3, |out| varint_field(out, 2, 5));
    assert_eq!(reason(&end), "no origin");
    assert_eq!(
        decode(&end, &Bounds::default()),
        Err(BadPartial::Missing("no origin"))
    );
    assert_eq!(
        BadPartial::Invalid("x").to_string(),
        "not an rstatsd partial: x"
    );
}

#[test]
fn every_truncation_is_refused_without_panicking() {
    let b = small();
    let mut all = Vec::new();
    let values = [
        (MetricType::Counter, Value::Counter(3.0)),
        (
            MetricType::Gauge,
            value(MetricType::Gauge, &[Sample::Value(1.0)], &b),
        ),
        (MetricType::Timer, value(MetricType::Timer, &numbers(3), &b)),
        (
            MetricType::Timer,
            value(MetricType::Timer, &numbers(300), &b),
        ),
        (MetricType::Set, value(MetricType::Set, &members(0..3), &b)),
        (MetricType::Set, value(MetricType::Set, &members(0..30), &b)),
    ];
    for (mtype, v) in &values {
        all.push(encoded(Some(1), &key("m", *mtype), v, 5));
    }
    let mut end = Vec::new();
    encode_end(
        &mut end,
        &IntervalEnd {
            origin: origin(),
            partials: 3,
            partitions: 2,
            last: true,
        },
    );
    all.push(end);
    for bytes in all {
        assert!(decode(&bytes, &b).is_ok());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &b).is_err(), "prefix of {cut} bytes");
        }
    }
}

#[test]
fn unknown_fields_are_skipped() {
    let k = key("c", MetricType::Counter);
    let want = decoded(
        &encoded(Some(3), &k, &Value::Counter(2.0), 0),
        &Bounds::default(),
    );
    let mut bytes = envelope(1, |out| {
        varint_field(out, 99, 5);
        encode_origin(out, &origin());
        pb::tag(out, 85, 5); // a fixed32 field
        out.extend_from_slice(&[1, 2, 3, 4]);
        varint_field(out, 2, 3);
        len_field(out, 3, b"c");
        varint_field(out, 4, 1);
        for (k, v) in [("az", "b"), ("env", "prod")] {
            message_field(out, 5, |out| {
                len_field(out, 1, k.as_bytes());
                double_field(out, 7, 1.5);
                len_field(out, 2, v.as_bytes());
            });
        }
        double_field(out, 6, 2.0);
        len_field(out, 1000, b"future");
    });
    len_field(&mut bytes, 4, b"a future kind");
    varint_field(&mut bytes, 77, 1);
    assert_eq!(decoded(&bytes, &Bounds::default()), want);
}

/// The fuzz target's seeds (`fuzz/corpus_seeds/partial_decode/`): one message of every
/// kind. `RSTATSD_WRITE_SEEDS=1 cargo test --lib partial::tests::fuzz_seeds` rewrites them.
#[test]
fn fuzz_seeds_decode_to_what_wrote_them() {
    let b = Bounds {
        set_lg_k: 6,
        ..small()
    };
    let mut seeds = Vec::new();
    let mut seed = |name: &str, key: SeriesKey, value: Value, ns: u64| {
        seeds.push((name.to_owned(), encoded(Some(3), &key, &value, ns)));
    };
    seed(
        "counter",
        key("hits", MetricType::Counter),
        Value::Counter(2.5),
        0,
    );
    let g = value(MetricType::Gauge, &[Sample::Value(4.0)], &b);
    seed(
        "gauge",
        key("queue", MetricType::Gauge),
        g,
        1_795_323_605_000_000_000,
    );
    let raw = value(MetricType::Timer, &numbers(3), &b);
    seed("timer_raw", key("t", MetricType::Timer), raw, 0);
    let sketched = value(MetricType::Histogram, &numbers(20), &b);
    seed(
        "histogram_sketched",
        key("h", MetricType::Histogram),
        sketched,
        0,
    );
    let exact = value(MetricType::Set, &members(0..1), &b);
    seed("set_exact", key("u", MetricType::Set), exact, 0);
    let hll = value(MetricType::Set, &members(0..40), &b);
    seed("set_hll", key("u", MetricType::Set), hll, 0);
    let mut end = Vec::new();
    let interval_end = IntervalEnd {
        origin: origin(),
        partials: 4,
        partitions: 2,
        last: false,
    };
    encode_end(&mut end, &interval_end);
    seeds.push(("end".to_owned(), end));
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus_seeds/partial_decode");
    for (name, bytes) in seeds {
        let path = dir.join(name);
        if std::env::var_os("RSTATSD_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(
            decode(&on_disk, &b),
            decode(&bytes, &b),
            "{}",
            path.display()
        );
        assert!(decode(&bytes, &b).is_ok());
    }
}

proptest! {
    #[test]
    fn counters_and_gauges_round_trip(
        name in "[a-z.]{1,20}",
        tags in proptest::collection::btree_map("[a-z]{0,5}", "\\PC{0,8}", 0..12),
        sum in -1e12f64..1e12,
        seq in proptest::option::of(any::<u32>()),
        absolute in any::<bool>(),
        ns in any::<u64>(),
    ) {
        let b = Bounds::default();
        let key = SeriesKey::new(name.as_str(), MetricType::Counter, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let p = decoded(&encoded(seq, &key, &Value::Counter(sum), 0), &b);
        prop_assert_eq!((p.seq, &p.key, &p.value), (seq, &key, &Value::Counter(sum)));
        let key = SeriesKey::new(name.as_str(), MetricType::Gauge, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let g = Value::Gauge(Gauge { value: sum, absolute, stamp: ns });
        let p = decoded(&encoded(seq, &key, &g, ns), &b);
        prop_assert_eq!((&p.key, &p.value), (&key, &g));
    }
}
