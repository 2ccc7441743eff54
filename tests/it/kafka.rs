//! Kafka sink end to end: the real binary produces to librdkafka's mock cluster (real Kafka
//! protocol over TCP on loopback); the test reads everything back.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::common::kafka::{
    Consumed, consume_all, java_partition, mock_cluster, murmur2, parse_json_message,
};
use crate::common::{ConfigFile, Daemon, LONG_INTERVAL, sender};

const SECS: f64 = 86400.0;
const PARTITIONS: i32 = 4;

#[test]
fn json_messages_for_every_metric_type() {
    let cluster = mock_cluster(3, PARTITIONS, &["metrics"]);
    let bootstrap = cluster.bootstrap_servers();
    let config = kafka_config(
        "json",
        &bootstrap,
        "compression = \"gzip\"\n[sinks.kafka.static_fields]\napikey = \"k1\"\ntenant_id = \"t1\"",
    );
    let d = Daemon::start(&[
        "--config",
        config.path(),
        "--flush-interval-ms",
        LONG_INTERVAL,
        "--tag",
        "host=h1",
        "--no-stats",
    ]);
    let sock = sender(d.statsd.unwrap());
    d.send_statsd(
        &sock,
        b"api.requests:1|c|#env:prod\n\
          api.requests:3|c|@0.5|#env:prod\n\
          mem.free:512|g|#value:x\n\
          api.latency:100|ms|#upper:u\n\
          api.latency:300:200|ms|#upper:u\n\
          size:1:2:3|h\n\
          dist:5|d\n\
          users:alice|s\n\
          users:bob|s\n",
    );
    d.send_pystatsd(
        &sock,
        br#"{"metric_name":"user.apptrace","metric_type":"trace","stage":"Init app"}"#,
    );
    let out = d.stop();
    assert!(out.status.success(), "{:?}", out.stderr);

    let messages = consume_all(&bootstrap, &["metrics"]);
    assert_eq!(messages.len(), 7, "{messages:#?}");
    let mut timestamps = BTreeSet::new();
    let mut got = BTreeMap::new();
    for m in &messages {
        parse_json_message(&m.payload);
        let mut f = flat(&m.payload);
        let F::S(ts) = f.remove("@timestamp").unwrap() else {
            panic!()
        };
        timestamps.insert(ts);
        // The key is the series identity, and it decides the partition as Java would.
        let key = m.key.clone().expect("keyed");
        assert_eq!(
            m.partition,
            java_partition(key.as_bytes(), PARTITIONS as u32),
            "{key}"
        );
        let F::S(name) = f["name"].clone() else {
            panic!()
        };
        got.insert(name, (key, f));
    }
    assert_eq!(timestamps.len(), 1, "one flush: {timestamps:?}");

    let common = |name: &str, mtype: &str, value: f64| {
        vec![
            ("name", s(name)),
            ("value", F::N(value)),
            ("@version", s("1")),
            ("metric_type", s(mtype)),
            ("apikey", s("k1")),
            ("tenant_id", s("t1")),
            ("host", s("h1")),
        ]
    };
    let with = |mut base: Vec<(&'static str, F)>, more: Vec<(&'static str, F)>| {
        base.extend(more);
        fields(&base)
    };
    let expected: BTreeMap<&str, (&str, BTreeMap<String, F>)> = [
        (
            "api.requests",
            (
                "api.requests,env=prod,host=h1",
                with(
                    common("api.requests", "counter", 7.0),
                    vec![("env", s("prod")), ("rate", F::N(7.0 / SECS))],
                ),
            ),
        ),
        (
            "mem.free",
            (
                "mem.free,host=h1,value=x",
                with(
                    common("mem.free", "gauge", 512.0),
                    vec![("tag_value", s("x"))],
                ),
            ),
        ),
        (
            "api.latency",
            (
                "api.latency,host=h1,upper=u",
                with(
                    common("api.latency", "timer", 200.0),
                    [
                        vec![("tag_upper", s("u"))],
                        timer_stats(&[100.0, 200.0, 300.0]),
                    ]
                    .concat(),
                ),
            ),
        ),
        (
            "size",
            (
                "size,host=h1",
                with(
                    common("size", "histogram", 2.0),
                    timer_stats(&[1.0, 2.0, 3.0]),
                ),
            ),
        ),
        (
            "dist",
            (
                "dist,host=h1",
                with(common("dist", "distribution", 5.0), timer_stats(&[5.0])),
            ),
        ),
        (
            "users",
            ("users,host=h1", with(common("users", "set", 2.0), vec![])),
        ),
        (
            "user.apptrace",
            (
                "user.apptrace,host=h1,stage=Init app",
                with(
                    common("user.apptrace", "trace", 1.0),
                    vec![("stage", s("Init app"))],
                ),
            ),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got.len(), expected.len());
    for (name, (key, fields)) in &expected {
        let (got_key, got_fields) = &got[*name];
        assert_eq!(got_key, key, "{name}");
        assert_eq!(got_fields, fields, "{name}");
    }
}

#[test]
fn influx_and_nested_formats_with_compression() {
    let cluster = mock_cluster(1, PARTITIONS, &["influx", "nested"]);
    let bootstrap = cluster.bootstrap_servers();
    let config = ConfigFile::new(
        "formats",
        &[
            sink(
                "influx",
                &bootstrap,
                "topic = \"influx\"\nformat = \"influx\"\ncompression = \"zstd\"",
            ),
            sink(
                "nested",
                &bootstrap,
                "topic = \"nested\"\nformat = \"json-nested\"\ncompression = \"snappy\"",
            ),
        ]
        .concat(),
    );
    let d = start_single_flush(&config);
    d.send_statsd(
        &sender(d.statsd.unwrap()),
        b"cpu load:2|g|#host:web 1,dc:a=b,empty:\nreq:4|c\n",
    );
    let out = d.stop();
    assert!(out.status.success(), "{:?}", out.stderr);

    let influx = consume_all(&bootstrap, &["influx"]);
    assert_eq!(influx.len(), 1, "both series packed in one message");
    assert_eq!(influx[0].key, None);
    let mut lines: Vec<&str> = influx[0].payload.lines().collect();
    lines.sort();
    let ts = lines[0].rsplit(' ').next().unwrap();
    assert!(ts.ends_with("000000") && ts.len() == 19, "{ts}");
    assert_eq!(
        lines,
        vec![
            format!("cpu_load,dc=a\\=b,host=web\\ 1 value=2 {ts}"),
            format!("req count=4,rate={} {ts}", 4.0 / SECS),
        ]
    );

    let nested = consume_all(&bootstrap, &["nested"]);
    let mut docs: Vec<Value> = nested
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect();
    docs.sort_by_key(|d| d["name"].as_str().unwrap().to_string());
    let secs: u64 = ts.parse::<u64>().unwrap() / 1_000_000_000;
    assert_eq!(
        docs,
        vec![
            serde_json::json!({"name":"cpu_load","type":"gauge","tags":{"dc":"a=b","empty":"","host":"web 1"},"timestamp":secs,"values":{"value":2}}),
            serde_json::json!({"name":"req","type":"counter","tags":{},"timestamp":secs,"values":{"count":4,"rate":4.0 / SECS}}),
        ]
    );
}

#[test]
fn topic_templates_route_by_tag_and_type() {
    let topics = ["m.prod", "m.other", "t.counter", "t.gauge"];
    let cluster = mock_cluster(1, PARTITIONS, &topics);
    let bootstrap = cluster.bootstrap_servers();
    let config = ConfigFile::new(
        "topics",
        &[
            sink(
                "by_env",
                &bootstrap,
                "topic = \"m.{tag:env}\"\ndefault_topic = \"m.other\"\nkey = \"name\"",
            ),
            sink(
                "by_type",
                &bootstrap,
                "topic = \"t.{type}\"\nkey = \"none\"",
            ),
        ]
        .concat(),
    );
    let d = start_single_flush(&config);
    d.send_statsd(
        &sender(d.statsd.unwrap()),
        b"a:1|c|#env:prod\nb:1|g|#env:prod\nc:1|c\n",
    );
    assert!(d.stop().status.success());
    let names = |topic: &str| -> Vec<(String, Option<String>)> {
        let mut v: Vec<_> = consume_all(&bootstrap, &[topic])
            .into_iter()
            .map(|m: Consumed| {
                let doc: Value = serde_json::from_str(&m.payload).unwrap();
                (doc["name"].as_str().unwrap().to_string(), m.key)
            })
            .collect();
        v.sort();
        v
    };
    let named = |n: &str| (n.to_string(), Some(n.to_string()));
    let unkeyed = |n: &str| (n.to_string(), None);
    assert_eq!(names("m.prod"), vec![named("a"), named("b")]);
    assert_eq!(names("m.other"), vec![named("c")]);
    assert_eq!(names("t.counter"), vec![unkeyed("a"), unkeyed("c")]);
    assert_eq!(names("t.gauge"), vec![unkeyed("b")]);
}

/// Reads `name`'s counter values from `json` messages, keyed by flush timestamp; panics if a
/// (series, flush) pair appears twice.
fn per_flush(messages: &[Consumed], name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for m in messages {
        let doc = parse_json_message(&m.payload);
        if doc["name"] == name {
            let ts = doc["@timestamp"].as_str().unwrap().to_string();
            let v = doc["value"].as_f64().unwrap();
            assert!(out.insert(ts.clone(), v).is_none(), "{name} twice at {ts}");
        }
    }
    out
}

#[test]
fn broker_outage_loses_and_duplicates_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    let cluster = mock_cluster(3, PARTITIONS, &["metrics"]);
    let bootstrap = cluster.bootstrap_servers();
    // Short message timeout: messages time out during the outage and take the sink's
    // retry path, not only librdkafka's queue.
    let config = kafka_config("outage", &bootstrap, "message_timeout_ms = 3000");
    let d = Daemon::start(&[
        "--config",
        config.path(),
        "--flush-interval-ms",
        "500",
        "--no-pystatsd",
    ]);
    let addr = d.statsd.unwrap();
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let sock = sender(addr);
            while !stop.load(Ordering::Relaxed) {
                sock.send_to(b"outage.hits:1|c", addr).unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // Timeline, not synchronization: traffic before, during and after a 10 s outage.
        std::thread::sleep(Duration::from_millis(1500));
        for broker in 1..=3 {
            cluster.broker_down(broker).unwrap();
        }
        std::thread::sleep(Duration::from_secs(10));
        for broker in 1..=3 {
            cluster.broker_up(broker).unwrap();
        }
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });
    let out = d.stop();
    out.assert_clean_stop();

    let messages = consume_all(&bootstrap, &["metrics"]);
    let hits = per_flush(&messages, "outage.hits");
    assert!(
        hits.len() >= 20,
        "expected a flush every 500 ms, got {}",
        hits.len()
    );
    assert_eq!(
        hits.values().sum::<f64>(),
        sent.load(Ordering::Relaxed) as f64,
        "every increment delivered exactly once"
    );
    let retried: f64 = per_flush(&messages, "rstatsd.sink_retried").values().sum();
    assert!(retried > 0.0, "the outage should have exercised retries");
    // The counter names what it counts now (messages dropped from the delivery buffer), and a
    // flush carries it only when it is not zero: so it must be absent.
    assert!(per_flush(&messages, "rstatsd.sink_buffer_dropped").is_empty());
    assert!(
        per_flush(&messages, "rstatsd.sink_delivered")
            .values()
            .sum::<f64>()
            > 0.0
    );
}

