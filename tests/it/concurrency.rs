//! No loss, no double counting across table swaps: 4 receivers, 8 senders, 1,000,000
//! counter increments over 200 keys, flushed every 100 ms.

use std::thread;
use std::time::Duration;

use crate::common::{Daemon, sender};

const SENDERS: usize = 8;
const KEYS: usize = 200;
const INCREMENTS: usize = 1_000_000;
const LINES_PER_DATAGRAM: usize = 25;
/// Pacing keeps the offered load within what a debug build on 2 cores drains, so the kernel
/// never drops: 10 datagrams per burst, one burst per 8 ms per sender (≈ 250k metrics/s).
const BURST: usize = 10;
const PAUSE: Duration = Duration::from_millis(8);

#[test]
fn a_million_increments_survive_swaps_exactly() {
    let _alone = crate::common::alone();
    let d = Daemon::start(&[
        "--receivers",
        "4",
        "--no-pystatsd",
        "--flush-interval-ms",
        "100",
        "--rcvbuf-bytes",
        "16777216",
    ]);
    let addr = d.statsd.unwrap();
    let per_sender = INCREMENTS / SENDERS;
    let datagrams_per_sender = per_sender / LINES_PER_DATAGRAM;
    thread::scope(|scope| {
        for t in 0..SENDERS {
            scope.spawn(move || {
                let socket = sender(addr);
                let mut n = t * per_sender;
                for i in 0..datagrams_per_sender {
                    let mut payload = String::with_capacity(LINES_PER_DATAGRAM * 16);
                    for _ in 0..LINES_PER_DATAGRAM {
                        payload.push_str(&format!("k{}:1|c\n", n % KEYS));
                        n += 1;
                    }
                    socket.send_to(payload.as_bytes(), addr).unwrap();
                    if i % BURST == BURST - 1 {
                        thread::sleep(PAUSE);
                    }
                }
            });
        }
    });
    let out = d.stop();
    assert!(out.status.success());

    let sum = |name: &str| -> f64 {
        out.records
            .iter()
            .filter(|r| r["name"] == name)
            .map(|r| r["values"]["count"].as_f64().unwrap())
            .sum()
    };
    // One `flush_duration_ms` record per flush (timestamps are whole seconds).
    let flushes = out
        .records
        .iter()
        .filter(|r| r["name"] == "rstatsd.flush_duration_ms")
        .count();
    assert!(flushes > 10, "expected many flushes, got {flushes}");
    // Kernel drops would show here first, separately from swap bugs.
    assert_eq!(
        sum("rstatsd.packets_received"),
        (SENDERS * datagrams_per_sender) as f64,
        "datagrams lost before reaching rstatsd"
    );
    assert_eq!(sum("rstatsd.metrics_received"), INCREMENTS as f64);
    let mut total = 0.0;
    for k in 0..KEYS {
        let per_key = sum(&format!("k{k}"));
        assert_eq!(per_key, (INCREMENTS / KEYS) as f64, "key k{k}");
        total += per_key;
    }
    assert_eq!(total, INCREMENTS as f64);
}
