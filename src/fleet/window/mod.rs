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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::partial::{Envelope, Origin, Partial};
use crate::aggregate::{Bounds, Table};
use crate::interval::IntervalState;
use crate::metric::MetricType;

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

/// What a source has sent for one interval on one partition, per epoch.
#[derive(Debug, Default, Clone)]
struct Progress {
    seen: Vec<u64>,
    received: u32,
    expected: Option<u32>,
    /// Its marker was the epoch's final one.
    last: bool,
}

impl Progress {
    /// Records `seq`; false when it was seen before.
    fn record(&mut self, seq: u32) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            return false;
        }
        self.seen[word] |= bit;
        self.received += 1;
        true
    }

    fn complete(&self) -> bool {
        self.expected == Some(self.received)
    }
}

/// (source, epoch) → progress.
type Sources = HashMap<(Arc<str>, u64), Progress>;

#[derive(Debug)]
struct OpenInterval {
    series: Table,
    first_offset: i64,
    /// Wall clock (ms) of its first message.
    first_seen_ms: u64,
    sources: Sources,
}

/// A source as one partition sees it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The newest interval it sent anything for.
    last_start: u64,
    /// Its message for that interval was a final marker.
    ended: bool,
    /// The partition's traffic time at its latest message.
    busy_at: u64,
}

#[derive(Debug)]
struct PartitionState {
    open: BTreeMap<u64, OpenInterval>,
    /// Emitted intervals by start: (first offset, settled).
    emitted: BTreeMap<u64, (i64, bool)>,
    /// Every interval up to this start is closed here (emitted, or before assignment).
    closed_through: Option<u64>,
    /// What the last commit (before assignment, or ours) said was settled.
    settled_through: Option<u64>,
    sources: HashMap<Arc<str>, Seen>,
    /// Traffic time since assignment (see the module docs), ms.
    busy_ms: u64,
    /// The next offset to read.
    next_offset: Option<i64>,
    /// Wall clock (ms) of the last message.
    last_message_ms: u64,
    /// Recently closed intervals and their progress, for `late = "reemit"`.
    recent: BTreeMap<u64, (Table, Sources)>,
    /// Changed since the last commit.
    dirty: bool,
}

impl PartitionState {
    /// Where a new owner must start reading (see the module docs), once anything was read.
    fn position(&self) -> Option<Position> {
        let next = self.next_offset?;
        let oldest = self
            .open
            .values()
            .map(|o| o.first_offset)
            // Settled ones too: they are above the settled prefix, so not covered by
            // `closed_through`, and a new owner must read them whole.
            .chain(self.emitted.values().map(|e| e.0))
            .min();
        Some(Position {
            offset: oldest.unwrap_or(next).min(next),
            closed_through: self.settled_through,
        })
    }

    fn live(&self, seen: &Seen, start: u64, history: u64) -> bool {
        self.busy_ms.saturating_sub(seen.busy_at) <= history
            && !(seen.ended && seen.last_start < start)
    }
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

    /// Closes every interval that is due (see the module docs), merged per interval across
    /// partitions: one [`Closed`] per interval start.
    pub fn close_due(&mut self, now_ms: u64) -> Vec<Closed> {
        let mut by_start: BTreeMap<u64, (Table, Vec<(i32, u64)>)> = BTreeMap::new();
        let settings = &self.settings;
        let len = settings.interval_ms;
        let grace = settings.grace_ms;
        let history = u64::from(settings.live_intervals) * len;
        for (&partition, p) in self.partitions.iter_mut() {
            let busy = p.busy_ms;
            p.sources
                .retain(|_, seen| busy.saturating_sub(seen.busy_at) <= FORGET_AFTER * history);
            let watched = p.busy_ms >= history;
            while let Some((&start, open)) = p.open.first_key_value() {
                let due_by = start
                    .saturating_add(len)
                    .max(open.first_seen_ms)
                    .saturating_add(grace);
                let mut live = p
                    .sources
                    .iter()
                    .filter(|(_, seen)| p.live(seen, start, history))
                    .peekable();
                let any_live = live.peek().is_some();
                let mut complete = watched;
                let mut moved_on = watched && any_live;
                for (source, seen) in live {
                    let mut epochs = 0;
                    let mut finished = true;
                    let mut all_final = true;
                    for ((s, _), progress) in &open.sources {
                        if s == source {
                            epochs += 1;
                            finished &= progress.complete();
                            all_final &= progress.last;
                        }
                    }
                    complete &= epochs > 0 && finished && !all_final;
                    // One that ended in this very interval will not move on.
                    let ended_here = seen.ended && seen.last_start == start;
                    moved_on &= ended_here || seen.last_start >= start.saturating_add(grace);
                }
                complete &= open.sources.values().all(Progress::complete);
                let by_grace = now_ms >= due_by || moved_on;
                if !complete && !by_grace {
                    break;
                }
                let open = p.open.pop_first().expect("first").1;
                bump(
                    if complete {
                        &self.counters.closed_complete
                    } else {
                        &self.counters.closed_grace
                    },
                    1,
                );
                p.closed_through = Some(start);
                p.emitted.insert(start, (open.first_offset, false));
                p.dirty = true;
                let entry = by_start
                    .entry(start)
                    .or_insert_with(|| (Table::with_capacity(0, settings.bounds), Vec::new()));
                if settings.late == LatePolicy::Reemit {
                    let mut kept = Table::with_capacity(0, settings.bounds);
                    kept.merge(open.series.clone());
                    p.recent.insert(start, (kept, open.sources));
                    while p.recent.len() > settings.reemit_intervals {
                        p.recent.pop_first();
                    }
                }
                entry.0.merge(open.series);
                entry.1.push((partition, start));
            }
        }
        for (partition, start) in std::mem::take(&mut self.reemit) {
            let Some((table, _)) = self
                .partitions
                .get(&partition)
                .and_then(|p| p.recent.get(&start))
            else {
                continue;
            };
            bump(&self.counters.reemitted, 1);
            let entry = by_start
                .entry(start)
                .or_insert_with(|| (Table::with_capacity(0, settings.bounds), Vec::new()));
            entry.0.merge(table.clone());
        }
        let mut out = Vec::with_capacity(by_start.len());
        for (start, (series, parts)) in by_start {
            let id = self.next_id;
            self.next_id += 1;
            self.inflight.insert(id, parts);
            out.push(Closed {
                id,
                state: IntervalState {
                    timestamp_ms: start.saturating_add(len),
                    interval: Duration::from_millis(len),
                    series,
                },
            });
        }
        if !out.is_empty() {
            self.publish();
        }
        out
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
