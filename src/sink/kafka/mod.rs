//! The Kafka sink: per-flush aggregates as Kafka messages, with no silent loss.
//!
//! The sink runs on its own thread (the producer thread) with an rdkafka `BaseProducer` that
//! it polls itself: no background thread, no async runtime. Each snapshot is encoded
//! ([`encode`]) into one contiguous [`Batch`] and queued in the sink's own buffer; the buffer
//! feeds librdkafka's queue as fast as librdkafka accepts.
//!
//! Every message is accounted for (see [`crate::sink::SinkCounters`]):
//! - **delivered** when the broker acknowledged it;
//! - **retried** when delivery failed retriably (e.g. it timed out during an outage): it goes
//!   back to the front of the buffer;
//! - **failed** when delivery failed permanently (logged with the error, rate-limited);
//! - **dropped** when the buffer exceeded `buffer_bytes`: whole oldest snapshots go first.
//!
//! A full librdkafka queue is backpressure: messages wait in the buffer. At shutdown the sink
//! keeps delivering for up to `shutdown_timeout_ms` and reports what remained undelivered.

pub mod encode;
pub mod topic;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde::Deserialize;

use self::encode::{Encoder, Format};
use self::topic::TopicTemplate;
use super::{Sink, SinkCounters, SinkError};
use crate::config::ConfigError;
use crate::logging::RateLimit;
use crate::snapshot::Snapshot;

/// `[sinks.NAME] type = "kafka"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic or template (`metrics.{type}`, `metrics.{tag:env}`, `{name}`).
    pub topic: String,
    /// Topic for series lacking a tag the template needs (required with `{tag:…}`).
    pub default_topic: Option<String>,
    pub client_id: String,
    /// `all`, `1` or `0`.
    pub acks: String,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    pub linger_ms: u64,
    /// librdkafka `batch.size` (bytes per partition batch).
    pub batch_size: u64,
    pub idempotence: bool,
    /// How long librdkafka tries one message before reporting it failed (it is then retried
    /// from the sink's buffer).
    pub message_timeout_ms: u64,
    pub format: Format,
    /// Message key: `series` (name and tags: a series always lands on the same partition),
    /// `name`, or `none`.
    pub key: KeyMode,
    /// Constant fields of every `json` message (pystatsd `kafka_apikey`, `kafka_tenant_id`).
    pub static_fields: BTreeMap<String, String>,
    /// Bound of the sink's own buffer; beyond it the oldest snapshots are dropped.
    pub buffer_bytes: u64,
    /// Largest `influx` message; series are packed up to this size.
    pub influx_max_message_bytes: usize,
    /// How long shutdown waits for delivery.
    pub shutdown_timeout_ms: u64,
    /// Passed verbatim to librdkafka (SASL, SSL, anything else); wins over the keys above.
    pub properties: BTreeMap<String, String>,
}