#[test]
fn retriable_errors_are_retried_and_permanent_ones_counted() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let cluster = mock_cluster(1, PARTITIONS, &["metrics"]);
    let bootstrap = cluster.bootstrap_servers();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3],
    );
    let config = kafka_config("retriable", &bootstrap, "");
    let d = start_single_flush(&config);
    d.send_statsd(&sender(d.statsd.unwrap()), b"r1:1|c\nr2:2|c\nr3:3|g\n");
    assert!(d.stop().status.success());
    let messages = consume_all(&bootstrap, &["metrics"]);
    let mut names: Vec<String> = messages
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.payload).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, vec!["r1", "r2", "r3"]);

    // A permanent error: the messages of the failing request are counted as failed, and
    // the count reaches Kafka with the next flush.
    let cluster = mock_cluster(1, PARTITIONS, &["metrics"]);
    let bootstrap = cluster.bootstrap_servers();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let config = kafka_config("permanent", &bootstrap, "");
    let d = Daemon::start(&[
        "--config",
        config.path(),
        "--flush-interval-ms",
        "300",
        "--no-pystatsd",
    ]);
    let sock = sender(d.statsd.unwrap());
    // Each flush produces; keep going until the failure has been reported by a later flush.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        d.send_statsd(&sock, b"p:1|c");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let messages = consume_all(&bootstrap, &["metrics"]);
        let failed: f64 = per_flush(&messages, "rstatsd.sink_failed").values().sum();
        if failed > 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failure reported");
    }
    let out = d.stop();
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("failed permanently") && l.contains("Authorization")),
        "{:?}",
        out.stderr
    );
}

