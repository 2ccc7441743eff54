use std::net::UdpSocket;
use std::sync::atomic::Ordering;

use nix::sys::socket::MsgFlags;

use super::receiver::{ReceiverThread, next_pause};
use super::*;
use crate::aggregate::{AggregateLimits, Value};

#[test]
fn the_pause_grows_while_batches_come_back_small_and_shrinks_under_load() {
    let base = Duration::from_millis(1);
    let mut pause = base;
    for _ in 0..20 {
        pause = next_pause(pause, 4, 64, base);
    }
    assert_eq!(pause, base * MAX_PAUSE_FACTOR);
    pause = next_pause(pause, 640, 64, base);
    assert!(pause < base * 5, "{pause:?}");
    for _ in 0..20 {
        pause = next_pause(pause, 640, 64, base);
    }
    assert_eq!(pause, base);
    // One full batch per pause is where it settles.
    assert_eq!(next_pause(base * 3, 64, 64, base), base * 3);
}
use crate::metric::{MetricType, SeriesKey};

fn settings(batch_size: usize) -> ReceiverSettings {
    ReceiverSettings {
        protocol: Protocol::Statsd,
        batch_size,
        max_datagram_bytes: 1024,
        coalesce: Duration::ZERO,
        sanitize_names: true,
        limits: Limits::default(),
        bounds: Bounds::default(),
        guard: Arc::new(SeriesGuard::new(&AggregateLimits::default())),
        epoch: Instant::now(),
    }
}

#[test]
fn a_backlogged_socket_is_shared_and_keeps_its_senders_order() {
    let group = bind_group("127.0.0.1:0".parse().unwrap(), 2, 1 << 20).unwrap();
    let addr = group.local_addr;
    let pool = SocketPool::new(group.sockets);
    // One epoch for both, as in a server: stamps of different receivers are compared.
    let settings = settings(4);
    let mut a = ReceiverThread::new(Arc::clone(&pool), 0, settings.clone());
    let mut b = ReceiverThread::new(Arc::clone(&pool), 1, settings);
    // One sender socket: the kernel puts all of it on one of the two sockets.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 1..=12 {
        sender
            .send_to(format!("c:1|c\ng:{i}|g").as_bytes(), addr)
            .unwrap();
    }
    // Whichever socket it is, its owner's first two batches (of 4) fill up, so the other
    // receiver reads the third; after that the socket is empty.
    let mut got = [0, 0];
    for _ in 0..3 {
        got[0] += a.pass().0;
        got[1] += b.pass().0;
    }
    got.sort();
    assert_eq!(got, [4, 8]);
    assert_eq!((a.pass(), b.pass()), ((0, false), (0, false)));
    let counter = SeriesKey::new("c", MetricType::Counter, Vec::<(&str, &str)>::new());
    let gauge = SeriesKey::new("g", MetricType::Gauge, Vec::<(&str, &str)>::new());
    // The later batch carries the later stamp: the sender's last gauge wins the merge,
    // in either direction.
    for (mut into, from) in [(a.state.table.clone(), &b), (b.state.table.clone(), &a)] {
        into.merge(from.state.table.clone());
        assert!(matches!(into.get(&counter), Some(Value::Counter(c)) if *c == 12.0));
        let Some(Value::Gauge(g)) = into.get(&gauge) else {
            panic!("no gauge")
        };
        assert_eq!(g.value, 12.0);
    }
    // Every socket is handed back, and none is backlogged any more.
    for i in 0..2 {
        assert!(!pool.busy[i].load(Ordering::Relaxed));
        assert!(!pool.backlogged[i].load(Ordering::Relaxed));
    }
}

#[test]
fn gauge_stamps_count_from_the_servers_epoch_not_the_threads_start() {
    let group = bind_group("127.0.0.1:0".parse().unwrap(), 1, 1 << 20).unwrap();
    let addr = group.local_addr;
    let an_hour = Duration::from_secs(3600);
    let settings = ReceiverSettings {
        // A receiver started an hour after the server (the epoch) must stamp later than
        // one started with it: stamps from different receivers are compared.
        epoch: Instant::now() - an_hour,
        ..settings(4)
    };
    let mut receiver = ReceiverThread::new(SocketPool::new(group.sockets), 0, settings);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(b"g:1|g", addr)
        .unwrap();
    assert_eq!(receiver.receive_batch(0, MsgFlags::empty()), Some(1));
    let key = SeriesKey::new("g", MetricType::Gauge, Vec::<(&str, &str)>::new());
    let Some(Value::Gauge(g)) = receiver.state.table.get(&key) else {
        panic!("no gauge")
    };
    assert!(g.stamp >= an_hour.as_nanos() as u64, "stamp {}", g.stamp);
}
