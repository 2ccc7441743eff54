//! Command-line interface: every configuration key has a flag, and flags override the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError, SinkConfig};
use crate::sink::console::ConsoleConfig;
#[cfg(feature = "kafka")]
use crate::sink::kafka::{KafkaConfig, encode::Format};

/// A statsd server for Etsy/DogStatsD lines and pystatsd JSON.
///
/// Receives metrics over UDP, aggregates them per flush interval on every core and writes
/// tagged aggregates to its sinks. With no configuration it listens on 127.0.0.1:8125
/// (line protocol) and 127.0.0.1:5090 (pystatsd JSON) and prints aggregates to stdout as
/// JSON lines. Flags override the config file.
#[derive(Debug, Parser)]
#[command(name = "rstatsd", version, max_term_width = 100)]
pub struct Cli {
    /// TOML configuration file (packaged default: /etc/rstatsd/rstatsd.toml).
    #[arg(short, long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Validate the configuration (file and flags), print the result and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Line-protocol UDP address; repeat for several (replaces statsd.listen).
    #[arg(long, value_name = "ADDR")]
    pub statsd_listen: Vec<SocketAddr>,

    /// Disable the line-protocol listener (statsd.enabled = false).
    #[arg(long)]
    pub no_statsd: bool,

    /// pystatsd JSON UDP address; repeat for several (replaces pystatsd.listen).
    #[arg(long, value_name = "ADDR")]
    pub pystatsd_listen: Vec<SocketAddr>,

    /// Disable the pystatsd JSON listener (pystatsd.enabled = false).
    #[arg(long)]
    pub no_pystatsd: bool,

    /// Receiver threads per address for both listeners; 0 = one per core
    /// (statsd.receivers, pystatsd.receivers).
    #[arg(long, value_name = "N")]
    pub receivers: Option<usize>,

    /// Datagrams per recvmmsg call (receive.batch_size).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Largest datagram received whole; larger ones are truncated and counted
    /// (receive.max_datagram_bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_datagram_bytes: Option<usize>,

    /// SO_RCVBUF per socket (receive.rcvbuf_bytes).
    #[arg(long, value_name = "BYTES")]
    pub rcvbuf_bytes: Option<usize>,

    /// Pause after draining a socket, to receive in larger batches (receive.coalesce_us).
    #[arg(long, value_name = "MICROSECONDS")]
    pub coalesce_us: Option<u64>,

    /// Flush interval (flush.interval_ms).
    #[arg(long, value_name = "MS")]
    pub flush_interval_ms: Option<u64>,

    /// Snapshots queued per sink before the oldest is dropped (flush.snapshot_queue).
    #[arg(long, value_name = "N")]
    pub snapshot_queue: Option<usize>,

    /// Timer percentiles, comma separated, e.g. `90,99.9,-10` (aggregation.percentiles).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub percentiles: Option<Vec<f64>>,

    /// Keep metric names exactly as received (aggregation.sanitize_names = false).
    #[arg(long)]
    pub no_sanitize: bool,

    /// Report gauges only in intervals in which they changed (aggregation.delete_idle_gauges).
    #[arg(long)]
    pub delete_idle_gauges: bool,

    /// Report idle counters, timers and sets as zero for N flushes
    /// (aggregation.idle_zero_flushes).
    #[arg(long, value_name = "N")]
    pub idle_zero_flushes: Option<u32>,

    /// Longest metric name accepted (limits.max_name_bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_name_bytes: Option<usize>,

    /// Most tags one metric may carry (limits.max_tags).
    #[arg(long, value_name = "N")]
    pub max_tags: Option<usize>,

    /// Longest tag key accepted (limits.max_tag_key_bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_tag_key_bytes: Option<usize>,

    /// Longest tag value accepted (limits.max_tag_value_bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_tag_value_bytes: Option<usize>,

    /// Longest set member accepted (limits.max_member_bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_member_bytes: Option<usize>,

    /// Most series held per flush interval, all receivers together (limits.max_series).
    #[arg(long, value_name = "N")]
    pub max_series: Option<usize>,

    /// Most tagged series per metric name per interval (limits.max_tag_sets_per_name).
    #[arg(long, value_name = "N")]
    pub max_tag_sets_per_name: Option<usize>,

    /// Samples kept per timer series per interval; beyond, a uniform reservoir
    /// (limits.max_timer_samples).
    #[arg(long, value_name = "N")]
    pub max_timer_samples: Option<usize>,

    /// Gauges remembered across intervals (limits.max_gauges).
    #[arg(long, value_name = "N")]
    pub max_gauges: Option<usize>,

