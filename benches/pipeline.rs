//! Parse + aggregate throughput on the receiver hot path (one thread, known series).
//!
//! `cargo bench --bench pipeline`. Reports time per datagram; the per-metric figure is the
//! time divided by the metrics in the datagram (criterion's throughput line shows elements/s).
//!
//! `line/mixed_1000_keys_20_per_datagram` is the daemon's benchmark load in process: 20-metric
//! datagrams as `rstatsd-loadgen send --keys 1000 --mix c=80,ms=10,g=10` builds them (keys
//! in a scattered order), so the table is bigger than the caches' hot set, unlike the
//! 20-counter datagram that repeats the same 20 keys.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use std::convert::Infallible;

use rstatsd::aggregate::round::Round;
use rstatsd::aggregate::{Bounds, Table};
use rstatsd::metric::Metric;
use rstatsd::parse::json::JsonParser;
use rstatsd::parse::line::LineParser;
use rstatsd::parse::{Handler, Reject, Skip};

/// What a receiver does with parser output: aggregate into its table.
struct Aggregate(Table);

impl Handler for Aggregate {
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        self.0.apply(metric, 0);
    }
    fn reject(&mut self, reason: Reject, _input: &[u8]) {
        panic!("bench input rejected: {reason:?}");
    }
    fn skip(&mut self, _kind: Skip) {}
}

/// What a receiver does: untagged metrics applied a [`Round`] at a time.
struct InRounds(Table, Round);

impl InRounds {
    fn apply_round(&mut self) {
        let ok = |_: &rstatsd::metric::SeriesRef<'_, '_>| Ok::<(), Infallible>(());
        self.1.apply(&mut self.0, 0, ok, |_, _| {});
    }
}

impl Handler for InRounds {
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        if self.1.defer(metric) {
            if self.1.is_full() {
                self.apply_round();
            }
            return;
        }
        self.apply_round();
        self.0.apply(metric, 0);
    }
    fn reject(&mut self, reason: Reject, _input: &[u8]) {
        panic!("bench input rejected: {reason:?}");
    }
    fn skip(&mut self, _kind: Skip) {}
}

fn line_protocol(c: &mut Criterion) {
    let twenty: String = (0..20)
        .map(|i| format!("app.requests.k{i}:1|c\n"))
        .collect();
    let cases: [(&str, &[u8], u64); 3] = [
        ("short_counter", b"api.requests:1|c", 1),
        (
            "dogstatsd_timer",
            b"api.latency:12.5|ms|@0.5|#env:prod,region:eu-west-1,service:checkout",
            1,
        ),
        ("20_metric_datagram", twenty.as_bytes(), 20),
    ];
    let mut group = c.benchmark_group("line");
    for (name, input, metrics) in cases {
        group.throughput(Throughput::Elements(metrics));
        let mut parser = LineParser::new(true);
        let mut handler = Aggregate(Table::new());
        group.bench_function(name, |b| {
            b.iter(|| parser.parse_datagram(black_box(input), &mut handler))
        });
    }
    mixed(&mut group);
    group.finish();
}

/// Datagrams of the loadgen's mixed load: `loadgen.k{key}` over 1,000 keys, 80 % `:1|c`,
/// 10 % `ms`, 10 % `g` with values below 1,000, from the same xorshift64* sequence.
fn mixed_datagrams(count: usize, per_datagram: usize) -> Vec<Vec<u8>> {
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ 0xA076_1D64_78BD_642F;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..count)
        .map(|_| {
            let lines: Vec<String> = (0..per_datagram)
                .map(|_| {
                    let key = next() % 1000;
                    let pick = next() % 100;
                    let value = next() % 1000;
                    match pick {
                        0..80 => format!("loadgen.k{key}:1|c"),
                        80..90 => format!("loadgen.k{key}:{value}|ms"),
                        _ => format!("loadgen.k{key}:{value}|g"),
                    }
                })
                .collect();
            lines.join("\n").into_bytes()
        })
        .collect()
}

fn mixed(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    const DATAGRAMS: usize = 4096;
    let datagrams = mixed_datagrams(DATAGRAMS, 20);
    let mut parser = LineParser::new(true);
    let fresh = || Table::with_capacity(3000, Bounds::default());
    group.throughput(Throughput::Elements(20));
    let mut handler = Aggregate(fresh());
    let mut next = 0;
    group.bench_function("mixed_1000_keys_20_per_datagram", |b| {
        b.iter(|| {
            next += 1;
            if next == DATAGRAMS * 4 {
                // A fresh table now and then, as a flush gives the daemon: timers keep an
                // interval's samples, not the whole run's.
                next = 0;
                handler.0 = fresh();
            }
            parser.parse_datagram(black_box(&datagrams[next % DATAGRAMS]), &mut handler)
        })
    });
    // The receiver's way: rounds of up to 128 metrics (here a round is a batch of 6
    // datagrams, applied whole, as a receiver applies each `recvmmsg` batch).
    let mut handler = InRounds(fresh(), Round::new());
    let mut next = 0;
    group.throughput(Throughput::Elements(120));
    group.bench_function("mixed_1000_keys_20_per_datagram_in_rounds", |b| {
        b.iter(|| {
            next += 6;
            if next >= DATAGRAMS * 4 {
                next = 0;
                handler.0 = fresh();
            }
            for i in next..next + 6 {
                parser.parse_datagram(black_box(&datagrams[i % DATAGRAMS]), &mut handler);
            }
            handler.apply_round();
        })
    });
}

fn pystatsd_json(c: &mut Criterion) {
    let seed = br#"{"metric_name": "user.latency", "metric_type": "guage", "value": 4, "stage": "Init app", "host": "192.44.2.2", "env": "development"}"#;
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(1));
    let mut parser = JsonParser::new(true);
    let mut handler = Aggregate(Table::new());
    let mut buf = seed.to_vec();
    group.bench_function("seed_guage_object", |b| {
        b.iter(|| {
            // simd-json parses in place, so each iteration starts from a fresh copy.
            buf.copy_from_slice(seed);
            parser.parse_datagram(black_box(&mut buf), &mut handler)
        })
    });
    group.finish();
}

criterion_group!(benches, line_protocol, pystatsd_json);
criterion_main!(benches);
