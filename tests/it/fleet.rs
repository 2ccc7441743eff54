//! Fleet-wide aggregation end to end: real `rstatsd` processes (locals writing `partial`
//! messages, aggregators in one consumer group) around librdkafka's mock cluster (the real
//! Kafka protocol over loopback TCP; it reassigns a SIGKILLed member's partitions after the
//! session timeout, which tansu does not). The aggregators write `json-nested` to a topic the
//! test reads back.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

use crate::common::kafka::{MockCluster, consume_all, java_partition, mock_cluster};
use crate::common::{
    ConfigFile, Daemon, Id, metric_value, record_id, record_values, sender, wait_metric,
};
use rstatsd::aggregate::Value as Agg;
use rstatsd::aggregate::partial::{IntervalEnd, Origin, encode_end, encode_partial};
use rstatsd::metric::{MetricType, SeriesKey};

const PARTITIONS: i32 = 4;
const INTERVAL_MS: u64 = 1000;

/// How many partitions of `partials` an aggregator owns (a `/metrics` gauge).
const ASSIGNED: &str = "rstatsd_fleet_assigned_partitions";

#[test]
fn three_locals_two_aggregators_give_exact_fleet_totals_and_bounded_error_estimates() {
    let _alone = crate::common::alone();
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let a1 = aggregator(&bootstrap, "a1", "");
    let a2 = aggregator(&bootstrap, "a2", "");
    wait_assigned(&[&a1, &a2], Duration::from_secs(30));
    let (locals, socket) = locals(&bootstrap, 3);

    // One interval with timers and sets past their exact bounds on every host: sent right
    // after a boundary so that all of it lands in one interval.
    align(50);
    let mut samples = Vec::new();
    for (i, l) in locals.iter().enumerate() {
        let mut batch = String::new();
        for k in 0..600u32 {
            let v = f64::from(k * 3 + i as u32) / 3.0 + 1.0;
            samples.push(v);
            batch.push_str(&format!("lat:{v}|ms\n"));
            if batch.len() > 1200 {
                l.daemon.send_statsd(&socket, batch.trim_end().as_bytes());
                batch.clear();
            }
        }
        l.daemon.send_statsd(&socket, batch.trim_end().as_bytes());
        // Hosts overlap by half: 3000 distinct users over the fleet.
        for chunk in (0..1500u32).collect::<Vec<_>>().chunks(50) {
            let lines: Vec<String> = chunk
                .iter()
                .map(|u| format!("users:user-{}|s", u + 750 * i as u32))
                .collect();
            l.daemon.send_statsd(&socket, lines.join("\n").as_bytes());
        }
        l.daemon
            .send_statsd(&socket, format!("temp:{}|g", 20 + i).as_bytes());
    }
    // The interval's end, in seconds as the messages carry it.
    let timer_interval = now_ms().div_ceil(INTERVAL_MS) * INTERVAL_MS / 1000;
    // Then counters over about four intervals.
    for _ in 0..4 {
        for l in &locals {
            traffic(&socket, &l.daemon, "req", 200, 300);
        }
    }
    // Past the next boundary, so that every increment is in a boundary flush.
    align(300);
    let outputs: Vec<_> = locals.into_iter().map(|l| l.daemon.stop()).collect();
    let sent = 3.0 * 4.0 * 200.0;
    let global = wait_total(&bootstrap, "req", sent, Duration::from_secs(30));

    // Every interval's global counter is the sum of what the hosts reported for it.
    let mut expected: BTreeMap<u64, f64> = BTreeMap::new();
    for out in &outputs {
        out.assert_clean_stop();
        for ((id, ts), v) in local_records(&out.records) {
            if id == counter("req") {
                *expected.entry(ts).or_default() += v["count"];
            }
        }
    }
    let got: BTreeMap<u64, f64> = global
        .iter()
        .filter(|((id, _), _)| *id == counter("req"))
        .map(|((_, ts), v)| (*ts, v["count"]))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(counter_total(&global, "req.bytes"), sent * 10.0);

    // The timer: exact count, p99 within the sketch's relative accuracy.
    let timer = global
        .iter()
        .find(|((id, ts), _)| id.0 == "lat" && *ts == timer_interval)
        .map(|(_, v)| v.clone())
        .expect("timer in its interval");
    samples.sort_by(f64::total_cmp);
    assert_eq!(timer["count"], samples.len() as f64);
    let exact = samples[(0.99 * samples.len() as f64).round() as usize - 1];
    let p99 = timer["upper_99"];
    assert!(
        (p99 - exact).abs() <= 0.01 * exact + 1.0 / 3.0,
        "p99 {p99} vs exact {exact}"
    );
    assert_eq!(timer["upper"], *samples.last().unwrap());
    assert_eq!(timer["lower"], samples[0]);

    // The set: within 3 standard errors (1.04/√2^14) of 3000.
    let users = global
        .iter()
        .find(|((id, ts), _)| id.0 == "users" && *ts == timer_interval)
        .map(|(_, v)| v["count"])
        .expect("set");
    assert!(
        (users - 3000.0).abs() <= 3.0 * 1.04 / 128.0 * 3000.0,
        "{users}"
    );

    // Gauges stay per host.
    for i in 0..3 {
        let id = (
            "temp".to_string(),
            "gauge".to_string(),
            vec![("source".to_string(), format!("host-{i}"))],
        );
        let v = &global[&(id, timer_interval)];
        assert_eq!(v["value"], 20.0 + i as f64);
    }
    for a in [&a1, &a2] {
        assert_eq!(
            metric_value(&a.daemon, "rstatsd_fleet_duplicates_total"),
            Some(0.0)
        );
    }
    a1.daemon.stop().assert_clean_stop();
    a2.daemon.stop().assert_clean_stop();
}

