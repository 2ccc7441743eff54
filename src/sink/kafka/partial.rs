//! `format = "partial"`: each flush as mergeable partial aggregates for the fleet
//! aggregators ([`crate::fleet`]), in the protobuf format of
//! [`crate::aggregate::partial`] (schema `src/aggregate/partial.proto`).
//!
//! - One message per series: the series' state from the snapshot (counter sums, raw timer
//!   samples or the DDSketch, exact set members or the HyperLogLog; gauges as the value this
//!   host reports, carried-over ones included, so a new aggregator needs no history). The
//!   key is the series (`name,k=v,…`, as `json` messages), and the partition is computed
//!   here with the Java client's partitioner ([`super::partition`]) so that the partials of
//!   each partition can be numbered (`seq` 0, 1, …).
//! - Then one end-of-interval marker to **every** partition of the topic, each with the
//!   number of partials written to that partition (0 included): an aggregator can close an
//!   interval as soon as every live source's marker is in, and tell "nothing for me" from
//!   "not arrived yet".
//! - Every message names its origin: `source_id`, the process' start (a restart is a new
//!   epoch, never a duplicate), and the interval `[start, start + length)`.
//!
//! While the partition count is unknown (no broker reachable since start), partials are
//! written unsequenced (keyed, librdkafka routes them the same way once it knows) and without
//! markers; aggregators close those intervals by grace and count them.

use std::sync::Arc;

use super::partition::java_partition;
use crate::aggregate::partial::{IntervalEnd, Origin, encode_end, encode_partial};
use crate::sink::Flushed;
use crate::sink::batch::Batch;

use super::encode::series_key;

/// Encodes flushes as partials and markers.
pub struct PartialEncoder {
    topic: Arc<str>,
    source_id: String,
    epoch_ms: u64,
    payload: Vec<u8>,
    key: Vec<u8>,
    counts: Vec<u32>,
}

impl PartialEncoder {
    pub fn new(topic: &str, source_id: String, epoch_ms: u64) -> PartialEncoder {
        PartialEncoder {
            topic: Arc::from(topic),
            source_id,
            epoch_ms,
            payload: Vec::new(),
            key: Vec::new(),
            counts: Vec::new(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The origin of a flush: the interval its snapshot covers. A regular flush ends on a
    /// boundary; the final one at shutdown ends mid-interval and belongs to that interval.
    fn origin(&self, flushed: &Flushed) -> Origin {
        let ts = flushed.snapshot.timestamp_ms;
        let len = (flushed.snapshot.interval.as_millis() as u64).max(1);
        let start = if ts.is_multiple_of(len) {
            ts - len
        } else {
            ts - ts % len
        };
        Origin {
            source_id: self.source_id.clone(),
            source_epoch_ms: self.epoch_ms,
            interval_start_ms: start,
            interval_ms: len as u32,
        }
    }

    /// Appends the partials and markers of `flushed`; `partitions` is the topic's partition
    /// count, if known.
    pub fn encode(&mut self, flushed: &Flushed, partitions: Option<u32>, batch: &mut Batch) {
        let origin = self.origin(flushed);
        let snapshot = &flushed.snapshot;
        let gauge_ns = snapshot.timestamp_ms.saturating_mul(1_000_000);
        self.counts.clear();
        self.counts.resize(partitions.unwrap_or(0) as usize, 0);
        for (key, value) in &snapshot.series {
            self.key.clear();
            series_key(&mut self.key, key);
            let partition = partitions.map(|n| java_partition(&self.key, n));
            let seq = partition.map(|p| {
                let c = &mut self.counts[p as usize];
                *c += 1;
                *c - 1
            });
            self.payload.clear();
            encode_partial(&mut self.payload, &origin, seq, key, value, gauge_ns);
            batch.push(
                Some(Arc::clone(&self.topic)),
                Some(&self.key),
                &self.payload,
            );
            if let Some(p) = partition {
                batch.set_partition(p);
            }
        }
        let Some(n) = partitions else { return };
        for p in 0..n {
            let end = IntervalEnd {
                origin: origin.clone(),
                partials: self.counts[p as usize],
                partitions: n,
                last: flushed.last,
            };
            self.payload.clear();
            encode_end(&mut self.payload, &end);
            batch.push(
                Some(Arc::clone(&self.topic)),
                Some(self.source_id.as_bytes()),
                &self.payload,
            );
            batch.set_partition(p as i32);
        }
    }
}

/// The default `source_id`: this host's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
