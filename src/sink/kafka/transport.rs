//! The producer side of the Kafka sink: librdkafka's queue fed from the delivery buffer,
//! delivery reports, and retries of what failed retriably.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, unbounded};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};

use super::KafkaConfig;
use super::encode::{BatchEncoder, Format};
use super::partial::{PartialEncoder, host_name};
use crate::format::time::unix_millis;
use crate::logging::RateLimit;
use crate::sink::batch::{Batch, MessageRef, Tag};
use crate::sink::buffer::{DeliveryBuffer, Flow, Transport};
use crate::sink::{ConfigError, Flushed, SinkCounters};

/// A message handed back by a failed delivery, to retry.
struct Retry {
    tag: Tag,
    partition: i32,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Delivery reports arrive here, on the sink thread (inside `poll`); the transport hands
/// them to the delivery buffer at its next `deliver`.
struct DeliveryContext {
    name: String,
    counters: Arc<SinkCounters>,
    /// Messages delivered or failed permanently: resolved in the buffer.
    resolved: parking_lot::Mutex<Vec<Tag>>,
    retries: Sender<Retry>,
    /// Set once shutdown gave up: purged messages stay unresolved (the buffer spools them).
    closing: AtomicBool,
    failures: parking_lot::Mutex<RateLimit>,
    errors: parking_lot::Mutex<RateLimit>,
}

impl ClientContext for DeliveryContext {
    /// librdkafka's own errors (a broker connection failing, all brokers down) are what
    /// `sink_connection_errors` counts for Kafka.
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown)
        ) {
            SinkCounters::add(&self.counters.connection_errors, 1);
        }
        if let Some(suppressed) = self.errors.lock().allow() {
            log::warn!(
                "sink {}: librdkafka: {error}: {reason} ({suppressed} more librdkafka errors \
                 since the last report)",
                self.name
            );
        }
    }
}

impl ProducerContext for DeliveryContext {
    /// The message's [`Tag`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        let tag = Tag(tag as u64);
        let (err, msg) = match result {
            Ok(_) => {
                SinkCounters::add(&self.counters.delivered, 1);
                self.resolved.lock().push(tag);
                return;
            }
            Err((err, msg)) => (err, msg),
        };
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        if is_retriable(err) {
            SinkCounters::add(&self.counters.retried, 1);
            let _ = self.retries.send(Retry {
                tag,
                partition: msg.partition(),
                topic: msg.topic().to_string(),
                key: msg.key().map(<[u8]>::to_vec),
                payload: msg.payload().unwrap_or_default().to_vec(),
            });
            return;
        }
        SinkCounters::add(&self.counters.failed, 1);
        self.resolved.lock().push(tag);
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

/// How long one metadata request (the partials topic's partition count) may block the sink
/// thread: only while no broker answers, when nothing can be delivered anyway.
const METADATA_TIMEOUT: Duration = Duration::from_millis(500);
/// A known partition count is refreshed this often; a failed lookup is retried this often.
const METADATA_REFRESH: Duration = Duration::from_secs(60);
const METADATA_RETRY: Duration = Duration::from_secs(10);

/// The partials topic's partition count, as last fetched.
#[derive(Default)]
struct PartitionCount {
    known: Option<u32>,
    fetched: Option<Instant>,
    tried: Option<Instant>,
}

/// The Kafka transport (see the module docs of [`super`]).
pub struct KafkaTransport {
    name: String,
    producer: BaseProducer<DeliveryContext>,
    encoder: BatchEncoder,
    /// `format = "partial"`.
    partial: Option<(PartialEncoder, PartitionCount)>,
    retries: Receiver<Retry>,
    counters: Arc<SinkCounters>,
    unsequenced: RateLimit,
}

impl KafkaTransport {
    /// Creates the producer; librdkafka rejects invalid properties here, with the key.
    pub fn new(
        name: &str,
        config: &KafkaConfig,
        counters: Arc<SinkCounters>,
    ) -> Result<KafkaTransport, ConfigError> {
        let (retry_tx, retries) = unbounded();
        let context = DeliveryContext {
            name: name.to_string(),
            counters: Arc::clone(&counters),
            resolved: parking_lot::Mutex::new(Vec::new()),
            retries: retry_tx,
            closing: AtomicBool::new(false),
            failures: parking_lot::Mutex::new(RateLimit::new(Duration::from_secs(10))),
            errors: parking_lot::Mutex::new(RateLimit::new(Duration::from_secs(10))),
        };
        let producer: BaseProducer<DeliveryContext> = config
            .client_settings(&format!("sinks.{name}"))
            .create(context, "producer")?;
        let partial = (config.format == Format::Partial).then(|| {
            let source_id = if config.source_id.is_empty() {
                host_name()
            } else {
                config.source_id.clone()
            };
            let epoch = unix_millis(SystemTime::now());
            let encoder = PartialEncoder::new(&config.topic, source_id, epoch);
            (encoder, PartitionCount::default())
        });
        Ok(KafkaTransport {
            name: name.to_string(),
            producer,
            encoder: BatchEncoder::new(config),
            partial,
            retries,
            counters,
            unsequenced: RateLimit::new(Duration::from_secs(60)),
        })
    }

