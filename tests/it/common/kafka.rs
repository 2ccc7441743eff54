//! Kafka helpers for tests: librdkafka's mock cluster, reading back everything a topic
//! holds, and the Java client's partitioner to check partition affinity.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};

/// librdkafka's mock cluster: real brokers speaking the Kafka protocol on loopback TCP, in
/// this process, that a test can take down and up.
pub type MockCluster = rdkafka::mocking::MockCluster<'static, DefaultProducerContext>;

/// A mock cluster of `brokers` brokers holding `topics`, each with `partitions` partitions
/// (replication factor 1).
pub fn mock_cluster(brokers: i32, partitions: i32, topics: &[&str]) -> MockCluster {
    let cluster = MockCluster::new(brokers).expect("mock cluster");
    for t in topics {
        cluster
            .create_topic(t, partitions, 1)
            .expect("create topic");
    }
    cluster
}

impl From<&BorrowedMessage<'_>> for Consumed {
    fn from(msg: &BorrowedMessage<'_>) -> Consumed {
        Consumed {
            partition: msg.partition(),
            key: msg.key().map(|k| String::from_utf8(k.to_vec()).unwrap()),
            payload: String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned(),
            raw: msg.payload().unwrap_or_default().to_vec(),
        }
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rstatsd-tests")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Parses a `json`-format message and checks it against the published JSON Schema.
pub fn parse_json_message(payload: &str) -> serde_json::Value {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../src/sink/kafka/json.schema.json")).unwrap();
        jsonschema::validator_for(&schema).expect("valid schema")
    });
    let doc: serde_json::Value = serde_json::from_str(payload).unwrap();
    let errors: Vec<String> = schema.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{payload}: {errors:?}");
    doc
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub key: Option<String>,
    /// The payload as text (binary formats: lossy; use `raw`).
    pub payload: String,
    pub raw: Vec<u8>,
}

/// Reads every message in `topics`, up to each partition's high watermark at call time.
/// Call after the producer has finished: the watermarks then bound exactly what was written.
pub fn consume_all(bootstrap: &str, topics: &[&str]) -> Vec<Consumed> {
    let consumer = consumer(bootstrap);
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .expect("metadata");
        for p in metadata.topics()[0].partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .expect("watermarks");
            if high > low {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::Beginning)
                    .unwrap();
                remaining.insert((topic.to_string(), p.id()), high);
            }
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return out;
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !remaining.is_empty() {
        assert!(
            Instant::now() < deadline,
            "timed out; still to read: {remaining:?}"
        );
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let slot = (msg.topic().to_string(), msg.partition());
        if let Some(&high) = remaining.get(&slot) {
            if msg.offset() < high {
                out.push(Consumed::from(&msg));
            }
            if msg.offset() + 1 >= high {
                remaining.remove(&slot);
            }
        }
    }
    out
}

/// Reads `topics` from the beginning until `expected` messages arrived, then for a further
/// `grace` so that duplicates would show. For brokers whose high watermarks cannot be
/// trusted (tansu 0.6.0 counts produce batches, not records, in ListOffsets).
pub fn consume_expected(
    bootstrap: &str,
    topics: &[&str],
    expected: usize,
    grace: Duration,
) -> Vec<Consumed> {
    let consumer = consumer(bootstrap);
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        for p in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut grace_end: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match grace_end {
            Some(end) if now >= end => return out,
            None if out.len() >= expected => grace_end = Some(now + grace),
            None => assert!(now < deadline, "got {} of {expected} messages", out.len()),
            _ => {}
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(50)) {
            let msg = msg.expect("consume");
            out.push(Consumed::from(&msg));
        }
    }
}

pub use rstatsd::sink::kafka::partition::{java_partition, murmur2};
