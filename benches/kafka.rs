//! Kafka sink costs: encoding per series for each format, and the time until a
//! 1,000,000-series snapshot is acknowledged by librdkafka's mock cluster.
//!
//! `cargo bench --bench kafka`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rstatsd::sink::kafka::KafkaConfig;
use rstatsd::sink::kafka::encode::{Encoder, Format};
use rstatsd::sink::{Flushed, SinkSpec};

mod common;
use common::snapshot;

fn encoding(c: &mut Criterion) {
    let snap = snapshot(10_000);
    let mut group = c.benchmark_group("encode_per_series");
    group.throughput(Throughput::Elements(snap.series.len() as u64));
    for (name, format) in [("json", Format::Json), ("json_nested", Format::JsonNested)] {
        let statics = vec![("apikey".to_string(), "k".to_string())];
        let mut encoder = Encoder::new(format, statics);
        let mut out = String::with_capacity(1 << 20);
        group.bench_function(name, |b| {
            b.iter(|| {
                for i in 0..snap.series.len() {
                    out.clear();
                    encoder.encode_one(&mut out, &snap, i);
                }
            })
        });
    }
    let mut out = String::with_capacity(1 << 20);
    let mut encoder = Encoder::new(Format::Influx, Vec::new());
    group.bench_function("influx", |b| {
        b.iter(|| {
            for i in 0..snap.series.len() {
                out.clear();
                encoder.encode_influx(&mut out, &snap, i);
            }
        })
    });
    group.finish();
}

fn delivery(c: &mut Criterion) {
    let cluster = rdkafka::mocking::MockCluster::new(3).unwrap();
    cluster.create_topic("metrics", 12, 1).unwrap();
    let snap = Flushed::new(Arc::new(snapshot(1_000_000)));
    let config = KafkaConfig {
        brokers: vec![cluster.bootstrap_servers()],
        ..KafkaConfig::default()
    };
    let mut group = c.benchmark_group("kafka_mock_cluster");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    group.throughput(Throughput::Elements(snap.snapshot.series.len() as u64));
    group.bench_function("deliver_1m_series_snapshot", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut sink = config
                    .build("bench", &Default::default())
                    .unwrap()
                    .remove(0)
                    .sink;
                let start = Instant::now();
                sink.send(&snap).unwrap();
                // close() returns once every message is acknowledged.
                assert_eq!(sink.close(), 0);
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, encoding, delivery);
criterion_main!(benches);
