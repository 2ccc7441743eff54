//! [`Batch`]: the messages of one snapshot (Kafka messages, Graphite lines), stored
//! contiguously, handed to a transport in order.

//!
//! The unit the delivery buffer ([`crate::sink::buffer`]) queues and the spool
//! ([`crate::sink::spool`]) writes: a leaf both import. The buffer's bookkeeping of a batch
//! (its spool record, its flush's receipt, its queue time) stays in the buffer.

use std::ops::Range;
use std::sync::Arc;

/// Fixed per-message overhead counted against the buffer's bound.
const MESSAGE_OVERHEAD: usize = 64;

/// Names one message for delivery reports: its batch's id (high 32 bits) and its index in
/// the batch. A retried message keeps the tag of its first sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag(pub u64);

impl Tag {
    pub fn new(batch: u64, index: usize) -> Tag {
        Tag(batch << 32 | index as u64)
    }

    pub fn batch(self) -> u64 {
        self.0 >> 32
    }

    pub fn index(self) -> usize {
        (self.0 & 0xffff_ffff) as usize
    }
}

/// One message of a batch; key and payload are ranges of the batch's data.
#[derive(Debug, Clone)]
struct Message {
    topic: Option<Arc<str>>,
    key: Option<Range<usize>>,
    payload: Range<usize>,
    /// A Kafka partition chosen by the encoder (none: the producer's partitioner decides).
    partition: Option<i32>,
    /// The tag of a retried message's first sending.
    retry_of: Option<Tag>,
}

/// A message as a transport sends it.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef<'a> {
    pub topic: Option<&'a Arc<str>>,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub partition: Option<i32>,
    /// What its delivery report must name (see [`crate::sink::buffer::DeliveryBuffer::resolve`]).
    pub tag: Tag,
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
    /// Wall-clock time of the snapshot's flush (ms since the epoch): spool records carry it.
    flushed_ms: u64,
    /// Assigned by the buffer when delivery may start on it; names its messages' tags.
    pub(super) id: u64,
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
            partition: None,
            retry_of: None,
        };
        self.bytes += message_bytes(&message);
        self.messages.push(message);
    }

    /// Appends a message.
    pub fn push(&mut self, topic: Option<Arc<str>>, key: Option<&[u8]>, payload: &[u8]) {
        self.push_with(topic, key, |data| data.extend_from_slice(payload));
    }

    /// Sends the message pushed last to `partition` (encoders that route messages
    /// themselves).
    pub fn set_partition(&mut self, partition: i32) {
        if let Some(m) = self.messages.last_mut() {
            m.partition = Some(partition);
        }
    }

    /// Appends a message given back for retry, keeping its partition and the tag of its
    /// first sending.
    pub fn push_retry(&mut self, tag: Tag, message: MessageRef<'_>) {
        self.push(message.topic.cloned(), message.key, message.payload);
        let m = self.messages.last_mut().expect("pushed above");
        m.partition = message.partition;
        m.retry_of = Some(tag);
    }

    /// True for a batch of retries (its messages belong to earlier batches).
    pub fn is_retry(&self) -> bool {
        self.messages.first().is_some_and(|m| m.retry_of.is_some())
    }

    pub fn flushed_ms(&self) -> u64 {
        self.flushed_ms
    }

    pub fn set_flushed_ms(&mut self, ms: u64) {
        self.flushed_ms = ms;
    }

    /// Bytes counted against the buffer's bound for what is still waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages in the batch, taken or not.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Messages not yet taken.
    pub fn waiting(&self) -> usize {
        self.messages.len() - self.next
    }

    /// Index of the first message not yet taken.
    pub fn next_index(&self) -> usize {
        self.next
    }

    /// True once delivery has started on this batch: it may no longer be evicted.
    pub fn started(&self) -> bool {
        self.next > 0 || self.offset > 0
    }

    /// Message `i`.
    pub fn message(&self, i: usize) -> MessageRef<'_> {
        let m = &self.messages[i];
        MessageRef {
            topic: m.topic.as_ref(),
            key: m.key.clone().map(|k| &self.data[k]),
            payload: &self.data[m.payload.clone()],
            partition: m.partition,
            tag: m.retry_of.unwrap_or(Tag::new(self.id, i)),
        }
    }

    /// The next message to send.
    pub fn front(&self) -> Option<MessageRef<'_>> {
        (self.next < self.messages.len()).then(|| self.message(self.next))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_resume_mid_message_and_resend_a_cut_message_whole() {
        let mut b = Batch::default();
        for m in ["a 1 1\n", "bb 2 1\n", "c 3 1\n"] {
            b.push(None, None, m.as_bytes());
        }
        assert_eq!(b.wrote(9), 1, "`a` done, 3 bytes of `bb` written");
        assert_eq!(b.unwritten(), b"2 1\nc 3 1\n");
        b.rewind_partial();
        assert_eq!(b.unwritten(), b"bb 2 1\nc 3 1\n");
        assert_eq!(b.wrote(13), 2);
        assert_eq!((b.waiting(), b.bytes), (0, 0));
    }

    #[test]
    fn tags_name_the_batch_and_the_index_and_retries_keep_theirs() {
        let mut b = Batch::default();
        b.push(None, None, b"x");
        b.set_partition(5);
        b.push(None, None, b"y");
        b.id = 7;
        assert_eq!(b.message(1).tag, Tag::new(7, 1));
        assert_eq!((Tag::new(7, 1).batch(), Tag::new(7, 1).index()), (7, 1));
        let mut r = Batch::default();
        r.push_retry(Tag::new(3, 9), b.message(0));
        r.id = 8;
        assert!(r.is_retry() && !b.is_retry());
        assert_eq!(r.message(0).tag, Tag::new(3, 9));
        assert_eq!(
            (r.message(0).partition, b.message(1).partition),
            (Some(5), None)
        );
    }
}