#[test]
fn shutdown_with_brokers_down_reports_undelivered() {
    let cluster = mock_cluster(1, PARTITIONS, &["metrics"]);
    let bootstrap = cluster.bootstrap_servers();
    cluster.broker_down(1).unwrap();
    let config = kafka_config("down", &bootstrap, "shutdown_timeout_ms = 1500");
    let d = start_single_flush(&config);
    d.send_statsd(&sender(d.statsd.unwrap()), b"a:1|c\nb:1|c\nc:1|g\n");
    let started = std::time::Instant::now();
    let out = d.stop();
    assert!(out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        out.stderr
            .last()
            .unwrap()
            .ends_with("stopped; undelivered messages: 3 in sink kafka"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn murmur2_matches_the_java_client() {
    // Reference values from Kafka's own test suite (UtilsTest.testMurmur2).
    assert_eq!(murmur2(b"21") as i32, -973932308);
    assert_eq!(murmur2(b"foobar") as i32, -790332482);
    assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
    assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
        -58897971
    );
    assert_eq!(murmur2(b"abc") as i32, 479470107);
}

#[test]
fn partial_format_numbers_partials_per_partition_and_marks_every_partition() {
    use rstatsd::aggregate::Bounds;
    use rstatsd::aggregate::Value as Agg;
    use rstatsd::aggregate::partial::{Envelope, decode};

    let cluster = mock_cluster(1, PARTITIONS, &["partials"]);
    let bootstrap = cluster.bootstrap_servers();
    let config = kafka_config(
        "kafka-partial",
        &bootstrap,
        "topic = \"partials\"\nformat = \"partial\"\nsource_id = \"web-7\"",
    );
    let d = start_single_flush(&config);
    let sock = sender(d.statsd.unwrap());
    d.send_statsd(
        &sock,
        b"a:1|c\nb:2|c|#env:prod\nc:3|c\nd:4|g\ne:5|ms\ne:6|ms\nf:x|s\ng:1|c\nh:1|c\n",
    );
    let out = d.stop();
    assert!(out.status.success(), "{:?}", out.stderr);

    let messages = consume_all(&bootstrap, &["partials"]);
    // Eight series, then one marker per partition.
    assert_eq!(messages.len(), 8 + PARTITIONS as usize, "{messages:#?}");
    let mut seqs: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    let mut markers: BTreeMap<i32, u32> = BTreeMap::new();
    let mut values = BTreeMap::new();
    let mut starts = BTreeSet::new();
    for m in &messages {
        match decode(&m.raw, &Bounds::default()).expect("a partial") {
            Envelope::Partial(p) => {
                let key = m.key.clone().expect("keyed by series");
                assert_eq!(
                    m.partition,
                    java_partition(key.as_bytes(), PARTITIONS as u32)
                );
                assert_eq!(p.origin.source_id, "web-7");
                assert_eq!(p.origin.interval_ms, 86_400_000);
                starts.insert(p.origin.interval_start_ms);
                seqs.entry(m.partition)
                    .or_default()
                    .push(p.seq.expect("sequenced"));
                values.insert(key, p.value);
            }
            Envelope::End(e) => {
                assert_eq!(m.key.as_deref(), Some("web-7"));
                assert_eq!(e.partitions, PARTITIONS as u32);
                assert!(e.last, "the final flush at shutdown");
                starts.insert(e.origin.interval_start_ms);
                assert!(markers.insert(m.partition, e.partials).is_none());
            }
        }
    }
    assert_eq!(starts.len(), 1, "one interval: {starts:?}");
    // Every partition got a marker counting exactly its partials, numbered 0, 1, ….
    assert_eq!(markers.len(), PARTITIONS as usize);
    for (p, n) in &markers {
        let got = seqs.remove(p).unwrap_or_default();
        assert_eq!(got, (0..*n).collect::<Vec<_>>(), "partition {p}");
    }
    assert!(seqs.is_empty());
    assert_eq!(values["a"], Agg::Counter(1.0));
    assert_eq!(values["b,env=prod"], Agg::Counter(2.0));
    let Agg::Timer(t) = &values["e"] else {
        panic!("{:?}", values["e"])
    };
    assert_eq!((t.values.as_slice(), t.count), (&[5.0, 6.0][..], 2.0));
    let Agg::Set(s) = &values["f"] else { panic!() };
    assert_eq!(s.cardinality(), 1.0);
    let Agg::Gauge(g) = &values["d"] else {
        panic!()
    };
    assert_eq!((g.value, g.absolute), (4.0, true));
}

/// A field value, numbers compared as f64 whatever their JSON spelling.
#[derive(Debug, Clone, PartialEq)]
enum F {
    S(String),
    N(f64),
}

fn flat(payload: &str) -> BTreeMap<String, F> {
    let v: Value = serde_json::from_str(payload).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let f = match v {
                Value::String(s) => F::S(s.clone()),
                Value::Number(n) => F::N(n.as_f64().unwrap()),
                other => panic!("unexpected {k}: {other}"),
            };
            (k.clone(), f)
        })
        .collect()
}

