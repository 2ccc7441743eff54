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
//! - **Liveness.** A source is live on a partition while it sent anything there for one of
//!   the last `live_intervals` intervals, unless its last message was a final marker (a clean
//!   shutdown).
//! - **Closing.** An interval closes on a partition when every live source has sent its
//!   marker and every partial the marker counts, for every epoch it wrote in. A partition
//!   watched for fewer than `live_intervals` intervals (just assigned) cannot know its live
//!   sources yet, so there intervals close only by grace. **Grace**: at interval end +
//!   `grace_ms`, measured on the partition's own traffic — a message of an interval that ends
//!   at least that late has been read, or no message has arrived for `grace_ms` — and never
//!   before that time on the wall clock. So a backlog replayed after an outage (every
//!   message hours old) still closes each interval on its markers, not on the clock.
//! - **Late.** A partial for an interval already closed on its partition (here, or before the
//!   last rebalance: the committed `closed_through`) is counted and dropped; with
//!   `late = "reemit"` the interval is corrected and emitted again, in full.
//! - **Offsets.** A partition's commit position is the first offset of its oldest interval
//!   that is open or emitted but not yet taken by every sink; with no such interval, the next
//!   offset to read. The commit carries `closed_through`, the newest interval whose every
//!   predecessor is settled too, so that a new owner never re-opens an emitted interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::partial::{Envelope, IntervalEnd, Origin, Partial};
use crate::aggregate::{Bounds, Table};
use crate::interval::IntervalState;
use crate::metric::MetricType;

use crate::stats::AggregateCounters;

