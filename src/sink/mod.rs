//! Sinks: where snapshots go.
//!
//! A sink is a small [`Sink`] trait object with its own config. Each runs on its own thread
//! and is fed through its own bounded queue of snapshots; the flusher never waits on a sink.
//! When a queue is full the *oldest* queued snapshot is dropped and counted
//! (`snapshot_drops`), so a stalled sink delays only itself and recovers with the newest data.
//!
//! Sinks with background work (delivery reports, retries, reconnects) ask to be polled
//! between snapshots through [`Sink::poll_interval`].

pub mod console;
pub mod graphite;
#[cfg(feature = "kafka")]
pub mod kafka;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use crate::snapshot::Snapshot;

/// A sink's failure to deliver one snapshot.
#[derive(Debug)]
pub struct SinkError(pub String);

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError(e.to_string())
    }
}

/// A destination for snapshots. Implementations may block; they run on their own thread.
pub trait Sink: Send {
    /// Delivers one snapshot.
    fn send(&mut self, snapshot: &Snapshot) -> Result<(), SinkError>;

    /// How often [`Sink::poll`] must run while no snapshot arrives; `None`: never.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    /// Background work between snapshots (delivery reports, retries, reconnects).
    fn poll(&mut self) {}

    /// Called once after the last snapshot: deliver what is pending (within the sink's own
    /// time limit) and release resources.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Counters a sink shares with the flusher, which reports them as internal statistics
/// (off the hot path, so atomics are fine). Sinks update the ones that apply to them.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Snapshots the sink failed to deliver (`send` returned an error).
    pub errors: AtomicU64,
    /// Snapshots dropped because the sink's queue was full.
    pub drops: AtomicU64,
    /// Messages (or lines) acknowledged by the destination.
    pub delivered: AtomicU64,
    /// Messages sent again after a retriable failure.
    pub retried: AtomicU64,
    /// Messages that failed permanently.
    pub failed: AtomicU64,
    /// Messages dropped from the sink's own buffer when it was full.
    pub dropped: AtomicU64,
    /// Bytes waiting in the sink's own buffer (a gauge).
    pub buffered_bytes: AtomicU64,
    /// Messages still undelivered when the sink closed.
    pub undelivered: AtomicU64,
}

/// A plain copy of [`SinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SinkTotals {
    pub errors: u64,
    pub drops: u64,
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
    pub dropped: u64,
    pub buffered_bytes: u64,
    pub undelivered: u64,
}

impl SinkCounters {
    pub fn totals(&self) -> SinkTotals {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkTotals {
            errors: get(&self.errors),
            drops: get(&self.drops),
            delivered: get(&self.delivered),
            retried: get(&self.retried),
            failed: get(&self.failed),
            dropped: get(&self.dropped),
            buffered_bytes: get(&self.buffered_bytes),
            undelivered: get(&self.undelivered),
        }
    }
}

/// The flusher's end of a running sink.
pub struct SinkHandle {
    name: String,
    queue: Sender<Arc<Snapshot>>,
    /// A second receiver on the queue, used only to drop the oldest snapshot when full.
    oldest: Receiver<Arc<Snapshot>>,
    counters: Arc<SinkCounters>,
    thread: JoinHandle<()>,
}

impl SinkHandle {
    /// Starts `sink` on its own thread with a queue of `capacity` snapshots. `counters` are
    /// the ones the sink itself updates (see [`BuiltSink`]).
    pub fn spawn(
        name: &str,
        mut sink: Box<dyn Sink>,
        counters: Arc<SinkCounters>,
        capacity: usize,
    ) -> std::io::Result<SinkHandle> {
        let (queue, rx) = bounded::<Arc<Snapshot>>(capacity.max(1));
        let thread_counters = Arc::clone(&counters);
        let thread_name = name.to_string();
        let oldest = rx.clone();
        let thread = thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                loop {
                    let next = match sink.poll_interval() {
                        Some(interval) => rx.recv_timeout(interval),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(snapshot) => {
                            if let Err(e) = sink.send(&snapshot) {
                                thread_counters.errors.fetch_add(1, Ordering::Relaxed);
                                log::error!(
                                    "sink {thread_name}: failed to deliver a snapshot: {e}"
                                );
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => sink.poll(),
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                if let Err(e) = sink.close() {
                    log::error!("sink {thread_name}: close failed: {e}");
                }
            })?;
        Ok(SinkHandle {
            name: name.to_string(),
            queue,
            oldest,
            counters,
            thread,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn counters(&self) -> &SinkCounters {
        &self.counters
    }

    /// Queues a snapshot without blocking, dropping the oldest queued one if full.
    pub fn offer(&self, snapshot: Arc<Snapshot>) {
        let mut snapshot = snapshot;
        loop {
            match self.queue.try_send(snapshot) {
                Ok(()) => return,
                Err(TrySendError::Full(s)) => {
                    snapshot = s;
                    if self.oldest.try_recv().is_ok() {
                        self.counters.drops.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "sink {}: queue full, dropped the oldest snapshot",
                            self.name
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.counters.drops.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
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

/// A configured sink, ready to start: the sink and the counters it updates.
pub struct BuiltSink {
    pub name: String,
    pub sink: Box<dyn Sink>,
    pub counters: Arc<SinkCounters>,
}

impl BuiltSink {
    /// A sink that needs no counters of its own beyond what the runner keeps.
    pub fn new(name: impl Into<String>, sink: Box<dyn Sink>) -> BuiltSink {
        BuiltSink {
            name: name.into(),
            sink,
            counters: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A sink that reports each snapshot it starts on and then waits for permission.
    struct Stalling {
        started: Sender<u64>,
        release: Receiver<()>,
        delivered: Sender<u64>,
    }

    impl Sink for Stalling {
        fn send(&mut self, snapshot: &Snapshot) -> Result<(), SinkError> {
            self.started.send(snapshot.timestamp_ms).unwrap();
            self.release.recv().unwrap();
            self.delivered.send(snapshot.timestamp_ms).unwrap();
            Ok(())
        }
    }

    fn snapshot(ts: u64) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            timestamp_ms: ts,
            interval: Duration::from_secs(10),
            percentiles: Vec::new().into(),
            series: Vec::new(),
        })
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
        let handle = SinkHandle::spawn("stall", Box::new(sink), Arc::default(), 2).unwrap();
        handle.offer(snapshot(1));
        // The sink holds snapshot 1 and is stalled; the queue (2) takes 2 and 3, then every
        // further offer pushes out the oldest queued one, without blocking.
        assert_eq!(started.recv().unwrap(), 1);
        for ts in 2..=6 {
            handle.offer(snapshot(ts));
        }
        assert_eq!(handle.counters().drops.load(Ordering::Relaxed), 3);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        handle.finish();
        let got: Vec<u64> = delivered.try_iter().collect();
        assert_eq!(got, vec![1, 5, 6]);
    }
}
