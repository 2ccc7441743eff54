//! Internal statistics, all in one place: what each one is called, what it counts, and when a
//! flush carries it.
//!
//! Receivers count into their own [`ReceiverStats`] (plain integers, no atomics); sinks into
//! their shared [`SinkCounters`]. Once per flush [`collect`] turns those and the flusher's own
//! figures into [`Stat`]s. Every stat goes to the admin plane (`/metrics`, `stats`); a flush
//! carries them as ordinary series under `stats.prefix` (default `rstatsd.`) only as
//! `stats.detail` allows:
//!
//! - `basic` (default): the [`Level::Always`] ones, and the [`Level::NonZero`] ones in
//!   intervals where they are not zero: with one listener idle a flush carries about 15 of
//!   them, not the full set;
//! - `full`: every one, every flush.
//!
//! Configured limits never change, so they are not in flushes: `/metrics` shows them as
//! `rstatsd_limit{limit="<key>"}` and the admin `config` command shows the whole configuration.
//!
//! | series | type | tags | level | meaning |
//! |---|---|---|---|---|
//! | `packets_received` | counter | `listener` | always | datagrams received |
//! | `metrics_received` | counter | `listener` | always | metric values aggregated |
//! | `bytes_received` | counter | `listener` | full | datagram bytes received |
//! | `recv_batches` | counter | `listener` | full | recvmmsg calls that returned data |
//! | `truncated_datagrams` | counter | `listener` | non-zero | datagrams larger than `max_datagram_bytes` (complete lines kept) |
//! | `recv_errors` | counter | `listener` | non-zero | socket errors other than timeouts |
//! | `series_rejected` | counter | `listener` | non-zero | metrics of new series refused: `limits.max_series` reached |
//! | `tag_sets_rejected` | counter | `listener` | non-zero | metrics of new series refused: `limits.max_tag_sets_per_name` reached |
//! | `samples_sketched` | counter | `listener` | non-zero | timer samples beyond `limits.max_timer_samples` and set members beyond the exact bound, counted into a DDSketch or HyperLogLog |
//! | `bad_lines` | counter | `listener`, `reason` | non-zero | rejected lines/objects ([`Reject`]) |
//! | `events_skipped` | counter | `listener` | non-zero | DogStatsD events skipped |
//! | `service_checks_skipped` | counter | `listener` | non-zero | DogStatsD service checks skipped |
//! | `receive_buffer_bytes` | gauge | `listener` | always | effective SO_RCVBUF per socket |
//! | `socket_drops` | gauge | `listener` | always | kernel drops on our sockets since start (/proc/net/udp) |
//! | `series` | gauge | | always | series in the previous snapshot |
//! | `flush_duration_ms` | gauge | | always | time the previous flush took |
//! | `gauges_kept` | gauge | | always | gauges remembered across intervals |
//! | `gauges_not_kept` | counter | | non-zero | new gauges not remembered (`limits.max_gauges`) |
//! | `sketch_bins_collapsed` | counter | | non-zero | timer sketch bins folded into a lower one (`limits.max_sketch_bins`), in the previous snapshot |
//! | `guard_tracked_names` | gauge | | full | names tracked by the per-name tag-set cap |
//! | `sink_delivered` | counter | `sink` | always | messages (lines) the destination took |
//! | `sink_buffered_bytes` | gauge | `sink` | always | bytes waiting in the sink's delivery buffer |
//! | `sink_queue_dropped` | counter | `sink` | non-zero | snapshots dropped from the sink's queue (the sink fell `flush.snapshot_queue` flushes behind) |
//! | `sink_buffer_dropped` | counter | `sink` | non-zero | messages dropped from the full delivery buffer (oldest snapshots first) |
//! | `sink_retried` | counter | `sink` | non-zero | messages sent again after a retriable failure |
//! | `sink_failed` | counter | `sink` | non-zero | messages that failed permanently |
//! | `sink_connection_errors` | counter | `sink` | non-zero | failed connection attempts and broken connections |
//! | `sink_write_errors` | counter | `sink` | non-zero | snapshots a sink could not write at all (console: stdout failed) |
//! | `sink_spool_bytes` | gauge | `sink` | always (with a spool) | bytes of the sink's spool segments on disk |
//! | `sink_spool_records` | gauge | `sink` | always (with a spool) | spooled snapshots not yet delivered |
//! | `sink_spool_messages` | gauge | `sink` | always (with a spool) | messages in them |
//! | `sink_spool_oldest_age_seconds` | gauge | `sink` | always (with a spool) | age of the oldest undelivered spooled snapshot (0: none) |
//! | `sink_spool_written` | counter | `sink` | non-zero | snapshots written to the spool |
//! | `sink_spool_replayed` | counter | `sink` | non-zero | spooled snapshots read back for delivery |
//! | `sink_spool_dropped` | counter | `sink` | non-zero | spooled snapshots dropped unsent: `spool.max_bytes` reached |
//! | `sink_spool_corrupt` | counter | `sink` | non-zero | spool records (or whole segments with a bad header) that failed their checksum, skipped |
//! | `sink_spool_torn` | counter | `sink` | non-zero | torn last records (a crash mid-write) truncated at start-up |
//! | `sink_spool_write_errors` | counter | `sink` | non-zero | failed spool writes, reads of the directory or deletes (the memory buffer carries on) |
//! | `fleet_partials` | counter | | always (aggregators) | partials merged (duplicates and late ones not counted) |
//! | `fleet_markers` | counter | | always (aggregators) | end-of-interval markers read |
//! | `fleet_duplicates` | counter | | non-zero | partials seen before (same source, epoch, interval, partition, seq), skipped |
//! | `fleet_late` | counter | | non-zero | partials for an interval already closed on their partition |
//! | `fleet_invalid` | counter | | non-zero | messages that are not partials, or of another interval length, skipped |
//! | `fleet_unsequenced` | counter | | non-zero | partials without a seq (merged, cannot be deduplicated) |
//! | `fleet_closed_complete` | counter | | always (aggregators) | partition intervals closed because every live source's marker and partials arrived |
//! | `fleet_closed_grace` | counter | | non-zero | partition intervals closed by `fleet.grace_ms` |
//! | `fleet_reemitted` | counter | | non-zero | corrected intervals emitted again (`fleet.late = "reemit"`) |
//! | `fleet_open_dropped` | counter | | non-zero | open intervals dropped when their partition was revoked (its new owner replays them) |
//! | `fleet_commits` | counter | | full | offset commits requested |
//! | `fleet_commit_errors` | counter | | non-zero | offset commits the group coordinator refused |
//! | `fleet_rebalances` | counter | | non-zero | partition assignments and revocations |
//! | `fleet_assigned_partitions` | gauge | | always (aggregators) | partitions of the partials topic this aggregator owns |
//! | `fleet_open_intervals` | gauge | | always (aggregators) | intervals open over those partitions |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::parse::{Protocol, Reject};

