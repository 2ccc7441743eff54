//! The cardinality guard: bounds on the series the receivers hold in one flush interval.
//!
//! A statsd port accepts whatever names and tags a client invents, and every new series
//! costs memory until the next flush. [`SeriesGuard`] is shared by all receivers of a
//! server and consulted only when a receiver's table meets a series for the first time in
//! an interval (a known series never touches it):
//!
//! - **Series cap** (`limits.max_series`): one atomic counter holds the number of entries in
//!   all receivers' tables. A receiver adds one per new entry; the flusher subtracts each
//!   table once it has collected it, so the count is exact and a snapshot never holds more
//!   than the cap (entries a receiver admits after its swap but before the flusher has
//!   collected every table count against both intervals: strict, never lenient). A series
//!   that two receivers both hold counts twice: the cap bounds memory, which is what those
//!   entries cost.
//! - **Tag sets per name** (`limits.max_tag_sets_per_name`): series *with tags* are also
//!   counted per metric name, so one name with an exploding tag cannot use up the series
//!   cap for everyone else. The per-name counts live in a [`DashMap`] keyed by name and
//!   restart each interval: an entry carries the interval (generation) it counts for, and
//!   the first receiver to reach a name in a newer interval resets it. Receivers swap a few
//!   milliseconds apart, so near a flush boundary a name's count may include series of
//!   both intervals; the error is on the strict side. [`SeriesGuard::prune`] forgets names
//!   not seen for two intervals, so the map itself stays bounded.
//!
//! Rejected metrics are counted per receiver (`series_rejected`, `tag_sets_rejected`);
//! series already admitted keep updating.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::metric::SeriesRef;
use dashmap::DashMap;

/// Limits the aggregate stage enforces (the rest of `[limits]` is the parsers').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateLimits {
    /// Series held by all receivers together in one interval.
    pub max_series: usize,
    /// Distinct tag sets (series with tags) per metric name in one interval.
    pub max_tag_sets_per_name: usize,
    /// Raw samples kept per timer series per interval (beyond: a sketch; see
    /// [`crate::aggregate::Samples`]).
    pub max_timer_samples: usize,
    /// Gauges remembered across intervals (Etsy gauges persist); new gauges beyond this are
    /// reported in their interval but not remembered.
    pub max_gauges: usize,
    /// Bins per sign of a timer's sketch; beyond, the lowest collapse.
    pub max_sketch_bins: usize,
    /// Members of a set kept exactly (beyond: a HyperLogLog; see
    /// [`crate::aggregate::SetValue`]).
    pub set_exact_members: usize,
}

impl Default for AggregateLimits {
    fn default() -> Self {
        AggregateLimits {
            max_series: 1_000_000,
            max_tag_sets_per_name: 10_000,
            max_timer_samples: 10_000,
            max_gauges: 1_000_000,
            max_sketch_bins: 2048,
            set_exact_members: 1024,
        }
    }
}

/// Why a new series was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_series` reached.
    Series,
    /// `max_tag_sets_per_name` reached for this name.
    TagSets,
}

/// The shared admission state (see the module docs).
#[derive(Debug)]
pub struct SeriesGuard {
    max_series: usize,
    max_tag_sets: u32,
    live: AtomicUsize,
    /// Name → `generation << 32 | tag sets counted in that generation`.
    names: DashMap<Box<str>, AtomicU64>,
}

impl SeriesGuard {
    pub fn new(limits: &AggregateLimits) -> SeriesGuard {
        SeriesGuard {
            max_series: limits.max_series,
            max_tag_sets: limits.max_tag_sets_per_name.min(u32::MAX as usize) as u32,
            live: AtomicUsize::new(0),
            names: DashMap::new(),
        }
    }

    /// [`SeriesGuard::admit`] for a parsed series: what a receiver's table asks before it
    /// inserts one.
    #[inline]
    pub fn admit_series(&self, series: &SeriesRef<'_, '_>, generation: u32) -> Result<(), Refusal> {
        self.admit(series.name, !series.tags.is_empty(), generation)
    }

