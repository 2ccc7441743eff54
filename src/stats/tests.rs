use super::*;

#[test]
fn basic_detail_keeps_problems_only_when_they_happen() {
    let mut busy = ReceiverStats {
        packets_received: 3,
        metrics_received: 5,
        events_skipped: 1,
        ..ReceiverStats::default()
    };
    busy.bad_lines[Reject::NoValue.index()] = 2;
    let receivers = [
        (Protocol::Statsd, busy),
        (Protocol::Pystatsd, ReceiverStats::default()),
    ];
    let buffers = [(Protocol::Statsd, 4096), (Protocol::Pystatsd, 4096)];
    let facts = FlushFacts {
        receivers: &receivers,
        receive_buffers: &buffers,
        socket_drops: vec![(Protocol::Statsd, 0), (Protocol::Pystatsd, 0)],
        sinks: vec![(
            "console",
            SinkTotals {
                delivered: 7,
                queue_dropped: 1,
                ..SinkTotals::default()
            },
            SinkTotals::default(),
        )],
        guard_tracked_names: Some(4),
        ..FlushFacts::default()
    };
    let stats = collect(&facts);
    let basic: Vec<String> = stats
        .iter()
        .filter(|s| s.in_flush(Detail::Basic))
        .map(|s| {
            let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {}", s.name, tags.join(","))
        })
        .collect();
    assert_eq!(
        basic,
        [
            "packets_received listener=statsd",
            "metrics_received listener=statsd",
            "events_skipped listener=statsd",
            "bad_lines listener=statsd,reason=no_value",
            "packets_received listener=pystatsd",
            "metrics_received listener=pystatsd",
            "socket_drops listener=statsd",
            "socket_drops listener=pystatsd",
            "receive_buffer_bytes listener=statsd",
            "receive_buffer_bytes listener=pystatsd",
            "series ",
            "flush_duration_ms ",
            "gauges_kept ",
            "sink_delivered sink=console",
            "sink_queue_dropped sink=console",
            "sink_buffered_bytes sink=console",
        ]
    );
    // Full detail: every counter of both listeners, every reason, every sink counter.
    let full = stats.iter().filter(|s| s.in_flush(Detail::Full)).count();
    assert_eq!(full, stats.len());
    assert_eq!(stats.len(), 2 * (11 + Reject::ALL.len() + 2) + 6 + 8);
}

#[test]
fn receiver_stats_add_every_counter() {
    let mut a = ReceiverStats {
        recv_errors: 1,
        service_checks_skipped: 2,
        ..ReceiverStats::default()
    };
    a.bad_lines[0] = 1;
    let b = a.clone();
    a.add(&b);
    assert_eq!((a.recv_errors, a.service_checks_skipped), (2, 4));
    assert_eq!(a.bad_lines[0], 2);
}
