//! The fleet stage: an aggregator's input. Partials from a Kafka topic, read in a consumer
//! group, merged per interval over every source, deduplicated, and handed to the flusher as
//! closed intervals. It sits beside the data path, above the flusher it feeds.
//!
//! ```text
//! hosts: rstatsd --kafka-format partial ──► partials topic ──► aggregator group ──► sinks
//!        (one partial per series per interval,   (partitioned     (rstatsd --fleet-from:
//!         end-of-interval markers to every        by series)       merge, dedup, close,
//!         partition)                                               finalize as usual)
//! ```
//!
//! - This file: `[fleet]` (flags `--fleet-*`; the old `[aggregate]` and `--aggregate-*`
//!   are read with a deprecation warning, see [`crate::config`]) and the thread's entry point.
//! - [`window`]: the rules — deduplication, liveness, when an interval closes, late
//!   partials, which offsets may be committed. Pure logic, no Kafka.
//! - `consumer` (with the `kafka` feature): the consumer-group thread around it. Kafka
//!   assigns partitions and moves them when an aggregator dies; offsets are committed only
//!   once every sink has taken an interval ([`crate::sink::Receipt`]), so a crash or a
//!   rebalance replays the open intervals and deduplication absorbs the replay.
//!
//! The partial format is [`crate::aggregate::partial`] (schema `src/aggregate/partial.proto`),
//! written by the Kafka sink's `partial` format ([`crate::sink::kafka::partial`]).

#[cfg(feature = "kafka")]
mod consumer;
pub mod window;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "kafka")]
pub use self::consumer::{FleetInput, spawn};
pub use self::window::{LatePolicy, Window, WindowSettings};
use crate::aggregate::Bounds;
use crate::config_error::{ConfigError, at_least};
use crate::metric::MetricType;

/// `[fleet]`: run as a fleet aggregator (when `from` is set).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Aggregate the partials other rstatsd publish, from these Kafka brokers (comma
    /// separated); empty: not an aggregator (fleet.from).
    #[arg(
        id = "fleet.from",
        long = "fleet-from",
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        required = false
    )]
    pub from: Vec<String>,
    /// Topic the locals write their partials to (fleet.topic).
    #[arg(
        id = "fleet.topic",
        long = "fleet-topic",
        value_name = "TOPIC",
        required = false
    )]
    pub topic: String,
    /// Consumer group of the aggregators (fleet.group).
    #[arg(
        id = "fleet.group",
        long = "fleet-group",
        value_name = "GROUP",
        required = false
    )]
    pub group: String,
    /// How long after its end an interval waits for a missing marker; 0 = one flush
    /// interval (fleet.grace_ms).
    #[arg(
        id = "fleet.grace_ms",
        long = "fleet-grace-ms",
        value_name = "MS",
        required = false
    )]
    pub grace_ms: u64,
    /// A source is waited for while it sent anything in this many of the last intervals
    /// (fleet.live_intervals).
    #[arg(
        id = "fleet.live_intervals",
        long = "fleet-live-intervals",
        value_name = "N",
        required = false
    )]
    pub live_intervals: u32,
    /// Partials for an interval already closed: drop (counted) or reemit the corrected
    /// interval in full (fleet.late).
    #[arg(
        id = "fleet.late",
        long = "fleet-late",
        value_name = "drop|reemit",
        value_parser = parse_late,
        required = false
    )]
    pub late: LatePolicy,
    /// Closed intervals kept per partition for `late = "reemit"`
    /// (fleet.reemit_intervals).
    #[arg(
        id = "fleet.reemit_intervals",
        long = "fleet-reemit-intervals",
        value_name = "N",
        required = false
    )]
    pub reemit_intervals: usize,
    /// Types reported per source instead of merged over the fleet, comma separated
    /// (fleet.per_source_types).
    #[arg(
        id = "fleet.per_source_types",
        long = "fleet-per-source-types",
        value_name = "TYPES",
        value_delimiter = ',',
        required = false
    )]
    pub per_source_types: Vec<String>,
    /// The tag naming the source of a per-source series; "" merges them too
    /// (fleet.source_tag).
    #[arg(
        id = "fleet.source_tag",
        long = "fleet-source-tag",
        value_name = "KEY",
        required = false
    )]
    pub source_tag: String,
    /// How long the group waits for a silent aggregator before its partitions move to the
    /// others; 0 = three flush intervals, within 6 s to 300 s (fleet.session_timeout_ms).
    #[arg(
        id = "fleet.session_timeout_ms",
        long = "fleet-session-timeout-ms",
        value_name = "MS",
        required = false
    )]
    pub session_timeout_ms: u64,
    /// Heartbeats to the group coordinator; 0 = a third of the session timeout
    /// (fleet.heartbeat_ms).
    #[arg(
        id = "fleet.heartbeat_ms",
        long = "fleet-heartbeat-ms",
        value_name = "MS",
        required = false
    )]
    pub heartbeat_ms: u64,
    /// A static group membership (Kafka's group.instance.id): an aggregator restarted with
    /// the same id within the session timeout takes its partitions back without a
    /// rebalance; empty: a dynamic member (fleet.instance_id).
    #[arg(
        id = "fleet.instance_id",
        long = "fleet-instance-id",
        value_name = "ID",
        required = false
    )]
    pub instance_id: String,
    /// Passed verbatim to librdkafka's consumer (SASL, SSL, …); overrides rstatsd's own.
    #[arg(skip)]
    pub properties: BTreeMap<String, String>,
}