/// `key = "series" | "name" | "none"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    #[default]
    Series,
    Name,
    None,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: vec!["127.0.0.1:9092".into()],
            topic: "metrics".into(),
            default_topic: None,
            client_id: "rstatsd".into(),
            acks: "all".into(),
            compression: "lz4".into(),
            linger_ms: 50,
            batch_size: 1_000_000,
            idempotence: true,
            message_timeout_ms: 300_000,
            format: Format::Json,
            key: KeyMode::Series,
            static_fields: BTreeMap::new(),
            buffer_bytes: 256 << 20,
            influx_max_message_bytes: 64 << 10,
            shutdown_timeout_ms: 30_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Checks the values rstatsd interprets itself; librdkafka checks the rest when the
    /// producer is created ([`KafkaSink::new`]).
    pub fn validate(&self, prefix: &str) -> Result<(), (String, String)> {
        let err = |key: &str, reason: String| Err((format!("{prefix}.{key}"), reason));
        if self.brokers.is_empty() {
            return err("brokers", "at least one broker is required".into());
        }
        let template = match TopicTemplate::parse(&self.topic) {
            Ok(t) => t,
            Err(e) => return err("topic", e.to_string()),
        };
        match &self.default_topic {
            Some(t) => {
                if let Err(e) = TopicTemplate::parse(t).and_then(|t| {
                    t.as_fixed()
                        .map(|_| ())
                        .ok_or(topic::BadTemplate("must not contain placeholders".into()))
                }) {
                    return err("default_topic", e.to_string());
                }
            }
            None if template.uses_tags() => {
                return err(
                    "default_topic",
                    "required when `topic` uses {tag:…} (series without the tag go there)".into(),
                );
            }
            None => {}
        }
        if !["all", "1", "0", "-1"].contains(&self.acks.as_str()) {
            return err("acks", format!("{:?} is not one of all, 1, 0", self.acks));
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&self.compression.as_str()) {
            return err(
                "compression",
                format!(
                    "{:?} is not one of none, gzip, snappy, lz4, zstd",
                    self.compression
                ),
            );
        }
        for key in self.static_fields.keys() {
            if key.is_empty()
                || ["name", "value", "@timestamp", "@version", "metric_type"]
                    .contains(&key.as_str())
            {
                return err(
                    "static_fields",
                    format!("{key:?} is empty or a reserved field name"),
                );
            }
        }
        if self.buffer_bytes < 1 << 20 {
            return err("buffer_bytes", "must be at least 1048576 (1 MiB)".into());
        }
        if self.influx_max_message_bytes < 1024 {
            return err("influx_max_message_bytes", "must be at least 1024".into());
        }
        if self.message_timeout_ms == 0 {
            return err("message_timeout_ms", "must be positive".into());
        }
        Ok(())
    }

    /// The librdkafka configuration, each entry with the rstatsd key it comes from.
    fn client_config(&self, prefix: &str) -> Vec<(String, String, String)> {
        let mut c: Vec<(String, String, String)> = [
            ("bootstrap.servers", self.brokers.join(","), "brokers"),
            ("client.id", self.client_id.clone(), "client_id"),
            ("acks", self.acks.clone(), "acks"),
            ("compression.type", self.compression.clone(), "compression"),
            ("linger.ms", self.linger_ms.to_string(), "linger_ms"),
            ("batch.size", self.batch_size.to_string(), "batch_size"),
            (
                "enable.idempotence",
                self.idempotence.to_string(),
                "idempotence",
            ),
            (
                "message.timeout.ms",
                self.message_timeout_ms.to_string(),
                "message_timeout_ms",
            ),
            // The Java client's partitioner: keyed messages land where Java producers put them.
            (
                "partitioner",
                "murmur2_random".into(),
                "properties.partitioner",
            ),
        ]
        .into_iter()
        .map(|(k, v, from)| (k.to_string(), v, format!("{prefix}.{from}")))
        .collect();
        for (k, v) in &self.properties {
            c.retain(|(key, _, _)| key != k);
            c.push((k.clone(), v.clone(), format!("{prefix}.properties.{k:?}")));
        }
        c
    }
}

/// One message in the sink's buffer; key and payload are ranges of the batch's data.
#[derive(Debug, Clone)]
struct Msg {
    topic: Arc<str>,
    key: Option<Range<usize>>,
    payload: Range<usize>,
}

/// The messages of one snapshot (or retries), stored contiguously.
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    messages: VecDeque<Msg>,
    /// Bytes still waiting (data of unsent messages, plus per-message overhead).
    bytes: usize,
}

/// Fixed per-message overhead counted against `buffer_bytes`.
const MESSAGE_OVERHEAD: usize = 64;

impl Batch {
    fn push(&mut self, topic: Arc<str>, key: Option<&[u8]>, payload: &[u8]) {
        let key = key.map(|k| {
            let start = self.data.len();
            self.data.extend_from_slice(k);
            start..self.data.len()
        });
        let start = self.data.len();
        self.data.extend_from_slice(payload);
        let msg = Msg {
            topic,
            key,
            payload: start..self.data.len(),
        };
        self.bytes += Batch::message_bytes(&msg);
        self.messages.push_back(msg);
    }

    fn message_bytes(msg: &Msg) -> usize {
        msg.payload.len() + msg.key.as_ref().map_or(0, |k| k.len()) + MESSAGE_OVERHEAD
    }
}

/// A message handed back by a failed delivery, to retry.
struct Retry {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Delivery reports arrive here, on the sink thread (inside `poll`).
struct DeliveryContext {
    name: String,
    counters: Arc<SinkCounters>,
    retries: Sender<Retry>,
    /// Set once shutdown gave up: purged messages are then counted as undelivered instead.
    closing: AtomicBool,
    failures: parking_lot::Mutex<RateLimit>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let (err, msg) = match result {
            Ok(_) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err((err, msg)) => (err, msg),
        };
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        if is_retriable(err) {
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            let _ = self.retries.send(Retry {
                topic: msg.topic().to_string(),
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().unwrap_or_default().to_vec(),
            });
            return;
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.failures.lock().allow() {
            log::error!(
                "sink {}: message to topic {} failed permanently: {err} ({suppressed} more failures since the last report)",
                self.name,
                msg.topic()
            );
        }
    }
}

/// Errors after which the same message may well succeed later.
fn is_retriable(err: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        err.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | BrokerTransportFailure
                | AllBrokersDown
                | QueueFull
                | LeaderNotAvailable
                | NotLeaderForPartition
                | RequestTimedOut
                | NetworkException
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
        )
    )
}

