//! Aggregation into a receiver's table for known series: one hot key, 10k keys, 1M keys
//! (ns/metric), and the memory a series costs in a table.
//!
//! `cargo bench --bench aggregate`. The memory figure is printed before the timings:
//! resident set growth while a table takes 1,000,000 series, divided by the series.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use rstatsd::aggregate::Table;
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

criterion_group!(benches, known_series);
criterion_main!(benches);