    /// The partials topic's partition count: cached, refreshed now and then, fetched with a
    /// bounded wait.
    fn partition_count(&mut self) -> Option<u32> {
        let (encoder, count) = self.partial.as_mut()?;
        let now = Instant::now();
        let stale = count.fetched.is_none_or(|t| now - t >= METADATA_REFRESH);
        let may_try = count.tried.is_none_or(|t| now - t >= METADATA_RETRY);
        if stale && may_try {
            count.tried = Some(now);
            let topic = encoder.topic().to_string();
            match self
                .producer
                .client()
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            {
                Ok(metadata) => {
                    let n = metadata
                        .topics()
                        .iter()
                        .find(|t| t.name() == topic && t.error().is_none())
                        .map(|t| t.partitions().len() as u32)
                        .filter(|n| *n > 0);
                    if let Some(n) = n {
                        if count.known.is_some_and(|k| k != n) {
                            log::warn!(
                                "sink {}: topic {topic} now has {n} partitions (was {:?}): \
                                 series move, aggregators may emit an interval twice",
                                self.name,
                                count.known
                            );
                        }
                        count.known = Some(n);
                        count.fetched = Some(now);
                    }
                }
                Err(e) => log::debug!("sink {}: metadata of {topic}: {e}", self.name),
            }
        }
        count.known
    }

    /// Hands the batch's messages to librdkafka until its queue is full; returns the tags
    /// of messages librdkafka refused outright (failed permanently).
    fn produce(&mut self, batch: &mut Batch, refused: &mut Vec<Tag>) -> Flow {
        while let Some(msg) = batch.front() {
            let topic = msg.topic.map_or("", |t| t);
            // The opaque is the tag: usize is 64 bits on every platform rstatsd builds for.
            let mut record =
                BaseRecord::with_opaque_to(topic, msg.tag.0 as usize).payload(msg.payload);
            if let Some(k) = msg.key {
                record = record.key(k);
            }
            if let Some(p) = msg.partition {
                record = record.partition(p);
            }
            match self.producer.send(record) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Flow::Blocked;
                }
                Err((e, _)) => {
                    SinkCounters::add(&self.counters.failed, 1);
                    refused.push(msg.tag);
                    log::error!("sink {}: cannot produce to topic {topic}: {e}", self.name);
                }
            }
            batch.advance();
        }
        Flow::Done
    }

    /// Hands delivery reports and retries to the buffer.
    fn collect_reports(&mut self, buffer: &mut DeliveryBuffer) {
        let resolved = std::mem::take(&mut *self.producer.context().resolved.lock());
        for tag in resolved {
            buffer.resolve(tag);
        }
        let mut retried = Batch::default();
        for r in self.retries.try_iter() {
            let topic: Arc<str> = Arc::from(r.topic.as_str());
            let message = MessageRef {
                topic: Some(&topic),
                key: r.key.as_deref(),
                payload: &r.payload,
                // Where it went before: a retry keeps its place in its partition's order.
                partition: Some(r.partition),
                tag: r.tag,
            };
            retried.push_retry(r.tag, message);
        }
        // Retries are the oldest data: they go first.
        buffer.push_front(retried);
    }
}

impl Transport for KafkaTransport {
    fn encode(&mut self, flushed: &Flushed, batch: &mut Batch) {
        if self.partial.is_some() {
            let partitions = self.partition_count();
            if partitions.is_none()
                && let Some(suppressed) = self.unsequenced.allow()
            {
                log::warn!(
                    "sink {}: the partition count of the partials topic is unknown (no broker \
                     answered): partials go unsequenced and without markers; aggregators \
                     close these intervals by grace ({suppressed} more such flushes)",
                    self.name
                );
            }
            if let Some((encoder, _)) = &mut self.partial {
                encoder.encode(flushed, partitions, batch);
            }
            return;
        }
        self.encoder.encode(&flushed.snapshot, batch);
    }

    fn acknowledges(&self) -> bool {
        true
    }

    fn deliver(&mut self, buffer: &mut DeliveryBuffer) {
        // `poll(0)` serves at most one event; during an outage librdkafka queues error
        // events faster than that, and delivery reports would wait behind them. A bounded
        // poll serves every queued event.
        self.producer.poll(Duration::from_millis(1));
        self.collect_reports(buffer);
        let mut refused = Vec::new();
        buffer.deliver(|batch| self.produce(batch, &mut refused));
        for tag in refused {
            buffer.resolve(tag);
        }
    }

    fn wait(&mut self, max: Duration) {
        self.producer.poll(max);
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    /// Takes back what librdkafka still holds: purged, its reports ignored, so the buffer
    /// spools exactly what was not acknowledged. (A message already sent in a request may
    /// still have reached the broker: at-least-once.)
    fn abandon(&mut self, buffer: &mut DeliveryBuffer) {
        self.producer.poll(Duration::ZERO);
        self.collect_reports(buffer);
        self.producer
            .context()
            .closing
            .store(true, Ordering::Relaxed);
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        self.producer.poll(Duration::ZERO);
        // Retries that arrived before `closing` are covered by their first sending's track.
        self.retries.try_iter().for_each(drop);
    }
}
