//! The one delivery buffer every networked sink uses, and the one pump/close loop around it.
//!
//! A sink encodes each snapshot into a [`Batch`] of messages (Kafka messages, Graphite lines)
//! and queues it in its [`DeliveryBuffer`]; its [`Transport`] takes messages from the front as
//! fast as the destination accepts them. The buffer:
//!
//! - is bounded in bytes (the sink's `buffer_bytes`): when a new batch does not fit, the
//!   oldest whole batches are evicted first and counted (`sink_buffer_dropped`, in messages),
//!   never a part of one, and never the one delivery has started on (it is *pinned*, so no
//!   destination sees a torn snapshot); a batch larger than the whole buffer is kept alone;
//! - takes retries (messages the destination gave back) at the front: they are the oldest;
//! - is the seam where a disk spool plugs in: `DeliveryBuffer::evict` is the one place a
//!   batch leaves without being delivered.
//!
//! [`BufferedSink`] is the [`Sink`] every transport shares: encode, queue, pump on every
//! flush and poll, and at close keep pumping until the buffer and the transport's in-flight
//! messages are empty or the shutdown timeout passes.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Flushed, Sink, SinkCounters, SinkError};

/// Fixed per-message overhead counted against the buffer's bound.
const MESSAGE_OVERHEAD: usize = 64;

/// One message of a batch; key and payload are ranges of the batch's data.
#[derive(Debug, Clone)]
struct Message {
    topic: Option<Arc<str>>,
    key: Option<Range<usize>>,
    payload: Range<usize>,
}

/// A message as a transport sends it.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub topic: Option<&'a Arc<str>>,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// The messages of one snapshot (or of retries), stored contiguously, delivered in order.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    messages: Vec<Message>,
    /// The first message not yet taken by the transport.
    next: usize,
    /// Bytes of message `next` a stream transport has already written.
    offset: usize,
    /// Bytes still waiting (untaken messages' data and overhead).
    bytes: usize,
}

impl Batch {
    /// Appends a message; `payload` writes its bytes.
    pub fn push_with(
        &mut self,
        topic: Option<Arc<str>>,
        key: Option<&[u8]>,
        payload: impl FnOnce(&mut Vec<u8>),
    ) {
        let key = key.map(|k| {
            let start = self.data.len();
            self.data.extend_from_slice(k);
            start..self.data.len()
        });
        let start = self.data.len();
        payload(&mut self.data);
        let message = Message {
            topic,
            key,
            payload: start..self.data.len(),
        };
        self.bytes += message_bytes(&message);
        self.messages.push(message);
    }

    /// Appends a message.
    pub fn push(&mut self, topic: Option<Arc<str>>, key: Option<&[u8]>, payload: &[u8]) {
        self.push_with(topic, key, |data| data.extend_from_slice(payload));
    }

    /// Bytes counted against the buffer's bound for what is still waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages not yet taken.
    pub fn waiting(&self) -> usize {
        self.messages.len() - self.next
    }

    /// True once delivery has started on this batch: it may no longer be evicted.
    pub fn started(&self) -> bool {
        self.next > 0 || self.offset > 0
    }

    /// The next message to send.
    pub fn front(&self) -> Option<MessageRef<'_>> {
        let m = self.messages.get(self.next)?;
        Some(MessageRef {
            topic: m.topic.as_ref(),
            key: m.key.clone().map(|k| &self.data[k]),
            payload: &self.data[m.payload.clone()],
        })
    }

    /// Marks the front message taken.
    pub fn advance(&mut self) {
        if let Some(m) = self.messages.get(self.next) {
            self.bytes -= message_bytes(m);
            self.next += 1;
            self.offset = 0;
        }
    }

    /// For stream transports whose messages are contiguous (Graphite lines): every waiting
    /// byte from the current position on.
    pub fn unwritten(&self) -> &[u8] {
        match self.messages.get(self.next) {
            Some(m) => &self.data[m.payload.start + self.offset..],
            None => &[],
        }
    }

    /// Records that `n` bytes of [`Batch::unwritten`] were written; returns the messages
    /// completed.
    pub fn wrote(&mut self, mut n: usize) -> u64 {
        let mut completed = 0;
        while let Some(m) = self.messages.get(self.next) {
            let left = m.payload.len() - self.offset;
            if n < left {
                self.offset += n;
                break;
            }
            n -= left;
            self.advance();
            completed += 1;
        }
        completed
    }

    /// After a broken stream: the message a failed write may have cut is sent again whole.
    pub fn rewind_partial(&mut self) {
        self.offset = 0;
    }
}

