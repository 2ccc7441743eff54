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
//! | `http_requests` | counter | `path`, `status` | non-zero | HTTP requests answered (`path`: `/health`, `/metrics` or `other`) |
//! | `http_connections_refused` | counter | | non-zero | HTTP connections closed at once: `http.max_connections` were open |
//! | `http_timeouts` | counter | | non-zero | HTTP connections closed with a request unfinished or an answer untaken after `http.read_timeout_ms` / `http.write_timeout_ms` |
//! | `http_connections` | gauge | | full | HTTP connections open |
//! | `admin_connections_refused` | counter | | non-zero | management connections refused: `admin.max_connections` were open |
//! | `admin_timeouts` | counter | | non-zero | management connections closed after `admin.idle_timeout_ms` idle |
//! | `admin_connections` | gauge | | full | management connections open |

use std::time::Duration;

mod counters;

use serde::{Deserialize, Serialize};

pub use self::counters::{
    FleetCounters, PlaneCounters, PlaneTotals, ReceiverStats, SinkCounters, SinkTotals,
};
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
    /// The admin plane's counters now and at the previous flush.
    pub plane: Option<(PlaneTotals, PlaneTotals)>,
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
    if let Some((now, last)) = &facts.plane {
        for (&(path, status), &n) in &now.http_requests {
            let before = last
                .http_requests
                .get(&(path, status))
                .copied()
                .unwrap_or(0);
            let status = status.to_string();
            let tags = [("path", path), ("status", status.as_str())];
            push(
                "http_requests",
                &tags,
                StatValue::Counter(n - before),
                NonZero,
            );
        }
        for (i, name) in PlaneTotals::COUNTERS.into_iter().enumerate() {
            let v = now.counters[i] - last.counters[i];
            push(name, &[], StatValue::Counter(v), NonZero);
        }
        for (name, v) in PlaneTotals::GAUGES.into_iter().zip(now.gauges) {
            push(name, &[], StatValue::Gauge(v as f64), Full);
        }
    }
    out
}

#[cfg(test)]
mod tests;
