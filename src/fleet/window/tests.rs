use super::*;
use crate::aggregate::partial::IntervalEnd;
use crate::aggregate::{Gauge, Value};
use crate::metric::SeriesKey;

const LEN: u64 = 1000;

fn settings(late: LatePolicy) -> WindowSettings {
    WindowSettings {
        interval_ms: LEN,
        grace_ms: LEN,
        live_intervals: 2,
        bounds: Bounds::EXACT,
        per_source: vec![MetricType::Gauge],
        source_tag: "source".into(),
        late,
        reemit_intervals: 2,
    }
}

fn origin(source: &str, epoch: u64, start: u64) -> Origin {
    Origin {
        source_id: source.into(),
        source_epoch_ms: epoch,
        interval_start_ms: start,
        interval_ms: LEN as u32,
    }
}

fn counter(source: &str, start: u64, seq: u32, name: &str, v: f64) -> Envelope {
    Envelope::Partial(Partial {
        origin: origin(source, 1, start),
        seq: Some(seq),
        key: SeriesKey::new(name, MetricType::Counter, Vec::<(&str, &str)>::new()),
        value: Value::Counter(v),
    })
}

fn end(source: &str, start: u64, partials: u32) -> Envelope {
    Envelope::End(IntervalEnd {
        origin: origin(source, 1, start),
        partials,
        partitions: 1,
        last: false,
    })
}

/// Feeds `envelopes` to partition 0 in order, from `offset` on.
struct Feed {
    w: Window,
    offset: i64,
    counters: Arc<FleetCounters>,
}

impl Feed {
    fn new(late: LatePolicy) -> Feed {
        let counters = Arc::<FleetCounters>::default();
        let mut w = Window::new(settings(late), Arc::clone(&counters));
        w.assign(0, None, 0);
        Feed {
            w,
            offset: 0,
            counters,
        }
    }

    fn send(&mut self, envelopes: Vec<Envelope>, now: u64) {
        for e in envelopes {
            self.w.offer(0, self.offset, e, now);
            self.offset += 1;
        }
    }

    /// One interval of both sources: a counter each and their markers.
    fn interval(&mut self, start: u64, now: u64) {
        self.send(
            vec![
                counter("a", start, 0, "c", 1.0),
                end("a", start, 1),
                counter("b", start, 0, "c", 2.0),
                end("b", start, 1),
            ],
            now,
        );
    }

    fn count(&self, c: &std::sync::atomic::AtomicU64) -> u64 {
        let _ = &self.counters;
        c.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn value(closed: &Closed, name: &str, mtype: MetricType, tags: &[(&str, &str)]) -> Value {
    let key = SeriesKey::new(name, mtype, tags.iter().copied());
    closed.state.series.get(&key).cloned().expect(name)
}

#[test]
fn intervals_close_on_markers_once_the_partition_was_watched_long_enough() {
    let mut f = Feed::new(LatePolicy::Drop);
    // Watched for one interval of traffic: with live_intervals = 2 it cannot know every
    // live source yet, so only grace closes (at its end, or first message, + 1000).
    f.interval(0, 1000);
    assert!(f.w.close_due(1999).is_empty());
    let closed = f.w.close_due(2000);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].state.timestamp_ms, 1000);
    assert_eq!(
        value(&closed[0], "c", MetricType::Counter, &[]),
        Value::Counter(3.0)
    );
    // Two intervals of traffic: every live source's marker closes it at once.
    f.interval(1000, 2000);
    let closed = f.w.close_due(2000);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].state.timestamp_ms, 2000);
    assert_eq!(f.count(&f.counters.closed_grace), 1);
    assert_eq!(f.count(&f.counters.closed_complete), 1);
    assert_eq!(f.w.open_intervals(), 0);
}

