//! The one delivery buffer every networked sink uses, its disk spool, and the one pump/close
//! loop around them.
//!
//! A sink encodes each snapshot into a [`Batch`] of messages (Kafka messages, Graphite lines)
//! and queues it in its [`DeliveryBuffer`]; its [`Transport`] takes messages from the front as
//! fast as the destination accepts them. Delivery order is strict, oldest first:
//!
//! 1. `active`: retries (messages the destination gave back), the batch delivery has started
//!    on, a record read back from the spool;
//! 2. the spool's unread records, oldest first;
//! 3. `pending`: the newest snapshots, in memory, not started.
//!
//! So one series' intervals reach the destination in order, across an outage and a restart.
//! Transports that acknowledge messages (Kafka) report each one back by its [`Tag`]
//! ([`DeliveryBuffer::resolve`]); a batch is done when every message is resolved, and only
//! then is its spool record forgotten.
//!
//! Without a spool, the buffer is bounded in bytes (the sink's `buffer_bytes`): when a new
//! batch does not fit, the oldest whole pending batches are dropped and counted
//! (`sink_buffer_dropped`, in messages), never a part of one, never one delivery has started
//! on (no destination sees a torn snapshot); a batch larger than the whole buffer is kept
//! alone.
//!
//! With a spool ([`crate::sink::spool`]) nothing is dropped there: a batch that does not fit
//! goes to disk instead, and so does every batch — pending, started or handed over but
//! unacknowledged — still undelivered one `spill_after` (the flush interval) after it was
//! queued: while the destination is down each snapshot is on disk within one interval of its
//! flush, and a SIGKILL loses at most the interval in progress. Spilling keeps the file order
//! equal to the delivery order: before a pending batch goes to disk, everything older does.
//! At close, whatever is still undelivered goes to the spool and the next start delivers it
//! first.
//!
//! [`Transport`] and [`BufferedSink`], the pump and close loop that drive a transport from the
//! buffer, are in `pump.rs`.

mod pump;
mod spill;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use self::pump::{BufferedSink, Transport};
use super::batch::{Batch, Tag};
use super::spool::{RecordId, Spool, SpoolSettings};
use super::{Receipt, SinkCounters};

/// Whether a transport can take more now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The batch was taken whole; go on with the next.
    Done,
    /// The destination pushes back (or is down): stop until the next pump.
    Blocked,
}

/// How a sink's buffer is bounded and backed.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    /// Bytes of undelivered messages held in memory.
    pub memory_bytes: usize,
    /// The sink's spool, if configured.
    pub spool: Option<SpoolSettings>,
    /// Undelivered batches go to the spool this long after they were queued.
    pub spill_after: Duration,
    /// How long close keeps delivering.
    pub shutdown_timeout: Duration,
}

impl BufferSettings {
    /// A memory-only buffer.
    pub fn memory(memory_bytes: usize, shutdown_timeout: Duration) -> BufferSettings {
        BufferSettings {
            memory_bytes,
            spool: None,
            spill_after: Duration::from_secs(10),
            shutdown_timeout,
        }
    }
}

/// A batch that an acknowledging transport has started on, until every message is resolved.
#[derive(Debug)]
struct Track {
    id: u64,
    resolved: Vec<u64>,
    unresolved: usize,
    /// Every message has been handed over.
    taken: bool,
    record: Option<RecordId>,
    /// The batch once every message is handed over, kept (with a spool only) until it is on
    /// disk.
    data: Option<Batch>,
    queued: Instant,
    /// The flush's receipt once every message is handed over, until they are acknowledged
    /// or on disk.
    receipt: Option<Receipt>,
}

/// A batch in the buffer, with the buffer's bookkeeping of it.
#[derive(Debug)]
struct Queued {
    batch: Batch,
    /// Where it is on disk, once spooled.
    record: Option<RecordId>,
    /// Held until the batch is delivered, on disk, or dropped (see [`Receipt`]).
    receipt: Option<Receipt>,
    /// When it was queued (spilling goes by age); none for retries.
    queued: Option<Instant>,
}

impl Queued {
    fn new(batch: Batch, receipt: Option<Receipt>, queued: Option<Instant>) -> Queued {
        Queued {
            batch,
            record: None,
            receipt,
            queued,
        }
    }
}

