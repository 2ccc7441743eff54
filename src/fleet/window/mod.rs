//! The aggregator's bookkeeping, free of Kafka: per assigned partition, the open intervals
//! with the partials merged so far, who has sent what (for deduplication and for knowing
//! when an interval is complete), and which offsets are safe to commit.
//!
//! Rules (the README's "Fleet-wide aggregation" section is the user-facing version):
//!
//! - **Deduplication.** A partial is identified by (source, source epoch, interval,
//!   partition, seq): the writer numbers its partials per partition, and its end-of-interval
//!   marker says how many there were. A seq seen before is a duplicate (a producer retry, a
//!   spool replay) and is counted and skipped. Unsequenced partials (written while the source
//!   did not know the partition count) cannot be deduplicated; they are merged and counted.
//! - **Traffic time.** Liveness is measured in the partition's *traffic time*: wall-clock
//!   time while messages arrive, where a silence counts as one interval at most. So a Kafka
//!   outage (nobody's messages arrive) does not make every source look dead afterwards, and
//!   a backlog replayed in seconds is not mistaken for hours of history.
//! - **Liveness.** A source is live on a partition while it sent anything there within the
//!   last `live_intervals` intervals of traffic time, unless its last message was a final
//!   marker (a clean shutdown) for an earlier interval.
//! - **Closing.** An interval closes on a partition when every live source has sent its
//!   marker and every partial the marker counts, for every epoch it wrote in, and not only
//!   final markers (a source restarted mid-interval writes again as a new epoch). A partition
//!   watched for less than `live_intervals` intervals of traffic time (just assigned) cannot
//!   know its live sources yet, so there intervals close only by grace.
//! - **Grace.** A missing marker is waited for until `grace_ms` after the interval's end, or
//!   after its first message arrived if that was later (a replayed backlog); or, on a
//!   watched partition, until every live source has moved on to an interval at least
//!   `grace_ms` later (a source's messages arrive in order, so what it has not sent for the
//!   earlier interval by then is not coming).
//! - **Late.** A message for an interval already closed on its partition (here, or before
//!   the last rebalance: the committed `closed_through`) is counted and dropped; with
//!   `late = "reemit"` a late partial (deduplicated as above) corrects the interval, which is
//!   emitted again, in full.
//! - **Offsets.** A partition's commit position is the first offset of its oldest interval
//!   that is open, or emitted but not yet taken by every sink; with no such interval, the
//!   next offset to read. The commit carries `closed_through`, the newest interval whose
//!   every predecessor is settled too, so that a new owner never re-opens an emitted interval.
//!   An interval a sink dropped stays unsettled: its partition's commits stop there until a
//!   restart or rebalance replays it.

mod close;
mod partition;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::aggregate::partial::{Envelope, Origin, Partial};
use crate::aggregate::{Bounds, Table};
use crate::interval::IntervalState;
use crate::metric::MetricType;

use self::partition::{OpenInterval, PartitionState, Seen};
use crate::stats::FleetCounters;

fn bump(counter: &std::sync::atomic::AtomicU64, n: u64) {
    counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Partials for an interval starting more than this many intervals ahead of the aggregator's
/// clock are refused (`fleet_invalid`): hosts and aggregators need synchronized clocks.
pub const FUTURE_INTERVALS: u64 = 10;

/// Highest seq accepted: bounds the bitset of one (source, epoch, interval, partition) at
/// 512 KiB.
pub const MAX_SEQ: u32 = 1 << 22;

/// A source silent for this many times `live_intervals` of traffic time is forgotten.
const FORGET_AFTER: u64 = 4;

/// What to do with a partial for an interval already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// Count it and drop it.
    #[default]
    Drop,
    /// Merge it into the closed interval and emit the corrected interval again, in full.
    Reemit,
}

/// The window's settings, from `[fleet]`.
#[derive(Debug, Clone)]
pub struct WindowSettings {
    pub interval_ms: u64,
    pub grace_ms: u64,
    pub live_intervals: u32,
    pub bounds: Bounds,
    /// Types that are not merged across sources: their series get `source_tag`.
    pub per_source: Vec<MetricType>,
    pub source_tag: String,
    pub late: LatePolicy,
    /// Closed intervals kept per partition for `late = "reemit"`.
    pub reemit_intervals: usize,
}

/// One emitted interval: the state to finalize, and the id its receipt reports.
#[derive(Debug)]
pub struct Closed {
    pub id: u64,
    pub state: IntervalState,
}

/// A commit position: next offset to read, and the `closed_through` interval start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: i64,
    pub closed_through: Option<u64>,
}

