//! The aggregator's side of fleet-wide aggregation: decoding partials
//! (`rstatsd::aggregate::partial`) and merging them into one table. 100,000 series from
//! each of 3 sources, mixed like a typical load: 80 % counters with 1-2 tags, 10 % raw
//! timers of ~5 samples, 10 % gauges. One iteration decodes and merges all 300,000.
//!
//! `cargo bench --bench partials`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use rstatsd::aggregate::partial::{self, Envelope, Origin};
use rstatsd::aggregate::{Bounds, Gauge, Samples, Table, Value};
use rstatsd::fleet::{LatePolicy, Window, WindowSettings};
use rstatsd::metric::{MetricType, SeriesKey};
use rstatsd::stats::FleetCounters;
use std::sync::Arc;

const SERIES: usize = 100_000;
const SOURCES: usize = 3;

/// Every source's partials of one interval, one encoded message each.
fn messages() -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(SERIES * SOURCES);
    for source in 0..SOURCES {
        let origin = Origin {
            source_id: format!("web-{source:03}"),
            source_epoch_ms: 1_795_000_000_000,
            interval_start_ms: 1_795_323_600_000,
            interval_ms: 10_000,
        };
        for i in 0..SERIES {
            let host = format!("web-{:03}", i % 50);
            let (mtype, value) = match i % 10 {
                8 => (
                    MetricType::Timer,
                    Value::Timer(Box::new(Samples {
                        values: (0..5).map(|j| (i + j) as f64 * 0.75).collect(),
                        count: 5.0,
                        sketched: None,
                    })),
                ),
                9 => (
                    MetricType::Gauge,
                    Value::Gauge(Gauge {
                        value: i as f64,
                        absolute: true,
                        stamp: 0,
                    }),
                ),
                _ => (MetricType::Counter, Value::Counter((i % 7) as f64 + 1.0)),
            };
            let name = format!("app.service.requests.k{i:07}");
            let key = if i % 2 == 0 {
                SeriesKey::new(name, mtype, [("env", "production")])
            } else {
                SeriesKey::new(name, mtype, [("env", "production"), ("host", &host)])
            };
            let mut bytes = Vec::new();
            // As if every series were on one partition: numbered 0, 1, … per source.
            let seq = Some(i as u32);
            partial::encode_partial(&mut bytes, &origin, seq, &key, &value, 1_795_323_605 << 30);
            out.push(bytes);
        }
    }
    out
}

fn decode_and_merge(c: &mut Criterion) {
    let messages = messages();
    let bounds = Bounds::default();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    eprintln!(
        "{} partials, {:.1} bytes each on average",
        messages.len(),
        bytes as f64 / messages.len() as f64
    );
    let mut group = c.benchmark_group("partials");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(10);
    group.bench_function("decode_and_merge", |b| {
        b.iter_with_large_drop(|| {
            let mut table = Table::with_capacity(SERIES, bounds);
            for m in &messages {
                match partial::decode(black_box(m), &bounds) {
                    Ok(Envelope::Partial(p)) => table.merge_value(p.key, p.value),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(table.len(), SERIES);
            table
        })
    });
    // The aggregator's whole per-message path: decode, then the window (deduplication by
    // seq, per-source progress, merge into the interval's table), then the close.
    group.bench_function("decode_dedup_merge_close", |b| {
        let settings = WindowSettings {
            interval_ms: 10_000,
            grace_ms: 10_000,
            live_intervals: 3,
            bounds,
            per_source: vec![MetricType::Gauge],
            source_tag: "source".into(),
            late: LatePolicy::Drop,
            reemit_intervals: 3,
        };
        b.iter_with_large_drop(|| {
            let counters = Arc::<FleetCounters>::default();
            let mut window = Window::new(settings.clone(), Arc::clone(&counters));
            window.assign(0, None, 0);
            for (offset, m) in messages.iter().enumerate() {
                let envelope = partial::decode(black_box(m), &bounds).expect("valid");
                window.offer(0, offset as i64, envelope, 1_795_323_610_000);
            }
            let closed = window.close_due(u64::MAX / 2);
            assert_eq!(closed.len(), 1);
            closed
        })
    });
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            for m in &messages {
                black_box(partial::decode(black_box(m), &bounds).is_ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, decode_and_merge);
criterion_main!(benches);
