//! Round trip through a real, separate Kafka-compatible broker: tansu
//! (`cargo install tansu --version 0.6.0 --locked --features dynostore`, which the README's
//! test command does). A missing tansu fails this test; it is never skipped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::kafka::{consume_expected, parse_json_message};
use crate::common::{ConfigFile, Daemon, sender};

#[test]
fn every_format_round_trips_through_tansu_with_zstd() {
    let tansu = Tansu::start();
    tansu.create_topic("rt-json", 3);
    // One partition: its three messages travel in one multi-record batch.
    tansu.create_topic("rt-nested", 1);
    tansu.create_topic("rt-influx", 3);
    let bootstrap = tansu.bootstrap();
    let sink = |name: &str, topic: &str, format: &str| {
        format!(
            "[sinks.{name}]\ntype = \"kafka\"\nbrokers = [\"{bootstrap}\"]\ntopic = \"{topic}\"\n\
             format = \"{format}\"\ncompression = \"zstd\"\nlinger_ms = 5\n"
        )
    };
    let config = ConfigFile::new(
        "tansu",
        &[
            sink("json", "rt-json", "json"),
            sink("nested", "rt-nested", "json-nested"),
            sink("influx", "rt-influx", "influx"),
        ]
        .concat(),
    );
    let d = Daemon::start_single_flush(&config, &[]);
    let sock = sender(d.statsd.unwrap());
    d.send_statsd(&sock, b"rt.count:5|c|#env:prod\nrt.gauge:1.5|g\n");
    d.send_pystatsd(
        &sock,
        br#"{"metric_name":"rt.trace","metric_type":"trace","stage":"x"}"#,
    );
    let out = d.stop();
    out.assert_clean_stop();

    // tansu 0.6.0's high watermarks count batches, not records: read by expected count.
    let grace = Duration::from_millis(500);
    let mut json: Vec<Value> = consume_expected(&bootstrap, &["rt-json"], 3, grace)
        .iter()
        .map(|m| parse_json_message(&m.payload))
        .collect();
    json.sort_by_key(|d| d["name"].as_str().unwrap().to_string());
    let names: Vec<&str> = json.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["rt.count", "rt.gauge", "rt.trace"]);
    assert_eq!(json[0]["value"], 5);
    assert_eq!(json[0]["env"], "prod");
    assert_eq!(json[0]["metric_type"], "counter");
    assert_eq!(json[1]["value"], 1.5);
    assert_eq!(json[2]["stage"], "x");

    let nested = consume_expected(&bootstrap, &["rt-nested"], 3, grace);
    assert_eq!(nested.len(), 3);
    let count = nested
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.payload).unwrap())
        .find(|d| d["name"] == "rt.count")
        .unwrap();
    assert_eq!(count["values"]["count"], 5);
    assert_eq!(count["tags"]["env"], "prod");

    let influx = consume_expected(&bootstrap, &["rt-influx"], 1, grace);
    let mut lines: Vec<String> = influx
        .iter()
        .flat_map(|m| {
            m.payload
                .lines()
                .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!("rt.count,env=prod count=5,rate={}", 5.0 / 86400.0),
            "rt.gauge value=1.5".to_string(),
            "rt.trace,stage=x count=1".to_string(),
        ]
    );
}

/// Fleet aggregation through tansu: a consumer group of one aggregator, `partial` messages
/// from one host, and offsets committed with their `closed_through` metadata. (Failover is
/// tested against librdkafka's mock cluster in `fleet`: tansu 0.6.0 never moves a SIGKILLed
/// member's partitions to the survivors.)
#[test]
fn partials_aggregate_and_commit_through_tansu() {
    use rdkafka::TopicPartitionList;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let tansu = Tansu::start();
    tansu.create_topic("partials", 2);
    tansu.create_topic("out", 1);
    let bootstrap = tansu.bootstrap();
    let aggregator_config = ConfigFile::new(
        "tansu-aggregator",
        &format!(
            "[flush]\ninterval_ms = 1000\n[stats]\nenabled = false\n\
             [fleet]\nfrom = [\"{bootstrap}\"]\ntopic = \"partials\"\ngroup = \"agg\"\n\
             [sinks.out]\ntype = \"kafka\"\nbrokers = [\"{bootstrap}\"]\ntopic = \"out\"\n\
             format = \"json-nested\"\nlinger_ms = 5\n"
        ),
    );
    let aggregator = Daemon::start(&[
        "--config",
        aggregator_config.path(),
        "--no-statsd",
        "--no-pystatsd",
    ]);
    crate::common::wait_metric(
        &aggregator,
        "rstatsd_fleet_assigned_partitions",
        Duration::from_secs(30),
        |n| n == 2.0,
    );
    let local_config = ConfigFile::new(
        "tansu-local",
        &format!(
            "[flush]\ninterval_ms = 1000\n[stats]\nenabled = false\n\
             [sinks.kafka]\ntype = \"kafka\"\nbrokers = [\"{bootstrap}\"]\ntopic = \"partials\"\n\
             format = \"partial\"\nsource_id = \"h1\"\nlinger_ms = 5\n"
        ),
    );
    let local = Daemon::start(&["--config", local_config.path(), "--no-pystatsd"]);
    let sock = sender(local.statsd.unwrap());
    for _ in 0..30 {
        local.send_statsd(&sock, b"rt.req:1|c");
    }
    // A boundary flushes the increments before the stop.
    std::thread::sleep(Duration::from_millis(1500));
    local.stop().assert_clean_stop();

    let out = consume_expected(&bootstrap, &["out"], 1, Duration::from_secs(3));
    let total: f64 = out
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.payload).unwrap())
        .filter(|d| d["name"] == "rt.req")
        .map(|d| d["values"]["count"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 30.0);

    // The group commits its offsets once the out sink has the intervals. (tansu 0.6.0 keeps
    // no commit metadata, so `closed_through` does not survive there; the mock cluster test
    // in `fleet` checks it.)
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "agg")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("partials", 0);
    tpl.add_partition("partials", 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let committed = reader
            .committed_offsets(tpl.clone(), Duration::from_secs(5))
            .unwrap();
        let offsets: Vec<rdkafka::Offset> =
            committed.elements().iter().map(|e| e.offset()).collect();
        if offsets
            .iter()
            .all(|o| matches!(o, rdkafka::Offset::Offset(n) if *n > 0))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "committed offsets: {offsets:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    aggregator.stop().assert_clean_stop();
}

fn tansu_binary() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let installed = home.join("bin/tansu");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("tansu")
}

/// A tansu broker on an ephemeral loopback port, killed (SIGKILL: its SIGTERM holds the
/// port for seconds) when dropped.
struct Tansu {
    child: Child,
    url: String,
}

impl Tansu {
    fn start() -> Tansu {
        // Reserve a free port, release it, and have tansu take it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tansu is not installed: run tools/test.sh, which installs it");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut tansu = Tansu { child, url };
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("ready in") => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = tansu.child.kill();
                    panic!("tansu did not become ready: {e}");
                }
            }
        }
        tansu
    }

    fn bootstrap(&self) -> String {
        self.url.trim_start_matches("tcp://").to_string()
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let partitions = partitions.to_string();
        let status = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                "--broker",
                &self.url,
                "--partitions",
                &partitions,
                name,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create {name}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
