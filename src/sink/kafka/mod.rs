//! The Kafka sink: per-flush aggregates as Kafka messages, with no silent loss.
//!
//! This file owns the config, its validation, the `--kafka-*` flags and `build`. Each snapshot
//! is encoded ([`encode`], topics from [`topic`]) into one contiguous batch and queued in the
//! sink's delivery buffer ([`crate::sink::buffer`]); the [`transport`] feeds librdkafka's queue
//! from it as fast as librdkafka accepts. The sink runs on its own thread (the producer
//! thread) with an rdkafka `BaseProducer` that it polls itself: no background thread, no
//! async runtime.
//!
//! Every message is accounted for (see [`crate::stats`]):
//! - **delivered** when the broker acknowledged it;
//! - **retried** when delivery failed retriably (e.g. it timed out during an outage): it goes
//!   back to the front of the buffer;
//! - **failed** when delivery failed permanently (logged with the error, rate-limited);
//! - **buffer dropped** when the buffer exceeded `buffer_bytes`: whole oldest snapshots first.
//!
//! A full librdkafka queue is backpressure: messages wait in the buffer. At shutdown the sink
//! keeps delivering for up to `shutdown_timeout_ms` and reports what remained undelivered.

pub mod encode;
pub mod partial;
pub mod partition;
pub mod topic;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::encode::Format;
use self::topic::TopicTemplate;
pub use self::transport::KafkaTransport;
use super::buffer::BufferedSink;
use super::{BuildContext, BuiltSink, ConfigError, SinkCounters, SinkSpec};
use crate::kafka_client::ClientSettings;

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
    /// This host's name in `partial` messages; empty: the host name.
    pub source_id: String,
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
            source_id: String::new(),
        }
    }
}

/// The `--kafka-*` flags: they configure the sink named `kafka`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaFlags {
    /// Send aggregates to Kafka at these brokers (comma separated), through the sink named
    /// `kafka` (created with defaults if the file does not define it).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub kafka_brokers: Vec<String>,

    /// Topic (or template, e.g. `metrics.{type}`) of the `kafka` sink.
    #[arg(long, value_name = "TOPIC")]
    pub kafka_topic: Option<String>,

    /// Message format of the `kafka` sink.
    #[arg(long, value_name = "FORMAT")]
    pub kafka_format: Option<Format>,

    /// This host's name in the `kafka` sink's `partial` messages (default: the host name).
    #[arg(long, value_name = "ID")]
    pub source_id: Option<String>,
}

impl SinkSpec for KafkaConfig {
    type Flags = KafkaFlags;

    /// Checks the values rstatsd interprets itself; librdkafka checks the rest when the
    /// producer is created ([`SinkSpec::build`]).
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let err =
            |key: &str, reason: String| Err(ConfigError::new(format!("{prefix}.{key}"), reason));
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
        if self.format == Format::Partial {
            if template.as_fixed().is_none() {
                return err(
                    "topic",
                    "format \"partial\" needs one fixed topic (aggregators read one)".into(),
                );
            }
            if self.key != KeyMode::Series {
                return err(
                    "key",
                    "format \"partial\" is always keyed by series (a series must stay on \
                     one partition)"
                        .into(),
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

    /// Creates the producer; librdkafka rejects invalid properties here, with the key.
    fn build(&self, name: &str, context: &BuildContext) -> Result<Vec<BuiltSink>, ConfigError> {
        let prefix = format!("sinks.{name}");
        self.validate(&prefix)?;
        let counters: Arc<SinkCounters> = Arc::default();
        let transport = KafkaTransport::new(name, self, Arc::clone(&counters))?;
        let timeout = Duration::from_millis(self.shutdown_timeout_ms);
        let settings = context.buffer(name, self.buffer_bytes as usize, timeout);
        let sink = BufferedSink::new(name, transport, &settings, Arc::clone(&counters));
        Ok(vec![BuiltSink {
            name: name.to_string(),
            sink: Box::new(sink),
            counters,
        }])
    }

    fn flagged_sink(flags: &KafkaFlags) -> Option<&'static str> {
        let any = !flags.kafka_brokers.is_empty()
            || flags.kafka_topic.is_some()
            || flags.kafka_format.is_some()
            || flags.source_id.is_some();
        any.then_some("kafka")
    }

    fn apply_flags(&mut self, flags: &KafkaFlags) {
        if !flags.kafka_brokers.is_empty() {
            self.brokers = flags.kafka_brokers.clone();
        }
        if let Some(t) = &flags.kafka_topic {
            self.topic = t.clone();
        }
        if let Some(f) = flags.kafka_format {
            self.format = f;
        }
        if let Some(id) = &flags.source_id {
            self.source_id = id.clone();
        }
    }
}

impl KafkaConfig {
    /// The producer's librdkafka configuration, each property with the key it comes from.
    pub(crate) fn client_settings(&self, section: &str) -> ClientSettings {
        ClientSettings::new(section)
            .set("bootstrap.servers", self.brokers.join(","), "brokers")
            .set("client.id", self.client_id.clone(), "client_id")
            .set("acks", self.acks.clone(), "acks")
            .set("compression.type", self.compression.clone(), "compression")
            .set("linger.ms", self.linger_ms.to_string(), "linger_ms")
            .set("batch.size", self.batch_size.to_string(), "batch_size")
            .set(
                "enable.idempotence",
                self.idempotence.to_string(),
                "idempotence",
            )
            .set(
                "message.timeout.ms",
                self.message_timeout_ms.to_string(),
                "message_timeout_ms",
            )
            // The Java client's partitioner: keyed messages land where Java producers put them.
            .set("partitioner", "murmur2_random", "properties.partitioner")
            .properties(&self.properties)
    }
}
