//! The disk spool's cost: writing one snapshot of 100,000 Kafka `json` messages as one record
//! (encode, CRC32C, `write`, `fdatasync`) and reading it back. At one flush per second this is
//! the CPU an outage costs (the README's figure: time per snapshot / 1 s).
//!
//! `cargo bench --bench spool` (the spool directory is under the system's temp directory,
//! as the machine's disk is what is measured)

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use rstatsd::sink::SinkCounters;
use rstatsd::sink::batch::Batch;
use rstatsd::sink::spool::{Spool, SpoolSettings, State};

const SERIES: usize = 100_000;

/// A snapshot as the Kafka sink encodes it: one keyed `json` message per series.
fn snapshot() -> Batch {
    let topic: Arc<str> = Arc::from("metrics");
    let mut batch = Batch::default();
    for i in 0..SERIES {
        let name = format!("app.requests.k{i}");
        let payload = format!(
            "{{\"name\":\"{name}\",\"value\":{i},\"@timestamp\":\"2026-12-01T14:00:00.000Z\",\
             \"@version\":1,\"metric_type\":\"counter\",\"host\":\"web1\"}}"
        );
        batch.push(
            Some(Arc::clone(&topic)),
            Some(name.as_bytes()),
            payload.as_bytes(),
        );
    }
    batch.set_flushed_ms(1_795_323_600_000);
    batch
}

fn spool(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("rstatsd-bench-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = SpoolSettings {
        dir: dir.clone(),
        max_bytes: 1 << 30,
        segment_bytes: 16 << 20,
    };
    let batch = snapshot();
    let mut spool = Spool::open("bench", settings, Arc::new(SinkCounters::default()));
    let mut group = c.benchmark_group("spool");
    group.sample_size(20);
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("write_100k_series_snapshot", |b| {
        b.iter(|| {
            let id = spool.append(&batch, |_| true, State::Out).unwrap();
            spool.complete(id);
        })
    });
    // The same, timed in CPU time of this thread (user + system, from the scheduler), not
    // wall time: what the outage costs a core, without the wait for the disk.
    group.bench_function("write_100k_series_snapshot_cpu_time", |b| {
        b.iter_custom(|iters| {
            let start = thread_cpu_ns();
            for _ in 0..iters {
                let id = spool.append(&batch, |_| true, State::Out).unwrap();
                spool.complete(id);
            }
            Duration::from_nanos(thread_cpu_ns() - start)
        })
    });
    group.bench_function("write_and_read_back_100k_series_snapshot", |b| {
        b.iter(|| {
            spool.append(&batch, |_| true, State::Unread).unwrap();
            let (id, back) = spool.read_next().unwrap();
            assert_eq!(back.len(), SERIES);
            spool.complete(id);
        })
    });
    group.finish();
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}

/// CPU time this thread has run, in ns (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

criterion_group!(benches, spool);
criterion_main!(benches);