#[test]
fn a_backlog_after_an_outage_waits_for_every_source() {
    let mut f = Feed::new(LatePolicy::Drop);
    for start in [0, 1000, 2000] {
        f.interval(start, start + LEN);
    }
    assert_eq!(f.w.close_due(3000).len(), 3);
    // Kafka was down for an hour. Then `a` replays its 10 intervals before `b` does.
    let back = 3_600_000;
    for start in (3000..13_000).step_by(1000) {
        f.send(
            vec![counter("a", start, 0, "c", 1.0), end("a", start, 1)],
            back,
        );
    }
    assert!(
        f.w.close_due(back).is_empty(),
        "b is live: its backlog is coming"
    );
    for start in (3000..13_000).step_by(1000) {
        f.send(
            vec![counter("b", start, 0, "c", 2.0), end("b", start, 1)],
            back + 500,
        );
    }
    let closed = f.w.close_due(back + 500);
    assert_eq!(closed.len(), 10);
    for c in &closed {
        assert_eq!(value(c, "c", MetricType::Counter, &[]), Value::Counter(3.0));
    }
    assert_eq!(f.count(&f.counters.late), 0);
}

#[test]
fn a_restart_mid_interval_is_waited_for() {
    let mut f = Feed::new(LatePolicy::Drop);
    for start in [0, 1000, 2000] {
        f.interval(start, start + LEN);
    }
    f.w.close_due(3000);
    // b stops cleanly mid-interval 3000: its final marker.
    let mut last = end("b", 3000, 1);
    if let Envelope::End(e) = &mut last {
        e.last = true;
    }
    f.send(vec![counter("b", 3000, 0, "c", 2.0), last], 3500);
    f.send(
        vec![counter("a", 3000, 0, "c", 1.0), end("a", 3000, 1)],
        4000,
    );
    assert!(
        f.w.close_due(4000).is_empty(),
        "b may come back as a new epoch"
    );
    let restarted = |e: Envelope| match e {
        Envelope::Partial(mut p) => {
            p.origin.source_epoch_ms = 2;
            Envelope::Partial(p)
        }
        Envelope::End(mut m) => {
            m.origin.source_epoch_ms = 2;
            Envelope::End(m)
        }
    };
    f.send(
        vec![
            restarted(counter("b", 3000, 0, "c", 5.0)),
            restarted(end("b", 3000, 1)),
        ],
        4010,
    );
    let closed = f.w.close_due(4010);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        value(&closed[0], "c", MetricType::Counter, &[]),
        Value::Counter(8.0)
    );
    // Had it not come back, grace would have closed it.
    f.send(
        vec![counter("a", 4000, 0, "c", 1.0), end("a", 4000, 1)],
        5000,
    );
    f.send(vec![counter("b", 4000, 0, "c", 1.0)], 5000);
    assert!(f.w.close_due(5999).is_empty());
    assert_eq!(f.w.close_due(6000).len(), 1);
}

#[test]
fn a_missing_marker_holds_the_interval_until_grace() {
    let mut f = Feed::new(LatePolicy::Drop);
    for start in [0, 1000, 2000] {
        f.interval(start, start + LEN);
    }
    f.w.close_due(3000);
    // b's marker for 3000 is missing: open until 3000 + 1000 + grace, on traffic.
    f.send(
        vec![
            counter("a", 3000, 0, "c", 1.0),
            end("a", 3000, 1),
            counter("b", 3000, 0, "c", 2.0),
        ],
        4000,
    );
    assert!(f.w.close_due(4000).is_empty());
    assert!(f.w.close_due(4999).is_empty());
    // Only the wall clock passed: the partition was busy until 4000, so wait for
    // traffic or idleness.
    f.interval(4000, 5000);
    let closed = f.w.close_due(5000);
    assert_eq!(closed.len(), 2, "3000 by grace, then 4000 complete");
    assert_eq!(closed[0].state.timestamp_ms, 4000);
    assert_eq!(
        value(&closed[0], "c", MetricType::Counter, &[]),
        Value::Counter(3.0)
    );
}

