//! Sinks: where flushes go.
//!
//! A sink is a folder that owns its config type, its validation, its `build` function and its
//! flags ([`SinkSpec`]), and registers itself with one line in [`registry`]. The rest of the
//! crate knows only "type name → builder".
//!
//! - [`SinkHandle`] (this file) runs each sink on its own thread, fed through its own bounded
//!   queue of flushes; the flusher never waits on a sink. When a queue is full the *oldest*
//!   queued flush is dropped and counted (`sink_queue_dropped`), so a stalled sink delays only
//!   itself and recovers with the newest data.
//! - [`buffer`]: the one delivery buffer every networked sink uses (byte-bounded, oldest
//!   whole snapshots dropped first, in-flight data pinned) and the one pump/close loop over a
//!   sink's [`buffer::Transport`]; [`spool`]: the disk spool behind it (`[spool]`).
//! - [`console`], [`graphite`], [`kafka`]: the sinks.
//!
//! Adding a sink: a new folder with a config type implementing [`SinkSpec`] (whose `build`
//! usually wraps a [`buffer::Transport`] in a [`buffer::BufferedSink`]), and its line in
//! [`registry`].

pub mod buffer;
pub mod console;
pub mod graphite;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod registry;
pub mod spool;

use std::fmt;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use crate::interval::IntervalState;
pub use crate::settings::ConfigError;
use crate::snapshot::Snapshot;
pub use crate::stats::{SinkCounters, SinkTotals};
pub use registry::{SinkConfig, SinkFlags};

/// What one flush hands every sink.
#[derive(Debug)]
pub struct Flushed {
    /// The finalized snapshot: what every output format renders.
    pub snapshot: Arc<Snapshot>,
    /// The mergeable state the snapshot was finalized from, present when a sink asked for it
    /// ([`Sink::wants_interval_state`]): the input of outputs that ship partial aggregates to
    /// be merged elsewhere.
    pub interval: Option<Arc<IntervalState>>,
    /// True for the final flush at shutdown (its snapshot ends at the shutdown time, not on
    /// an interval boundary).
    pub last: bool,
    /// Fires once every sink is done with this flush (see [`Receipt`]).
    pub receipt: Option<Receipt>,
}

impl Flushed {
    /// A flush of `snapshot` alone.
    pub fn new(snapshot: Arc<Snapshot>) -> Flushed {
        Flushed {
            snapshot,
            interval: None,
            last: false,
            receipt: None,
        }
    }
}

/// Reports when every sink is done with a flush, and whether each *took* it: delivered it,
/// or wrote it to its spool. The aggregator commits its Kafka offsets on it
/// ([`crate::receive::kafka`]): a crash before that point replays the interval instead of
/// losing it, and an interval a sink dropped (a full buffer without a spool, a full queue) is
/// never committed.
///
/// The flush carries the receipt; each sink that queues the flush for later delivery takes a
/// [`Receipt::hold`] and [`Receipt::settle`]s it once delivered or on disk. A hold dropped
/// unsettled marks the flush as not taken. When the last one is gone, `(id, taken)` is sent to
/// the channel given at creation. Being a drop guard, it cannot be forgotten on any path.
#[derive(Debug)]
pub struct Receipt {
    guard: Arc<ReceiptGuard>,
    /// A sink's hold: dropping it unsettled means the sink did not take the flush.
    holder: bool,
}

#[derive(Debug)]
struct ReceiptGuard {
    id: u64,
    done: Sender<(u64, bool)>,
    abandoned: std::sync::atomic::AtomicBool,
}

impl Receipt {
    /// The receipt a flush carries.
    pub fn new(id: u64, done: Sender<(u64, bool)>) -> Receipt {
        Receipt {
            guard: Arc::new(ReceiptGuard {
                id,
                done,
                abandoned: std::sync::atomic::AtomicBool::new(false),
            }),
            holder: false,
        }
    }

    /// A sink's hold on the flush, to settle once it has taken it.
    pub fn hold(&self) -> Receipt {
        Receipt {
            guard: Arc::clone(&self.guard),
            holder: true,
        }
    }

    /// The sink has delivered the flush, or has it on disk.
    pub fn settle(mut self) {
        self.holder = false;
    }

    /// A sink never got the flush (its queue dropped it).
    pub fn abandon(&self) {
        self.guard
            .abandoned
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if self.holder {
            self.abandon();
        }
    }
}

impl Drop for ReceiptGuard {
    fn drop(&mut self) {
        let taken = !self.abandoned.load(std::sync::atomic::Ordering::Relaxed);
        let _ = self.done.send((self.id, taken));
    }
}

/// A sink's failure to write one flush at all.
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

/// A destination for flushes. Implementations may block; they run on their own thread.
pub trait Sink: Send {
    /// Takes one flush (delivers it, or queues it for delivery).
    fn send(&mut self, flushed: &Flushed) -> Result<(), SinkError>;

    /// True when [`Flushed::interval`] must be filled for this sink.
    fn wants_interval_state(&self) -> bool {
        false
    }

    /// How often [`Sink::poll`] must run while no flush arrives; `None`: never.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    /// Background work between flushes (delivery reports, retries, reconnects).
    fn poll(&mut self) {}

    /// Called once after the last flush: delivers what is pending within the sink's own
    /// shutdown timeout, releases the destination and returns the number of messages that
    /// remain undelivered. The runner logs and counts the outcome.
    fn close(&mut self) -> u64;
}

/// One sink type's configuration (`[sinks.NAME] type = "…"`): validation, construction and
/// command-line flags, all owned by the sink's folder.
pub trait SinkSpec: Sized {
    /// The type's command-line flags (`clap::Args`; `NoFlags` when it has none).
    type Flags: clap::Args + Clone + Default + fmt::Debug;

    /// Checks what serde cannot; `key` is the sink's table (`sinks.NAME`).
    fn validate(&self, key: &str) -> Result<(), ConfigError>;

    /// Creates the running sink(s) named `name` (one per destination, where there are several).
    fn build(&self, name: &str, context: &BuildContext) -> Result<Vec<BuiltSink>, ConfigError>;

    /// The sink the type's flags configure (created with defaults when the file has none),
    /// when any of them was given.
    fn flagged_sink(flags: &Self::Flags) -> Option<&'static str>;

    /// Applies the type's flags to that sink.
    fn apply_flags(&mut self, flags: &Self::Flags);
}

/// What every sink's `build` gets besides its own section: the settings shared by all
/// sinks.
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    pub spool: spool::SpoolConfig,
    /// The flush interval: undelivered snapshots reach the spool within one.
    pub flush_interval: Duration,
}

impl BuildContext {
    /// The delivery buffer settings of the sink named `name`.
    pub fn buffer(
        &self,
        name: &str,
        memory_bytes: usize,
        shutdown_timeout: Duration,
    ) -> buffer::BufferSettings {
        buffer::BufferSettings {
            memory_bytes,
            spool: self.spool.for_sink(name),
            spill_after: self.flush_interval,
            shutdown_timeout,
        }
    }
}

/// Flags of a sink type that has none.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NoFlags {}

/// A configured sink, ready to start: the sink and the counters it updates.
pub struct BuiltSink {
    pub name: String,
    pub sink: Box<dyn Sink>,
    pub counters: Arc<SinkCounters>,
}

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
                    .store(undelivered, std::sync::atomic::Ordering::Relaxed);
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
