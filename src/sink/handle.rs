//! [`SinkHandle`]: each sink on its own thread, fed through its own bounded queue of
//! flushes, so the flusher never waits on a sink. When a queue is full the *oldest* queued
//! flush is dropped and counted (`sink_queue_dropped`): a stalled sink delays only itself
//! and recovers with the newest data.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use super::{BuiltSink, Flushed, SinkCounters, SinkTotals};

/// The flusher's end of a running sink.
pub struct SinkHandle {
    name: String,
    queue: Sender<Arc<Flushed>>,
    /// A second receiver on the queue, used only to drop the oldest flush when full.
    oldest: Receiver<Arc<Flushed>>,
    counters: Arc<SinkCounters>,
    wants_interval_state: bool,
    thread: JoinHandle<()>,
}

impl SinkHandle {
    /// Starts a sink on its own thread with a queue of `capacity` flushes.
    pub fn spawn(built: BuiltSink, capacity: usize) -> std::io::Result<SinkHandle> {
        let BuiltSink {
            name,
            mut sink,
            counters,
        } = built;
        let (queue, rx) = bounded::<Arc<Flushed>>(capacity.max(1));
        let thread_counters = Arc::clone(&counters);
        let thread_name = name.clone();
        let oldest = rx.clone();
        let wants_interval_state = sink.wants_interval_state();
        let thread = thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                loop {
                    let next = match sink.poll_interval() {
                        Some(interval) => rx.recv_timeout(interval),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(flushed) => {
                            if let Err(e) = sink.send(&flushed) {
                                SinkCounters::add(&thread_counters.write_errors, 1);
                                log::error!("sink {thread_name}: cannot write a snapshot: {e}");
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => sink.poll(),
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                let undelivered = sink.close();
                thread_counters
                    .undelivered
                    .store(undelivered, Ordering::Relaxed);
                let delivered = thread_counters.totals().delivered;
                if undelivered > 0 {
                    log::error!(
                        "sink {thread_name}: {undelivered} messages undelivered at shutdown \
                         ({delivered} delivered in total)"
                    );
                } else {
                    log::info!("sink {thread_name}: all messages delivered ({delivered} in total)");
                }
            })?;
        Ok(SinkHandle {
            name,
            queue,
            oldest,
            counters,
            wants_interval_state,
            thread,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn counters(&self) -> &SinkCounters {
        &self.counters
    }

    pub fn wants_interval_state(&self) -> bool {
        self.wants_interval_state
    }

    /// Queues a flush without blocking, dropping the oldest queued one if full.
    pub fn offer(&self, flushed: Arc<Flushed>) {
        let mut flushed = flushed;
        loop {
            match self.queue.try_send(flushed) {
                Ok(()) => return,
                Err(TrySendError::Full(f)) => {
                    flushed = f;
                    if let Ok(evicted) = self.oldest.try_recv() {
                        if let Some(r) = &evicted.receipt {
                            r.abandon();
                        }
                        SinkCounters::add(&self.counters.queue_dropped, 1);
                        log::warn!(
                            "sink {}: queue full, dropped the oldest snapshot",
                            self.name
                        );
                    }
                }
                Err(TrySendError::Disconnected(f)) => {
                    if let Some(r) = &f.receipt {
                        r.abandon();
                    }
                    SinkCounters::add(&self.counters.queue_dropped, 1);
                    return;
                }
            }
        }
    }

    /// Queues a flush, waiting while the queue is full: for an aggregator's closed
    /// intervals, which must not be dropped (their Kafka offsets are committed once every
    /// sink has taken them), and which come in bursts when a partition's backlog is
    /// replayed. A sink's `send` only encodes and buffers, so the wait is short.
    pub fn offer_waiting(&self, flushed: Arc<Flushed>) {
        if let Err(e) = self.queue.send(flushed) {
            if let Some(r) = &e.0.receipt {
                r.abandon();
            }
            SinkCounters::add(&self.counters.queue_dropped, 1);
        }
    }

    /// Closes the queue and waits until the sink has delivered everything queued (or given
    /// up, by its own shutdown timeout). Returns the final counters.
    pub fn finish(self) -> SinkTotals {
        drop(self.queue);
        drop(self.oldest);
        if self.thread.join().is_err() {
            log::error!("sink {}: thread panicked", self.name);
        }
        self.counters.totals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::sink::{Sink, SinkError};
    use crate::snapshot::Snapshot;

    /// A sink that reports each snapshot it starts on and then waits for permission.
    struct Stalling {
        started: Sender<u64>,
        release: Receiver<()>,
        delivered: Sender<u64>,
    }

    impl Sink for Stalling {
        fn send(&mut self, flushed: &Flushed) -> Result<(), SinkError> {
            let ts = flushed.snapshot.timestamp_ms;
            self.started.send(ts).unwrap();
            self.release.recv().unwrap();
            self.delivered.send(ts).unwrap();
            Ok(())
        }

        fn close(&mut self) -> u64 {
            0
        }
    }

    fn flushed(ts: u64) -> Arc<Flushed> {
        Arc::new(Flushed::new(Arc::new(Snapshot {
            timestamp_ms: ts,
            interval: Duration::from_secs(10),
            percentiles: Vec::new().into(),
            series: Vec::new(),
        })))
    }

    #[test]
    fn a_stalled_sink_drops_its_oldest_snapshots_and_never_blocks() {
        let (started_tx, started) = crossbeam_channel::unbounded();
        let (release_tx, release) = crossbeam_channel::unbounded();
        let (delivered_tx, delivered) = crossbeam_channel::unbounded();
        let sink = Stalling {
            started: started_tx,
            release,
            delivered: delivered_tx,
        };
        let built = BuiltSink {
            name: "stall".into(),
            sink: Box::new(sink),
            counters: Arc::default(),
        };
        let handle = SinkHandle::spawn(built, 2).unwrap();
        handle.offer(flushed(1));
        // The sink holds snapshot 1 and is stalled; the queue (2) takes 2 and 3, then every
        // further offer pushes out the oldest queued one, without blocking.
        assert_eq!(started.recv().unwrap(), 1);
        for ts in 2..=6 {
            handle.offer(flushed(ts));
        }
        assert_eq!(handle.counters().totals().queue_dropped, 3);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        handle.finish();
        let got: Vec<u64> = delivered.try_iter().collect();
        assert_eq!(got, vec![1, 5, 6]);
    }
}