#[test]
fn a_sigkilled_aggregator_loses_nothing_and_its_partitions_move() {
    let _alone = crate::common::alone();
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let a1 = aggregator(&bootstrap, "k1", "");
    let a2 = aggregator(&bootstrap, "k2", "");
    wait_assigned(&[&a1, &a2], Duration::from_secs(30));
    let (locals, socket) = locals(&bootstrap, 3);
    let mut sent = 0.0;
    let round = |n: u32| req_to_every(&socket, &locals, n, 200);
    sent += round(100);
    sent += round(100);
    // Mid-interval.
    align(500);
    let killed_at = Instant::now();
    // The end (in seconds, as the output stamps it) of the interval the kill falls in.
    let kill_interval_end = (now_ms() / INTERVAL_MS + 1) * INTERVAL_MS / 1000;
    a1.daemon.kill9();
    // Nothing more for that interval, so it and the ones before hold what was sent so far
    // (100 ms past the boundary: the locals' flushers have swapped by then).
    let before_kill = sent;
    align(100);
    // Traffic goes on while the group notices.
    let (mut recovered, mut caught_up) = (None, None);
    // Both are waited for: /metrics advances once per flush, so the survivor's ownership
    // may show there after the intervals are already out.
    while killed_at.elapsed() < Duration::from_secs(30)
        && (caught_up.is_none() || recovered.is_none())
    {
        sent += round(50);
        if recovered.is_none() && metric_value(&a2.daemon, ASSIGNED) == Some(f64::from(PARTITIONS))
        {
            recovered = Some(killed_at.elapsed());
        }
        if caught_up.is_none()
            && total_through(&read_global(&bootstrap), "req", kill_interval_end) == before_kill
        {
            caught_up = Some(killed_at.elapsed());
        }
    }
    let caught_up = caught_up.expect("the intervals around the kill never came out whole");
    let recovered = recovered.expect("the survivor never took every partition");
    eprintln!(
        "failover: the survivor owned every partition {recovered:?} and every interval up to \
         the kill was out {caught_up:?} after the SIGKILL"
    );
    // Default settings: the session timeout follows the flush interval (6 s here), not
    // librdkafka's 45 s.
    assert!(
        caught_up <= Duration::from_secs(15),
        "the dead aggregator's intervals came out {caught_up:?} after its SIGKILL"
    );
    sent += round(100);
    // The killed one comes back and gets its share again.
    let a3 = aggregator(&bootstrap, "k3", "");
    wait_assigned(&[&a2, &a3], Duration::from_secs(30));
    sent += round(100);
    for l in locals {
        l.daemon.stop().assert_clean_stop();
    }
    wait_total(&bootstrap, "req", sent, Duration::from_secs(30));
    a2.daemon.stop().assert_clean_stop();
    a3.daemon.stop().assert_clean_stop();
}