    /// Global tag added to every series lacking the key; repeatable (tags).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,

    /// Prefix of internal statistics series (stats.prefix).
    #[arg(long, value_name = "PREFIX")]
    pub stats_prefix: Option<String>,

    /// Do not emit internal statistics (stats.enabled = false).
    #[arg(long)]
    pub no_stats: bool,

    /// Also print aggregates to stdout when other sinks are configured (adds sink `console`).
    #[arg(long)]
    pub console: bool,

    /// Send aggregates to carbon at these destinations (comma separated), through the sink
    /// named `graphite` (created with defaults if the file does not define it).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub graphite: Vec<String>,

    /// Send aggregates to Kafka at these brokers (comma separated), through the sink named
    /// `kafka` (created with defaults if the file does not define it).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub kafka_brokers: Vec<String>,

    /// Topic (or template, e.g. `metrics.{type}`) of the `kafka` sink.
    #[arg(long, value_name = "TOPIC")]
    pub kafka_topic: Option<String>,

    /// Message format of the `kafka` sink: json, json-nested, influx.
    #[arg(long, value_name = "FORMAT")]
    pub kafka_format: Option<String>,

    /// Etsy management interface address (admin.listen).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Disable the management interface (admin.enabled = false).
    #[arg(long)]
    pub no_admin: bool,

    /// HTTP /health and /metrics address (http.listen).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Disable the HTTP endpoint (http.enabled = false).
    #[arg(long)]
    pub no_http: bool,

