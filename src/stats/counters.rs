//! The counters each component updates: a receiver's own (plain integers), a sink's and
//! the fleet input's (atomics shared with the flusher).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Level;
use crate::parse::Reject;

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
    pub(super) fn deltas(
        &self,
        last: &SinkTotals,
    ) -> impl Iterator<Item = (&'static str, u64, Level)> {
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

/// Counters of the aggregator's Kafka input (the fleet stage), shared with the
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

/// Counters of the admin plane (the HTTP endpoint and the management interface), updated
/// by their threads and read by the flusher; see the module docs for what each counts.
#[derive(Debug, Default)]
pub struct PlaneCounters {
    /// HTTP requests answered, by (path, status); paths other than the served ones are
    /// `other`, so the label stays bounded.
    http_requests: std::sync::Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub http_refused: AtomicU64,
    pub http_timeouts: AtomicU64,
    pub http_connections: AtomicU64,
    pub admin_refused: AtomicU64,
    pub admin_timeouts: AtomicU64,
    pub admin_connections: AtomicU64,
}

/// One reading of [`PlaneCounters`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlaneTotals {
    pub http_requests: BTreeMap<(&'static str, u16), u64>,
    /// The plain counters, named by [`PlaneTotals::COUNTERS`].
    pub counters: [u64; 4],
    /// The open-connection gauges, named by [`PlaneTotals::GAUGES`].
    pub gauges: [u64; 2],
}

impl PlaneTotals {
    pub const COUNTERS: [&'static str; 4] = [
        "http_connections_refused",
        "http_timeouts",
        "admin_connections_refused",
        "admin_timeouts",
    ];
    pub const GAUGES: [&'static str; 2] = ["http_connections", "admin_connections"];
}

impl PlaneCounters {
    /// Counts one HTTP request answered.
    pub fn http_request(&self, path: &'static str, status: u16) {
        let mut requests = self
            .http_requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *requests.entry((path, status)).or_default() += 1;
    }

    pub fn read(&self) -> PlaneTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let requests = self
            .http_requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        PlaneTotals {
            http_requests: requests,
            counters: [
                get(&self.http_refused),
                get(&self.http_timeouts),
                get(&self.admin_refused),
                get(&self.admin_timeouts),
            ],
            gauges: [get(&self.http_connections), get(&self.admin_connections)],
        }
    }
}
