use super::*;
use crate::sink::batch::MessageRef;

fn batch(messages: &[&str]) -> Batch {
    let mut b = Batch::default();
    for m in messages {
        b.push(None, None, m.as_bytes());
    }
    b
}

fn memory(limit: usize) -> BufferSettings {
    BufferSettings::memory(limit, Duration::from_secs(1))
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
    let one = batch(&["a1", "a2"]).bytes();
    let mut buffer = DeliveryBuffer::new("t", &memory(2 * one), Arc::clone(&counters));
    buffer.push_back(batch(&["a1", "a2"]));
    buffer.push_back(batch(&["b1", "b2"]));
    // Delivery starts on `a`: it is pinned.
    assert_eq!(taken(&mut buffer, 1), ["a1"]);
    buffer.push_back(batch(&["c1", "c2"]));
    // `b` (whole, two messages) made room; the rest of `a` still goes first.
    assert_eq!(counters.totals().buffer_dropped, 2);
    assert_eq!(taken(&mut buffer, 10), ["a2", "c1", "c2"]);
    assert_eq!((buffer.undelivered(), buffer.bytes()), (0, 0));
    assert_eq!(counters.totals().buffered_bytes, 0);
}

#[test]
fn retries_go_first_and_a_batch_larger_than_the_buffer_is_kept_alone() {
    let counters = Arc::new(SinkCounters::default());
    let mut buffer = DeliveryBuffer::new("t", &memory(1), Arc::clone(&counters));
    buffer.push_back(batch(&["old"]));
    buffer.push_back(batch(&["new1", "new2"]));
    assert_eq!(counters.totals().buffer_dropped, 1);
    buffer.push_front(batch(&["retry"]));
    assert_eq!(taken(&mut buffer, 10), ["retry", "new1", "new2"]);
}

#[test]
fn acknowledged_batches_stay_undelivered_until_every_message_is_resolved() {
    let counters = Arc::new(SinkCounters::default());
    let mut buffer = DeliveryBuffer::new("t", &memory(1 << 20), Arc::clone(&counters));
    buffer.set_acknowledged();
    buffer.push_back(batch(&["a", "b"]));
    let mut tags = Vec::new();
    buffer.deliver(|b| {
        while let Some(m) = b.front() {
            tags.push(m.tag);
            b.advance();
        }
        Flow::Done
    });
    assert_eq!(buffer.undelivered(), 2, "handed over, not acknowledged");
    buffer.resolve(tags[1]);
    buffer.resolve(tags[1]);
    assert_eq!(buffer.undelivered(), 1, "a report counts once");
    // A retry of `a` keeps its tag and resolves the original.
    let mut retry = Batch::default();
    let first = MessageRef {
        topic: None,
        key: None,
        payload: b"a",
        partition: None,
        tag: tags[0],
    };
    retry.push_retry(tags[0], first);
    buffer.push_front(retry);
    let mut again = Vec::new();
    buffer.deliver(|b| {
        while let Some(m) = b.front() {
            again.push(m.tag);
            b.advance();
        }
        Flow::Done
    });
    assert_eq!(again, vec![tags[0]]);
    assert_eq!(buffer.undelivered(), 1);
    buffer.resolve(tags[0]);
    assert_eq!(buffer.undelivered(), 0);
}

mod spooled {
    use super::*;
    use crate::sink::spool::tests::TempDir;

    fn spooled(dir: &TempDir, limit: usize, spill_after: Duration) -> BufferSettings {
        BufferSettings {
            memory_bytes: limit,
            spool: Some(SpoolSettings {
                dir: dir.0.clone(),
                max_bytes: 1 << 20,
                segment_bytes: 64 << 10,
            }),
            spill_after,
            shutdown_timeout: Duration::from_secs(1),
        }
    }

    fn blocked(buffer: &mut DeliveryBuffer) {
        buffer.deliver(|_| Flow::Blocked);
    }

    /// Takes every message, returning payloads and tags, acknowledging none.
    fn take_all(buffer: &mut DeliveryBuffer) -> Vec<(String, Tag)> {
        let mut out = Vec::new();
        buffer.deliver(|b| {
            while let Some(m) = b.front() {
                out.push((String::from_utf8(m.payload.to_vec()).unwrap(), m.tag));
                b.advance();
            }
            Flow::Done
        });
        out
    }