#[test]
fn duplicates_are_counted_once_and_late_partials_dropped() {
    let mut f = Feed::new(LatePolicy::Drop);
    f.send(
        vec![
            counter("a", 0, 0, "c", 1.0),
            counter("a", 0, 0, "c", 1.0),
            counter("a", 0, 1, "d", 5.0),
            counter("a", 0, 1, "d", 5.0),
            end("a", 0, 2),
        ],
        1000,
    );
    assert_eq!(f.count(&f.counters.duplicates), 2);
    assert_eq!(f.count(&f.counters.partials), 2);
    let closed = f.w.close_due(2000 + 1);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        value(&closed[0], "c", MetricType::Counter, &[]),
        Value::Counter(1.0)
    );
    assert_eq!(
        value(&closed[0], "d", MetricType::Counter, &[]),
        Value::Counter(5.0)
    );
    f.send(vec![counter("b", 0, 0, "c", 7.0)], 2500);
    assert_eq!(f.count(&f.counters.late), 1);
    assert!(f.w.close_due(2600).is_empty());
}

#[test]
fn reemit_sends_the_corrected_interval_in_full() {
    let mut f = Feed::new(LatePolicy::Reemit);
    f.send(vec![counter("a", 0, 0, "c", 1.0), end("a", 0, 1)], 1000);
    assert_eq!(f.w.close_due(2001).len(), 1);
    // Late, and delivered twice (a retry): merged once.
    f.send(
        vec![counter("b", 0, 0, "c", 7.0), counter("b", 0, 0, "c", 7.0)],
        2500,
    );
    let closed = f.w.close_due(2600);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].state.timestamp_ms, 1000);
    assert_eq!(
        value(&closed[0], "c", MetricType::Counter, &[]),
        Value::Counter(8.0)
    );
    assert_eq!(f.count(&f.counters.reemitted), 1);
    assert_eq!(f.count(&f.counters.duplicates), 1);
    assert_eq!(f.count(&f.counters.late), 2);
}

#[test]
fn a_source_that_stops_is_waited_for_only_while_live() {
    let mut f = Feed::new(LatePolicy::Drop);
    for start in [0, 1000, 2000] {
        f.interval(start, start + LEN);
    }
    assert_eq!(f.w.close_due(3000).len(), 3);
    // b stops after 2000: it is waited for while live (traffic time), then not.
    let mut closed = Vec::new();
    for start in [3000, 4000, 5000] {
        f.send(
            vec![counter("a", start, 0, "c", 1.0), end("a", start, 1)],
            start + LEN,
        );
        closed.extend(
            f.w.close_due(start + LEN)
                .into_iter()
                .map(|c| c.state.timestamp_ms),
        );
    }
    assert_eq!(closed, vec![4000, 5000, 6000]);
    // 3000 by grace; by the time 4000 is due, b has been silent for longer than
    // live_intervals of traffic time, so 4000 and 5000 close on a's markers.
    assert_eq!(f.count(&f.counters.closed_grace), 1);
    assert_eq!(f.count(&f.counters.closed_complete), 3 + 2);
    assert_eq!(f.w.open_intervals(), 0);
}

#[test]
fn every_epoch_of_a_source_must_complete() {
    let mut f = Feed::new(LatePolicy::Drop);
    for start in [0, 1000, 2000] {
        f.interval(start, start + LEN);
    }
    assert_eq!(f.w.close_due(3000).len(), 3);
    // a restarted mid-interval: epoch 1 wrote 1 partial, epoch 2's marker says 2.
    let restarted = |seq| {
        let Envelope::Partial(mut p) = counter("a", 3000, seq, "c", 10.0) else {
            unreachable!()
        };
        p.origin.source_epoch_ms = 2;
        Envelope::Partial(p)
    };
    let mut end2 = end("a", 3000, 2);
    if let Envelope::End(e) = &mut end2 {
        e.origin.source_epoch_ms = 2;
    }
    f.interval(3000, 3900);
    f.send(vec![restarted(0), end2], 3900);
    assert!(f.w.close_due(3900).is_empty(), "epoch 2 has 1 of 2");
    f.send(vec![restarted(1)], 3950);
    let closed = f.w.close_due(3950);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        value(&closed[0], "c", MetricType::Counter, &[]),
        Value::Counter(23.0)
    );
}