/// `[stats]`: internal statistics in flushes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Do not put internal statistics into flushes (stats.enabled = false; `/metrics` keeps them).
    #[arg(id = "stats.enabled", long = "no-stats", num_args = 0, default_missing_value = "false", action = clap::ArgAction::Set, required = false)]
    pub enabled: bool,
    /// Prefix of internal statistics series (stats.prefix).
    #[arg(
        id = "stats.prefix",
        long = "stats-prefix",
        value_name = "PREFIX",
        required = false
    )]
    pub prefix: String,
    /// Internal statistics per flush: basic or full (stats.detail).
    #[arg(
        id = "stats.detail",
        long = "stats-detail",
        value_name = "DETAIL",
        required = false
    )]
    pub detail: Detail,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            enabled: true,
            prefix: "rstatsd.".to_string(),
            detail: Detail::Basic,
        }
    }
}

/// `stats.detail`: how many internal statistics a flush carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    /// What an operator watches: traffic, loss and delivery, problems when they happen.
    #[default]
    Basic,
    /// Every statistic, every flush.
    Full,
}

/// When a flush carries a statistic (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Always,
    NonZero,
    Full,
}

/// A statistic's value this interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatValue {
    /// Events in this interval.
    Counter(u64),
    /// A level at the end of the interval.
    Gauge(f64),
}

/// One internal statistic of one interval, named without the prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    pub name: &'static str,
    pub tags: Vec<(&'static str, String)>,
    pub value: StatValue,
    pub level: Level,
}

