//! Configuration: one typed struct, loaded from TOML, with every default in one place
//! ([`Default`] impls below). CLI flags override file values ([`crate::cli`]); then
//! [`Config::validate`] checks the result. Every error names the file, the key and the reason.
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
//!
//! [limits]                        # larger inputs are rejected and counted (bad_lines)
//! max_name_bytes = 256
//! max_tags = 64
//! max_tag_key_bytes = 128
//! max_tag_value_bytes = 256
//! max_member_bytes = 256
//! max_series = 1000000            # series held per interval (series_rejected beyond)
//! max_tag_sets_per_name = 10000   # tagged series per metric name (tag_sets_rejected)
//! max_timer_samples = 10000       # per timer series and interval; beyond: a reservoir
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
//!
//! [log]
//! level = "info"                  # error, warn, info, debug, trace
//!
//! [sinks.out]                     # with no sinks configured, a console sink is used
//! type = "console"
//!
//! [sinks.kafka]                   # see crate::sink::kafka::KafkaConfig for every key
//! type = "kafka"
//! brokers = ["127.0.0.1:9092"]
//! topic = "metrics"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::aggregate::AggregateLimits;
use crate::aggregate::timer::Percentile;
use crate::parse::Limits;
use crate::sink::console::ConsoleConfig;
use crate::sink::graphite::GraphiteConfig;
#[cfg(feature = "kafka")]
use crate::sink::kafka::KafkaConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub statsd: ListenerConfig,
    pub pystatsd: ListenerConfig,
    pub receive: ReceiveConfig,
    pub flush: FlushConfig,
    pub aggregation: AggregationConfig,
    pub limits: LimitsConfig,
    /// Global tags, added to every series that does not carry the key itself.
    pub tags: BTreeMap<String, String>,
    pub admin: AdminConfig,
    pub http: HttpConfig,
    pub stats: StatsConfig,
    pub log: LogConfig,
    /// Named sinks. Empty means: one console sink.
    pub sinks: BTreeMap<String, SinkConfig>,
}

/// `[limits]`: what one metric may carry (checked by the parsers, rejections counted in
/// `bad_lines`) and how much the aggregate stage holds (the cardinality guard, see
/// [`crate::aggregate::SeriesGuard`]).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_name_bytes: usize,
    pub max_tags: usize,
    pub max_tag_key_bytes: usize,
    pub max_tag_value_bytes: usize,
    pub max_member_bytes: usize,
    pub max_series: usize,
    pub max_tag_sets_per_name: usize,
    pub max_timer_samples: usize,
    pub max_gauges: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let p = Limits::default();
        let a = AggregateLimits::default();
        LimitsConfig {
            max_name_bytes: p.max_name_bytes,
            max_tags: p.max_tags,
            max_tag_key_bytes: p.max_tag_key_bytes,
            max_tag_value_bytes: p.max_tag_value_bytes,
            max_member_bytes: p.max_member_bytes,
            max_series: a.max_series,
            max_tag_sets_per_name: a.max_tag_sets_per_name,
            max_timer_samples: a.max_timer_samples,
            max_gauges: a.max_gauges,
        }
    }
}

impl LimitsConfig {
    /// The parsers' share.
    pub fn parse(&self) -> Limits {
        Limits {
            max_name_bytes: self.max_name_bytes,
            max_tags: self.max_tags,
            max_tag_key_bytes: self.max_tag_key_bytes,
            max_tag_value_bytes: self.max_tag_value_bytes,
            max_member_bytes: self.max_member_bytes,
        }
    }

    /// The aggregate stage's share.
    pub fn aggregate(&self) -> AggregateLimits {
        AggregateLimits {
            max_series: self.max_series,
            max_tag_sets_per_name: self.max_tag_sets_per_name,
            max_timer_samples: self.max_timer_samples,
            max_gauges: self.max_gauges,
        }
    }
}

