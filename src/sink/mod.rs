//! Sinks: where snapshots go.
//!
//! A sink is a small [`Sink`] trait object with its own config. Each runs on its own thread
//! and is fed through its own bounded queue of snapshots; the flusher never waits on a sink.
//! When a queue is full the *oldest* queued snapshot is dropped and counted
//! (`snapshot_drops`), so a stalled sink delays only itself and recovers with the newest data.

pub mod console;
pub mod json;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

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

    /// Called once after the last snapshot: flush and release resources.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Counters a sink thread shares with the flusher (off the hot path, so atomics are fine).
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub errors: AtomicU64,
    pub drops: AtomicU64,
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
    /// Starts `sink` on its own thread with a queue of `capacity` snapshots.
    pub fn spawn(
        name: &str,
        mut sink: Box<dyn Sink>,
        capacity: usize,
    ) -> std::io::Result<SinkHandle> {
        let (queue, rx) = bounded::<Arc<Snapshot>>(capacity.max(1));
        let counters = Arc::new(SinkCounters::default());
        let thread_counters = Arc::clone(&counters);
        let thread_name = name.to_string();
        let oldest = rx.clone();
        let thread = thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                for snapshot in rx {
                    if let Err(e) = sink.send(&snapshot) {
                        thread_counters.errors.fetch_add(1, Ordering::Relaxed);
                        log::error!("sink {thread_name}: failed to deliver a snapshot: {e}");
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

    /// Closes the queue and waits until the sink has delivered everything queued.
    pub fn finish(self) {
        drop(self.queue);
        drop(self.oldest);
        if self.thread.join().is_err() {
            log::error!("sink {}: thread panicked", self.name);
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
        let handle = SinkHandle::spawn("stall", Box::new(sink), 2).unwrap();
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
