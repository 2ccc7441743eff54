//! Spilling to the spool (see the module docs of the buffer): what is due goes to disk in
//! delivery order, and without a spool the oldest whole pending batch is dropped.

use std::time::Instant;

use super::{DeliveryBuffer, Queued, SpoolSlot};
use crate::sink::SinkCounters;
use crate::sink::spool::State;

impl DeliveryBuffer {
    /// Moves the oldest pending batch to the spool (everything older first); false when
    /// there is no spool or it cannot take it now (the batch stays).
    pub(super) fn spill_oldest_pending(&mut self) -> bool {
        if self.pending.is_empty() || self.spool().is_none() {
            return false;
        }
        self.spill_older();
        let (Some(batch), SpoolSlot::Open(spool)) = (self.pending.front(), &mut self.spool) else {
            return false;
        };
        if spool
            .append(&batch.batch, |_| true, State::Unread)
            .is_none()
        {
            return false;
        }
        let mut q = self.pending.pop_front().expect("front");
        self.bytes -= q.batch.bytes();
        if let Some(r) = q.receipt.take() {
            r.settle();
        }
        true
    }

    /// The oldest pending batch is dropped and counted: memory is full and the spool (if
    /// any) cannot take it.
    pub(super) fn drop_oldest_pending(&mut self) {
        if let Some(Queued { batch, .. }) = self.pending.pop_front() {
            self.bytes -= batch.bytes();
            let messages = batch.waiting() as u64;
            SinkCounters::add(&self.counters.buffer_dropped, messages);
            log::warn!(
                "sink {}: delivery buffer full ({} bytes): dropped the oldest snapshot \
                 ({messages} messages)",
                self.name,
                self.limit
            );
        }
    }

    /// Writes every batch older than the spool's unread records that is not on disk yet
    /// (handed over but unacknowledged, or started), so the file order stays the delivery
    /// order.
    pub(super) fn spill_older(&mut self) {
        self.spill_in_flight(|_| true);
    }

    /// Spools the batches delivery has started on (or that were handed over) that are not
    /// on disk and that `due` selects by their queue time.
    pub(super) fn spill_in_flight(&mut self, due: impl Fn(Instant) -> bool) {
        let SpoolSlot::Open(spool) = &mut self.spool else {
            return;
        };
        for track in self.tracks.iter_mut() {
            let Some(data) = &track.data else { continue };
            if track.record.is_some() || !due(track.queued) {
                continue;
            }
            let t = &*track;
            let record = spool.append(data, |i| !t.is_resolved(i), State::Out);
            track.record = record;
            if record.is_some() {
                track.data = None;
                if let Some(r) = track.receipt.take() {
                    r.settle();
                }
            }
        }
        for q in self.active.iter_mut() {
            if q.batch.is_retry() || q.record.is_some() || !q.queued.is_some_and(&due) {
                continue;
            }
            let batch = &q.batch;
            let record = match self.tracks.iter().find(|t| t.id == batch.id) {
                Some(t) => spool.append(batch, |i| !t.is_resolved(i), State::Out),
                None => spool.append(batch, |i| i >= batch.next_index(), State::Out),
            };
            q.record = record;
            if record.is_some()
                && let Some(r) = q.receipt.take()
            {
                r.settle();
            }
            if let Some(t) = self.tracks.iter_mut().find(|t| t.id == q.batch.id) {
                t.record = record;
            }
        }
    }

    /// Spools what has waited `spill_after`: handed over or started first, then pending.
    pub(super) fn spill_due(&mut self, now: Instant) {
        if !matches!(self.spool, SpoolSlot::Open(_)) {
            return;
        }
        let spill_after = self.spill_after;
        let due = |queued: Instant| now.duration_since(queued) >= spill_after;
        self.spill_in_flight(due);
        while self
            .pending
            .front()
            .is_some_and(|q| q.queued.is_some_and(due))
        {
            if !self.spill_oldest_pending() {
                break;
            }
        }
    }

    /// At close, after the transport gave up: everything undelivered goes to the spool.
    /// Returns (messages spooled, messages lost).
    pub(super) fn spool_everything(&mut self) -> (u64, u64) {
        if self.spool().is_some() {
            self.spill_older();
            while self.spill_oldest_pending() {}
        }
        self.publish();
        (self.on_disk(), self.accounting().1)
    }
}