/// The Kafka sink (see the module docs).
pub struct KafkaSink {
    name: String,
    producer: BaseProducer<DeliveryContext>,
    encoder: Encoder,
    topic: TopicTemplate,
    default_topic: Option<Arc<str>>,
    topics: HashMap<String, Arc<str>>,
    key_mode: KeyMode,
    influx_max: usize,
    buffer: VecDeque<Batch>,
    buffered: usize,
    buffer_limit: usize,
    shutdown_timeout: Duration,
    retries: Receiver<Retry>,
    counters: Arc<SinkCounters>,
    scratch: String,
    key_scratch: Vec<u8>,
}

impl KafkaSink {
    /// Creates the producer; librdkafka rejects invalid properties here, with the key.
    pub fn new(
        name: &str,
        config: &KafkaConfig,
        counters: Arc<SinkCounters>,
    ) -> Result<KafkaSink, ConfigError> {
        let prefix = format!("sinks.{name}");
        config
            .validate(&prefix)
            .map_err(|(key, reason)| ConfigError {
                file: None,
                key,
                reason,
            })?;
        let mut client = ClientConfig::new();
        let entries = config.client_config(&prefix);
        for (k, v, _) in &entries {
            client.set(k, v);
        }
        let (retry_tx, retries) = unbounded();
        let context = DeliveryContext {
            name: name.to_string(),
            counters: Arc::clone(&counters),
            retries: retry_tx,
            closing: AtomicBool::new(false),
            failures: parking_lot::Mutex::new(RateLimit::new(Duration::from_secs(10))),
        };
        let producer: BaseProducer<DeliveryContext> =
            client.create_with_context(context).map_err(|e| {
                let (key, reason) = match &e {
                    KafkaError::ClientConfig(_, desc, key, _) => {
                        let ours = entries.iter().find(|(k, _, _)| k == key).map_or_else(
                            || format!("{prefix}.properties.{key:?}"),
                            |(_, _, from)| from.clone(),
                        );
                        (ours, format!("librdkafka: {desc}"))
                    }
                    other => (
                        prefix.clone(),
                        format!("cannot create the Kafka producer: {other}"),
                    ),
                };
                ConfigError {
                    file: None,
                    key,
                    reason,
                }
            })?;
        Ok(KafkaSink {
            name: name.to_string(),
            producer,
            encoder: Encoder::new(
                config.format,
                config
                    .static_fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            topic: TopicTemplate::parse(&config.topic).expect("validated"),
            default_topic: config.default_topic.as_deref().map(Arc::from),
            topics: HashMap::new(),
            key_mode: config.key,
            influx_max: config.influx_max_message_bytes,
            buffer: VecDeque::new(),
            buffered: 0,
            buffer_limit: config.buffer_bytes as usize,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
            retries,
            counters,
            scratch: String::new(),
            key_scratch: Vec::new(),
        })
    }

    /// The topic of series `index`, interned.
    fn topic_for(&mut self, snapshot: &Snapshot, index: usize) -> Arc<str> {
        let key = &snapshot.series[index].0;
        let mut name = String::new();
        if !self.topic.render(key, &mut name) {
            return Arc::clone(
                self.default_topic
                    .as_ref()
                    .expect("validated: default_topic with tag templates"),
            );
        }
        if let Some(t) = self.topics.get(&name) {
            return Arc::clone(t);
        }
        let t: Arc<str> = Arc::from(name.as_str());
        if self.topics.len() < 10_000 {
            self.topics.insert(name, Arc::clone(&t));
        }
        t
    }

    fn encode(&mut self, snapshot: &Snapshot) -> Batch {
        let mut batch = Batch::default();
        if self.encoder.format() == Format::Influx {
            // Influx messages pack many series, so they carry no key; one message per topic run.
            let mut current: Option<Arc<str>> = None;
            self.scratch.clear();
            for i in 0..snapshot.series.len() {
                let topic = self.topic_for(snapshot, i);
                let start = self.scratch.len();
                self.encoder.encode_influx(&mut self.scratch, snapshot, i);
                let same_topic = current.as_ref().is_some_and(|t| *t == topic);
                if start > 0 && (!same_topic || self.scratch.len() > self.influx_max) {
                    let line = self.scratch.split_off(start);
                    batch.push(
                        current.take().expect("set with content"),
                        None,
                        self.scratch.as_bytes(),
                    );
                    self.scratch = line;
                }
                current = Some(topic);
            }
            if let Some(topic) = current {
                batch.push(topic, None, self.scratch.as_bytes());
            }
            return batch;
        }
        for i in 0..snapshot.series.len() {
            let topic = self.topic_for(snapshot, i);
            self.scratch.clear();
            self.encoder.encode_one(&mut self.scratch, snapshot, i);
            self.key_scratch.clear();
            let key = &snapshot.series[i].0;
            let key = match self.key_mode {
                KeyMode::Series => {
                    encode::series_key(&mut self.key_scratch, key);
                    Some(&self.key_scratch[..])
                }
                KeyMode::Name => Some(key.name().as_bytes()),
                KeyMode::None => None,
            };
            batch.push(topic, key, self.scratch.as_bytes());
        }
        batch
    }

    /// Takes retries back into the buffer, drops the oldest snapshots beyond the limit and
    /// hands messages to librdkafka until it pushes back.
    fn pump(&mut self) {
        let retries: Vec<Retry> = self.retries.try_iter().collect();
        if !retries.is_empty() {
            let mut batch = Batch::default();
            for r in retries {
                batch.push(Arc::from(r.topic.as_str()), r.key.as_deref(), &r.payload);
            }
            self.buffered += batch.bytes;
            // Retries are the oldest data: they go first.
            self.buffer.push_front(batch);
        }
        while self.buffered > self.buffer_limit && self.buffer.len() > 1 {
            let oldest = self.buffer.pop_front().expect("len > 1");
            self.buffered -= oldest.bytes;
            self.counters
                .dropped
                .fetch_add(oldest.messages.len() as u64, Ordering::Relaxed);
            log::warn!(
                "sink {}: buffer over {} bytes: dropped the oldest {} messages",
                self.name,
                self.buffer_limit,
                oldest.messages.len()
            );
        }
        'batches: while let Some(batch) = self.buffer.front_mut() {
            while let Some(msg) = batch.messages.front() {
                let mut record =
                    BaseRecord::to(&msg.topic).payload(&batch.data[msg.payload.clone()]);
                if let Some(k) = &msg.key {
                    record = record.key(&batch.data[k.clone()]);
                }
                match self.producer.send(record) {
                    Ok(()) => {}
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        break 'batches;
                    }
                    Err((e, _)) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        log::error!(
                            "sink {}: cannot produce to topic {}: {e}",
                            self.name,
                            msg.topic
                        );
                    }
                }
                let bytes = Batch::message_bytes(msg);
                batch.bytes -= bytes;
                self.buffered -= bytes;
                batch.messages.pop_front();
            }
            self.buffer.pop_front();
        }
        self.counters
            .buffered_bytes
            .store(self.buffered as u64, Ordering::Relaxed);
        self.producer.poll(Duration::ZERO);
    }

    fn waiting(&self) -> usize {
        self.buffer.iter().map(|b| b.messages.len()).sum::<usize>() + self.retries.len()
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, snapshot: &Snapshot) -> Result<(), SinkError> {
        let batch = self.encode(snapshot);
        self.buffered += batch.bytes;
        self.buffer.push_back(batch);
        self.pump();
        Ok(())
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }

    fn poll(&mut self) {
        self.pump();
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.shutdown_timeout;
        loop {
            self.pump();
            let pending = self.waiting() + self.producer.in_flight_count().max(0) as usize;
            if pending == 0 || Instant::now() >= deadline {
                break;
            }
            self.producer.poll(Duration::from_millis(50));
        }
        let undelivered = self.waiting() + self.producer.in_flight_count().max(0) as usize;
        self.producer
            .context()
            .closing
            .store(true, Ordering::Relaxed);
        self.counters
            .undelivered
            .store(undelivered as u64, Ordering::Relaxed);
        let delivered = self.counters.delivered.load(Ordering::Relaxed);
        if undelivered > 0 {
            log::error!(
                "sink {}: gave up after {:?}: {undelivered} messages undelivered ({delivered} delivered in total)",
                self.name,
                self.shutdown_timeout
            );
        } else {
            log::info!(
                "sink {}: all messages delivered ({delivered} in total)",
                self.name
            );
        }
        Ok(())
    }
}
