//! Kafka message formats.
//!
//! | format | one message holds | shape |
//! |---|---|---|
//! | `json` (default) | one series | flat object, pystatsd compatible |
//! | `json-nested` | one series | `{"name","type","tags":{…},"timestamp","values":{…}}` |
//! | `influx` | several series, up to `influx_max_message_bytes` | InfluxDB line protocol |
//! | `partial` | one series' mergeable state, plus end-of-interval markers | protobuf, `src/aggregate/partial.proto` ([`super::partial`]) |
//!
//! **`json`** (what pystatsd consumers parse): `name`, `value`, `@timestamp`
//! (`YYYY-MM-DDTHH:MM:SS.sssZ`, the flush time), `@version` (`"1"`), `metric_type`, the
//! configured static fields, every tag as a top-level string, then statistics: counters add
//! `rate`; timers, histograms and distributions add every timer statistic. `value` is the
//! count for counters and traces, the last value for gauges, the cardinality for sets and the
//! mean for timer-like series (0 for an idle timer). A tag whose key is a reserved field of
//! its message (`name`, `value`, `@timestamp`, `@version`, `metric_type`, a static field, or a
//! statistic of the series) is written as `tag_<key>` so it never overwrites data.
//!
//! **`influx`**: `measurement[,tag=v…] field=v[,…] <ns>` with the measurement the series
//! name, tags sorted, one float field per statistic (the `json-nested` `values`), and the
//! flush time in nanoseconds. Commas, spaces and `=` are escaped with `\`; tags with an
//! empty value are omitted (Influx does not allow them).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::topic::TopicTemplate;
use super::{KafkaConfig, KeyMode};
use crate::sink::batch::Batch;
use crate::sink::nested::render_nested;

use crate::format::json::{write_num, write_plain_key, write_str, write_str_prefixed};
use crate::format::time::rfc3339_millis;
use crate::metric::{MetricType, SeriesKey};
use crate::snapshot::{Fields, Snapshot};

/// `format = "json" | "json-nested" | "influx" | "partial"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    #[default]
    Json,
    JsonNested,
    Influx,
    /// Mergeable partial aggregates for fleet aggregators (schema src/aggregate/partial.proto).
    Partial,
}

/// The fixed fields of a `json` message.
const JSON_FIELDS: [&str; 5] = ["name", "value", "@timestamp", "@version", "metric_type"];

/// Statistic names of timer-like series that are not percentile names.
const TIMER_FIELDS: [&str; 9] = [
    "std",
    "upper",
    "lower",
    "count",
    "count_ps",
    "sum",
    "sum_squares",
    "mean",
    "median",
];

/// Encodes snapshots; reuses its buffers and the snapshot's timestamp text.
pub struct Encoder {
    format: Format,
    static_fields: Vec<(String, String)>,
    /// `,"k":"v"` for every static field, rendered once.
    static_json: String,
    timestamp: (u64, String),
}