fn message_bytes(m: &Message) -> usize {
    m.payload.len() + m.key.as_ref().map_or(0, |k| k.len()) + MESSAGE_OVERHEAD
}

/// Whether a transport can take more now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The batch was taken whole; go on with the next.
    Done,
    /// The destination pushes back (or is down): stop until the next pump.
    Blocked,
}

/// A sink's undelivered batches, oldest first (see the module docs).
#[derive(Debug)]
pub struct DeliveryBuffer {
    name: String,
    batches: VecDeque<Batch>,
    bytes: usize,
    limit: usize,
    counters: Arc<SinkCounters>,
}

impl DeliveryBuffer {
    pub fn new(name: &str, limit: usize, counters: Arc<SinkCounters>) -> DeliveryBuffer {
        DeliveryBuffer {
            name: name.to_string(),
            batches: VecDeque::new(),
            bytes: 0,
            limit,
            counters,
        }
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages waiting.
    pub fn messages(&self) -> usize {
        self.batches.iter().map(Batch::waiting).sum()
    }

    /// Queues a snapshot's batch after everything else, evicting the oldest whole batches
    /// that delivery has not started on until it fits.
    pub fn push_back(&mut self, batch: Batch) {
        if batch.waiting() == 0 {
            return;
        }
        while self.bytes + batch.bytes > self.limit {
            let pinned = usize::from(self.batches.front().is_some_and(Batch::started));
            if self.batches.len() <= pinned {
                break;
            }
            self.evict(pinned);
        }
        self.bytes += batch.bytes;
        self.batches.push_back(batch);
    }

    /// Queues messages that must go before everything else (retries of earlier ones).
    pub fn push_front(&mut self, batch: Batch) {
        if batch.waiting() == 0 {
            return;
        }
        self.bytes += batch.bytes;
        self.batches.push_front(batch);
    }

    /// The one place a batch leaves undelivered: dropped and counted. (The disk spool will
    /// take it here instead.)
    fn evict(&mut self, index: usize) {
        let Some(batch) = self.batches.remove(index) else {
            return;
        };
        self.bytes -= batch.bytes;
        let messages = batch.waiting() as u64;
        SinkCounters::add(&self.counters.buffer_dropped, messages);
        log::warn!(
            "sink {}: delivery buffer full ({} bytes): dropped the oldest snapshot ({messages} \
             messages)",
            self.name,
            self.limit
        );
    }

    /// Hands batches to `deliver`, oldest first, until it reports [`Flow::Blocked`] or the
    /// buffer is empty; what it took is accounted for.
    pub fn deliver(&mut self, mut deliver: impl FnMut(&mut Batch) -> Flow) {
        while let Some(front) = self.batches.front_mut() {
            let before = front.bytes;
            let flow = deliver(front);
            self.bytes -= before - front.bytes;
            if front.waiting() == 0 {
                self.batches.pop_front();
            }
            if flow == Flow::Blocked {
                break;
            }
        }
        self.counters
            .buffered_bytes
            .store(self.bytes as u64, Ordering::Relaxed);
    }
}

/// How a sink reaches its destination; [`BufferedSink`] drives it.
pub trait Transport: Send {
    /// Encodes one flush into messages.
    fn encode(&mut self, flushed: &Flushed, batch: &mut Batch);

    /// Moves messages from the front of `buffer` to the destination until it pushes back
    /// (and takes back what the destination returned for retry).
    fn deliver(&mut self, buffer: &mut DeliveryBuffer);

    /// Messages handed over but not yet confirmed by the destination.
    fn in_flight(&self) -> usize {
        0
    }

    /// Waits up to `max` for progress (delivery reports, a reconnect coming due).
    fn wait(&mut self, max: Duration);

    /// How often to pump while no flush arrives.
    fn poll_interval(&self) -> Duration;