    /// Admits one new table entry for `name` (`tagged`: the series has tags) in the
    /// receiver's interval `generation`.
    pub fn admit(&self, name: &str, tagged: bool, generation: u32) -> Result<(), Refusal> {
        // Relaxed suffices: the counter only has to be exact, not ordered with other memory.
        if self.live.fetch_add(1, Ordering::Relaxed) >= self.max_series {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Series);
        }
        if tagged && !self.admit_tag_set(name, generation) {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::TagSets);
        }
        Ok(())
    }

    fn admit_tag_set(&self, name: &str, generation: u32) -> bool {
        let try_count = |slot: &AtomicU64| {
            slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
                let (seen_in, count) = ((packed >> 32) as u32, packed as u32);
                // A newer generation than ours (another receiver swapped first) is treated
                // as ours; an older one is a finished interval and starts over.
                let stale = (generation.wrapping_sub(seen_in) as i32) > 0;
                match (stale, count) {
                    (true, _) => Some(pack(generation, 1)),
                    (false, c) if c < self.max_tag_sets => Some(pack(seen_in, c + 1)),
                    _ => None,
                }
            })
            .is_ok()
        };
        if let Some(slot) = self.names.get(name) {
            return try_count(slot.value());
        }
        let slot = self
            .names
            .entry(Box::from(name))
            .or_insert_with(|| AtomicU64::new(pack(generation, 0)));
        try_count(slot.value())
    }

    /// A receiver hands over a table of `entries` series (its next interval starts empty).
    pub fn release(&self, entries: usize) {
        self.live.fetch_sub(entries, Ordering::Relaxed);
    }

    /// Series currently held by all receivers.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Names currently tracked for the per-name cap.
    pub fn tracked_names(&self) -> usize {
        self.names.len()
    }

    /// Forgets names whose count is two or more generations older than `generation`.
    pub fn prune(&self, generation: u32) {
        self.names.retain(|_, slot| {
            let seen_in = (slot.load(Ordering::Relaxed) >> 32) as u32;
            // Negative: a receiver is already in a later interval than the flusher.
            (generation.wrapping_sub(seen_in) as i32) < 2
        });
    }
}

fn pack(generation: u32, count: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_series: usize, max_tag_sets_per_name: usize) -> SeriesGuard {
        SeriesGuard::new(&AggregateLimits {
            max_series,
            max_tag_sets_per_name,
            ..AggregateLimits::default()
        })
    }

    #[test]
    fn series_cap_is_exact_and_released() {
        let g = guard(3, 100);
        for _ in 0..3 {
            assert_eq!(g.admit("a", false, 0), Ok(()));
        }
        assert_eq!(g.admit("b", false, 0), Err(Refusal::Series));
        assert_eq!(g.live(), 3);
        g.release(2);
        assert_eq!(g.admit("b", false, 1), Ok(()));
        assert_eq!(g.live(), 2);
    }

    #[test]
    fn tag_sets_are_capped_per_name_and_restart_each_generation() {
        let g = guard(100, 2);
        assert_eq!(g.admit("hot", true, 0), Ok(()));
        assert_eq!(g.admit("hot", true, 0), Ok(()));
        assert_eq!(g.admit("hot", true, 0), Err(Refusal::TagSets));
        // Other names and untagged series of the same name are unaffected.
        assert_eq!(g.admit("cold", true, 0), Ok(()));
        assert_eq!(g.admit("hot", false, 0), Ok(()));
        // A refused series does not hold a slot of the series cap.
        assert_eq!(g.live(), 4);
        // The next interval starts over; a receiver still in the old one counts with it.
        assert_eq!(g.admit("hot", true, 1), Ok(()));
        assert_eq!(g.admit("hot", true, 0), Ok(()));
        assert_eq!(g.admit("hot", true, 0), Err(Refusal::TagSets));
    }

    #[test]
    fn prune_forgets_names_idle_for_two_generations() {
        let g = guard(100, 10);
        g.admit("old", true, 1).unwrap();
        g.admit("recent", true, 2).unwrap();
        g.admit("current", true, 3).unwrap();
        g.prune(3);
        let mut names: Vec<String> = g.names.iter().map(|e| e.key().to_string()).collect();
        names.sort();
        assert_eq!(names, ["current", "recent"]);
    }
}