impl Stat {
    /// True when a flush at `detail` carries this statistic.
    pub fn in_flush(&self, detail: Detail) -> bool {
        match (detail, self.level) {
            (Detail::Full, _) | (Detail::Basic, Level::Always) => true,
            (Detail::Basic, Level::NonZero) => self.value != StatValue::Counter(0),
            (Detail::Basic, Level::Full) => false,
        }
    }
}

/// Counters owned by one receiver thread; plain integers, no atomics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiverStats {
    pub packets_received: u64,
    pub bytes_received: u64,
    pub recv_batches: u64,
    pub truncated_datagrams: u64,
    pub recv_errors: u64,
    pub metrics_received: u64,
    pub series_rejected: u64,
    pub tag_sets_rejected: u64,
    pub samples_sketched: u64,
    pub events_skipped: u64,
    pub service_checks_skipped: u64,
    pub bad_lines: [u64; Reject::ALL.len()],
}

impl ReceiverStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ReceiverStats) {
        for ((_, a, _), (_, b, _)) in self.counters_mut().into_iter().zip(other.counters()) {
            *a += b;
        }
        for (a, b) in self.bad_lines.iter_mut().zip(other.bad_lines.iter()) {
            *a += b;
        }
    }

    /// Every counter with its series name and level; `bad_lines` per reason is separate.
    pub fn counters(&self) -> [(&'static str, u64, Level); 11] {
        let mut copy = self.clone();
        copy.counters_mut()
            .map(|(name, v, level)| (name, *v, level))
    }

    fn counters_mut(&mut self) -> [(&'static str, &mut u64, Level); 11] {
        use Level::*;
        [
            ("packets_received", &mut self.packets_received, Always),
            ("metrics_received", &mut self.metrics_received, Always),
            ("bytes_received", &mut self.bytes_received, Full),
            ("recv_batches", &mut self.recv_batches, Full),
            (
                "truncated_datagrams",
                &mut self.truncated_datagrams,
                NonZero,
            ),
            ("recv_errors", &mut self.recv_errors, NonZero),
            ("series_rejected", &mut self.series_rejected, NonZero),
            ("tag_sets_rejected", &mut self.tag_sets_rejected, NonZero),
            ("samples_sketched", &mut self.samples_sketched, NonZero),
            ("events_skipped", &mut self.events_skipped, NonZero),
            (
                "service_checks_skipped",
                &mut self.service_checks_skipped,
                NonZero,
            ),
        ]
    }
}

/// Counters a sink shares with the flusher (off the hot path, so atomics are fine). Each
/// counts one thing, in the unit its name says; see the module docs.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub delivered: AtomicU64,
    pub queue_dropped: AtomicU64,
    pub buffer_dropped: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub connection_errors: AtomicU64,
    pub write_errors: AtomicU64,
    /// Bytes waiting in the delivery buffer (a gauge).
    pub buffered_bytes: AtomicU64,
    /// Messages still undelivered when the sink closed.
    pub undelivered: AtomicU64,
    /// The sink has a spool (its gauges are reported).
    pub spool_enabled: std::sync::atomic::AtomicBool,
    pub spool_bytes: AtomicU64,
    pub spool_records: AtomicU64,
    pub spool_messages: AtomicU64,
    /// Flush time (ms since the epoch) of the oldest undelivered spooled snapshot; 0: none.
    pub spool_oldest_ms: AtomicU64,
    pub spool_written: AtomicU64,
    pub spool_replayed: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub spool_corrupt: AtomicU64,
    pub spool_torn: AtomicU64,
    pub spool_write_errors: AtomicU64,
    /// Messages left in the spool when the sink closed.
    pub spooled_at_close: AtomicU64,
}

/// A plain copy of [`SinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SinkTotals {
    pub delivered: u64,
    pub queue_dropped: u64,
    pub buffer_dropped: u64,
    pub retried: u64,
    pub failed: u64,
    pub connection_errors: u64,
    pub write_errors: u64,
    pub buffered_bytes: u64,
    pub undelivered: u64,
    pub spool_enabled: bool,
    pub spool_bytes: u64,
    pub spool_records: u64,
    pub spool_messages: u64,
    pub spool_oldest_ms: u64,
    pub spool_written: u64,
    pub spool_replayed: u64,
    pub spool_dropped: u64,
    pub spool_corrupt: u64,
    pub spool_torn: u64,
    pub spool_write_errors: u64,
    pub spooled_at_close: u64,
}

