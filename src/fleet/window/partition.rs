//! What one assigned partition knows: its open intervals with who sent what, the sources
//! it has seen, and where a new owner would have to start reading.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Position;
use crate::aggregate::Table;

/// What a source has sent for one interval on one partition, per epoch.
#[derive(Debug, Default, Clone)]
pub(super) struct Progress {
    pub(super) seen: Vec<u64>,
    pub(super) received: u32,
    pub(super) expected: Option<u32>,
    /// Its marker was the epoch's final one.
    pub(super) last: bool,
}

impl Progress {
    /// Records `seq`; false when it was seen before.
    pub(super) fn record(&mut self, seq: u32) -> bool {
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

    pub(super) fn complete(&self) -> bool {
        self.expected == Some(self.received)
    }
}

/// (source, epoch) → progress.
pub(super) type Sources = HashMap<(Arc<str>, u64), Progress>;

#[derive(Debug)]
pub(super) struct OpenInterval {
    pub(super) series: Table,
    pub(super) first_offset: i64,
    /// Wall clock (ms) of its first message.
    pub(super) first_seen_ms: u64,
    pub(super) sources: Sources,
}

/// A source as one partition sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// The newest interval it sent anything for.
    pub(super) last_start: u64,
    /// Its message for that interval was a final marker.
    pub(super) ended: bool,
    /// The partition's traffic time at its latest message.
    pub(super) busy_at: u64,
}

#[derive(Debug)]
pub(super) struct PartitionState {
    pub(super) open: BTreeMap<u64, OpenInterval>,
    /// Emitted intervals by start: (first offset, settled).
    pub(super) emitted: BTreeMap<u64, (i64, bool)>,
    /// Every interval up to this start is closed here (emitted, or before assignment).
    pub(super) closed_through: Option<u64>,
    /// What the last commit (before assignment, or ours) said was settled.
    pub(super) settled_through: Option<u64>,
    pub(super) sources: HashMap<Arc<str>, Seen>,
    /// Traffic time since assignment (see the module docs), ms.
    pub(super) busy_ms: u64,
    /// The next offset to read.
    pub(super) next_offset: Option<i64>,
    /// Wall clock (ms) of the last message.
    pub(super) last_message_ms: u64,
    /// Recently closed intervals and their progress, for `late = "reemit"`.
    pub(super) recent: BTreeMap<u64, (Table, Sources)>,
    /// Changed since the last commit.
    pub(super) dirty: bool,
}

impl PartitionState {
    /// Where a new owner must start reading (see the module docs), once anything was read.
    pub(super) fn position(&self) -> Option<Position> {
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

    pub(super) fn live(&self, seen: &Seen, start: u64, history: u64) -> bool {
        self.busy_ms.saturating_sub(seen.busy_at) <= history
            && !(seen.ended && seen.last_start < start)
    }
}