impl Encoder {
    pub fn new(format: Format, static_fields: Vec<(String, String)>) -> Encoder {
        let mut static_json = String::new();
        for (k, v) in &static_fields {
            static_json.push(',');
            write_str(&mut static_json, k);
            static_json.push(':');
            write_str(&mut static_json, v);
        }
        Encoder {
            format,
            static_fields,
            static_json,
            timestamp: (u64::MAX, String::new()),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Appends series `index` of `snapshot` as one `json` or `json-nested` message.
    pub fn encode_one(&mut self, out: &mut String, snapshot: &Snapshot, index: usize) {
        match self.format {
            Format::JsonNested => render_nested(out, snapshot, index),
            _ => self.encode_json(out, snapshot, index),
        }
    }

    fn encode_json(&mut self, out: &mut String, snapshot: &Snapshot, index: usize) {
        // The cache is per format: an encoder writes either Influx or JSON timestamps.
        if self.timestamp.0 != snapshot.timestamp_ms {
            self.timestamp = (snapshot.timestamp_ms, rfc3339_millis(snapshot.timestamp_ms));
        }
        let (key, value) = &snapshot.series[index];
        let mtype = key.metric_type();
        let fields = snapshot.fields(value);
        out.push_str("{\"name\":");
        write_str(out, key.name());
        out.push_str(",\"value\":");
        write_num(out, fields.primary());
        out.push_str(",\"@timestamp\":\"");
        out.push_str(&self.timestamp.1);
        out.push_str("\",\"@version\":\"1\",\"metric_type\":\"");
        out.push_str(mtype.as_str());
        out.push('"');
        out.push_str(&self.static_json);
        for (k, v) in key.tags() {
            out.push(',');
            let prefix = if self.is_reserved(k, mtype, snapshot) {
                "tag_"
            } else {
                ""
            };
            write_str_prefixed(out, prefix, k);
            out.push(':');
            write_str(out, v);
        }
        let mut field = |name: &str, v: f64| {
            out.push(',');
            write_plain_key(out, name);
            write_num(out, v);
        };
        // Besides `value`: a counter's rate and every timer statistic.
        match fields {
            Fields::Counter { rate, .. } => field("rate", rate),
            Fields::Timer(t) => t.for_each_stat(field),
            Fields::Trace { .. } | Fields::Gauge { .. } | Fields::Set { .. } => {}
        }
        out.push('}');
    }

    fn is_reserved(&self, tag: &str, mtype: MetricType, snapshot: &Snapshot) -> bool {
        JSON_FIELDS.contains(&tag)
            || self.static_fields.iter().any(|(k, _)| k == tag)
            || (mtype == MetricType::Counter && tag == "rate")
            || (mtype.has_samples()
                && (TIMER_FIELDS.contains(&tag)
                    || snapshot
                        .percentiles
                        .iter()
                        .any(|p| p.names().contains(&tag))))
    }

    /// Appends series `index` as one Influx line (with its trailing newline).
    pub fn encode_influx(&mut self, out: &mut String, snapshot: &Snapshot, index: usize) {
        if self.timestamp.0 != snapshot.timestamp_ms {
            let ns = snapshot.timestamp_ms * 1_000_000;
            self.timestamp = (
                snapshot.timestamp_ms,
                itoa::Buffer::new().format(ns).to_string(),
            );
        }
        let (key, value) = &snapshot.series[index];
        escape_influx(out, key.name(), false);
        for (k, v) in key.tags() {
            if v.is_empty() {
                continue;
            }
            out.push(',');
            escape_influx(out, k, true);
            out.push('=');
            escape_influx(out, v, true);
        }
        let mut first = true;
        snapshot.fields(value).for_each(|field, v| {
            if !v.is_finite() {
                return;
            }
            out.push(if first { ' ' } else { ',' });
            first = false;
            // Statistic names are ours (`count`, `upper_99_9`, …) and never need escaping.
            out.push_str(field);
            out.push('=');
            write_num(out, v);
        });
        out.push(' ');
        out.push_str(&self.timestamp.1);
        out.push('\n');
    }
}

/// Influx escaping: measurements escape `,` and space; tag keys, tag values and field keys
/// also escape `=`.
fn escape_influx(out: &mut String, s: &str, equals: bool) {
    /// 1: escaped everywhere; 2: escaped in tags and field keys only (`=`).
    static SPECIAL: [u8; 256] = {
        let mut t = [0u8; 256];
        t[b',' as usize] = 1;
        t[b' ' as usize] = 1;
        t[b'\\' as usize] = 1;
        t[b'\n' as usize] = 1;
        t[b'=' as usize] = 2;
        t
    };
    let mask = if equals { 3 } else { 1 };
    // Branch-free scan: most names and tags have nothing to escape.
    if s.bytes().fold(0, |acc, b| acc | SPECIAL[b as usize]) & mask == 0 {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c == ',' || c == ' ' || (equals && c == '=') || c == '\\' {
            out.push('\\');
        }
        if c == '\n' {
            out.push_str("\\n");
        } else {
            out.push(c);
        }
    }
}

/// The message key of a series: its identity `name,k=v,k2=v2` (tags sorted).
pub fn series_key(out: &mut Vec<u8>, key: &SeriesKey) {
    out.extend_from_slice(key.name().as_bytes());
    for (k, v) in key.tags() {
        out.push(b',');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
    }
}

/// Turns a snapshot into the batch of Kafka messages it is sent as: format, topic and key of
/// every message.
pub struct BatchEncoder {
    encoder: Encoder,
    topic: TopicTemplate,
    default_topic: Option<Arc<str>>,
    /// Rendered topic names, interned (bounded: a tag template could make many).
    topics: HashMap<String, Arc<str>>,
    key_mode: KeyMode,
    influx_max: usize,
    scratch: String,
    key_scratch: Vec<u8>,
}

impl BatchEncoder {
    /// The encoder of a validated config.
    pub fn new(config: &KafkaConfig) -> BatchEncoder {
        let static_fields = config
            .static_fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        BatchEncoder {
            encoder: Encoder::new(config.format, static_fields),
            topic: TopicTemplate::parse(&config.topic).expect("validated"),
            default_topic: config.default_topic.as_deref().map(Arc::from),
            topics: HashMap::new(),
            key_mode: config.key,
            influx_max: config.influx_max_message_bytes,
            scratch: String::new(),
            key_scratch: Vec::new(),
        }
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

    /// Appends every message of `snapshot` to `batch`.
    pub fn encode(&mut self, snapshot: &Snapshot, batch: &mut Batch) {
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
                    batch.push(current.take(), None, self.scratch.as_bytes());
                    self.scratch = line;
                }
                current = Some(topic);
            }
            if current.is_some() {
                batch.push(current, None, self.scratch.as_bytes());
            }
            return;
        }
        for i in 0..snapshot.series.len() {
            let topic = self.topic_for(snapshot, i);
            self.scratch.clear();
            self.encoder.encode_one(&mut self.scratch, snapshot, i);
            self.key_scratch.clear();
            let key = &snapshot.series[i].0;
            let key = match self.key_mode {
                KeyMode::Series => {
                    series_key(&mut self.key_scratch, key);
                    Some(&self.key_scratch[..])
                }
                KeyMode::Name => Some(key.name().as_bytes()),
                KeyMode::None => None,
            };
            batch.push(Some(topic), key, self.scratch.as_bytes());
        }
    }
}