#[test]
fn a_kafka_outage_delays_partials_and_loses_none() {
    let _alone = crate::common::alone();
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let a = aggregator(&bootstrap, "o1", "");
    wait_assigned(&[&a], Duration::from_secs(30));
    let (locals, socket) = locals(&bootstrap, 2);
    let mut sent = 0.0;
    let mut round = |n: u32| sent += req_to_every(&socket, &locals, n, 250);
    round(100);
    round(100);
    // The only broker goes down for several intervals: the hosts keep their partials (and
    // librdkafka retries them), the aggregator reads nothing.
    cluster.broker_down(1).unwrap();
    for _ in 0..8 {
        round(50);
    }
    cluster.broker_up(1).unwrap();
    round(100);
    align(300);
    for l in locals {
        l.daemon.stop().assert_clean_stop();
    }
    wait_total(&bootstrap, "req", sent, Duration::from_secs(60));
    assert_eq!(
        metric_value(&a.daemon, "rstatsd_fleet_late_total"),
        Some(0.0)
    );
    a.daemon.stop().assert_clean_stop();
}

/// A fake source: writes partials for one interval with the library's own encoder.
struct Source {
    producer: BaseProducer,
    origin: Origin,
}

impl Source {
    fn new(bootstrap: &str, id: &str, start: u64) -> Source {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        Source {
            producer,
            origin: Origin {
                source_id: id.into(),
                source_epoch_ms: 1,
                interval_start_ms: start,
                interval_ms: INTERVAL_MS as u32,
            },
        }
    }

    fn send(&self, partition: i32, key: &[u8], payload: &[u8]) {
        self.producer
            .send(
                BaseRecord::to("partials")
                    .partition(partition)
                    .key(key)
                    .payload(payload),
            )
            .unwrap();
    }

    /// Counter `name` = `value` with `seq`, to its partition.
    fn counter(&self, name: &str, value: f64, seq: u32) {
        let key = SeriesKey::new(name, MetricType::Counter, Vec::<(&str, &str)>::new());
        let mut payload = Vec::new();
        encode_partial(
            &mut payload,
            &self.origin,
            Some(seq),
            &key,
            &Agg::Counter(value),
            0,
        );
        let p = java_partition(name.as_bytes(), PARTITIONS as u32);
        self.send(p, name.as_bytes(), &payload);
    }

    fn markers(&self, per_partition: &[u32]) {
        for (p, n) in per_partition.iter().enumerate() {
            let mut payload = Vec::new();
            let end = IntervalEnd {
                origin: self.origin.clone(),
                partials: *n,
                partitions: PARTITIONS as u32,
                last: false,
            };
            encode_end(&mut payload, &end);
            self.send(p as i32, self.origin.source_id.as_bytes(), &payload);
        }
        self.producer.flush(Duration::from_secs(10)).unwrap();
    }
}