impl Track {
    fn is_resolved(&self, i: usize) -> bool {
        self.resolved[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The spool, opened on the sink's own thread at first use (so `--check-config` and start-up
/// never touch the disk).
#[derive(Debug)]
enum SpoolSlot {
    None,
    Closed(SpoolSettings),
    Open(Box<Spool>),
}

/// A sink's undelivered batches (see the module docs).
#[derive(Debug)]
pub struct DeliveryBuffer {
    name: String,
    active: VecDeque<Queued>,
    pending: VecDeque<Queued>,
    /// Batches with unresolved messages, by id (acknowledging transports only).
    tracks: VecDeque<Track>,
    acknowledged: bool,
    spool: SpoolSlot,
    spill_after: Duration,
    /// Waiting bytes of `active` and `pending`.
    bytes: usize,
    limit: usize,
    next_id: u64,
    counters: Arc<SinkCounters>,
}

impl DeliveryBuffer {
    pub fn new(name: &str, settings: &BufferSettings, counters: Arc<SinkCounters>) -> Self {
        counters
            .spool_enabled
            .store(settings.spool.is_some(), Ordering::Relaxed);
        DeliveryBuffer {
            name: name.to_string(),
            active: VecDeque::new(),
            pending: VecDeque::new(),
            tracks: VecDeque::new(),
            acknowledged: false,
            spool: settings
                .spool
                .clone()
                .map_or(SpoolSlot::None, SpoolSlot::Closed),
            spill_after: settings.spill_after,
            bytes: 0,
            limit: settings.memory_bytes,
            next_id: 1,
            counters,
        }
    }

    /// The transport reports every message it takes through [`DeliveryBuffer::resolve`].
    pub fn set_acknowledged(&mut self) {
        self.acknowledged = true;
    }

    /// Bytes waiting in memory.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn spool(&mut self) -> Option<&mut Spool> {
        if let SpoolSlot::Closed(settings) = &self.spool {
            let spool = Spool::open(&self.name, settings.clone(), Arc::clone(&self.counters));
            self.spool = SpoolSlot::Open(Box::new(spool));
        }
        match &mut self.spool {
            SpoolSlot::Open(s) => Some(s),
            _ => None,
        }
    }

    /// Queues a snapshot's batch after everything else; what no longer fits in memory goes
    /// to the spool, or (without one) the oldest whole pending batches are dropped.
    pub fn push_back(&mut self, batch: Batch) {
        self.push_held(batch, None);
    }

    /// [`DeliveryBuffer::push_back`] of a batch that holds its flush's `receipt` until it is
    /// delivered, on disk or dropped.
    pub fn push_held(&mut self, batch: Batch, receipt: Option<Receipt>) {
        if batch.waiting() == 0 {
            return;
        }
        self.bytes += batch.bytes();
        self.pending
            .push_back(Queued::new(batch, receipt, Some(Instant::now())));
        while self.bytes > self.limit && self.pending.len() > 1 {
            if !self.spill_oldest_pending() {
                self.drop_oldest_pending();
            }
        }
        self.publish();
    }

    /// Queues messages that must go before everything else (retries of earlier ones).
    pub fn push_front(&mut self, batch: Batch) {
        if batch.waiting() == 0 {
            return;
        }
        self.bytes += batch.bytes();
        self.active.push_front(Queued::new(batch, None, None));
    }

    /// Moves the next batch into `active`: the oldest spooled record, else the oldest
    /// pending batch. False when there is none.
    fn refill(&mut self) -> bool {
        let read = match self.spool() {
            Some(spool) if spool.has_unread() => spool.read_next(),
            _ => None,
        };
        let q = match read {
            Some((record, batch)) => {
                self.bytes += batch.bytes();
                Queued {
                    record: Some(record),
                    ..Queued::new(batch, None, Some(Instant::now()))
                }
            }
            None => match self.pending.pop_front() {
                Some(q) => q,
                None => return false,
            },
        };
        self.activate(q);
        true
    }

    fn activate(&mut self, mut q: Queued) {
        q.batch.id = self.next_id;
        self.next_id += 1;
        if self.acknowledged {
            self.tracks.push_back(Track {
                id: q.batch.id,
                resolved: vec![0; q.batch.len().div_ceil(64)],
                unresolved: q.batch.len(),
                taken: false,
                record: q.record,
                data: None,
                queued: q.queued.unwrap_or_else(Instant::now),
                receipt: None,
            });
        }
        self.active.push_back(q);
    }

    /// Hands batches to `deliver`, oldest first, until it reports [`Flow::Blocked`] or
    /// nothing is left; then spools what is due.
    pub fn deliver(&mut self, mut deliver: impl FnMut(&mut Batch) -> Flow) {
        loop {
            if self.active.is_empty() && !self.refill() {
                break;
            }
            let front = &mut self.active.front_mut().expect("refilled").batch;
            let before = front.bytes();
            let flow = deliver(front);
            self.bytes -= before - front.bytes();
            if front.waiting() == 0 {
                let q = self.active.pop_front().expect("front");
                self.taken(q);
            }
            if flow == Flow::Blocked {
                break;
            }
        }
        // A fresh batch the destination took nothing of stays evictable.
        if self.active.len() == 1
            && let Some(front) = self.active.front()
            && !front.batch.started()
            && !front.batch.is_retry()
            && front.record.is_none()
        {
            let batch = self.active.pop_front().expect("front");
            if self.acknowledged {
                self.tracks.pop_back();
            }
            self.pending.push_front(batch);
        }
        self.spill_due(Instant::now());
        self.publish();
    }

    /// Every message of `batch` has been handed over.
    fn taken(&mut self, mut q: Queued) {
        if self.acknowledged && !q.batch.is_retry() {
            let keep = matches!(self.spool, SpoolSlot::Open(_));
            if let Some(i) = self.track_index(q.batch.id) {
                let track = &mut self.tracks[i];
                track.taken = true;
                // Until acknowledged, unless it is on disk already.
                match q.receipt.take() {
                    Some(r) if track.record.is_some() || q.record.is_some() => r.settle(),
                    r => track.receipt = r,
                }
                track.record = track.record.or(q.record);
                if track.unresolved == 0 {
                    self.finish_track(i);
                } else if keep && track.record.is_none() {
                    track.data = Some(q.batch);
                }
            }
            return;
        }
        // Written to the destination: delivered, for a transport without acknowledgements.
        if let Some(r) = q.receipt.take() {
            r.settle();
        }
        if let Some(record) = q.record
            && let SpoolSlot::Open(spool) = &mut self.spool
        {
            spool.complete(record);
        }
    }

    fn track_index(&self, id: u64) -> Option<usize> {
        self.tracks.binary_search_by_key(&id, |t| t.id).ok()
    }

    fn finish_track(&mut self, i: usize) {
        let mut track = self.tracks.remove(i).expect("index");
        if let Some(r) = track.receipt.take() {
            r.settle();
        }
        if let Some(record) = track.record
            && let SpoolSlot::Open(spool) = &mut self.spool
        {
            spool.complete(record);
        }
    }

    /// The destination has acknowledged the message (or failed it permanently: counted by
    /// the transport, never retried).
    pub fn resolve(&mut self, tag: Tag) {
        let Some(i) = self.track_index(tag.batch()) else {
            return;
        };
        let track = &mut self.tracks[i];
        let (word, bit) = (tag.index() / 64, 1u64 << (tag.index() % 64));
        if track.resolved.get(word).is_none_or(|w| w & bit != 0) {
            return;
        }
        track.resolved[word] |= bit;
        track.unresolved -= 1;
        if track.unresolved == 0 && track.taken {
            self.finish_track(i);
        }
    }

    /// Messages not yet delivered: waiting in memory, handed over but unacknowledged, and
    /// in the spool's unread records.
    pub fn undelivered(&self) -> u64 {
        let (_, memory) = self.accounting();
        let on_disk = self.on_disk();
        memory + on_disk
    }

    /// (messages on disk, messages only in memory) of what is undelivered, not counting the
    /// spool's unread records.
    fn accounting(&self) -> (u64, u64) {
        let (mut disk, mut memory) = (0, 0);
        let mut add = |on_disk: bool, n: usize| {
            if on_disk {
                disk += n as u64;
            } else {
                memory += n as u64;
            }
        };
        for q in &self.pending {
            add(false, q.batch.waiting());
        }
        for q in &self.active {
            // Retries and tracked batches are counted by their tracks.
            if !q.batch.is_retry() && !self.acknowledged {
                add(q.record.is_some(), q.batch.waiting());
            }
        }
        for t in &self.tracks {
            add(t.record.is_some(), t.unresolved);
        }
        (disk, memory)
    }

    /// Undelivered messages on disk: in unread records and in records also held in memory.
    fn on_disk(&self) -> u64 {
        let unread = match &self.spool {
            SpoolSlot::Open(s) => s.unread_messages(),
            _ => 0,
        };
        unread + self.accounting().0
    }

    fn publish(&self) {
        self.counters
            .buffered_bytes
            .store(self.bytes as u64, Ordering::Relaxed);
    }
}