    #[test]
    fn a_down_destination_sends_every_snapshot_to_disk_and_a_restart_delivers_them_in_order() {
        let dir = TempDir::new();
        let counters: Arc<SinkCounters> = Arc::default();
        let settings = spooled(&dir, 1 << 20, Duration::ZERO);
        let mut buffer = DeliveryBuffer::new("g", &settings, Arc::clone(&counters));
        for b in [&["a1", "a2"][..], &["b1"], &["c1", "c2"]] {
            buffer.push_back(batch(b));
            blocked(&mut buffer);
        }
        let totals = counters.totals();
        assert_eq!((totals.spool_written, totals.spool_records), (3, 3));
        assert_eq!(buffer.undelivered(), 5);
        // A crash: nothing of the memory part survives.
        drop(buffer);
        let counters: Arc<SinkCounters> = Arc::default();
        let mut buffer = DeliveryBuffer::new("g", &settings, Arc::clone(&counters));
        buffer.push_back(batch(&["d1"]));
        assert_eq!(
            taken(&mut buffer, 100),
            ["a1", "a2", "b1", "c1", "c2", "d1"]
        );
        assert_eq!(counters.totals().spool_replayed, 3);
        assert_eq!(counters.totals().spool_records, 0);
        assert_eq!(buffer.undelivered(), 0);
    }

    #[test]
    fn at_close_exactly_the_unacknowledged_messages_are_spooled_and_replayed() {
        let dir = TempDir::new();
        let counters: Arc<SinkCounters> = Arc::default();
        let settings = spooled(&dir, 1 << 20, Duration::from_secs(3600));
        let mut buffer = DeliveryBuffer::new("k", &settings, Arc::clone(&counters));
        buffer.set_acknowledged();
        buffer.push_back(batch(&["a1", "a2", "a3"]));
        let sent = take_all(&mut buffer);
        buffer.resolve(sent[1].1);
        buffer.push_back(batch(&["b1"]));
        blocked(&mut buffer);
        assert_eq!(counters.totals().spool_written, 0, "nothing due yet");
        assert_eq!(buffer.spool_everything(), (3, 0));
        assert_eq!(counters.totals().spool_written, 2);
        drop(buffer); // SIGKILL
        let counters: Arc<SinkCounters> = Arc::default();
        let mut buffer = DeliveryBuffer::new("k", &settings, Arc::clone(&counters));
        buffer.set_acknowledged();
        let replayed = take_all(&mut buffer);
        let payloads: Vec<&str> = replayed.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(payloads, ["a1", "a3", "b1"]);
        for (_, tag) in &replayed {
            buffer.resolve(*tag);
        }
        assert_eq!(buffer.undelivered(), 0);
        assert_eq!(counters.totals().spool_records, 0);
        assert!(
            std::fs::read_dir(&dir.0).unwrap().next().is_none(),
            "segment deleted"
        );
    }

    #[test]
    fn acknowledged_spooled_batches_are_forgotten_without_a_replay() {
        let dir = TempDir::new();
        let counters: Arc<SinkCounters> = Arc::default();
        let settings = spooled(&dir, 1 << 20, Duration::ZERO);
        let mut buffer = DeliveryBuffer::new("k", &settings, Arc::clone(&counters));
        buffer.set_acknowledged();
        buffer.push_back(batch(&["a1", "a2"]));
        let sent = take_all(&mut buffer);
        buffer.deliver(|_| Flow::Done);
        assert_eq!(counters.totals().spool_records, 1);
        for (_, tag) in sent {
            buffer.resolve(tag);
        }
        assert_eq!(counters.totals().spool_records, 0);
        assert_eq!(counters.totals().spool_replayed, 0);
        assert_eq!(buffer.undelivered(), 0);
    }

