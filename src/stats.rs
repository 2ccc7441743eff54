//! Internal statistics: counters each receiver keeps privately, summed at flush and emitted as
//! ordinary series under the configured prefix (default `rstatsd.`).
//!
//! | series | type | tags | meaning |
//! |---|---|---|---|
//! | `packets_received` | counter | `listener` | datagrams received |
//! | `bytes_received` | counter | `listener` | datagram bytes received |
//! | `recv_batches` | counter | `listener` | recvmmsg calls that returned data |
//! | `truncated_datagrams` | counter | `listener` | datagrams larger than `max_datagram_bytes` (complete lines kept) |
//! | `recv_errors` | counter | `listener` | socket errors other than timeouts |
//! | `metrics_received` | counter | `listener` | metric values aggregated |
//! | `series_rejected` | counter | `listener` | metrics of new series refused: `limits.max_series` reached |
//! | `tag_sets_rejected` | counter | `listener` | metrics of new series refused: `limits.max_tag_sets_per_name` reached for their name |
//! | `timer_samples_reservoir` | counter | `listener` | timer samples beyond `limits.max_timer_samples` (went through the reservoir; count and sum stay exact) |
//! | `bad_lines` | counter | `listener`, `reason` | rejected lines/objects ([`Reject`]) |
//! | `events_skipped` | counter | `listener` | DogStatsD events skipped |
//! | `service_checks_skipped` | counter | `listener` | DogStatsD service checks skipped |
//! | `receive_buffer_bytes` | gauge | `listener` | effective SO_RCVBUF per socket |
//! | `socket_drops` | gauge | `listener` | kernel drops on our sockets since start (/proc/net/udp) |
//! | `series` | gauge | | series in the previous snapshot |
//! | `gauges_kept` | gauge | | gauges remembered across intervals |
//! | `gauges_not_kept` | counter | | new gauges not remembered (`limits.max_gauges`) |
//! | `guard_tracked_names` | gauge | | names tracked by the per-name tag-set cap |
//! | `limit` | gauge | `limit` | every configured limit, by config key |
//! | `flush_duration_ms` | gauge | | time the previous flush took |
//! | `snapshot_drops` | counter | `sink` | snapshots dropped because the sink's queue was full |
//! | `sink_errors` | counter | `sink` | snapshots a sink failed to deliver |
//! | `sink_delivered` | counter | `sink` | messages the destination acknowledged |
//! | `sink_retried` | counter | `sink` | messages sent again after a retriable failure |
//! | `sink_failed` | counter | `sink` | messages that failed permanently |
//! | `sink_dropped` | counter | `sink` | messages dropped from a full sink buffer |
//! | `sink_buffered_bytes` | gauge | `sink` | bytes waiting in the sink's own buffer |
//!
//! The receiver counters are summed here; the flush and sink ones are assembled by
//! [`crate::flush::Aggregator`].

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
    pub timer_samples_reservoir: u64,
    pub events_skipped: u64,
    pub service_checks_skipped: u64,
    pub bad_lines: [u64; Reject::ALL.len()],
}

impl ReceiverStats {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ReceiverStats) {
        self.packets_received += other.packets_received;
        self.bytes_received += other.bytes_received;
        self.recv_batches += other.recv_batches;
        self.truncated_datagrams += other.truncated_datagrams;
        self.recv_errors += other.recv_errors;
        self.metrics_received += other.metrics_received;
        self.series_rejected += other.series_rejected;
        self.tag_sets_rejected += other.tag_sets_rejected;
        self.timer_samples_reservoir += other.timer_samples_reservoir;
        self.events_skipped += other.events_skipped;
        self.service_checks_skipped += other.service_checks_skipped;
        for (a, b) in self.bad_lines.iter_mut().zip(other.bad_lines.iter()) {
            *a += b;
        }
    }

    /// Every counter as (series name suffix, value); `bad_lines` per reason is separate.
    pub fn counters(&self) -> [(&'static str, u64); 11] {
        [
            ("packets_received", self.packets_received),
            ("bytes_received", self.bytes_received),
            ("recv_batches", self.recv_batches),
            ("truncated_datagrams", self.truncated_datagrams),
            ("recv_errors", self.recv_errors),
            ("metrics_received", self.metrics_received),
            ("series_rejected", self.series_rejected),
            ("tag_sets_rejected", self.tag_sets_rejected),
            ("timer_samples_reservoir", self.timer_samples_reservoir),
            ("events_skipped", self.events_skipped),
            ("service_checks_skipped", self.service_checks_skipped),
        ]
    }
}
