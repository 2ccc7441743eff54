//! One receiver thread on a loopback socket, fed by an in-process sender: the daemon's
//! receive → parse → aggregate path with real `recvmmsg`, in metrics per second.
//!
//! `cargo bench --bench end_to_end`. Each iteration sends a burst of 20-metric datagrams
//! over 1,000 keys, then asks the receiver to swap (the flusher's request) and waits for
//! its harvest. The receiver answers between batches, so a few datagrams of a burst may
//! land in the next harvest; over the run they even out. A burst stays within what the
//! receive buffer holds, and the bench fails unless every metric sent was aggregated in
//! the end (otherwise it would measure the kernel's drops, not rstatsd).

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::unbounded;

use rstatsd::aggregate::{AggregateLimits, SeriesGuard};
use rstatsd::parse::Limits;
use rstatsd::parse::Protocol;
use rstatsd::receive::{self, Control, ReceiverSettings};

const PER_DATAGRAM: usize = 20;
const BURST: usize = 1_000;

fn receiver(c: &mut Criterion) {
    let group_ = receive::bind_group("127.0.0.1:0".parse().unwrap(), 1, 8 << 20).unwrap();
    let addr = group_.local_addr;
    let socket = group_.sockets.into_iter().next().unwrap();
    let (control, control_rx) = unbounded();
    let (harvest_tx, harvests) = unbounded();
    let guard = Arc::new(SeriesGuard::new(&AggregateLimits::default()));
    let settings = ReceiverSettings {
        protocol: Protocol::Statsd,
        batch_size: 64,
        max_datagram_bytes: 65536,
        coalesce: Duration::from_millis(1),
        sanitize_names: true,
        limits: Limits::default(),
        bounds: rstatsd::aggregate::Bounds::default(),
        guard: Arc::clone(&guard),
        epoch: std::time::Instant::now(),
    };
    let pool = receive::SocketPool::new(vec![socket]);
    let thread = receive::spawn(0, 0, pool, settings, control_rx, harvest_tx).unwrap();

    let datagrams: Vec<Vec<u8>> = (0..50)
        .map(|d| {
            (0..PER_DATAGRAM)
                .map(|m| {
                    format!(
                        "app.service.requests.k{}:1|c\n",
                        (d * PER_DATAGRAM + m) % 1000
                    )
                })
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    let mut received = 0u64;

    let mut group = c.benchmark_group("end_to_end");
    group.sample_size(20);
    group.throughput(Throughput::Elements((BURST * PER_DATAGRAM) as u64));
    group.bench_function("loopback_20_metrics_per_datagram", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for i in 0..BURST {
                    sender
                        .send_to(&datagrams[i % datagrams.len()], addr)
                        .unwrap();
                }
                control.send(Control::Swap).unwrap();
                let harvest = harvests.recv().unwrap();
                total += start.elapsed();
                sent += (BURST * PER_DATAGRAM) as u64;
                received += harvest.stats.metrics_received;
                // What the flusher does with a collected table: free its guard slots.
                guard.release(harvest.table.len());
            }
            total
        })
    });
    group.finish();
    control.send(Control::Final).unwrap();
    received += harvests.recv().unwrap().stats.metrics_received;
    thread.join().unwrap();
    assert_eq!(
        received, sent,
        "metrics lost: the bench would measure the kernel's drops"
    );
}

criterion_group!(benches, receiver);
criterion_main!(benches);