impl SinkCounters {
    pub fn totals(&self) -> SinkTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkTotals {
            delivered: get(&self.delivered),
            queue_dropped: get(&self.queue_dropped),
            buffer_dropped: get(&self.buffer_dropped),
            retried: get(&self.retried),
            failed: get(&self.failed),
            connection_errors: get(&self.connection_errors),
            write_errors: get(&self.write_errors),
            buffered_bytes: get(&self.buffered_bytes),
            undelivered: get(&self.undelivered),
            spool_enabled: self.spool_enabled.load(Ordering::Relaxed),
            spool_bytes: get(&self.spool_bytes),
            spool_records: get(&self.spool_records),
            spool_messages: get(&self.spool_messages),
            spool_oldest_ms: get(&self.spool_oldest_ms),
            spool_written: get(&self.spool_written),
            spool_replayed: get(&self.spool_replayed),
            spool_dropped: get(&self.spool_dropped),
            spool_corrupt: get(&self.spool_corrupt),
            spool_torn: get(&self.spool_torn),
            spool_write_errors: get(&self.spool_write_errors),
            spooled_at_close: get(&self.spooled_at_close),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl SinkTotals {
    /// The counters as (series name, value since `last`, level).
    fn deltas(&self, last: &SinkTotals) -> impl Iterator<Item = (&'static str, u64, Level)> {
        use Level::*;
        type Field = fn(&SinkTotals) -> u64;
        const COUNTERS: [(&str, Field, Level); 13] = [
            ("sink_delivered", |t| t.delivered, Always),
            ("sink_queue_dropped", |t| t.queue_dropped, NonZero),
            ("sink_buffer_dropped", |t| t.buffer_dropped, NonZero),
            ("sink_retried", |t| t.retried, NonZero),
            ("sink_failed", |t| t.failed, NonZero),
            ("sink_connection_errors", |t| t.connection_errors, NonZero),
            ("sink_write_errors", |t| t.write_errors, NonZero),
            ("sink_spool_written", |t| t.spool_written, NonZero),
            ("sink_spool_replayed", |t| t.spool_replayed, NonZero),
            ("sink_spool_dropped", |t| t.spool_dropped, NonZero),
            ("sink_spool_corrupt", |t| t.spool_corrupt, NonZero),
            ("sink_spool_torn", |t| t.spool_torn, NonZero),
            ("sink_spool_write_errors", |t| t.spool_write_errors, NonZero),
        ];
        let last = *last;
        let now = *self;
        COUNTERS.into_iter().map(move |(name, field, level)| {
            (name, field(&now).saturating_sub(field(&last)), level)
        })
    }
}

/// Counters of the aggregator's Kafka input ([`crate::fleet`]), shared with the
/// flusher; see the module docs for what each counts.
#[derive(Debug, Default)]
pub struct FleetCounters {
    pub partials: AtomicU64,
    pub markers: AtomicU64,
    pub duplicates: AtomicU64,
    pub late: AtomicU64,
    pub invalid: AtomicU64,
    pub unsequenced: AtomicU64,
    pub closed_complete: AtomicU64,
    pub closed_grace: AtomicU64,
    pub reemitted: AtomicU64,
    pub open_dropped: AtomicU64,
    pub commits: AtomicU64,
    pub commit_errors: AtomicU64,
    pub rebalances: AtomicU64,
    /// Gauges.
    pub assigned: AtomicU64,
    pub open_intervals: AtomicU64,
}

impl FleetCounters {
    /// The counters as (series name, value, level) and the gauges as (series name, value).
    #[allow(clippy::type_complexity)]
    pub fn read(&self) -> ([(&'static str, u64, Level); 13], [(&'static str, u64); 2]) {
        use Level::*;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            [
                ("fleet_partials", get(&self.partials), Always),
                ("fleet_markers", get(&self.markers), Always),
                ("fleet_duplicates", get(&self.duplicates), NonZero),
                ("fleet_late", get(&self.late), NonZero),
                ("fleet_invalid", get(&self.invalid), NonZero),
                ("fleet_unsequenced", get(&self.unsequenced), NonZero),
                ("fleet_closed_complete", get(&self.closed_complete), Always),
                ("fleet_closed_grace", get(&self.closed_grace), NonZero),
                ("fleet_reemitted", get(&self.reemitted), NonZero),
                ("fleet_open_dropped", get(&self.open_dropped), NonZero),
                ("fleet_commits", get(&self.commits), Full),
                ("fleet_commit_errors", get(&self.commit_errors), NonZero),
                ("fleet_rebalances", get(&self.rebalances), NonZero),
            ],
            [
                ("fleet_assigned_partitions", get(&self.assigned)),
                ("fleet_open_intervals", get(&self.open_intervals)),
            ],
        )
    }
}

/// What one flush reports about rstatsd itself, gathered by the flusher.
#[derive(Debug, Default)]
pub struct FlushFacts<'a> {
    /// Each listener's receiver counters, summed over its receivers.
    pub receivers: &'a [(Protocol, ReceiverStats)],
    /// Effective receive buffer per listener.
    pub receive_buffers: &'a [(Protocol, usize)],
    /// Kernel drops per listener since start.
    pub socket_drops: Vec<(Protocol, u64)>,
    /// Series in the previous snapshot, and how long building it took.
    pub series: usize,
    pub flush_duration: Duration,
    pub gauges_kept: usize,
    pub gauges_not_kept: u64,
    /// Sketch bins collapsed in the previous snapshot's timers.
    pub sketch_bins_collapsed: u64,
    pub guard_tracked_names: Option<usize>,
    /// Each sink's counters now and at the previous flush.
    pub sinks: Vec<(&'a str, SinkTotals, SinkTotals)>,
    /// The flush's wall-clock time (ms since the epoch), for ages.
    pub now_ms: u64,
    /// The aggregator input's counters now and at the previous flush (aggregators only).
    pub fleet: Option<FleetReading>,
}

/// Two readings of [`FleetCounters`]: now, and at the previous flush.
#[derive(Debug, Clone, Copy)]
pub struct FleetReading {
    pub now: [u64; 13],
    pub last: [u64; 13],
    pub gauges: [u64; 2],
}

/// Every internal statistic of one interval (see the module docs for names and levels).
pub fn collect(facts: &FlushFacts<'_>) -> Vec<Stat> {
    use Level::*;
    let mut out = Vec::with_capacity(64);
    let mut push = |name, tags: &[(&'static str, &str)], value, level| {
        out.push(Stat {
            name,
            tags: tags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
            level,
        })
    };
    for (protocol, s) in facts.receivers {
        let listener = [("listener", protocol.name())];
        for (name, v, level) in s.counters() {
            push(name, &listener, StatValue::Counter(v), level);
        }
        for reason in Reject::ALL {
            let tags = [("listener", protocol.name()), ("reason", reason.as_str())];
            let v = StatValue::Counter(s.bad_lines[reason.index()]);
            push("bad_lines", &tags, v, NonZero);
        }
    }
    for (protocol, drops) in &facts.socket_drops {
        let listener = [("listener", protocol.name())];
        push(
            "socket_drops",
            &listener,
            StatValue::Gauge(*drops as f64),
            Always,
        );
    }
    for (protocol, bytes) in facts.receive_buffers {
        let listener = [("listener", protocol.name())];
        let v = StatValue::Gauge(*bytes as f64);
        push("receive_buffer_bytes", &listener, v, Always);
    }
    push("series", &[], StatValue::Gauge(facts.series as f64), Always);
    let ms = facts.flush_duration.as_secs_f64() * 1000.0;
    push("flush_duration_ms", &[], StatValue::Gauge(ms), Always);
    let kept = StatValue::Gauge(facts.gauges_kept as f64);
    push("gauges_kept", &[], kept, Always);
    let not_kept = StatValue::Counter(facts.gauges_not_kept);
    push("gauges_not_kept", &[], not_kept, NonZero);
    let collapsed = StatValue::Counter(facts.sketch_bins_collapsed);
    push("sketch_bins_collapsed", &[], collapsed, NonZero);
    if let Some(names) = facts.guard_tracked_names {
        push(
            "guard_tracked_names",
            &[],
            StatValue::Gauge(names as f64),
            Full,
        );
    }
    for (name, now, last) in &facts.sinks {
        let tags = [("sink", *name)];
        for (stat, v, level) in now.deltas(last) {
            if stat.starts_with("sink_spool") && !now.spool_enabled {
                continue;
            }
            push(stat, &tags, StatValue::Counter(v), level);
        }
        let bytes = StatValue::Gauge(now.buffered_bytes as f64);
        push("sink_buffered_bytes", &tags, bytes, Always);
        if now.spool_enabled {
            let gauge = |v: u64| StatValue::Gauge(v as f64);
            push("sink_spool_bytes", &tags, gauge(now.spool_bytes), Always);
            let records = gauge(now.spool_records);
            push("sink_spool_records", &tags, records, Always);
            let messages = gauge(now.spool_messages);
            push("sink_spool_messages", &tags, messages, Always);
            let age = match now.spool_oldest_ms {
                0 => 0.0,
                oldest => (facts.now_ms.saturating_sub(oldest)) as f64 / 1000.0,
            };
            let age = StatValue::Gauge(age);
            push("sink_spool_oldest_age_seconds", &tags, age, Always);
        }
    }
    if let Some(reading) = &facts.fleet {
        let (counters, gauges) = FleetCounters::default().read();
        for (i, (name, _, level)) in counters.into_iter().enumerate() {
            let v = reading.now[i].saturating_sub(reading.last[i]);
            push(name, &[], StatValue::Counter(v), level);
        }
        for (i, (name, _)) in gauges.into_iter().enumerate() {
            push(
                name,
                &[],
                StatValue::Gauge(reading.gauges[i] as f64),
                Always,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_detail_keeps_problems_only_when_they_happen() {
        let mut busy = ReceiverStats {
            packets_received: 3,
            metrics_received: 5,
            events_skipped: 1,
            ..ReceiverStats::default()
        };
        busy.bad_lines[Reject::NoValue.index()] = 2;
        let receivers = [
            (Protocol::Statsd, busy),
            (Protocol::Pystatsd, ReceiverStats::default()),
        ];
        let buffers = [(Protocol::Statsd, 4096), (Protocol::Pystatsd, 4096)];
        let facts = FlushFacts {
            receivers: &receivers,
            receive_buffers: &buffers,
            socket_drops: vec![(Protocol::Statsd, 0), (Protocol::Pystatsd, 0)],
            sinks: vec![(
                "console",
                SinkTotals {
                    delivered: 7,
                    queue_dropped: 1,
                    ..SinkTotals::default()
                },
                SinkTotals::default(),
            )],
            guard_tracked_names: Some(4),
            ..FlushFacts::default()
        };
        let stats = collect(&facts);
        let basic: Vec<String> = stats
            .iter()
            .filter(|s| s.in_flush(Detail::Basic))
            .map(|s| {
                let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {}", s.name, tags.join(","))
            })
            .collect();
        assert_eq!(
            basic,
            [
                "packets_received listener=statsd",
                "metrics_received listener=statsd",
                "events_skipped listener=statsd",
                "bad_lines listener=statsd,reason=no_value",
                "packets_received listener=pystatsd",
                "metrics_received listener=pystatsd",
                "socket_drops listener=statsd",
                "socket_drops listener=pystatsd",
                "receive_buffer_bytes listener=statsd",
                "receive_buffer_bytes listener=pystatsd",
                "series ",
                "flush_duration_ms ",
                "gauges_kept ",
                "sink_delivered sink=console",
                "sink_queue_dropped sink=console",
                "sink_buffered_bytes sink=console",
            ]
        );
        // Full detail: every counter of both listeners, every reason, every sink counter.
        let full = stats.iter().filter(|s| s.in_flush(Detail::Full)).count();
        assert_eq!(full, stats.len());
        assert_eq!(stats.len(), 2 * (11 + Reject::ALL.len() + 2) + 6 + 8);
    }

    #[test]
    fn receiver_stats_add_every_counter() {
        let mut a = ReceiverStats {
            recv_errors: 1,
            service_checks_skipped: 2,
            ..ReceiverStats::default()
        };
        a.bad_lines[0] = 1;
        let b = a.clone();
        a.add(&b);
        assert_eq!((a.recv_errors, a.service_checks_skipped), (2, 4));
        assert_eq!(a.bad_lines[0], 2);
    }
}
