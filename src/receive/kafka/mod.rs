//! The aggregator's input: partials from a Kafka topic, read in a consumer group, merged per
//! interval over every source, deduplicated, and handed to the flusher as closed intervals.
//!
//! ```text
//! hosts: rstatsd --kafka-format partial ──► partials topic ──► aggregator group ──► sinks
//!        (one partial per series per interval,   (partitioned     (rstatsd --aggregate-from:
//!         end-of-interval markers to every        by series)       merge, dedup, close,
//!         partition)                                               finalize as usual)
//! ```
//!
//! - This file: `[aggregate]` (flags `--aggregate-*`) and the thread's entry point.
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
pub use self::consumer::{AggregateInput, spawn};
pub use self::window::{LatePolicy, Window, WindowSettings};
use crate::aggregate::Bounds;
use crate::metric::MetricType;
use crate::settings::{ConfigError, at_least};

/// `[aggregate]`: run as a fleet aggregator (when `from` is set).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateConfig {
    /// Aggregate the partials other rstatsd publish, from these Kafka brokers (comma
    /// separated); empty: not an aggregator (aggregate.from).
    #[arg(
        id = "aggregate.from",
        long = "aggregate-from",
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        required = false
    )]
    pub from: Vec<String>,
    /// Topic the locals write their partials to (aggregate.topic).
    #[arg(
        id = "aggregate.topic",
        long = "aggregate-topic",
        value_name = "TOPIC",
        required = false
    )]
    pub topic: String,
    /// Consumer group of the aggregators (aggregate.group).
    #[arg(
        id = "aggregate.group",
        long = "aggregate-group",
        value_name = "GROUP",
        required = false
    )]
    pub group: String,
    /// How long after its end an interval waits for a missing marker; 0 = one flush
    /// interval (aggregate.grace_ms).
    #[arg(
        id = "aggregate.grace_ms",
        long = "aggregate-grace-ms",
        value_name = "MS",
        required = false
    )]
    pub grace_ms: u64,
    /// A source is waited for while it sent anything in this many of the last intervals
    /// (aggregate.live_intervals).
    #[arg(
        id = "aggregate.live_intervals",
        long = "aggregate-live-intervals",
        value_name = "N",
        required = false
    )]
    pub live_intervals: u32,
    /// Partials for an interval already closed: drop (counted) or reemit the corrected
    /// interval in full (aggregate.late).
    #[arg(
        id = "aggregate.late",
        long = "aggregate-late",
        value_name = "drop|reemit",
        value_parser = parse_late,
        required = false
    )]
    pub late: LatePolicy,
    /// Closed intervals kept per partition for `late = "reemit"`
    /// (aggregate.reemit_intervals).
    #[arg(
        id = "aggregate.reemit_intervals",
        long = "aggregate-reemit-intervals",
        value_name = "N",
        required = false
    )]
    pub reemit_intervals: usize,
    /// Types reported per source instead of merged over the fleet, comma separated
    /// (aggregate.per_source_types).
    #[arg(
        id = "aggregate.per_source_types",
        long = "aggregate-per-source-types",
        value_name = "TYPES",
        value_delimiter = ',',
        required = false
    )]
    pub per_source_types: Vec<String>,
    /// The tag naming the source of a per-source series; "" merges them too
    /// (aggregate.source_tag).
    #[arg(
        id = "aggregate.source_tag",
        long = "aggregate-source-tag",
        value_name = "KEY",
        required = false
    )]
    pub source_tag: String,
    /// Passed verbatim to librdkafka's consumer (SASL, SSL, session.timeout.ms, …).
    #[arg(skip)]
    pub properties: BTreeMap<String, String>,
}

fn parse_late(s: &str) -> Result<LatePolicy, String> {
    match s {
        "drop" => Ok(LatePolicy::Drop),
        "reemit" => Ok(LatePolicy::Reemit),
        _ => Err(format!("{s:?} is not one of drop, reemit")),
    }
}

impl Default for AggregateConfig {
    fn default() -> Self {
        AggregateConfig {
            from: Vec::new(),
            topic: "rstatsd-partials".into(),
            group: "rstatsd-aggregators".into(),
            grace_ms: 0,
            live_intervals: 3,
            late: LatePolicy::Drop,
            reemit_intervals: 3,
            per_source_types: vec!["gauge".into()],
            source_tag: "source".into(),
            properties: BTreeMap::new(),
        }
    }
}

impl AggregateConfig {
    /// True when this rstatsd is an aggregator.
    pub fn enabled(&self) -> bool {
        !self.from.is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if !cfg!(feature = "kafka") {
            return Err(ConfigError::new(
                "aggregate.from",
                "this rstatsd was built without Kafka support",
            ));
        }
        if self.topic.is_empty() {
            return Err(ConfigError::new("aggregate.topic", "must not be empty"));
        }
        if self.group.is_empty() {
            return Err(ConfigError::new("aggregate.group", "must not be empty"));
        }
        at_least("aggregate.live_intervals", self.live_intervals.into(), 1)?;
        at_least(
            "aggregate.reemit_intervals",
            self.reemit_intervals as u64,
            1,
        )?;
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
                            format!("aggregate.per_source_types[{i}]"),
                            format!("{t:?} is not a metric type"),
                        )
                    })
            })
            .collect()
    }

    /// The window's settings (valid after [`AggregateConfig::validate`]).
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