/// The broker's default `group.min.session.timeout.ms` and the consumer's default
/// `max.poll.interval.ms`, which a session timeout may not exceed: the derived session
/// timeout stays within them.
const SESSION_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 6_000..=300_000;

fn parse_late(s: &str) -> Result<LatePolicy, String> {
    match s {
        "drop" => Ok(LatePolicy::Drop),
        "reemit" => Ok(LatePolicy::Reemit),
        _ => Err(format!("{s:?} is not one of drop, reemit")),
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            from: Vec::new(),
            topic: "rstatsd-partials".into(),
            group: "rstatsd-aggregators".into(),
            grace_ms: 0,
            live_intervals: 3,
            late: LatePolicy::Drop,
            reemit_intervals: 3,
            per_source_types: vec!["gauge".into()],
            source_tag: "source".into(),
            session_timeout_ms: 0,
            heartbeat_ms: 0,
            instance_id: String::new(),
            properties: BTreeMap::new(),
        }
    }
}

impl FleetConfig {
    /// True when this rstatsd is an aggregator.
    pub fn enabled(&self) -> bool {
        !self.from.is_empty()
    }

    /// Checks every key; `interval_ms` is the flush interval the timeouts derive from.
    pub fn validate(&self, interval_ms: u64) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if !cfg!(feature = "kafka") {
            return Err(ConfigError::new(
                "fleet.from",
                "this rstatsd was built without Kafka support",
            ));
        }
        if self.topic.is_empty() {
            return Err(ConfigError::new("fleet.topic", "must not be empty"));
        }
        if self.group.is_empty() {
            return Err(ConfigError::new("fleet.group", "must not be empty"));
        }
        at_least("fleet.live_intervals", self.live_intervals.into(), 1)?;
        let session = self.session_timeout_ms(interval_ms);
        if self.heartbeat_ms(interval_ms) >= session {
            return Err(ConfigError::new(
                "fleet.heartbeat_ms",
                format!("must be below the session timeout ({session} ms)"),
            ));
        }
        at_least("fleet.reemit_intervals", self.reemit_intervals as u64, 1)?;
        self.per_source()?;
        Ok(())
    }

    fn per_source(&self) -> Result<Vec<MetricType>, ConfigError> {
        self.per_source_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                MetricType::ALL
                    .iter()
                    .copied()
                    .find(|m| m.as_str() == t)
                    .ok_or_else(|| {
                        ConfigError::new(
                            format!("fleet.per_source_types[{i}]"),
                            format!("{t:?} is not a metric type"),
                        )
                    })
            })
            .collect()
    }

    /// The session timeout: as set, else three flush intervals within
    /// [`SESSION_TIMEOUT_MS`]. librdkafka's own default (45 s) would keep a dead
    /// aggregator's partitions unread for 45 s, whatever the interval.
    pub fn session_timeout_ms(&self, interval_ms: u64) -> u64 {
        match self.session_timeout_ms {
            0 => interval_ms
                .saturating_mul(3)
                .clamp(*SESSION_TIMEOUT_MS.start(), *SESSION_TIMEOUT_MS.end()),
            ms => ms,
        }
    }

    /// The heartbeat interval: as set, else a third of the session timeout (Kafka's advice).
    pub fn heartbeat_ms(&self, interval_ms: u64) -> u64 {
        match self.heartbeat_ms {
            0 => (self.session_timeout_ms(interval_ms) / 3).max(1),
            ms => ms,
        }
    }

    /// The consumer's librdkafka configuration, each property with the key it comes from.
    #[cfg(feature = "kafka")]
    pub(crate) fn client_settings(&self, interval_ms: u64) -> crate::kafka_client::ClientSettings {
        let section = crate::kafka_client::ClientSettings::new("fleet")
            .set("bootstrap.servers", self.from.join(","), "from")
            .set("group.id", self.group.clone(), "group")
            .set("enable.auto.commit", "false", "")
            .set("enable.auto.offset.store", "false", "")
            .set("auto.offset.reset", "earliest", "")
            .set("partition.assignment.strategy", "cooperative-sticky", "")
            .set(
                "session.timeout.ms",
                self.session_timeout_ms(interval_ms).to_string(),
                "session_timeout_ms",
            )
            .set(
                "heartbeat.interval.ms",
                self.heartbeat_ms(interval_ms).to_string(),
                "heartbeat_ms",
            );
        let section = if self.instance_id.is_empty() {
            section
        } else {
            section.set("group.instance.id", self.instance_id.clone(), "instance_id")
        };
        section.properties(&self.properties)
    }

    /// The window's settings (valid after [`FleetConfig::validate`]).
    pub fn window(&self, interval_ms: u64, bounds: Bounds) -> WindowSettings {
        WindowSettings {
            interval_ms,
            grace_ms: if self.grace_ms == 0 {
                interval_ms
            } else {
                self.grace_ms
            },
            live_intervals: self.live_intervals,
            bounds,
            per_source: self.per_source().unwrap_or_default(),
            source_tag: self.source_tag.clone(),
            late: self.late,
            reemit_intervals: self.reemit_intervals,
        }
    }
}