    /// Log level: error, warn, info, debug, trace (log.level).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

#[cfg(feature = "kafka")]
fn apply_kafka_flags(kafka: &mut KafkaConfig, cli: &Cli) -> Result<(), String> {
    if !cli.kafka_brokers.is_empty() {
        kafka.brokers = cli.kafka_brokers.clone();
    }
    if let Some(t) = &cli.kafka_topic {
        kafka.topic = t.clone();
    }
    if let Some(f) = &cli.kafka_format {
        kafka.format = match f.as_str() {
            "json" => Format::Json,
            "json-nested" => Format::JsonNested,
            "influx" => Format::Influx,
            other => {
                return Err(format!(
                    "--kafka-format {other:?} is not one of json, json-nested, influx"
                ));
            }
        };
    }
    Ok(())
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

impl Cli {
    /// Loads the config file (if any), applies the flags and validates the result.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        self.apply_kafka(&mut config)?;
        self.apply_graphite(&mut config)?;
        self.apply(&mut config);
        config.validate(self.config.as_deref())?;
        Ok(config)
    }

    /// `--graphite`: the destinations of the sink named `graphite`.
    fn apply_graphite(&self, config: &mut Config) -> Result<(), ConfigError> {
        if self.graphite.is_empty() {
            return Ok(());
        }
        let sink = config
            .sinks
            .entry("graphite".into())
            .or_insert_with(|| SinkConfig::Graphite(Box::default()));
        let SinkConfig::Graphite(graphite) = sink else {
            return Err(ConfigError {
                file: None,
                key: "sinks.graphite".into(),
                reason: "--graphite needs the sink named `graphite` to be of type graphite".into(),
            });
        };
        graphite.destinations = self.graphite.clone();
        Ok(())
    }

    /// The `--kafka-*` flags: they configure the sink named `kafka`.
    fn apply_kafka(&self, config: &mut Config) -> Result<(), ConfigError> {
        if self.kafka_brokers.is_empty()
            && self.kafka_topic.is_none()
            && self.kafka_format.is_none()
        {
            return Ok(());
        }
        let flag_error = |key: &str, reason: String| ConfigError {
            file: None,
            key: key.to_string(),
            reason,
        };
        #[cfg(not(feature = "kafka"))]
        return Err(flag_error(
            "sinks.kafka",
            format!(
                "--kafka-* flags: this rstatsd was built without the `kafka` feature ({} sinks configured)",
                config.sinks.len()
            ),
        ));
        #[cfg(feature = "kafka")]
        let sink = config
            .sinks
            .entry("kafka".into())
            .or_insert_with(|| SinkConfig::Kafka(Box::default()));
        #[cfg(feature = "kafka")]
        let SinkConfig::Kafka(kafka) = sink else {
            return Err(flag_error(
                "sinks.kafka",
                "--kafka-* flags need the sink named `kafka` to be of type kafka".into(),
            ));
        };
        #[cfg(feature = "kafka")]
        apply_kafka_flags(kafka, self).map_err(|reason| flag_error("sinks.kafka.format", reason))
    }

    /// Overrides `config` with every flag given.
    pub fn apply(&self, config: &mut Config) {
        if !self.statsd_listen.is_empty() {
            config.statsd.listen = self.statsd_listen.clone();
        }
        if !self.pystatsd_listen.is_empty() {
            config.pystatsd.listen = self.pystatsd_listen.clone();
        }
        if self.no_statsd {
            config.statsd.enabled = false;
        }
        if self.no_pystatsd {
            config.pystatsd.enabled = false;
        }
        if let Some(n) = self.receivers {
            config.statsd.receivers = n;
            config.pystatsd.receivers = n;
        }
        let r = &mut config.receive;
        r.batch_size = self.batch_size.unwrap_or(r.batch_size);
        r.max_datagram_bytes = self.max_datagram_bytes.unwrap_or(r.max_datagram_bytes);
        r.rcvbuf_bytes = self.rcvbuf_bytes.unwrap_or(r.rcvbuf_bytes);
        r.coalesce_us = self.coalesce_us.unwrap_or(r.coalesce_us);
        let f = &mut config.flush;
        f.interval_ms = self.flush_interval_ms.unwrap_or(f.interval_ms);
        f.snapshot_queue = self.snapshot_queue.unwrap_or(f.snapshot_queue);
        let a = &mut config.aggregation;
        if let Some(p) = &self.percentiles {
            a.percentiles = p.clone();
        }
        if self.no_sanitize {
            a.sanitize_names = false;
        }
        if self.delete_idle_gauges {
            a.delete_idle_gauges = true;
        }
        a.idle_zero_flushes = self.idle_zero_flushes.unwrap_or(a.idle_zero_flushes);
        let l = &mut config.limits;
        l.max_name_bytes = self.max_name_bytes.unwrap_or(l.max_name_bytes);
        l.max_tags = self.max_tags.unwrap_or(l.max_tags);
        l.max_tag_key_bytes = self.max_tag_key_bytes.unwrap_or(l.max_tag_key_bytes);
        l.max_tag_value_bytes = self.max_tag_value_bytes.unwrap_or(l.max_tag_value_bytes);
        l.max_member_bytes = self.max_member_bytes.unwrap_or(l.max_member_bytes);
        l.max_series = self.max_series.unwrap_or(l.max_series);
        l.max_tag_sets_per_name = self
            .max_tag_sets_per_name
            .unwrap_or(l.max_tag_sets_per_name);
        l.max_timer_samples = self.max_timer_samples.unwrap_or(l.max_timer_samples);
        l.max_gauges = self.max_gauges.unwrap_or(l.max_gauges);
        for (k, v) in &self.tags {
            config.tags.insert(k.clone(), v.clone());
        }
        if let Some(a) = self.admin_listen {
            config.admin.listen = a;
        }
        if self.no_admin {
            config.admin.enabled = false;
        }
        if let Some(a) = self.http_listen {
            config.http.listen = a;
        }
        if self.no_http {
            config.http.enabled = false;
        }
        if let Some(p) = &self.stats_prefix {
            config.stats.prefix = p.clone();
        }
        if self.no_stats {
            config.stats.enabled = false;
        }
        if self.console {
            config
                .sinks
                .insert("console".into(), SinkConfig::Console(ConsoleConfig {}));
        }
        if let Some(l) = &self.log_level {
            config.log.level = l.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let cli = Cli::try_parse_from([
            "rstatsd",
            "--statsd-listen",
            "127.0.0.1:9000",
            "--statsd-listen",
            "[::1]:9000",
            "--no-pystatsd",
            "--flush-interval-ms",
            "500",
            "--percentiles",
            "90,-10,99.9",
            "--tag",
            "host=a",
            "--console",
        ])
        .unwrap();
        let mut c = Config::parse("[flush]\ninterval_ms = 2000\n").unwrap();
        cli.apply(&mut c);
        c.validate(None).unwrap();
        assert_eq!(c.statsd.listen.len(), 2);
        assert!(!c.pystatsd.enabled);
        assert_eq!(c.flush.interval_ms, 500);
        assert_eq!(c.aggregation.percentiles, vec![90.0, -10.0, 99.9]);
        assert_eq!(c.tags["host"], "a");
        assert!(c.sinks.contains_key("console"));
    }

    #[test]
    fn bad_tag_flag_is_rejected() {
        assert!(Cli::try_parse_from(["rstatsd", "--tag", "novalue"]).is_err());
    }
}