/// Every assigned partition's state (see the module docs).
pub struct Window {
    settings: WindowSettings,
    partitions: BTreeMap<i32, PartitionState>,
    /// Emitted, unsettled: id → (partition, interval start) of each part.
    inflight: HashMap<u64, Vec<(i32, u64)>>,
    next_id: u64,
    counters: Arc<FleetCounters>,
    /// Interned source ids.
    names: HashMap<String, Arc<str>>,
    /// (partition, interval start) that late partials corrected, to emit again at the next
    /// close (`late = "reemit"`).
    reemit: Vec<(i32, u64)>,
}

impl Window {
    pub fn new(settings: WindowSettings, counters: Arc<FleetCounters>) -> Window {
        Window {
            settings,
            partitions: BTreeMap::new(),
            inflight: HashMap::new(),
            next_id: 1,
            counters,
            names: HashMap::new(),
            reemit: Vec::new(),
        }
    }

    /// Partitions assigned now.
    pub fn assigned(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }

    /// Starts watching `partition`; `closed_through` comes from its committed metadata.
    pub fn assign(&mut self, partition: i32, closed_through: Option<u64>, now_ms: u64) {
        self.partitions.entry(partition).or_insert(PartitionState {
            open: BTreeMap::new(),
            emitted: BTreeMap::new(),
            closed_through,
            settled_through: closed_through,
            sources: HashMap::new(),
            busy_ms: 0,
            next_offset: None,
            last_message_ms: now_ms,
            recent: BTreeMap::new(),
            dirty: false,
        });
        self.publish();
    }

    /// Forgets `partition`: its new owner rebuilds the open intervals from the log.
    pub fn revoke(&mut self, partition: i32) {
        if let Some(p) = self.partitions.remove(&partition) {
            bump(&self.counters.open_dropped, p.open.len() as u64);
        }
        for parts in self.inflight.values_mut() {
            parts.retain(|(q, _)| *q != partition);
        }
        self.publish();
    }

    fn intern(&mut self, source: &str) -> Arc<str> {
        if let Some(s) = self.names.get(source) {
            return Arc::clone(s);
        }
        let s: Arc<str> = Arc::from(source);
        if self.names.len() < 100_000 {
            self.names.insert(source.to_string(), Arc::clone(&s));
        }
        s
    }

    /// Takes one decoded message read from `partition` at `offset`.
    pub fn offer(&mut self, partition: i32, offset: i64, envelope: Envelope, now_ms: u64) {
        let origin = match &envelope {
            Envelope::Partial(p) => &p.origin,
            Envelope::End(e) => &e.origin,
        };
        let len = self.settings.interval_ms;
        // An interval far in the future (a clock way off) would stay open, and hold the
        // partition's commit position, until that time.
        let horizon = now_ms.saturating_add(FUTURE_INTERVALS * len);
        let bad_seq =
            matches!(&envelope, Envelope::Partial(p) if p.seq.is_some_and(|s| s >= MAX_SEQ));
        if u64::from(origin.interval_ms) != len
            || !origin.interval_start_ms.is_multiple_of(len)
            || origin.interval_start_ms > horizon
            || bad_seq
        {
            bump(&self.counters.invalid, 1);
            self.advance(partition, offset, now_ms);
            return;
        }
        let start = origin.interval_start_ms;
        let epoch = origin.source_epoch_ms;
        let source = self.intern(&origin.source_id);
        if !self.advance(partition, offset, now_ms) {
            return;
        }
        let p = self.partitions.get_mut(&partition).expect("advanced");
        if p.closed_through.is_some_and(|c| start <= c) {
            if let Envelope::Partial(partial) = envelope {
                self.late(partition, source, partial);
            }
            return;
        }
        let final_marker = matches!(&envelope, Envelope::End(e) if e.last);
        let busy = p.busy_ms;
        let seen = p.sources.entry(Arc::clone(&source)).or_insert(Seen {
            last_start: start,
            ended: final_marker,
            busy_at: busy,
        });
        seen.busy_at = busy;
        if start > seen.last_start {
            (seen.last_start, seen.ended) = (start, final_marker);
        } else if start == seen.last_start {
            seen.ended = final_marker;
        }
        let settings = &self.settings;
        let open = p.open.entry(start).or_insert_with(|| OpenInterval {
            series: Table::with_capacity(0, settings.bounds),
            first_offset: offset,
            first_seen_ms: now_ms,
            sources: HashMap::new(),
        });
        let progress = open.sources.entry((source, epoch)).or_default();
        match envelope {
            Envelope::End(end) => {
                bump(&self.counters.markers, 1);
                progress.expected = Some(end.partials);
                progress.last = end.last;
            }
            Envelope::Partial(partial) => {
                match partial.seq {
                    Some(seq) => {
                        if !progress.record(seq) {
                            bump(&self.counters.duplicates, 1);
                            return;
                        }
                    }
                    None => bump(&self.counters.unsequenced, 1),
                }
                bump(&self.counters.partials, 1);
                let (key, value) = keyed(settings, partial);
                open.series.merge_value(key, value);
            }
        }
    }

