//! Configuration: one typed struct, [`Config`], assembled from each component's own section.
//!
//! Each section is declared once, in the component that uses it ([`ReceiveConfig`] in
//! `receive`, [`FlushConfig`] in `flush`, [`crate::sink::kafka::KafkaConfig`] in its sink
//! folder, …): its keys (serde), defaults (`Default`), flags (clap attributes on the same
//! fields, see [`crate::cli`]) and validation. This module only puts the sections together,
//! parses TOML with key paths in errors, and lists the limits shown on `/metrics`. Flags
//! override file values; then [`Config::validate`] checks the result.
//!
//! ```toml
//! [statsd]            # Etsy/DogStatsD line protocol over UDP
//! enabled = true
//! listen = ["127.0.0.1:8125"]
//! receivers = 0       # threads (sockets) per address; 0 = number of CPU cores
//!
//! [pystatsd]          # pystatsd JSON over UDP
//! enabled = true
//! listen = ["127.0.0.1:5090"]
//! receivers = 0
//!
//! [receive]
//! batch_size = 64                 # datagrams per recvmmsg call
//! max_datagram_bytes = 65536      # larger datagrams are truncated and counted
//! rcvbuf_bytes = 8388608          # SO_RCVBUF per socket
//! coalesce_us = 1000              # sleep after draining a socket, to batch wakeups
//!
//! [flush]
//! interval_ms = 10000             # aligned to wall-clock multiples
//! snapshot_queue = 4              # snapshots queued per sink before the oldest is dropped
//!
//! [aggregation]
//! percentiles = [90]
//! sanitize_names = true
//! delete_idle_gauges = false      # true: gauges are reported only in intervals they changed
//! idle_zero_flushes = 0           # report idle counters/timers/sets as zero for N flushes
//! sketch_relative_accuracy = 0.01 # alpha of timer percentiles beyond max_timer_samples
//! set_precision = 14              # HyperLogLog precision of sets beyond set_exact_members
//!
//! [limits]                        # larger inputs are rejected and counted (bad_lines)
//! max_name_bytes = 256
//! max_tags = 64
//! max_tag_key_bytes = 128
//! max_tag_value_bytes = 256
//! max_member_bytes = 256
//! max_series = 1000000            # series held per interval (series_rejected beyond)
//! max_tag_sets_per_name = 10000   # tagged series per metric name (tag_sets_rejected)
//! max_timer_samples = 10000       # raw samples per timer series and interval; beyond: a DDSketch
//! max_sketch_bins = 2048          # bins per sign of a timer sketch; the lowest collapse beyond
//! set_exact_members = 1024        # exact members per set (and at most 2^set_precision bytes)
//! max_gauges = 1000000            # gauges remembered across intervals
//!
//! [tags]                          # added to every series that lacks the key
//! # host = "web1"
//!
//! [admin]                         # Etsy management interface (TCP): health, stats, counters, …
//! enabled = true
//! listen = "127.0.0.1:8126"
//!
//! [http]                          # GET /health, GET /metrics (Prometheus)
//! enabled = true
//! listen = "127.0.0.1:8080"
//!
//! [stats]
//! enabled = true
//! prefix = "rstatsd."
//! detail = "basic"                # basic | full: internal statistics per flush
//!
//! [log]
//! level = "info"                  # error, warn, info, debug, trace
//!
//! [spool]                         # undelivered snapshots on disk (none when `dir` is unset)
//! # dir = "/var/lib/rstatsd/spool" # one subdirectory per sink
//! max_bytes = 1073741824          # per sink; beyond, the oldest snapshots are dropped
//! segment_bytes = 16777216        # segment file size
//!
//! [sinks.out]                     # with no sinks configured, a console sink is used
//! type = "console"
//!
//! [sinks.kafka]                   # see crate::sink::kafka::KafkaConfig for every key
//! type = "kafka"
//! brokers = ["127.0.0.1:9092"]
//! topic = "metrics"
//! ```

