//! The Graphite sink: Etsy statsd's Graphite output over the plaintext carbon protocol
//! (`path value unix_ts\n` over TCP).
//!
//! This file owns the config, its validation, the flag and `build`; naming and numbers are
//! Etsy's ([`render`]); the connection is [`transport`]. Each destination is its own sink
//! (own thread, own buffer, named `<sink>/<host:port>`), so one slow or absent carbon never
//! holds back another or any other sink.
//!
//! **Delivery.** A snapshot is rendered into complete lines (one message each) the moment it
//! arrives and queued in the sink's delivery buffer ([`crate::sink::buffer`]): bounded by
//! `buffer_bytes` (default 64 MiB), the oldest whole snapshots dropped first and counted
//! (`sink_buffer_dropped`, in lines). While the destination is down the sink reconnects with exponential backoff
//! (`reconnect_min_ms` doubling up to `reconnect_max_ms`). Writes have a timeout, so a
//! stalled carbon delays only this sink. After a partial write the rest is sent next; after
//! a failed write the line it cut is sent again whole on the new connection (carbon
//! discards the unterminated fragment of a closed connection), so no line is torn or
//! duplicated.
//!
//! Carbon never answers, so TCP alone cannot tell whether bytes the kernel accepted reached
//! it. Before each snapshot the sink checks whether carbon closed the connection (a
//! non-blocking peek: carbon sends nothing, so readable means closed) and reconnects
//! first; a restarted carbon therefore loses nothing that was flushed while it was down.
//! What remains is TCP's own window: lines accepted by the kernel just before a network
//! failure is detected can be lost (at most once, never duplicated).

pub mod render;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use self::render::{Bin, Renderer};
pub use self::transport::GraphiteTransport;
use super::buffer::BufferedSink;
use super::{BuildContext, BuiltSink, ConfigError, SinkCounters, SinkSpec};
use crate::config_error::at_least;

/// `[sinks.NAME] type = "graphite"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraphiteConfig {
    /// `host:port` of each carbon; each gets every series.
    pub destinations: Vec<String>,
    /// Etsy's `legacyNamespace` (default true, as in Etsy).
    pub legacy_namespace: bool,
    pub global_prefix: String,
    pub prefix_counter: String,
    pub prefix_timer: String,
    pub prefix_gauge: String,
    pub prefix_set: String,
    pub global_suffix: String,
    /// Send tags as Graphite 1.1 tags; false drops them.
    pub tags: bool,
    /// Counters: send the per-second rate (`stats.<k>` / `.rate`).
    pub counter_rates: bool,
    /// Counters: send the count (`stats_counts.<k>` / `.count`; Etsy `flush_counts`).
    pub counter_counts: bool,
    /// The rate series carries the count instead of count per second (pystatsd's
    /// `--no-aggregate-counters`).
    pub absolute_counters: bool,
    /// Etsy `calculatedTimerMetrics`: timer statistics to send; empty = all.
    pub timer_stats: Vec<String>,
    /// Etsy `histogram`: bins per metric-name substring, first match wins.
    pub histogram: Vec<HistogramConfig>,
    /// Bytes of rendered lines waiting per destination before the oldest are dropped.
    pub buffer_bytes: usize,
    pub connect_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// How long shutdown keeps trying to deliver what is buffered.
    pub shutdown_timeout_ms: u64,
}

impl Default for GraphiteConfig {
    fn default() -> Self {
        GraphiteConfig {
            destinations: vec!["127.0.0.1:2003".into()],
            legacy_namespace: true,
            global_prefix: "stats".into(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            global_suffix: String::new(),
            tags: true,
            counter_rates: true,
            counter_counts: true,
            absolute_counters: false,
            timer_stats: Vec::new(),
            histogram: Vec::new(),
            buffer_bytes: 64 << 20,
            connect_timeout_ms: 2_000,
            write_timeout_ms: 5_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            shutdown_timeout_ms: 5_000,
        }
    }
}

/// One `histogram` entry: `{ metric = "api.", bins = [10, 100, "inf"] }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HistogramConfig {
    pub metric: String,
    pub bins: Vec<BinConfig>,
}

/// A bin bound: a number or `"inf"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BinConfig {
    Number(f64),
    Text(String),
}

impl HistogramConfig {
    /// The bins (valid after [`GraphiteConfig::validate`]).
    pub fn bins(&self) -> Vec<Bin> {
        self.bins
            .iter()
            .map(|b| match b {
                BinConfig::Number(v) => Bin::Below(*v),
                BinConfig::Text(_) => Bin::Inf,
            })
            .collect()
    }
}

/// `--graphite HOST:PORT,…`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GraphiteFlags {
    /// Send aggregates to carbon at these destinations (comma separated), through the sink
    /// named `graphite` (created with defaults if the file does not define it).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub graphite: Vec<String>,
}

impl SinkSpec for GraphiteConfig {
    type Flags = GraphiteFlags;

    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let err =
            |key: &str, reason: String| Err(ConfigError::new(format!("{prefix}.{key}"), reason));
        if self.destinations.is_empty() {
            return err("destinations", "at least one host:port is required".into());
        }
        for (i, d) in self.destinations.iter().enumerate() {
            let port = d.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok().filter(|p| *p != 0)
            });
            if port.is_none() {
                return err(
                    &format!("destinations[{i}]"),
                    format!("{d:?} is not host:port"),
                );
            }
        }
        for (i, h) in self.histogram.iter().enumerate() {
            for (j, b) in h.bins.iter().enumerate() {
                let ok = match b {
                    BinConfig::Number(v) => v.is_finite(),
                    BinConfig::Text(t) => t == "inf",
                };
                if !ok {
                    return err(
                        &format!("histogram[{i}].bins[{j}]"),
                        "must be a finite number or \"inf\"".into(),
                    );
                }
            }
        }
        for (key, v) in [
            ("buffer_bytes", self.buffer_bytes as u64),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("reconnect_min_ms", self.reconnect_min_ms),
        ] {
            at_least(&format!("{prefix}.{key}"), v, 1)?;
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return err(
                "reconnect_max_ms",
                "must be at least reconnect_min_ms".into(),
            );
        }
        Ok(())
    }
    /// One sink per destination, named `<sink>/<host:port>`, sharing one renderer.
    fn build(&self, name: &str, context: &BuildContext) -> Result<Vec<BuiltSink>, ConfigError> {
        let renderer = Arc::new(Renderer::new(self));
        Ok(self
            .destinations
            .iter()
            .map(|destination| {
                let name = format!("{name}/{destination}");
                let counters: Arc<SinkCounters> = Arc::default();
                let transport = GraphiteTransport::new(
                    &name,
                    destination,
                    Arc::clone(&renderer),
                    self,
                    Arc::clone(&counters),
                );
                let timeout = Duration::from_millis(self.shutdown_timeout_ms);
                let settings = context.buffer(&name, self.buffer_bytes, timeout);
                let sink = BufferedSink::new(&name, transport, &settings, Arc::clone(&counters));
                BuiltSink {
                    name,
                    sink: Box::new(sink),
                    counters,
                }
            })
            .collect())
    }

    fn flagged_sink(flags: &GraphiteFlags) -> Option<&'static str> {
        (!flags.graphite.is_empty()).then_some("graphite")
    }

    fn apply_flags(&mut self, flags: &GraphiteFlags) {
        self.destinations = flags.graphite.clone();
    }
}