fn bump(counter: &std::sync::atomic::AtomicU64, n: u64) {
    counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Partials for an interval starting more than this many intervals ahead of the aggregator's
/// clock are refused (`aggregate_invalid`): hosts and aggregators need synchronized clocks.
pub const FUTURE_INTERVALS: u64 = 10;

/// Highest seq accepted: bounds the bitset one source can make us allocate (2 MiB).
pub const MAX_SEQ: u32 = 1 << 24;

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

/// The window's settings, from `[aggregate]`.
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
#[derive(Debug, Default)]
struct Progress {
    seen: Vec<u64>,
    received: u32,
    expected: Option<u32>,
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

#[derive(Debug)]
struct OpenInterval {
    series: Table,
    first_offset: i64,
    /// (source, epoch) → progress.
    sources: HashMap<(Arc<str>, u64), Progress>,
}

/// A source as one partition sees it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The newest interval it sent anything for.
    last_start: u64,
    /// Its newest message was a final marker.
    ended: bool,
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
    /// The first interval start seen since assignment.
    since: Option<u64>,
    /// The next offset to read.
    next_offset: Option<i64>,
    /// The latest interval end seen in a message.
    watermark: u64,
    /// Wall clock (ms) of the last message.
    last_message_ms: u64,
    /// Recently closed intervals, for `late = "reemit"`.
    recent: BTreeMap<u64, Table>,
    /// Changed since the last commit.
    dirty: bool,
}

/// Every assigned partition's state (see the module docs).
pub struct Window {
    settings: WindowSettings,
    partitions: BTreeMap<i32, PartitionState>,
    /// Emitted, unsettled: id → (partition, interval start) of each part.
    inflight: HashMap<u64, Vec<(i32, u64)>>,
    next_id: u64,
    counters: Arc<AggregateCounters>,
    /// Interned source ids.
    names: HashMap<String, Arc<str>>,
    /// (partition, interval start) that late partials corrected, to emit again at the next
    /// close (`late = "reemit"`).
    reemit: Vec<(i32, u64)>,
}

impl Window {
    pub fn new(settings: WindowSettings, counters: Arc<AggregateCounters>) -> Window {
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
            since: None,
            next_offset: None,
            watermark: 0,
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
        if u64::from(origin.interval_ms) != len
            || !origin.interval_start_ms.is_multiple_of(len)
            || origin.interval_start_ms > horizon
        {
            bump(&self.counters.invalid, 1);
            self.advance(partition, offset, now_ms);
            return;
        }
        let source = self.intern(&origin.source_id);
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        p.last_message_ms = now_ms;
        p.next_offset = Some(offset + 1);
        p.dirty = true;
        let start = origin.interval_start_ms;
        p.watermark = p.watermark.max(start.saturating_add(len));
        p.since = Some(p.since.map_or(start, |s| s.min(start)));
        let ended = matches!(&envelope, Envelope::End(IntervalEnd { last: true, .. }));
        let seen = p.sources.entry(Arc::clone(&source)).or_insert(Seen {
            last_start: start,
            ended,
        });
        if start >= seen.last_start {
            *seen = Seen {
                last_start: start,
                ended,
            };
        }
        if p.closed_through.is_some_and(|c| start <= c) {
            if let Envelope::Partial(partial) = envelope {
                self.late(partition, partial);
            }
            return;
        }
        let settings = &self.settings;
        let open = p.open.entry(start).or_insert_with(|| OpenInterval {
            series: Table::with_capacity(0, settings.bounds),
            first_offset: offset,
            sources: HashMap::new(),
        });
        let progress = open
            .sources
            .entry((source, origin.source_epoch_ms))
            .or_default();
        match envelope {
            Envelope::End(end) => {
                bump(&self.counters.markers, 1);
                progress.expected = Some(end.partials);
            }
            Envelope::Partial(partial) => {
                match partial.seq {
                    Some(seq) if seq >= MAX_SEQ => {
                        bump(&self.counters.invalid, 1);
                        return;
                    }
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

    /// A message that is consumed but carries nothing to keep.
    fn advance(&mut self, partition: i32, offset: i64, now_ms: u64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.next_offset = Some(offset + 1);
            p.last_message_ms = now_ms;
            p.dirty = true;
        }
    }

    /// A message that could not be decoded (counted by the caller).
    pub fn skip(&mut self, partition: i32, offset: i64, now_ms: u64) {
        self.advance(partition, offset, now_ms);
    }

    fn late(&mut self, partition: i32, partial: Partial) {
        bump(&self.counters.late, 1);
        if self.settings.late != LatePolicy::Reemit {
            return;
        }
        let start = partial.origin.interval_start_ms;
        let (key, value) = keyed(&self.settings, partial);
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        if let Some(table) = p.recent.get_mut(&start) {
            table.merge_value(key, value);
            if !self.reemit.contains(&(partition, start)) {
                self.reemit.push((partition, start));
            }
        }
    }

    /// Closes every interval that is due (see the module docs), merged per interval across
    /// partitions: one [`Closed`] per interval start.
    pub fn close_due(&mut self, now_ms: u64) -> Vec<Closed> {
        let mut by_start: BTreeMap<u64, (Table, Vec<(i32, u64)>)> = BTreeMap::new();
        let settings = &self.settings;
        let len = settings.interval_ms;
        let history = u64::from(settings.live_intervals) * len;
        for (&partition, p) in self.partitions.iter_mut() {
            while let Some((&start, open)) = p.open.first_key_value() {
                let due_by = start.saturating_add(len).saturating_add(settings.grace_ms);
                let by_grace = now_ms >= due_by
                    && (p.watermark >= due_by
                        || now_ms.saturating_sub(p.last_message_ms) >= settings.grace_ms);
                let watched = p.since.is_some_and(|s| s.saturating_add(history) <= start);
                let complete = watched && {
                    let live = p.sources.iter().filter(|(_, seen)| {
                        seen.last_start.saturating_add(history) >= start
                            && !(seen.ended && seen.last_start < start)
                    });
                    let mut all = true;
                    for (source, _) in live {
                        let mut any = false;
                        for ((s, _), progress) in &open.sources {
                            if s == source {
                                any = true;
                                all &= progress.complete();
                            }
                        }
                        all &= any;
                    }
                    all && open.sources.values().all(Progress::complete)
                };
                if !complete && !by_grace {
                    break;
                }
                let open = p.open.pop_first().expect("first").1;
                let counter = if complete {
                    &self.counters.closed_complete
                } else {
                    &self.counters.closed_grace
                };
                bump(counter, 1);
                p.closed_through = Some(start);
                p.emitted.insert(start, (open.first_offset, false));
                p.dirty = true;
                let entry = by_start
                    .entry(start)
                    .or_insert_with(|| (Table::with_capacity(0, settings.bounds), Vec::new()));
                if settings.late == LatePolicy::Reemit {
                    let mut kept = Table::with_capacity(0, settings.bounds);
                    kept.merge(open.series.clone());
                    p.recent.insert(start, kept);
                    while p.recent.len() > settings.reemit_intervals {
                        p.recent.pop_first();
                    }
                }
                entry.0.merge(open.series);
                entry.1.push((partition, start));
            }
        }
        for (partition, start) in std::mem::take(&mut self.reemit) {
            let Some(p) = self.partitions.get(&partition) else {
                continue;
            };
            let Some(table) = p.recent.get(&start) else {
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

    /// Every sink is done with emitted interval `id`.
    pub fn settle(&mut self, id: u64) {
        let Some(parts) = self.inflight.remove(&id) else {
            return;
        };
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
            let Some(next) = p.next_offset else { continue };
            p.dirty = false;
            let oldest = p
                .open
                .values()
                .map(|o| o.first_offset)
                .chain(p.emitted.values().filter(|e| !e.1).map(|e| e.0))
                .min();
            out.push((
                partition,
                Position {
                    offset: oldest.unwrap_or(next).min(next),
                    closed_through: p.settled_through,
                },
            ));
        }
        out
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
mod tests {
    use super::*;
    use crate::aggregate::{Gauge, Value};
    use crate::metric::SeriesKey;

    const LEN: u64 = 1000;

    fn settings(late: LatePolicy) -> WindowSettings {
        WindowSettings {
            interval_ms: LEN,
            grace_ms: LEN,
            live_intervals: 2,
            bounds: Bounds::EXACT,
            per_source: vec![MetricType::Gauge],
            source_tag: "source".into(),
            late,
            reemit_intervals: 2,
        }
    }

    fn origin(source: &str, epoch: u64, start: u64) -> Origin {
        Origin {
            source_id: source.into(),
            source_epoch_ms: epoch,
            interval_start_ms: start,
            interval_ms: LEN as u32,
        }
    }

    fn counter(source: &str, start: u64, seq: u32, name: &str, v: f64) -> Envelope {
        Envelope::Partial(Partial {
            origin: origin(source, 1, start),
            seq: Some(seq),
            key: SeriesKey::new(name, MetricType::Counter, Vec::<(&str, &str)>::new()),
            value: Value::Counter(v),
        })
    }

    fn end(source: &str, start: u64, partials: u32) -> Envelope {
        Envelope::End(IntervalEnd {
            origin: origin(source, 1, start),
            partials,
            partitions: 1,
            last: false,
        })
    }

    /// Feeds `envelopes` to partition 0 in order, from `offset` on.
    struct Feed {
        w: Window,
        offset: i64,
        counters: Arc<AggregateCounters>,
    }

    impl Feed {
        fn new(late: LatePolicy) -> Feed {
            let counters = Arc::<AggregateCounters>::default();
            let mut w = Window::new(settings(late), Arc::clone(&counters));
            w.assign(0, None, 0);
            Feed {
                w,
                offset: 0,
                counters,
            }
        }

        fn send(&mut self, envelopes: Vec<Envelope>, now: u64) {
            for e in envelopes {
                self.w.offer(0, self.offset, e, now);
                self.offset += 1;
            }
        }

        /// One interval of both sources: a counter each and their markers.
        fn interval(&mut self, start: u64, now: u64) {
            self.send(
                vec![
                    counter("a", start, 0, "c", 1.0),
                    end("a", start, 1),
                    counter("b", start, 0, "c", 2.0),
                    end("b", start, 1),
                ],
                now,
            );
        }

        fn count(&self, c: &std::sync::atomic::AtomicU64) -> u64 {
            let _ = &self.counters;
            c.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    fn value(closed: &Closed, name: &str, mtype: MetricType, tags: &[(&str, &str)]) -> Value {
        let key = SeriesKey::new(name, mtype, tags.iter().copied());
        closed.state.series.get(&key).cloned().expect(name)
    }

    #[test]
    fn intervals_close_on_markers_once_the_partition_was_watched_long_enough() {
        let mut f = Feed::new(LatePolicy::Drop);
        // Watched from 0: with live_intervals = 2 the first two intervals cannot know every
        // live source, so only grace closes them.
        f.interval(0, 1000);
        assert!(f.w.close_due(1500).is_empty());
        f.interval(1000, 2000);
        let closed = f.w.close_due(2000);
        assert_eq!(closed.len(), 1, "interval 0 by grace at its end + 1000");
        assert_eq!(closed[0].state.timestamp_ms, 1000);
        assert_eq!(
            value(&closed[0], "c", MetricType::Counter, &[]),
            Value::Counter(3.0)
        );
        f.interval(2000, 3000);
        let closed = f.w.close_due(3000);
        assert_eq!(closed.len(), 2, "1000 by grace, 2000 complete");
        assert_eq!(f.count(&f.counters.closed_grace), 2);
        assert_eq!(f.count(&f.counters.closed_complete), 1);
        assert_eq!(f.w.open_intervals(), 0);
    }

    #[test]
    fn a_missing_marker_holds_the_interval_until_grace() {
        let mut f = Feed::new(LatePolicy::Drop);
        for start in [0, 1000, 2000] {
            f.interval(start, start + LEN);
        }
        f.w.close_due(3000);
        // b's marker for 3000 is missing: open until 3000 + 1000 + grace, on traffic.
        f.send(
            vec![
                counter("a", 3000, 0, "c", 1.0),
                end("a", 3000, 1),
                counter("b", 3000, 0, "c", 2.0),
            ],
            4000,
        );
        assert!(f.w.close_due(4000).is_empty());
        assert!(f.w.close_due(4999).is_empty());
        // Only the wall clock passed: the partition was busy until 4000, so wait for
        // traffic or idleness.
        f.interval(4000, 5000);
        let closed = f.w.close_due(5000);
        assert_eq!(closed.len(), 2, "3000 by grace, then 4000 complete");
        assert_eq!(closed[0].state.timestamp_ms, 4000);
        assert_eq!(
            value(&closed[0], "c", MetricType::Counter, &[]),
            Value::Counter(3.0)
        );
    }

    #[test]
    fn duplicates_are_counted_once_and_late_partials_dropped() {
        let mut f = Feed::new(LatePolicy::Drop);
        f.send(
            vec![
                counter("a", 0, 0, "c", 1.0),
                counter("a", 0, 0, "c", 1.0),
                counter("a", 0, 1, "d", 5.0),
                counter("a", 0, 1, "d", 5.0),
                end("a", 0, 2),
            ],
            1000,
        );
        assert_eq!(f.count(&f.counters.duplicates), 2);
        assert_eq!(f.count(&f.counters.partials), 2);
        let closed = f.w.close_due(2000 + 1);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            value(&closed[0], "c", MetricType::Counter, &[]),
            Value::Counter(1.0)
        );
        assert_eq!(
            value(&closed[0], "d", MetricType::Counter, &[]),
            Value::Counter(5.0)
        );
        f.send(vec![counter("b", 0, 0, "c", 7.0)], 2500);
        assert_eq!(f.count(&f.counters.late), 1);
        assert!(f.w.close_due(2600).is_empty());
    }

    #[test]
    fn reemit_sends_the_corrected_interval_in_full() {
        let mut f = Feed::new(LatePolicy::Reemit);
        f.send(vec![counter("a", 0, 0, "c", 1.0), end("a", 0, 1)], 1000);
        assert_eq!(f.w.close_due(2001).len(), 1);
        f.send(vec![counter("b", 0, 0, "c", 7.0)], 2500);
        let closed = f.w.close_due(2600);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].state.timestamp_ms, 1000);
        assert_eq!(
            value(&closed[0], "c", MetricType::Counter, &[]),
            Value::Counter(8.0)
        );
        assert_eq!(f.count(&f.counters.reemitted), 1);
    }

    #[test]
    fn a_source_that_stops_is_waited_for_only_while_live() {
        let mut f = Feed::new(LatePolicy::Drop);
        for start in [0, 1000, 2000] {
            f.interval(start, start + LEN);
        }
        assert_eq!(f.w.close_due(3000).len(), 3);
        // b stops: 3000 and 4000 wait for grace (b is still live), 5000 does not.
        let mut closed = Vec::new();
        for start in [3000, 4000, 5000] {
            f.send(
                vec![counter("a", start, 0, "c", 1.0), end("a", start, 1)],
                start + LEN,
            );
            closed.extend(
                f.w.close_due(start + LEN)
                    .into_iter()
                    .map(|c| c.state.timestamp_ms),
            );
        }
        assert_eq!(closed, vec![4000, 5000, 6000]);
        assert_eq!(f.count(&f.counters.closed_grace), 2 + 2);
        assert_eq!(f.count(&f.counters.closed_complete), 1 + 1);
        assert_eq!(f.w.open_intervals(), 0);
    }

    #[test]
    fn every_epoch_of_a_source_must_complete() {
        let mut f = Feed::new(LatePolicy::Drop);
        for start in [0, 1000, 2000] {
            f.interval(start, start + LEN);
        }
        assert_eq!(f.w.close_due(3000).len(), 3);
        // a restarted mid-interval: epoch 1 wrote 1 partial, epoch 2's marker says 2.
        let restarted = |seq| {
            let Envelope::Partial(mut p) = counter("a", 3000, seq, "c", 10.0) else {
                unreachable!()
            };
            p.origin.source_epoch_ms = 2;
            Envelope::Partial(p)
        };
        let mut end2 = end("a", 3000, 2);
        if let Envelope::End(e) = &mut end2 {
            e.origin.source_epoch_ms = 2;
        }
        f.interval(3000, 3900);
        f.send(vec![restarted(0), end2], 3900);
        assert!(f.w.close_due(3900).is_empty(), "epoch 2 has 1 of 2");
        f.send(vec![restarted(1)], 3950);
        let closed = f.w.close_due(3950);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            value(&closed[0], "c", MetricType::Counter, &[]),
            Value::Counter(23.0)
        );
    }

    #[test]
    fn gauges_keep_their_source() {
        let mut f = Feed::new(LatePolicy::Drop);
        let gauge = |source: &str, v| {
            Envelope::Partial(Partial {
                origin: origin(source, 1, 0),
                seq: Some(0),
                key: SeriesKey::new("g", MetricType::Gauge, [("env", "prod")]),
                value: Value::Gauge(Gauge {
                    value: v,
                    absolute: true,
                    stamp: 5,
                }),
            })
        };
        f.send(vec![gauge("a", 1.0), gauge("b", 2.0)], 1000);
        let closed = f.w.close_due(2001);
        let g = |s| {
            value(
                &closed[0],
                "g",
                MetricType::Gauge,
                &[("env", "prod"), ("source", s)],
            )
        };
        assert!(matches!(g("a"), Value::Gauge(Gauge { value: 1.0, .. })));
        assert!(matches!(g("b"), Value::Gauge(Gauge { value: 2.0, .. })));
    }

    #[test]
    fn commits_stop_at_the_oldest_unsettled_interval() {
        let mut f = Feed::new(LatePolicy::Drop);
        f.interval(0, 1000); // offsets 0..4
        f.interval(1000, 2000); // offsets 4..8
        assert_eq!(
            f.w.commits(),
            vec![(
                0,
                Position {
                    offset: 0,
                    closed_through: None
                }
            )]
        );
        let closed = f.w.close_due(2000);
        assert_eq!(closed.len(), 1);
        assert_eq!(f.w.commits()[0].1.offset, 0, "emitted but not settled");
        f.w.settle(closed[0].id);
        assert_eq!(
            f.w.commits(),
            vec![(
                0,
                Position {
                    offset: 4,
                    closed_through: Some(0)
                }
            )]
        );
        let closed = f.w.close_due(3001);
        f.w.settle(closed[0].id);
        assert_eq!(
            f.w.commits(),
            vec![(
                0,
                Position {
                    offset: 8,
                    closed_through: Some(1000)
                }
            )]
        );
        assert!(f.w.commits().is_empty(), "nothing changed");
    }

    #[test]
    fn intervals_far_ahead_of_the_clock_are_refused() {
        let mut f = Feed::new(LatePolicy::Drop);
        f.send(vec![counter("a", 100 * LEN, 0, "c", 1.0)], 0);
        f.send(vec![counter("a", u64::MAX / LEN * LEN, 0, "c", 1.0)], 0);
        f.send(vec![counter("a", 10 * LEN, 0, "c", 1.0)], 0);
        assert_eq!(f.count(&f.counters.invalid), 2);
        assert_eq!(f.w.open_intervals(), 1);
        assert_eq!(
            f.w.commits()[0].1.offset,
            2,
            "the refused ones are consumed"
        );
    }

    #[test]
    fn a_new_owner_treats_committed_intervals_as_late() {
        let counters = Arc::<AggregateCounters>::default();
        let mut w = Window::new(settings(LatePolicy::Drop), Arc::clone(&counters));
        w.assign(3, Some(1000), 0);
        w.offer(3, 10, counter("a", 1000, 0, "c", 1.0), 100);
        w.offer(3, 11, counter("a", 2000, 0, "c", 1.0), 100);
        assert_eq!(counters.late.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(w.open_intervals(), 1);
        w.revoke(3);
        assert_eq!(w.open_intervals(), 0);
        w.offer(3, 12, counter("a", 2000, 1, "c", 1.0), 100);
        assert_eq!(w.open_intervals(), 0, "not ours any more");
    }
}