mod limits;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::limits::LimitsConfig;
pub use crate::admin::{AdminConfig, HttpConfig};
pub use crate::aggregate::AggregationConfig;
use crate::aggregate::Bounds;
use crate::aggregate::sketch::Mapping;
pub use crate::config_error::ConfigError;
pub use crate::fleet::FleetConfig;
pub use crate::flush::FlushConfig;
pub use crate::logging::LogConfig;
use crate::parse::Protocol;
pub use crate::receive::{ListenerConfig, ReceiveConfig};
pub use crate::sink::SinkConfig;
use crate::sink::registry::INNER_KEY;
pub use crate::sink::spool::SpoolConfig;
pub use crate::stats::StatsConfig;

/// The whole configuration. The sections with flags of their own are flattened into the
/// command line; listeners, global tags and sinks get theirs in [`crate::cli`].
#[derive(Debug, Clone, Deserialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[arg(skip)]
    pub statsd: ListenerConfig,
    #[arg(skip)]
    pub pystatsd: ListenerConfig,
    #[command(flatten)]
    pub receive: ReceiveConfig,
    #[command(flatten)]
    pub flush: FlushConfig,
    #[command(flatten)]
    pub aggregation: AggregationConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
    /// Global tags, added to every series that does not carry the key itself.
    #[arg(skip)]
    pub tags: BTreeMap<String, String>,
    #[command(flatten)]
    pub admin: AdminConfig,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub stats: StatsConfig,
    #[command(flatten)]
    pub log: LogConfig,
    #[command(flatten)]
    pub spool: SpoolConfig,
    #[command(flatten)]
    pub fleet: FleetConfig,
    /// Named sinks. Empty means: one console sink.
    #[arg(skip)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// `[aggregate]`, the fleet section's old name: still read, moved into `fleet` by
    /// [`Config::parse`] with a deprecation warning.
    #[arg(skip)]
    #[serde(rename = "aggregate")]
    pub deprecated_fleet: Option<FleetConfig>,
    /// Deprecated names this configuration used (file and flags), for one warning at
    /// start-up.
    #[arg(skip)]
    #[serde(skip)]
    pub deprecations: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            statsd: ListenerConfig::new(Protocol::Statsd),
            pystatsd: ListenerConfig::new(Protocol::Pystatsd),
            receive: ReceiveConfig::default(),
            flush: FlushConfig::default(),
            aggregation: AggregationConfig::default(),
            limits: LimitsConfig::default(),
            tags: BTreeMap::new(),
            admin: AdminConfig::default(),
            http: HttpConfig::default(),
            stats: StatsConfig::default(),
            log: LogConfig::default(),
            spool: SpoolConfig::default(),
            fleet: FleetConfig::default(),
            sinks: BTreeMap::new(),
            deprecated_fleet: None,
            deprecations: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and parses a TOML file (not yet validated; errors do not name the file yet).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read: {e}")))?;
        Config::parse(&text)
    }

    /// Parses TOML text (not yet validated).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de =
            toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e, String::new()))?;
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            toml_error(text, e.inner(), key)
        })?;
        if let Some(old) = config.deprecated_fleet.take() {
            if config.fleet != FleetConfig::default() {
                return Err(ConfigError::new(
                    "aggregate",
                    "the old name of [fleet], which is set too: keep only [fleet]",
                ));
            }
            config.fleet = old;
            config.deprecations.push("[aggregate] (now [fleet])".into());
        }
        Ok(config)
    }

    /// The one start-up warning about deprecated names, if any were used.
    pub fn deprecation_warning(&self) -> Option<String> {
        (!self.deprecations.is_empty()).then(|| {
            format!(
                "deprecated configuration names, still read: {}; the old names will be \
                 removed in a later release",
                self.deprecations.join(", ")
            )
        })
    }

    /// What bounds one series' state (valid after [`Config::validate`]).
    pub fn bounds(&self) -> Bounds {
        let (l, a) = (&self.limits, &self.aggregation);
        Bounds {
            max_timer_samples: l.max_timer_samples,
            sketch: Mapping::for_accuracy(a.sketch_relative_accuracy),
            max_sketch_bins: l.max_sketch_bins,
            set_exact_members: l.set_exact_members,
            set_lg_k: a.set_precision,
        }
    }

    /// What every sink is built with besides its own section.
    pub fn sink_context(&self) -> crate::sink::BuildContext {
        crate::sink::BuildContext {
            spool: self.spool.clone(),
            flush_interval: std::time::Duration::from_millis(self.flush.interval_ms),
        }
    }

    /// The listener section of `protocol`.
    pub fn listener(&self, protocol: Protocol) -> &ListenerConfig {
        match protocol {
            Protocol::Statsd => &self.statsd,
            Protocol::Pystatsd => &self.pystatsd,
        }
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for protocol in Protocol::ALL {
            self.listener(protocol).validate(protocol.name())?;
        }
        if Protocol::ALL.iter().all(|p| !self.listener(*p).enabled) && !self.fleet.enabled() {
            return Err(ConfigError::new(
                "statsd.enabled",
                "every listener is disabled: nothing to receive",
            ));
        }
        self.receive.validate()?;
        self.flush.validate()?;
        self.aggregation.validate()?;
        self.limits.validate()?;
        if self.tags.keys().any(String::is_empty) {
            return Err(ConfigError::new("tags", "tag keys must not be empty"));
        }
        for (name, sink) in &self.sinks {
            sink.validate(&format!("sinks.{name}"))?;
        }
        self.spool.validate()?;
        self.admin.validate()?;
        self.http.validate()?;
        self.fleet.validate(self.flush.interval_ms)?;
        self.log.validate()
    }

    /// Every size and count limit as (config key, value), shown on `/metrics`.
    pub fn limit_values(&self) -> Vec<(String, u64)> {
        let r = &self.receive;
        let mut out = vec![
            (
                "receive.max_datagram_bytes".to_string(),
                r.max_datagram_bytes as u64,
            ),
            ("receive.rcvbuf_bytes".to_string(), r.rcvbuf_bytes as u64),
            (
                "flush.snapshot_queue".to_string(),
                self.flush.snapshot_queue as u64,
            ),
            ("spool.max_bytes".to_string(), self.spool.max_bytes),
            ("spool.segment_bytes".to_string(), self.spool.segment_bytes),
            (
                "http.max_connections".to_string(),
                self.http.max_connections as u64,
            ),
            (
                "http.read_timeout_ms".to_string(),
                self.http.read_timeout_ms,
            ),
            (
                "http.write_timeout_ms".to_string(),
                self.http.write_timeout_ms,
            ),
            (
                "admin.max_connections".to_string(),
                self.admin.max_connections as u64,
            ),
            (
                "admin.idle_timeout_ms".to_string(),
                self.admin.idle_timeout_ms,
            ),
        ];
        for (key, value) in toml_integers(&self.limits) {
            out.push((format!("limits.{key}"), value));
        }
        out
    }
}

/// The integer keys of a section, by serializing it: so a new limit is listed (and
/// validated) the moment it is declared.
fn toml_integers(section: &impl Serialize) -> Vec<(String, u64)> {
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(section) else {
        return Vec::new();
    };
    table
        .into_iter()
        .filter_map(|(k, v)| Some((k, u64::try_from(v.as_integer()?).ok()?)))
        .collect()
}

fn toml_error(text: &str, e: &toml::de::Error, key: String) -> ConfigError {
    let mut key = key;
    let mut message = e.message().trim_end();
    if let Some((inner, reason)) = message.split_once(INNER_KEY) {
        if inner != "." {
            key = format!("{key}.{inner}");
        }
        message = reason;
    }
    let location = e
        .span()
        .map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default();
    ConfigError::new(key, format!("{message}{location}"))
}

#[cfg(test)]
mod tests;