    #[test]
    fn a_receipt_is_taken_once_its_batch_is_on_disk() {
        let dir = TempDir::new();
        let (done, outcomes) = crossbeam_channel::unbounded();
        let settings = spooled(&dir, 1 << 20, Duration::ZERO);
        let mut buffer = DeliveryBuffer::new("k", &settings, Arc::default());
        buffer.set_acknowledged();
        push_held(&mut buffer, &["a1"], 1, &done);
        // Handed over, unacknowledged, then due: spooled, which is taken.
        let _sent = take_all(&mut buffer);
        blocked(&mut buffer);
        assert_eq!(outcomes.try_recv(), Ok((1, true)));
        // The destination is down: pending, then due, then on disk.
        push_held(&mut buffer, &["b1"], 2, &done);
        assert!(outcomes.try_recv().is_err());
        blocked(&mut buffer);
        assert_eq!(outcomes.try_recv(), Ok((2, true)));
    }

    #[test]
    fn eviction_to_disk_writes_older_batches_first() {
        let dir = TempDir::new();
        let counters: Arc<SinkCounters> = Arc::default();
        let one = batch(&["x1", "x2"]).bytes();
        // Nothing is due by age; memory holds two batches.
        let settings = spooled(&dir, 2 * one, Duration::from_secs(3600));
        let mut buffer = DeliveryBuffer::new("k", &settings, Arc::clone(&counters));
        buffer.set_acknowledged();
        buffer.push_back(batch(&["a1", "a2"]));
        let sent = take_all(&mut buffer); // in flight, not on disk
        for b in [&["b1", "b2"][..], &["c1", "c2"], &["d1", "d2"]] {
            buffer.push_back(batch(b));
            blocked(&mut buffer);
        }
        // `b` went to disk to make room, and `a` (older, unacknowledged) before it.
        assert_eq!(counters.totals().spool_written, 2);
        assert_eq!(counters.totals().buffer_dropped, 0);
        drop(buffer);
        drop(sent);
        let mut buffer = DeliveryBuffer::new("k", &settings, Arc::clone(&counters));
        buffer.set_acknowledged();
        let replayed: Vec<String> = take_all(&mut buffer).into_iter().map(|(p, _)| p).collect();
        assert_eq!(replayed, ["a1", "a2", "b1", "b2"]);
    }
}

/// Queues a batch holding receipt `id` of a flush whose outcome arrives on `done`.
fn push_held(
    buffer: &mut DeliveryBuffer,
    messages: &[&str],
    id: u64,
    done: &crossbeam_channel::Sender<(u64, bool)>,
) {
    let carrier = crate::sink::Receipt::new(id, done.clone());
    buffer.push_held(batch(messages), Some(carrier.hold()));
}

#[test]
fn receipts_report_taken_only_once_acknowledged_and_not_taken_when_dropped() {
    let (done, outcomes) = crossbeam_channel::unbounded();
    let counters = Arc::new(SinkCounters::default());
    let one = batch(&["a1", "a2"]).bytes();
    let mut buffer = DeliveryBuffer::new("t", &memory(2 * one), Arc::clone(&counters));
    buffer.set_acknowledged();
    push_held(&mut buffer, &["a1", "a2"], 1, &done);
    let mut tags = Vec::new();
    buffer.deliver(|b| {
        while let Some(m) = b.front() {
            tags.push(m.tag);
            b.advance();
        }
        Flow::Done
    });
    assert!(
        outcomes.try_recv().is_err(),
        "handed over, not acknowledged"
    );
    buffer.resolve(tags[0]);
    assert!(outcomes.try_recv().is_err());
    buffer.resolve(tags[1]);
    assert_eq!(outcomes.try_recv(), Ok((1, true)));
    // Without a spool, a full buffer drops the oldest pending snapshot: not taken.
    push_held(&mut buffer, &["b1", "b2"], 2, &done);
    push_held(&mut buffer, &["c1", "c2"], 3, &done);
    push_held(&mut buffer, &["d1", "d2"], 4, &done);
    assert_eq!(outcomes.try_recv(), Ok((2, false)));
    assert!(outcomes.try_recv().is_err());
}

#[test]
fn receipts_of_unacknowledged_transports_are_taken_when_written() {
    let (done, outcomes) = crossbeam_channel::unbounded();
    let mut buffer = DeliveryBuffer::new("t", &memory(1 << 20), Arc::default());
    push_held(&mut buffer, &["a"], 7, &done);
    assert!(outcomes.try_recv().is_err());
    assert_eq!(taken(&mut buffer, 10), ["a"]);
    assert_eq!(outcomes.try_recv(), Ok((7, true)));
}
