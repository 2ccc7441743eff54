//! Closing the intervals that are due (the module docs' "Closing" and "Grace" rules), merged
//! per interval across partitions.

use std::collections::BTreeMap;
use std::time::Duration;

use super::partition::Progress;
use super::{Closed, FORGET_AFTER, LatePolicy, Window, bump};
use crate::aggregate::Table;
use crate::interval::IntervalState;

impl Window {
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
}