/// One UDP listener (`[statsd]` or `[pystatsd]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    pub enabled: bool,
    /// Addresses to bind, IPv4 or IPv6 (`"[::1]:8125"`).
    pub listen: Vec<SocketAddr>,
    /// Receiver threads (one socket each) per address; 0 means one per CPU core.
    pub receivers: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiveConfig {
    pub batch_size: usize,
    pub max_datagram_bytes: usize,
    pub rcvbuf_bytes: usize,
    pub coalesce_us: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FlushConfig {
    pub interval_ms: u64,
    pub snapshot_queue: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationConfig {
    pub percentiles: Vec<f64>,
    pub sanitize_names: bool,
    pub delete_idle_gauges: bool,
    pub idle_zero_flushes: u32,
}

/// `[admin]`: Etsy's management interface (TCP). Loopback by default; binding elsewhere
/// is an explicit choice.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8126)),
        }
    }
}

/// `[http]`: `/health` and `/metrics`. Loopback by default.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    pub enabled: bool,
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
}

/// `[sinks.NAME]`, selected by `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    Console(ConsoleConfig),
    Graphite(Box<GraphiteConfig>),
    #[cfg(feature = "kafka")]
    Kafka(Box<KafkaConfig>),
}

/// Separates the inner key path from the reason in a sink's deserialization error, so
/// [`Config::parse`] can report `sinks.NAME.key` (serde's internally tagged enums would
/// lose the inner path).
const INNER_KEY: char = '\u{1f}';

impl<'de> Deserialize<'de> for SinkConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let kind = match table.remove("type") {
            Some(toml::Value::String(kind)) => kind,
            Some(_) => return Err(D::Error::custom(format!("type{INNER_KEY}must be a string"))),
            None => {
                return Err(D::Error::custom(
                    "missing `type` (\"console\", \"graphite\" or \"kafka\")",
                ));
            }
        };
        let rest = toml::Value::Table(table);
        let inner_error = |e: serde_path_to_error::Error<toml::de::Error>| {
            D::Error::custom(format!("{}{INNER_KEY}{}", e.path(), e.inner().message()))
        };
        match kind.as_str() {
            "console" => serde_path_to_error::deserialize(rest)
                .map(SinkConfig::Console)
                .map_err(inner_error),
            "graphite" => serde_path_to_error::deserialize(rest)
                .map(|g| SinkConfig::Graphite(Box::new(g)))
                .map_err(inner_error),
            #[cfg(feature = "kafka")]
            "kafka" => serde_path_to_error::deserialize(rest)
                .map(|k| SinkConfig::Kafka(Box::new(k)))
                .map_err(inner_error),
            #[cfg(not(feature = "kafka"))]
            "kafka" => Err(D::Error::custom(format!(
                "type{INNER_KEY}this rstatsd was built without the `kafka` feature"
            ))),
            other => Err(D::Error::custom(format!(
                "type{INNER_KEY}unknown sink type {other:?} (use \"console\", \"graphite\" or \"kafka\")"
            ))),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            statsd: ListenerConfig::new("127.0.0.1:8125"),
            pystatsd: ListenerConfig::new("127.0.0.1:5090"),
            receive: ReceiveConfig::default(),
            flush: FlushConfig::default(),
            aggregation: AggregationConfig::default(),
            limits: LimitsConfig::default(),
            tags: BTreeMap::new(),
            admin: AdminConfig::default(),
            http: HttpConfig::default(),
            stats: StatsConfig::default(),
            log: LogConfig::default(),
            sinks: BTreeMap::new(),
        }
    }
}

impl ListenerConfig {
    fn new(addr: &str) -> Self {
        ListenerConfig {
            enabled: true,
            listen: vec![addr.parse().expect("valid default address")],
            receivers: 0,
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            enabled: true,
            listen: Vec::new(),
            receivers: 0,
        }
    }
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig {
            batch_size: 64,
            max_datagram_bytes: 65536,
            rcvbuf_bytes: 8 << 20,
            coalesce_us: 1000,
        }
    }
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            interval_ms: 10_000,
            snapshot_queue: 4,
        }
    }
}

impl Default for AggregationConfig {
    fn default() -> Self {
        AggregationConfig {
            percentiles: vec![90.0],
            sanitize_names: true,
            delete_idle_gauges: false,
            idle_zero_flushes: 0,
        }
    }
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            enabled: true,
            prefix: "rstatsd.".to_string(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
        }
    }
}