    /// Close gave up: stop caring about what is still in flight.
    fn abandon(&mut self) {}
}

/// A [`Sink`] made of a transport and a delivery buffer.
pub struct BufferedSink<T: Transport> {
    transport: T,
    buffer: DeliveryBuffer,
    shutdown_timeout: Duration,
}

impl<T: Transport> BufferedSink<T> {
    /// A sink named `name` whose buffer holds `buffer_bytes`.
    pub fn new(
        name: &str,
        transport: T,
        buffer_bytes: usize,
        shutdown_timeout: Duration,
        counters: Arc<SinkCounters>,
    ) -> BufferedSink<T> {
        BufferedSink {
            transport,
            buffer: DeliveryBuffer::new(name, buffer_bytes, counters),
            shutdown_timeout,
        }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn pending(&self) -> usize {
        self.buffer.messages() + self.transport.in_flight()
    }
}

impl<T: Transport> Sink for BufferedSink<T> {
    fn send(&mut self, flushed: &Flushed) -> Result<(), SinkError> {
        let mut batch = Batch::default();
        self.transport.encode(flushed, &mut batch);
        self.buffer.push_back(batch);
        self.transport.deliver(&mut self.buffer);
        Ok(())
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.transport.poll_interval())
    }

    fn poll(&mut self) {
        self.transport.deliver(&mut self.buffer);
    }

    fn close(&mut self) -> u64 {
        let deadline = Instant::now() + self.shutdown_timeout;
        loop {
            self.transport.deliver(&mut self.buffer);
            let now = Instant::now();
            if self.pending() == 0 || now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            self.transport.wait(wait);
        }
        let undelivered = self.pending() as u64;
        self.transport.abandon();
        undelivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(messages: &[&str]) -> Batch {
        let mut b = Batch::default();
        for m in messages {
            b.push(None, None, m.as_bytes());
        }
        b
    }

    fn taken(buffer: &mut DeliveryBuffer, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        buffer.deliver(|b| {
            while let Some(m) = b.front() {
                if out.len() == max {
                    return Flow::Blocked;
                }
                out.push(String::from_utf8(m.payload.to_vec()).unwrap());
                b.advance();
            }
            Flow::Done
        });
        out
    }

    #[test]
    fn full_buffers_evict_whole_oldest_snapshots_but_never_the_started_one() {
        let counters = Arc::new(SinkCounters::default());
        let one = batch(&["a1", "a2"]).bytes;
        let mut buffer = DeliveryBuffer::new("t", 2 * one, Arc::clone(&counters));
        buffer.push_back(batch(&["a1", "a2"]));
        buffer.push_back(batch(&["b1", "b2"]));
        // Delivery starts on `a`: it is pinned.
        assert_eq!(taken(&mut buffer, 1), ["a1"]);
        buffer.push_back(batch(&["c1", "c2"]));
        // `b` (whole, two messages) made room; the rest of `a` still goes first.
        assert_eq!(counters.totals().buffer_dropped, 2);
        assert_eq!(taken(&mut buffer, 10), ["a2", "c1", "c2"]);
        assert_eq!((buffer.messages(), buffer.bytes()), (0, 0));
        assert_eq!(counters.totals().buffered_bytes, 0);
    }

    #[test]
    fn retries_go_first_and_a_batch_larger_than_the_buffer_is_kept_alone() {
        let counters = Arc::new(SinkCounters::default());
        let mut buffer = DeliveryBuffer::new("t", 1, Arc::clone(&counters));
        buffer.push_back(batch(&["old"]));
        buffer.push_back(batch(&["new1", "new2"]));
        assert_eq!(counters.totals().buffer_dropped, 1);
        buffer.push_front(batch(&["retry"]));
        assert_eq!(taken(&mut buffer, 10), ["retry", "new1", "new2"]);
    }

    #[test]
    fn streams_resume_mid_message_and_resend_a_cut_message_whole() {
        let mut b = batch(&["a 1 1\n", "bb 2 1\n", "c 3 1\n"]);
        assert_eq!(b.wrote(9), 1, "`a` done, 3 bytes of `bb` written");
        assert_eq!(b.unwritten(), b"2 1\nc 3 1\n");
        b.rewind_partial();
        assert_eq!(b.unwritten(), b"bb 2 1\nc 3 1\n");
        assert_eq!(b.wrote(13), 2);
        assert_eq!((b.waiting(), b.bytes), (0, 0));
    }
}