    /// Books a consumed message on its partition (traffic time, position); false when the
    /// partition is not ours.
    fn advance(&mut self, partition: i32, offset: i64, now_ms: u64) -> bool {
        let len = self.settings.interval_ms;
        let Some(p) = self.partitions.get_mut(&partition) else {
            return false;
        };
        p.busy_ms += now_ms.saturating_sub(p.last_message_ms).min(len);
        p.last_message_ms = p.last_message_ms.max(now_ms);
        p.next_offset = Some(offset + 1);
        p.dirty = true;
        true
    }

    /// A message that could not be decoded (counted by the caller).
    pub fn skip(&mut self, partition: i32, offset: i64, now_ms: u64) {
        self.advance(partition, offset, now_ms);
    }

    fn late(&mut self, partition: i32, source: Arc<str>, partial: Partial) {
        bump(&self.counters.late, 1);
        if self.settings.late != LatePolicy::Reemit {
            return;
        }
        let start = partial.origin.interval_start_ms;
        let epoch = partial.origin.source_epoch_ms;
        let settings = &self.settings;
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        let Some((table, sources)) = p.recent.get_mut(&start) else {
            return;
        };
        if let Some(seq) = partial.seq
            && !sources.entry((source, epoch)).or_default().record(seq)
        {
            bump(&self.counters.duplicates, 1);
            return;
        }
        let (key, value) = keyed(settings, partial);
        table.merge_value(key, value);
        if !self.reemit.contains(&(partition, start)) {
            self.reemit.push((partition, start));
        }
    }

    /// Every sink is done with emitted interval `id`: `taken` when each delivered it or has
    /// it on disk. One a sink dropped stays unsettled (see the module docs).
    pub fn settle(&mut self, id: u64, taken: bool) {
        let Some(parts) = self.inflight.remove(&id) else {
            return;
        };
        if !taken {
            log::warn!(
                "fleet: a sink dropped a closed interval ({} partition parts); its \
                 partitions' offsets stay uncommitted from there, so a restart or rebalance \
                 replays it",
                parts.len()
            );
            return;
        }
        for (partition, start) in parts {
            let Some(p) = self.partitions.get_mut(&partition) else {
                continue;
            };
            if let Some(e) = p.emitted.get_mut(&start) {
                e.1 = true;
            }
            // The settled prefix needs no more care.
            while let Some((&s, &(_, true))) = p.emitted.first_key_value() {
                p.emitted.pop_first();
                p.settled_through = Some(p.settled_through.map_or(s, |t| t.max(s)));
            }
            p.dirty = true;
        }
    }

    /// Commit positions of partitions that changed since the last call.
    pub fn commits(&mut self) -> Vec<(i32, Position)> {
        let mut out = Vec::new();
        for (&partition, p) in self.partitions.iter_mut() {
            if !p.dirty {
                continue;
            }
            let Some(position) = p.position() else {
                continue;
            };
            p.dirty = false;
            out.push((partition, position));
        }
        out
    }

    /// The latest commit position of every assigned partition (for a commit at revocation).
    pub fn positions(&self) -> Vec<(i32, Position)> {
        self.partitions
            .iter()
            .filter_map(|(&partition, p)| Some((partition, p.position()?)))
            .collect()
    }

    /// Open intervals over all partitions.
    pub fn open_intervals(&self) -> usize {
        self.partitions.values().map(|p| p.open.len()).sum()
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        c.assigned.store(self.partitions.len() as u64, Relaxed);
        c.open_intervals
            .store(self.open_intervals() as u64, Relaxed);
    }
}

/// A partial's series key on the global side: per-source types get the source tag.
fn keyed(
    settings: &WindowSettings,
    partial: Partial,
) -> (crate::metric::SeriesKey, crate::aggregate::Value) {
    let Partial {
        origin: Origin { source_id, .. },
        key,
        value,
        ..
    } = partial;
    if settings.per_source.contains(&key.metric_type()) && !settings.source_tag.is_empty() {
        let tag = [(settings.source_tag.clone(), source_id)];
        (key.with_default_tags(&tag), value)
    } else {
        (key, value)
    }
}

#[cfg(test)]
mod tests;