#[test]
fn partials_delivered_twice_change_nothing() {
    let _alone = crate::common::alone();
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let a = aggregator(&bootstrap, "d1", "");
    wait_assigned(&[&a], Duration::from_secs(30));
    let start = now_ms() / INTERVAL_MS * INTERVAL_MS;
    let source = Source::new(&bootstrap, "fake", start);
    // Every partial twice, as a producer retry or a spool replay would deliver it.
    let mut counts = [0u32; PARTITIONS as usize];
    for (name, v) in [("x", 5.0), ("y", 7.0), ("z", 11.0)] {
        let p = java_partition(name.as_bytes(), PARTITIONS as u32) as usize;
        source.counter(name, v, counts[p]);
        source.counter(name, v, counts[p]);
        counts[p] += 1;
    }
    source.markers(&counts);
    let global = wait_total(&bootstrap, "x", 5.0, Duration::from_secs(20));
    assert_eq!(counter_total(&global, "y"), 7.0);
    assert_eq!(counter_total(&global, "z"), 11.0);
    wait_metric(
        &a.daemon,
        "rstatsd_fleet_duplicates_total",
        Duration::from_secs(10),
        |v| v == 3.0,
    );
    // The commit carries how far the partition's intervals are closed: this one.
    let expected = format!("v1 closed_through={start}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while committed_metadata(&bootstrap)
        .iter()
        .any(|m| *m != expected)
    {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            committed_metadata(&bootstrap)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    a.daemon.stop().assert_clean_stop();
}

#[test]
fn a_silent_local_is_waited_for_only_by_grace_and_then_not_at_all() {
    let _alone = crate::common::alone();
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    // The default live_intervals (3): the crashed source stays live for a whole interval
    // past its first interval's grace. With 2, its liveness would end within the flush's
    // delivery delay of that grace deadline, and which came first would decide the counter.
    let a = aggregator(&bootstrap, "s1", "");
    wait_assigned(&[&a], Duration::from_secs(30));
    let steady = local(&bootstrap, "steady");
    let doomed = local(&bootstrap, "doomed");
    let socket = sender(steady.daemon.statsd.unwrap());
    for _ in 0..4 {
        traffic(&socket, &steady.daemon, "req", 50, 200);
        traffic(&socket, &doomed.daemon, "dreq", 50, 200);
    }
    // A crash: no final marker, so the aggregator cannot know it is gone.
    let doomed = doomed.daemon.kill9();
    let grace_before = metric_value(&a.daemon, "rstatsd_fleet_closed_grace_total").unwrap_or(0.0);
    for _ in 0..6 {
        traffic(&socket, &steady.daemon, "req", 50, 500);
    }
    // While it counts as live, its partitions' intervals close by grace; after
    // live_intervals they close on the steady source's markers alone.
    let complete_at = metric_value(&a.daemon, "rstatsd_fleet_closed_complete_total").unwrap();
    traffic(&socket, &steady.daemon, "req", 50, 1500);
    wait_metric(
        &a.daemon,
        "rstatsd_fleet_closed_complete_total",
        Duration::from_secs(10),
        |v| v > complete_at,
    );
    let grace_after = metric_value(&a.daemon, "rstatsd_fleet_closed_grace_total").unwrap();
    assert!(grace_after > grace_before, "{grace_before} → {grace_after}");
    align(300);
    let out = steady.daemon.stop();
    out.assert_clean_stop();
    let steady_total = counter_total(&local_records(&out.records), "req");
    assert_eq!(steady_total, 550.0);
    let global = wait_total(&bootstrap, "req", steady_total, Duration::from_secs(30));
    // What the crashed one had flushed but not yet handed to Kafka died with it (no spool).
    let doomed_total = counter_total(&local_records(&doomed.records), "dreq");
    assert!(counter_total(&global, "dreq") <= doomed_total);
    assert!(counter_total(&global, "dreq") >= doomed_total - 50.0);
    a.daemon.stop().assert_clean_stop();
}

/// The metadata of the aggregators' committed offsets, per partition.
fn committed_metadata(bootstrap: &str) -> Vec<String> {
    use rdkafka::TopicPartitionList;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "aggregators")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition("partials", p);
    }
    let committed = reader
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    committed
        .elements()
        .iter()
        .map(|e| e.metadata().to_string())
        .collect()
}

