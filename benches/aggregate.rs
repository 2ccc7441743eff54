//! Aggregation into a receiver's table for known series: one hot key, 10k keys, 1M keys
//! (ns/metric), and the memory a series costs in a table. Then the bounded state past the
//! caps: a sample into a timer's DDSketch, a member into a set's HyperLogLog, and a timer
//! sample kept raw (the exact mode).
//!
//! `cargo bench --bench aggregate`. The memory figure is printed before the timings:
//! resident set growth while a table takes 1,000,000 series, divided by the series.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use rstatsd::aggregate::hll::Hll;
use rstatsd::aggregate::sketch::{Mapping, Sketch};
use rstatsd::aggregate::{Bounds, Table, Value};
use rstatsd::metric::{Metric, MetricType, Sample, SeriesRef, TagRef};

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("app.service.requests.k{i:07}"))
        .collect()
}

fn counter<'r>(name: &'r str, tags: &'r [TagRef<'r>]) -> Metric<'r, 'r> {
    Metric {
        series: SeriesRef {
            name,
            mtype: MetricType::Counter,
            tags,
        },
        sample: Sample::Value(1.0),
        sample_rate: 1.0,
    }
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn report_memory() {
    const N: usize = 1_000_000;
    let names = names(N);
    let tags: Vec<TagRef> = vec![("env", "production".into()), ("host", "web042".into())];
    for (label, tags) in [("no tags", &[][..]), ("2 tags", &tags[..])] {
        let before = rss_bytes();
        let mut table = Table::new();
        for name in &names {
            table.apply(&counter(name, tags), 0);
        }
        let after = rss_bytes();
        eprintln!(
            "memory: {} bytes per counter series ({label}, 26-byte names; {} series, RSS +{} MiB)",
            (after - before) / N as u64,
            table.len(),
            (after - before) >> 20
        );
        drop(black_box(table));
    }
}

fn known_series(c: &mut Criterion) {
    report_memory();
    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(1));
    for keys in [1, 10_000, 1_000_000] {
        let names = names(keys);
        let mut table = Table::new();
        for name in &names {
            table.apply(&counter(name, &[]), 0);
        }
        // A fixed pseudo-random walk over the keys, so larger tables miss the cache as a
        // real mix of clients would.
        let order: Vec<usize> = (0..keys.min(1 << 16))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 3) % keys)
            .collect();
        let mut next = 0;
        let label = match keys {
            1 => "hot_key".to_string(),
            n => format!("{n}_keys"),
        };
        group.bench_function(label, |b| {
            b.iter(|| {
                next = (next + 1) % order.len();
                table.apply(black_box(&counter(&names[order[next]], &[])), 0);
            })
        });
    }
    group.finish();
}

fn sketches(c: &mut Criterion) {
    // Lognormal-ish samples spanning four decades, precomputed.
    let samples: Vec<f64> = (0..4096u32)
        .map(|i| (f64::from(i.wrapping_mul(2_654_435_761) % 10_000) / 1000.0).exp())
        .collect();
    let members: Vec<String> = (0..4096).map(|i| format!("user-{i:08}")).collect();
    let mut group = c.benchmark_group("bounded_state");
    group.throughput(Throughput::Elements(samples.len() as u64));
    let mut sketch = Sketch::new(Mapping::for_accuracy(0.01), 2048);
    group.bench_function("ddsketch_add", |b| {
        b.iter(|| {
            for &v in &samples {
                sketch.add(black_box(v));
            }
        })
    });
    let mut hll = Hll::new(14);
    group.bench_function("hll_add", |b| {
        b.iter(|| {
            for m in &members {
                hll.add(black_box(m.as_bytes()));
            }
        })
    });
    // The exact mode: a timer under its cap keeps each sample raw.
    let bounds = Bounds::default();
    group.bench_function("timer_raw_sample", |b| {
        b.iter_batched_ref(
            || Value::empty(MetricType::Timer),
            |timer| {
                for &v in &samples {
                    timer.update(&Sample::Value(black_box(v)), 1.0, 0, &bounds);
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, known_series, sketches);
criterion_main!(benches);