#[test]
fn gauges_keep_their_source() {
    let mut f = Feed::new(LatePolicy::Drop);
    let gauge = |source: &str, v| {
        Envelope::Partial(Partial {
            origin: origin(source, 1, 0),
            seq: Some(0),
            key: SeriesKey::new("g", MetricType::Gauge, [("env", "prod")]),
            value: Value::Gauge(Gauge {
                value: v,
                absolute: true,
                stamp: 5,
            }),
        })
    };
    f.send(vec![gauge("a", 1.0), gauge("b", 2.0)], 1000);
    let closed = f.w.close_due(2001);
    let g = |s| {
        value(
            &closed[0],
            "g",
            MetricType::Gauge,
            &[("env", "prod"), ("source", s)],
        )
    };
    assert!(matches!(g("a"), Value::Gauge(Gauge { value: 1.0, .. })));
    assert!(matches!(g("b"), Value::Gauge(Gauge { value: 2.0, .. })));
}

#[test]
fn commits_stop_at_the_oldest_unsettled_interval() {
    let mut f = Feed::new(LatePolicy::Drop);
    f.interval(0, 1000); // offsets 0..4
    f.interval(1000, 2000); // offsets 4..8
    assert_eq!(
        f.w.commits(),
        vec![(
            0,
            Position {
                offset: 0,
                closed_through: None
            }
        )]
    );
    let closed = f.w.close_due(2000);
    assert_eq!(closed.len(), 2);
    assert_eq!(f.w.commits()[0].1.offset, 0, "emitted but not settled");
    // The newer one settles first: nothing below the older one may be skipped.
    f.w.settle(closed[1].id, true);
    assert_eq!(
        f.w.commits(),
        vec![(
            0,
            Position {
                offset: 0,
                closed_through: None
            }
        )]
    );
    // A sink dropped the older one: it stays unsettled.
    f.w.settle(closed[0].id, false);
    assert!(f.w.commits().is_empty());
    f.interval(2000, 3000); // offsets 8..12
    let closed = f.w.close_due(3000);
    f.w.settle(closed[0].id, true);
    assert_eq!(
        f.w.commits(),
        vec![(
            0,
            Position {
                offset: 0,
                closed_through: None
            }
        )]
    );
}

#[test]
fn settled_intervals_advance_the_commit_and_closed_through() {
    let mut f = Feed::new(LatePolicy::Drop);
    f.interval(0, 1000);
    f.interval(1000, 2000);
    let closed = f.w.close_due(2000);
    f.w.settle(closed[1].id, true);
    f.w.settle(closed[0].id, true);
    assert_eq!(
        f.w.commits(),
        vec![(
            0,
            Position {
                offset: 8,
                closed_through: Some(1000)
            }
        )]
    );
    assert!(f.w.commits().is_empty(), "nothing changed");
}

#[test]
fn intervals_far_ahead_of_the_clock_are_refused() {
    let mut f = Feed::new(LatePolicy::Drop);
    f.send(vec![counter("a", 100 * LEN, 0, "c", 1.0)], 0);
    f.send(vec![counter("a", u64::MAX / LEN * LEN, 0, "c", 1.0)], 0);
    f.send(vec![counter("a", 10 * LEN, 0, "c", 1.0)], 0);
    assert_eq!(f.count(&f.counters.invalid), 2);
    assert_eq!(f.w.open_intervals(), 1);
    assert_eq!(
        f.w.commits()[0].1.offset,
        2,
        "the refused ones are consumed"
    );
}

#[test]
fn a_new_owner_treats_committed_intervals_as_late() {
    let counters = Arc::<FleetCounters>::default();
    let mut w = Window::new(settings(LatePolicy::Drop), Arc::clone(&counters));
    w.assign(3, Some(1000), 0);
    w.offer(3, 10, counter("a", 1000, 0, "c", 1.0), 100);
    w.offer(3, 11, counter("a", 2000, 0, "c", 1.0), 100);
    assert_eq!(counters.late.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(w.open_intervals(), 1);
    w.revoke(3);
    assert_eq!(w.open_intervals(), 0);
    w.offer(3, 12, counter("a", 2000, 1, "c", 1.0), 100);
    assert_eq!(w.open_intervals(), 0, "not ours any more");
}