/// A configuration error: where, which key, why. Exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file, when the value came from one.
    pub file: Option<PathBuf>,
    /// Dotted key path (`flush.interval_ms`), empty when the file as a whole is at fault.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "config file {}: ", file.display())?,
            None => write!(f, "configuration: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and parses a TOML file (not yet validated).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            ..e
        })
    }

    /// Parses TOML text (not yet validated).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de =
            toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e, String::new()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            toml_error(text, e.inner(), key)
        })
    }

    /// Checks every value; `file` is named in errors.
    pub fn validate(&self, file: Option<&Path>) -> Result<(), ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.map(Path::to_path_buf),
            key: key.to_string(),
            reason,
        };
        for (name, l) in [("statsd", &self.statsd), ("pystatsd", &self.pystatsd)] {
            if l.enabled && l.listen.is_empty() {
                return Err(err(
                    &format!("{name}.listen"),
                    "no address to listen on (set `enabled = false` to disable the listener)"
                        .into(),
                ));
            }
            if l.receivers > 1024 {
                return Err(err(
                    &format!("{name}.receivers"),
                    "must be at most 1024".into(),
                ));
            }
        }
        if !self.statsd.enabled && !self.pystatsd.enabled {
            return Err(err(
                "statsd.enabled",
                "every listener is disabled: nothing to receive".into(),
            ));
        }
        let r = &self.receive;
        if !(1..=1024).contains(&r.batch_size) {
            return Err(err(
                "receive.batch_size",
                "must be between 1 and 1024".into(),
            ));
        }
        if !(512..=65536).contains(&r.max_datagram_bytes) {
            return Err(err(
                "receive.max_datagram_bytes",
                "must be between 512 and 65536".into(),
            ));
        }
        if r.rcvbuf_bytes < 4096 {
            return Err(err("receive.rcvbuf_bytes", "must be at least 4096".into()));
        }
        if r.coalesce_us > 100_000 {
            return Err(err(
                "receive.coalesce_us",
                "must be at most 100000 (100 ms)".into(),
            ));
        }
        if self.flush.interval_ms < 10 {
            return Err(err("flush.interval_ms", "must be at least 10".into()));
        }
        if self.flush.snapshot_queue == 0 {
            return Err(err("flush.snapshot_queue", "must be at least 1".into()));
        }
        for (i, &p) in self.aggregation.percentiles.iter().enumerate() {
            Percentile::new(p)
                .map_err(|e| err(&format!("aggregation.percentiles[{i}]"), e.to_string()))?;
        }
        let l = &self.limits;
        for (key, v) in [
            ("max_name_bytes", l.max_name_bytes),
            ("max_tags", l.max_tags),
            ("max_tag_key_bytes", l.max_tag_key_bytes),
            ("max_tag_value_bytes", l.max_tag_value_bytes),
            ("max_member_bytes", l.max_member_bytes),
            ("max_series", l.max_series),
            ("max_tag_sets_per_name", l.max_tag_sets_per_name),
            ("max_timer_samples", l.max_timer_samples),
            ("max_gauges", l.max_gauges),
        ] {
            if v == 0 {
                return Err(err(&format!("limits.{key}"), "must be at least 1".into()));
            }
        }
        for key in self.tags.keys() {
            if key.is_empty() {
                return Err(err("tags", "tag keys must not be empty".into()));
            }
        }
        for (name, sink) in &self.sinks {
            let prefix = format!("sinks.{name}");
            let checked = match sink {
                SinkConfig::Console(_) => Ok(()),
                SinkConfig::Graphite(g) => g.validate(&prefix),
                #[cfg(feature = "kafka")]
                SinkConfig::Kafka(k) => k.validate(&prefix),
            };
            checked.map_err(|(key, reason)| err(&key, reason))?;
        }
        if self.log.level.parse::<log::LevelFilter>().is_err() {
            return Err(err(
                "log.level",
                format!(
                    "unknown level {:?} (use error, warn, info, debug or trace)",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }

    /// Every size and count limit as (config key, value), for the internal stats.
    pub fn limit_values(&self) -> Vec<(&'static str, u64)> {
        let l = &self.limits;
        [
            (
                "receive.max_datagram_bytes",
                self.receive.max_datagram_bytes,
            ),
            ("receive.rcvbuf_bytes", self.receive.rcvbuf_bytes),
            ("flush.snapshot_queue", self.flush.snapshot_queue),
            ("limits.max_name_bytes", l.max_name_bytes),
            ("limits.max_tags", l.max_tags),
            ("limits.max_tag_key_bytes", l.max_tag_key_bytes),
            ("limits.max_tag_value_bytes", l.max_tag_value_bytes),
            ("limits.max_member_bytes", l.max_member_bytes),
            ("limits.max_series", l.max_series),
            ("limits.max_tag_sets_per_name", l.max_tag_sets_per_name),
            ("limits.max_timer_samples", l.max_timer_samples),
            ("limits.max_gauges", l.max_gauges),
        ]
        .into_iter()
        .map(|(k, v)| (k, v as u64))
        .collect()
    }

    /// The configured percentiles (valid after [`Config::validate`]).
    pub fn percentiles(&self) -> Vec<Percentile> {
        self.aggregation
            .percentiles
            .iter()
            .filter_map(|&p| Percentile::new(p).ok())
            .collect()
    }

    /// The log level (valid after [`Config::validate`]).
    pub fn log_level(&self) -> log::LevelFilter {
        self.log.level.parse().unwrap_or(log::LevelFilter::Info)
    }
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
    ConfigError {
        file: None,
        key,
        reason: format!("{message}{location}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        Config::default().validate(None).unwrap();
    }

    #[test]
    fn full_example_parses() {
        let c = Config::parse(
            r#"
            [statsd]
            listen = ["127.0.0.1:8125", "[::1]:8125"]
            receivers = 2
            [pystatsd]
            enabled = false
            [flush]
            interval_ms = 1000
            [aggregation]
            percentiles = [90, 99.9, -10]
            [tags]
            host = "web1"
            [sinks.out]
            type = "console"
            "#,
        )
        .unwrap();
        c.validate(None).unwrap();
        assert_eq!(c.statsd.listen.len(), 2);
        assert_eq!(c.aggregation.percentiles, vec![90.0, 99.9, -10.0]);
        assert_eq!(c.sinks["out"], SinkConfig::Console(ConsoleConfig {}));
        assert_eq!(c.tags["host"], "web1");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("[flush]\nintervl_ms = 5\n").unwrap_err();
        assert_eq!(e.key, "flush.intervl_ms");
        assert!(e.reason.contains("intervl_ms"), "{e}");
        let e = Config::parse("[flush]\ninterval_ms = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "flush.interval_ms");
        assert!(e.reason.contains("line 2"), "{e}");
        let e = Config::parse("[sinks.x]\ntype = \"nope\"\n").unwrap_err();
        assert_eq!(e.key, "sinks.x.type");
        assert!(e.reason.starts_with("unknown sink type \"nope\""), "{e}");
        let e = Config::parse("[sinks.x]\ntype = \"kafka\"\nformat = \"xml\"\n").unwrap_err();
        assert_eq!(e.key, "sinks.x.format");
        let e = Config::parse("[sinks.x]\ntype = \"kafka\"\n[sinks.x.properties]\na = 1\n")
            .unwrap_err();
        assert_eq!(e.key, "sinks.x.properties.a");
        let e = Config::parse("[sinks.x]\nbrokers = []\n").unwrap_err();
        assert_eq!(e.key, "sinks.x");
        assert!(e.reason.starts_with("missing `type`"), "{e}");
        let e = Config::parse("[sinks.x]\ntype = \"console\"\nbogus = 1\n").unwrap_err();
        assert!(e.reason.contains("bogus"), "{e}");
        let e = Config::parse("[statsd]\nlisten = [\"nowhere\"]\n").unwrap_err();
        assert_eq!(e.key, "statsd.listen[0]");
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = Config::default();
        c.aggregation.percentiles = vec![90.0, 0.0];
        let e = c.validate(Some(Path::new("/etc/x.toml"))).unwrap_err();
        assert_eq!(e.key, "aggregation.percentiles[1]");
        assert_eq!(
            e.to_string(),
            "config file /etc/x.toml: key `aggregation.percentiles[1]`: percentile 0 is not a number in [-100, 0) or (0, 100]"
        );
        let mut c = Config::default();
        c.flush.interval_ms = 1;
        assert_eq!(c.validate(None).unwrap_err().key, "flush.interval_ms");
        let mut c = Config::default();
        c.log.level = "loud".into();
        assert_eq!(c.validate(None).unwrap_err().key, "log.level");
    }
}