fn fields(pairs: &[(&str, F)]) -> BTreeMap<String, F> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn s(v: &str) -> F {
    F::S(v.to_string())
}

fn timer_stats(values: &[f64]) -> Vec<(&'static str, F)> {
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let sq: f64 = values.iter().map(|x| x * x).sum();
    let mean = sum / n;
    let std = (values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
    let max = values.iter().cloned().fold(f64::MIN, f64::max);
    let min = values.iter().cloned().fold(f64::MAX, f64::min);
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    // With n ≤ 3, the 90th percentile keeps every sample.
    vec![
        ("count_90", F::N(n)),
        ("mean_90", F::N(mean)),
        ("upper_90", F::N(max)),
        ("sum_90", F::N(sum)),
        ("sum_squares_90", F::N(sq)),
        ("std", F::N(std)),
        ("upper", F::N(max)),
        ("lower", F::N(min)),
        ("count", F::N(n)),
        ("count_ps", F::N(n / SECS)),
        ("sum", F::N(sum)),
        ("sum_squares", F::N(sq)),
        ("mean", F::N(mean)),
        ("median", F::N(median)),
    ]
}

/// The TOML of a Kafka sink named `name`, with `extra` keys.
fn sink(name: &str, bootstrap: &str, extra: &str) -> String {
    format!(
        "[sinks.{name}]\ntype = \"kafka\"\nbrokers = [\"{bootstrap}\"]\nlinger_ms = 5\n{extra}\n"
    )
}

fn kafka_config(name: &str, bootstrap: &str, extra: &str) -> ConfigFile {
    ConfigFile::new(name, &sink("kafka", bootstrap, extra))
}

/// The daemon with `config`, line protocol only, no internal statistics, and only the
/// final flush.
fn start_single_flush(config: &ConfigFile) -> Daemon {
    Daemon::start_single_flush(config, &["--no-pystatsd"])
}
