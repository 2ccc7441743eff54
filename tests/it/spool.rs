//! The disk spool end to end: the real binary, librdkafka's mock cluster (a real Kafka
//! protocol broker on loopback, whose brokers the test takes down and up), SIGKILL, damaged
//! spool files and a full filesystem.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::kafka::{Consumed, MockCluster, consume_all, mock_cluster, parse_json_message};
use crate::common::{
    ConfigFile, Daemon, LONG_INTERVAL, TempDir, metric_value, sender, wait_metric,
};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_kafka_outage_longer_than_the_memory_buffer_loses_and_duplicates_nothing() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    cluster.broker_down(1).unwrap();
    let spool = TempDir::new("spool-outage");
    // 1 MiB in memory and 1,000 messages in librdkafka's queue: 20 rounds of 2,000 series
    // (about 6 MB of messages) cannot wait there.
    let config = config(
        "spool-outage",
        &bootstrap,
        "buffer_bytes = 1048576\n[sinks.kafka.properties]\n\"queue.buffering.max.messages\" = \"1000\"\n",
    );
    let d = start(&config, spool.path(), "300");
    let socket = sender(d.statsd.unwrap());
    for _ in 0..20 {
        send_counters(&d, &socket, "outage", 2000);
        // Pacing, not synchronization: the rounds spread over about ten flushes.
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_metric(&d, &gauge("spool_records"), WAIT, |v| v >= 3.0);
    assert_eq!(metric_value(&d, &counter("buffer_dropped")), Some(0.0));
    cluster.broker_up(1).unwrap();
    send_counters(&d, &socket, "outage", 2000);
    wait_metric(&d, &gauge("spool_messages"), WAIT, |v| v == 0.0);
    wait_metric(&d, &counter("spool_replayed"), WAIT, |v| v >= 1.0);
    let out = d.stop();
    out.assert_clean_stop();

    let series = per_series(&consume_all(&bootstrap, &["metrics"]));
    assert_eq!(series.len(), 2000);
    for (name, values) in &series {
        assert_eq!(values.iter().sum::<f64>(), 21.0, "{name}: {values:?}");
    }
    assert!(
        std::fs::read_dir(spool.0.join("kafka"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_sigkill_while_the_broker_is_down_loses_nothing_spooled() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    cluster.broker_down(1).unwrap();
    let spool = TempDir::new("spool-kill");
    let config = config("spool-kill", &bootstrap, "");
    let d = start(&config, spool.path(), "300");
    let socket = sender(d.statsd.unwrap());
    send_counters(&d, &socket, "before", 500);
    // Handed to librdkafka, unacknowledged: on disk within one interval of its flush.
    wait_metric(&d, &gauge("spool_messages"), WAIT, |v| v == 500.0);
    send_counters(&d, &socket, "later", 500);
    wait_metric(&d, &gauge("spool_messages"), WAIT, |v| v == 1000.0);
    let out = d.kill9();
    assert!(!out.status.success());

    cluster.broker_up(1).unwrap();
    let d = start(&config, spool.path(), "300");
    wait_metric(&d, &gauge("spool_messages"), WAIT, |v| v == 0.0);
    let out = d.stop();
    out.assert_clean_stop();
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("snapshots (1000 messages")),
        "{:?}",
        out.stderr
    );
    let series = per_series(&consume_all(&bootstrap, &["metrics"]));
    assert_eq!(series.len(), 1000);
    assert!(series.values().all(|v| v == &[1.0]), "{series:?}");
}

#[test]
fn sigterm_with_the_broker_down_spools_and_the_next_start_delivers() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    cluster.broker_down(1).unwrap();
    let spool = TempDir::new("spool-term");
    let config = config("spool-term", &bootstrap, "");
    let d = start(&config, spool.path(), LONG_INTERVAL);
    d.send_statsd(&sender(d.statsd.unwrap()), b"a:1|c\nb:2|c\nc:3|g\n");
    let out = d.stop();
    assert!(out.status.success());
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("spooled 3 messages for sink kafka")),
        "{:?}",
        out.stderr
    );
    assert!(
        out.stderr.last().unwrap().ends_with(" stopped"),
        "{:?}",
        out.stderr
    );

    cluster.broker_up(1).unwrap();
    let d = start(&config, spool.path(), LONG_INTERVAL);
    d.stop().assert_clean_stop();
    let mut got: Vec<(String, f64)> = points(&consume_all(&bootstrap, &["metrics"]))
        .into_iter()
        .map(|(name, _, v)| (name, v))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![("a".into(), 1.0), ("b".into(), 2.0), ("c".into(), 3.0)]
    );
}

