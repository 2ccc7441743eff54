//! Flush-side costs: merging receiver tables into a snapshot, Etsy timer statistics, and
//! rendering a snapshot for each sink format that does not need Kafka (`benches/kafka.rs`
//! covers the Kafka formats).
//!
//! `cargo bench --bench flush`

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use rstatsd::aggregate::timer::{Percentile, for_each_stat};
use rstatsd::aggregate::{Bounds, Table};
use rstatsd::config::Config;
use rstatsd::flush::{CarrySettings, FinalizeSettings, Finalizer, merge};
use rstatsd::metric::{Metric, MetricType, Sample, SeriesRef};
use rstatsd::parse::Protocol;
use rstatsd::receive::Harvest;
use rstatsd::sink::batch::Batch;
use rstatsd::sink::graphite::{GraphiteConfig, Renderer};
use rstatsd::sink::nested::render_nested;
use rstatsd::stats::{Detail, ReceiverStats};

mod common;

const SERIES: usize = 100_000;

/// Four receivers' tables of 100k counter series each, three quarters of them shared.
fn harvests() -> Vec<Harvest> {
    (0..4)
        .map(|r| {
            let mut table = Table::new();
            for i in 0..SERIES {
                let name = format!("app.requests.k{}", i + r * SERIES / 4);
                table.apply(
                    &Metric {
                        series: SeriesRef {
                            name: &name,
                            mtype: MetricType::Counter,
                            tags: &[],
                        },
                        sample: Sample::Value(1.0),
                        sample_rate: 1.0,
                    },
                    0,
                );
            }
            Harvest {
                protocol: Protocol::Statsd,
                table,
                stats: ReceiverStats::default(),
            }
        })
        .collect()
}

/// What the flusher does with the receivers' tables at each flush: merge, then finalize.
fn flush(config: &Config, harvests: Vec<Harvest>) -> rstatsd::snapshot::Snapshot {
    let mut finalizer = Finalizer::new(FinalizeSettings {
        percentiles: Arc::from(config.aggregation.percentiles()),
        global_tags: Vec::new(),
        stats: Some(("rstatsd.".into(), Detail::Basic)),
        carry: CarrySettings {
            delete_idle_gauges: false,
            idle_zero_flushes: 0,
            max_gauges: 1_000_000,
        },
    });
    let merged = merge(harvests, 0, Duration::from_secs(10), Bounds::default());
    finalizer.finalize(merged.state, &[])
}

fn merge_and_finalize(c: &mut Criterion) {
    let config = Config::default();
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    group.throughput(Throughput::Elements((4 * SERIES) as u64));
    group.bench_function("merge_4_tables_x_100k", |b| {
        b.iter_batched(
            harvests,
            |harvests| flush(&config, harvests),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Two receivers' tables (the default on a 2-core machine) that both saw every one of
/// 1,000,000 counter series: merged into one interval state and finalized into the
/// snapshot, as the flusher does at each flush.
fn merge_and_finalize_1m(c: &mut Criterion) {
    const SERIES_1M: usize = 1_000_000;
    let names: Vec<String> = (0..SERIES_1M)
        .map(|i| format!("app.requests.k{i}"))
        .collect();
    let harvests = || -> Vec<Harvest> {
        (0..2)
            .map(|_| {
                let mut table = Table::with_capacity(0, Bounds::default());
                for name in &names {
                    table.apply(
                        &Metric {
                            series: SeriesRef {
                                name,
                                mtype: MetricType::Counter,
                                tags: &[],
                            },
                            sample: Sample::Value(1.0),
                            sample_rate: 1.0,
                        },
                        0,
                    );
                }
                Harvest {
                    protocol: Protocol::Statsd,
                    table,
                    stats: ReceiverStats::default(),
                }
            })
            .collect()
    };
    let config = Config::default();
    let mut group = c.benchmark_group("flush");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SERIES_1M as u64));
    group.bench_function("merge_finalize_2_tables_x_1m", |b| {
        b.iter_batched(
            harvests,
            |harvests| flush(&config, harvests),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn timer_statistics(c: &mut Criterion) {
    let sorted: Vec<f64> = (0..1000).map(|i| f64::from(i) * 1.5).collect();
    let percentiles = [
        Percentile::new(90.0).unwrap(),
        Percentile::new(99.0).unwrap(),
    ];
    let mut group = c.benchmark_group("timer");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("etsy_stats_1k_samples", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for_each_stat(&sorted, 1000.0, &percentiles, 10.0, |_, v| sum += v);
            sum
        })
    });
    group.finish();
}

fn rendering(c: &mut Criterion) {
    let snap = common::snapshot(10_000);
    let mut group = c.benchmark_group("render_per_series");
    group.throughput(Throughput::Elements(snap.series.len() as u64));
    let mut out = String::with_capacity(1 << 20);
    group.bench_function("console", |b| {
        b.iter(|| {
            for i in 0..snap.series.len() {
                out.clear();
                render_nested(&mut out, &snap, i);
            }
        })
    });
    let renderer = Renderer::new(&GraphiteConfig::default());
    let mut bytes = Vec::with_capacity(8 << 20);
    group.bench_function("graphite", |b| {
        b.iter(|| {
            bytes.clear();
            renderer.render(&snap, &mut bytes)
        })
    });
    group.bench_function("graphite_into_batch", |b| {
        b.iter(|| {
            let mut batch = Batch::default();
            renderer.render(&snap, &mut batch);
            batch
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    merge_and_finalize,
    merge_and_finalize_1m,
    timer_statistics,
    rendering
);
criterion_main!(benches);