/// One broker; `partials` (what the locals write, the aggregators read) and `out` (what the
/// aggregators write).
fn cluster() -> MockCluster {
    mock_cluster(1, PARTITIONS, &["partials", "out"])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sleeps until `offset_ms` past the next interval boundary.
fn align(offset_ms: u64) {
    let now = now_ms();
    let target = (now / INTERVAL_MS + 1) * INTERVAL_MS + offset_ms;
    std::thread::sleep(Duration::from_millis(target - now));
}

struct Local {
    daemon: Daemon,
    _config: ConfigFile,
}

fn local(bootstrap: &str, source: &str) -> Local {
    let config = ConfigFile::new(
        &format!("fleet-local-{source}"),
        &format!(
            r#"
            [flush]
            interval_ms = {INTERVAL_MS}
            [limits]
            max_timer_samples = 100
            set_exact_members = 64
            [stats]
            enabled = false
            [sinks.kafka]
            type = "kafka"
            brokers = ["{bootstrap}"]
            topic = "partials"
            format = "partial"
            source_id = "{source}"
            linger_ms = 5
            [sinks.console]
            type = "console"
            "#
        ),
    );
    let daemon = Daemon::start(&["--config", config.path(), "--no-pystatsd"]);
    Local {
        daemon,
        _config: config,
    }
}

struct Aggregator {
    daemon: Daemon,
    _config: ConfigFile,
}

fn aggregator(bootstrap: &str, name: &str, extra: &str) -> Aggregator {
    let config = ConfigFile::new(
        &format!("fleet-{name}"),
        &format!(
            r#"
            [flush]
            interval_ms = {INTERVAL_MS}
            [aggregation]
            percentiles = [99]
            [stats]
            enabled = false
            [fleet]
            from = ["{bootstrap}"]
            topic = "partials"
            group = "aggregators"
            {extra}
            [sinks.out]
            type = "kafka"
            brokers = ["{bootstrap}"]
            topic = "out"
            format = "json-nested"
            linger_ms = 5
            "#
        ),
    );
    let daemon = Daemon::start(&["--config", config.path(), "--no-statsd", "--no-pystatsd"]);
    Aggregator {
        daemon,
        _config: config,
    }
}

/// Waits until the aggregators own every partition between them, each some.
fn wait_assigned(aggregators: &[&Aggregator], timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let owned: Vec<f64> = aggregators
            .iter()
            .map(|a| metric_value(&a.daemon, ASSIGNED).unwrap_or(0.0))
            .collect();
        if owned.iter().sum::<f64>() == f64::from(PARTITIONS) && owned.iter().all(|n| *n > 0.0) {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "partitions never all assigned");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (series, interval end) → values of everything the aggregators wrote; a series emitted
/// twice for one interval (at-least-once after a failover) must carry the same values.
type Global = BTreeMap<(Id, u64), BTreeMap<String, f64>>;

fn read_global(bootstrap: &str) -> Global {
    let mut out = Global::new();
    for m in consume_all(bootstrap, &["out"]) {
        let r: Value = serde_json::from_str(&m.payload).unwrap();
        let ts = r["timestamp"].as_u64().unwrap();
        let values = record_values(&r);
        let key = (record_id(&r), ts);
        if let Some(before) = out.insert(key.clone(), values.clone()) {
            assert_eq!(
                before, values,
                "{key:?} emitted twice with different values"
            );
        }
    }
    out
}

/// Waits until the aggregators have written `name`'s counter total `expected` (over every
/// interval), and returns what they wrote.
fn wait_total(bootstrap: &str, name: &str, expected: f64, timeout: Duration) -> Global {
    let deadline = Instant::now() + timeout;
    loop {
        let global = read_global(bootstrap);
        let total = counter_total(&global, name);
        if total == expected || Instant::now() >= deadline {
            assert_eq!(total, expected, "global total of {name}");
            return global;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `name`'s counter total over the intervals that end at `end_s` (seconds) or before.
fn total_through(global: &Global, name: &str, end_s: u64) -> f64 {
    global
        .iter()
        .filter(|((id, ts), _)| id.0 == name && id.1 == "counter" && *ts <= end_s)
        .map(|(_, v)| v["count"])
        .sum()
}

fn counter_total(global: &Global, name: &str) -> f64 {
    global
        .iter()
        .filter(|((id, _), _)| id.0 == name && id.1 == "counter")
        .map(|(_, v)| v["count"])
        .sum()
}

/// A local's console records: (series, interval end in seconds) → values. The tests stop
/// a local only after a boundary has flushed its traffic, so its final flush (mid-interval,
/// stamped with that interval's start second) carries none of it.
fn local_records(records: &[Value]) -> Global {
    records
        .iter()
        .map(|r| {
            let ts = r["timestamp"].as_u64().unwrap();
            ((record_id(r), ts), record_values(r))
        })
        .collect()
}

fn counter(id: &str) -> Id {
    (id.to_string(), "counter".to_string(), Vec::new())
}

/// Sends `count` increments of `name` (and 10 × `count` of `name.bytes`) over ~`ms`
/// milliseconds.
fn traffic(socket: &UdpSocket, to: &Daemon, name: &str, count: u32, ms: u64) {
    let datagram = format!("{name}:1|c\n{name}.bytes:10|c");
    for i in 0..count {
        to.send_statsd(socket, datagram.as_bytes());
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(ms * 10 / u64::from(count)));
        }
    }
}

/// `count` local daemons (sources `host-0`, `host-1`, …) and a socket to send to them.
fn locals(bootstrap: &str, count: usize) -> (Vec<Local>, UdpSocket) {
    let locals: Vec<Local> = (0..count)
        .map(|i| local(bootstrap, &format!("host-{i}")))
        .collect();
    let socket = sender(locals[0].daemon.statsd.unwrap());
    (locals, socket)
}

/// [`traffic`] of `count` increments of `req` to every local; returns how many in all.
fn req_to_every(socket: &UdpSocket, locals: &[Local], count: u32, ms: u64) -> f64 {
    for l in locals {
        traffic(socket, &l.daemon, "req", count, ms);
    }
    f64::from(count) * locals.len() as f64
}