#[test]
fn a_torn_tail_and_a_flipped_byte_never_block_start_up() {
    use rstatsd::sink::SinkCounters;
    use rstatsd::sink::batch::Batch;
    use rstatsd::sink::spool::{Spool, SpoolSettings, State};

    let spool = TempDir::new("spool-damage");
    let settings = SpoolSettings {
        dir: spool.0.join("kafka"),
        max_bytes: 1 << 30,
        segment_bytes: 16 << 20,
    };
    let mut writer = Spool::open("kafka", settings.clone(), Arc::new(SinkCounters::default()));
    for n in 0..4 {
        let mut batch = Batch::default();
        let payload = format!("{{\"n\":{n}}}");
        batch.push(Some(Arc::from("metrics")), Some(b"k"), payload.as_bytes());
        batch.set_flushed_ms(1_795_323_600_000 + n * 1000);
        writer.append(&batch, |_| true, State::Unread).unwrap();
    }
    drop(writer);
    let segment = std::fs::read_dir(&settings.dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut data = std::fs::read(&segment).unwrap();
    let record = (data.len() - 12) / 4; // four records of one size after the header
    data[12 + record + record / 2] ^= 0x20; // a flipped byte in record 1
    data.truncate(12 + 3 * record + 10); // record 3 torn
    std::fs::write(&segment, &data).unwrap();

    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    let config = config("spool-damage", &bootstrap, "");
    let d = start(&config, spool.path(), "300");
    wait_metric(&d, &gauge("spool_messages"), WAIT, |v| v == 0.0);
    wait_metric(&d, &counter("delivered"), WAIT, |v| v == 2.0);
    assert_eq!(metric_value(&d, &counter("spool_corrupt")), Some(1.0));
    assert_eq!(metric_value(&d, &counter("spool_torn")), Some(1.0));
    let out = d.stop();
    out.assert_clean_stop();
    assert!(
        out.stderr.iter().any(|l| l.contains("moved aside to")
            && l.contains(&format!("{}.corrupt", segment.display()))),
        "{:?}",
        out.stderr
    );
    let payloads: Vec<String> = consume_all(&bootstrap, &["metrics"])
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(payloads, ["{\"n\":0}", "{\"n\":2}"]);
}

/// A 64 KiB tmpfs mounted for the test (root only: the test suite runs as root), unmounted
/// when dropped.
struct SmallDisk(TempDir);

impl SmallDisk {
    fn mount(name: &str) -> SmallDisk {
        let dir = TempDir::new(name);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir.path()])
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_is_counted_and_the_memory_buffer_carries_on() {
    let cluster = cluster();
    let bootstrap = cluster.bootstrap_servers();
    cluster.broker_down(1).unwrap();
    let disk = SmallDisk::mount("spool-full");
    let config = config("spool-full", &bootstrap, "");
    let d = start(&config, disk.0.path(), "300");
    let socket = sender(d.statsd.unwrap());
    // About 110 KB of messages per flush: the first spool write already fails.
    for _ in 0..3 {
        send_counters(&d, &socket, "full", 1000);
        wait_metric(&d, &counter("spool_write_errors"), WAIT, |v| v >= 1.0);
    }
    cluster.broker_up(1).unwrap();
    wait_metric(&d, &counter("delivered"), WAIT, |v| v >= 1000.0);
    let out = d.stop();
    out.assert_clean_stop();
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("spool: cannot write to") && l.contains("No space left")),
        "{:?}",
        out.stderr
    );
    let series = per_series(&consume_all(&bootstrap, &["metrics"]));
    assert_eq!(series.len(), 1000);
    for (name, values) in &series {
        assert_eq!(values.iter().sum::<f64>(), 3.0, "{name}: {values:?}");
    }
}

/// One broker, topic `metrics` with 4 partitions.
fn cluster() -> MockCluster {
    mock_cluster(1, 4, &["metrics"])
}

fn config(name: &str, bootstrap: &str, extra: &str) -> ConfigFile {
    ConfigFile::new(
        name,
        &format!(
            "[sinks.kafka]\ntype = \"kafka\"\nbrokers = [\"{bootstrap}\"]\nlinger_ms = 5\n\
             shutdown_timeout_ms = 1000\n{extra}\n"
        ),
    )
}

fn start(config: &ConfigFile, spool: &str, interval_ms: &str) -> Daemon {
    Daemon::start(&[
        "--config",
        config.path(),
        "--spool-dir",
        spool,
        "--flush-interval-ms",
        interval_ms,
        "--no-pystatsd",
        "--no-stats",
    ])
}

fn gauge(name: &str) -> String {
    format!("rstatsd_sink_{name}{{sink=\"kafka\"}}")
}

fn counter(name: &str) -> String {
    format!("rstatsd_sink_{name}_total{{sink=\"kafka\"}}")
}

/// Sends `name.{0..n}:1|c`, 40 lines per datagram.
fn send_counters(d: &Daemon, socket: &UdpSocket, name: &str, n: usize) {
    let lines: Vec<String> = (0..n).map(|i| format!("{name}.{i}:1|c")).collect();
    for chunk in lines.chunks(40) {
        d.send_statsd(socket, chunk.join("\n").as_bytes());
    }
}

/// Every consumed `json` message as (name, @timestamp, value), in the order of its
/// partition.
fn points(messages: &[Consumed]) -> Vec<(String, String, f64)> {
    messages
        .iter()
        .map(|m| {
            let doc = parse_json_message(&m.payload);
            (
                doc["name"].as_str().unwrap().to_string(),
                doc["@timestamp"].as_str().unwrap().to_string(),
                doc["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Per series: its values in consumed order, checking that no (series, interval) came
/// twice and that each series' intervals arrived in order.
fn per_series(messages: &[Consumed]) -> BTreeMap<String, Vec<f64>> {
    let mut stamps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (name, ts, v) in points(messages) {
        let seen = stamps.entry(name.clone()).or_default();
        if let Some(last) = seen.last() {
            assert!(
                *last < ts,
                "{name}: interval {ts} after {last} (twice or out of order)"
            );
        }
        seen.push(ts);
        values.entry(name).or_default().push(v);
    }
    values
}
