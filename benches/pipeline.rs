//! Parse + aggregate throughput on the receiver hot path (one thread, known series).
//!
//! `cargo bench --bench pipeline`. Reports time per datagram; the per-metric figure is the
//! time divided by the metrics in the datagram (criterion's throughput line shows elements/s).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use rstatsd::aggregate::Table;
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
    group.finish();
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
