//! Flush stage: every interval, collect each receiver's table, merge them, finalize the result
//! into one immutable [`Snapshot`] and offer it to every sink.
//!
//! - [`Flusher`] (this file): the flusher thread. Flushes happen at wall-clock multiples of
//!   the interval (10 s → :00, :10, …); the snapshot timestamp is that boundary, and the final
//!   flush at shutdown uses the current time. Collecting is a message exchange, not a lock:
//!   the flusher sends [`Control::Swap`] to every receiver and waits for one [`Harvest`]
//!   each. A receiver answers between datagrams, so no metric is lost or counted twice.
//! - [`merge()`]: harvests → one mergeable [`crate::interval::IntervalState`].
//! - [`Finalizer`] ([`finalize`]): interval state → snapshot, with what outlives an interval
//!   ([`carry`]: persisted gauges, idle series owed zero reports).
//!
//! Internal statistics are named and leveled in [`crate::stats`]; the flusher only gathers
//! the facts for them.

pub mod carry;
pub mod finalize;
pub mod input;
pub mod merge;

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};

pub use self::carry::{CarryOver, CarrySettings};
pub use self::finalize::{FinalizeSettings, Finalizer};
pub use self::input::{ClosedInterval, IntervalInput};
pub use self::merge::{Merged, merge};
use crate::admin::{AdminState, FlusherCommand};
use crate::aggregate::{Bounds, SeriesGuard};
use crate::config_error::{ConfigError, at_least};
use crate::format::time::unix_millis;
use crate::parse::Protocol;
use crate::receive::{Control, Harvest, socket_drops};
use crate::sink::{Flushed, SinkHandle};
use crate::snapshot::Snapshot;
use crate::stats::{self, FleetCounters, FleetReading, FlushFacts, PlaneTotals, SinkTotals};

/// How long the flusher waits for receivers to answer a swap before flushing without the
/// missing ones (their data is then reported in the next flush, not lost).
const HARVEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `[flush]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct FlushConfig {
    /// Flush interval, aligned to wall-clock multiples (flush.interval_ms).
    #[arg(
        id = "flush.interval_ms",
        long = "flush-interval-ms",
        value_name = "MS",
        required = false
    )]
    pub interval_ms: u64,
    /// Snapshots queued per sink before the oldest is dropped (flush.snapshot_queue).
    #[arg(
        id = "flush.snapshot_queue",
        long = "snapshot-queue",
        value_name = "N",
        required = false
    )]
    pub snapshot_queue: usize,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            interval_ms: 10_000,
            snapshot_queue: 4,
        }
    }
}

impl FlushConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_least("flush.interval_ms", self.interval_ms, 10)?;
        at_least("flush.snapshot_queue", self.snapshot_queue as u64, 1)
    }
}

/// Flush behaviour, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct FlushSettings {
    pub interval: Duration,
    /// Timers' and sets' bounds when merging the receivers' tables.
    pub bounds: Bounds,
    pub finalize: FinalizeSettings,
    /// The receivers' cardinality guard (released and pruned after each flush).
    pub guard: Option<Arc<SeriesGuard>>,
}

/// What the flusher reports about the listeners besides their counters.
#[derive(Debug, Clone, Default)]
pub struct ListenerFacts {
    /// (listener, effective receive buffer bytes).
    pub receive_buffers: Vec<(Protocol, usize)>,
    /// Inodes of the receivers' sockets, to find their kernel drop counters.
    pub socket_inodes: Vec<(Protocol, u64)>,
}

/// The flusher thread's state.
pub struct Flusher {
    settings: FlushSettings,
    finalizer: Finalizer,
    listeners: ListenerFacts,
    receivers: Vec<Sender<Control>>,
    harvests: Receiver<Harvest>,
    sinks: Vec<SinkHandle>,
    /// Each sink's counters at the previous flush, to report per-interval deltas.
    last_totals: Vec<SinkTotals>,
    /// The admin plane's counters at the previous flush.
    last_plane: PlaneTotals,
    /// True when some sink is handed the interval state besides the snapshot.
    keep_interval_state: bool,
    generation: u64,
    last_series: usize,
    last_duration: Duration,
    /// The admin plane's view, published after each flush, and its requests.
    admin: Option<(Arc<AdminState>, Receiver<FlusherCommand>)>,
    /// An aggregator's closed intervals, with their own finalizer (no carry-over: every
    /// local reports its gauges each interval, and a partition's series may move to another
    /// aggregator at any rebalance), and its input's counters.
    global: Option<Global>,
}

struct Global {
    closed: Receiver<ClosedInterval>,
    input: Option<Box<dyn IntervalInput>>,
    finalizer: Finalizer,
    counters: Arc<FleetCounters>,
    last: [u64; 13],
}

impl Flusher {
    pub fn new(
        settings: FlushSettings,
        listeners: ListenerFacts,
        receivers: Vec<Sender<Control>>,
        harvests: Receiver<Harvest>,
        sinks: Vec<SinkHandle>,
    ) -> Flusher {
        Flusher {
            finalizer: Finalizer::new(settings.finalize.clone()),
            settings,
            listeners,
            receivers,
            harvests,
            last_totals: vec![SinkTotals::default(); sinks.len()],
            last_plane: PlaneTotals::default(),
            keep_interval_state: sinks.iter().any(SinkHandle::wants_interval_state),
            sinks,
            generation: 0,
            last_series: 0,
            last_duration: Duration::ZERO,
            admin: None,
            global: None,
        }
    }

    /// Also finalizes and offers the intervals an aggregator input closes.
    pub fn with_closed_intervals(
        mut self,
        closed: Receiver<ClosedInterval>,
        counters: Arc<FleetCounters>,
        input: Box<dyn IntervalInput>,
    ) -> Flusher {
        let mut settings = self.settings.finalize.clone();
        settings.stats = None;
        settings.carry = CarrySettings {
            delete_idle_gauges: true,
            idle_zero_flushes: 0,
            max_gauges: 0,
        };
        self.global = Some(Global {
            closed,
            input: Some(input),
            finalizer: Finalizer::new(settings),
            counters,
            last: [0; 13],
        });
        self
    }

    /// Publishes every snapshot to `state` and answers its requests between flushes.
    pub fn with_admin(mut self, state: Arc<AdminState>) -> Flusher {
        let (tx, rx) = crossbeam_channel::bounded(16);
        state.set_commands(tx);
        self.admin = Some((state, rx));
        self
    }

    /// Runs until `shutdown` fires (or its sender is dropped), then performs the final
    /// flush and waits for every sink to deliver it. The thread returns each sink's final
    /// counters.
    pub fn spawn(
        self,
        shutdown: Receiver<()>,
    ) -> std::io::Result<JoinHandle<Vec<(String, SinkTotals)>>> {
        thread::Builder::new()
            .name("flusher".into())
            .spawn(move || self.run(&shutdown))
    }

    fn run(mut self, shutdown: &Receiver<()>) -> Vec<(String, SinkTotals)> {
        let interval_ms = self.settings.interval.as_millis() as u64;
        loop {
            let now = unix_millis(SystemTime::now());
            let boundary = (now / interval_ms + 1) * interval_ms;
            let commands = match &self.admin {
                Some((_, rx)) => rx.clone(),
                None => crossbeam_channel::never(),
            };
            let closed = match &self.global {
                Some(g) => g.closed.clone(),
                None => crossbeam_channel::never(),
            };
            let last = crossbeam_channel::select! {
                recv(shutdown) -> _ => true,
                recv(closed) -> interval => {
                    match interval {
                        Ok(interval) => self.emit_closed(interval),
                        // The input is gone (shutting down): stop listening to it.
                        Err(_) => if let Some(g) = &mut self.global {
                            g.closed = crossbeam_channel::never();
                        },
                    }
                    continue;
                }
                recv(commands) -> command => {
                    if let Ok(command) = command {
                        self.answer(command);
                    }
                    continue;
                }
                default(Duration::from_millis(boundary - now)) => false,
            };
            if last {
                // Every interval the input closed reaches the sinks before they finish, so
                // that its offsets are committed before this aggregator leaves the group.
                let pending: Vec<ClosedInterval> = match &mut self.global {
                    Some(g) => {
                        if let Some(input) = &mut g.input {
                            input.quiesce();
                        }
                        g.closed.try_iter().collect()
                    }
                    None => Vec::new(),
                };
                for closed in pending {
                    self.emit_closed(closed);
                }
            }
            let timestamp = if last {
                unix_millis(SystemTime::now())
            } else {
                boundary
            };
            self.flush(last, timestamp);
            if last {
                break;
            }
        }
        let totals = self
            .sinks
            .into_iter()
            .map(|sink| (sink.name().to_string(), sink.finish()))
            .collect();
        if let Some(input) = self.global.and_then(|g| g.input) {
            input.finish();
        }
        totals
    }

    fn answer(&mut self, command: FlusherCommand) {
        match command {
            FlusherCommand::Delete {
                types,
                pattern,
                reply,
            } => {
                let _ = reply.send(self.finalizer.delete(types, &pattern));
            }
        }
    }

    /// Asks every receiver for its table and waits (bounded) for the answers.
    fn harvest(&self, request: Control) -> Vec<Harvest> {
        let expected = self
            .receivers
            .iter()
            .filter(|r| r.send(request).is_ok())
            .count();
        let deadline = Instant::now() + HARVEST_TIMEOUT;
        let mut harvests = Vec::with_capacity(expected);
        while harvests.len() < expected {
            match self.harvests.recv_deadline(deadline) {
                Ok(h) => harvests.push(h),
                Err(_) => {
                    log::error!(
                        "flush: {} of {expected} receivers did not answer within {HARVEST_TIMEOUT:?}; \
                         their data will be in a later flush",
                        expected - harvests.len()
                    );
                    break;
                }
            }
        }
        harvests
    }

    fn flush(&mut self, last: bool, timestamp_ms: u64) {
        // Read while the sockets are open: receivers close theirs after the final harvest.
        let socket_drops = socket_drops(&self.listeners.socket_inodes);
        let harvests = self.harvest(if last { Control::Final } else { Control::Swap });
        // Only now that every receiver has swapped: released earlier, the slots one receiver
        // gave back could be filled by another still in the old interval.
        if let Some(guard) = &self.settings.guard {
            guard.release(harvests.iter().map(|h| h.table.len()).sum());
        }
        let started = Instant::now();
        self.generation += 1;
        let (snapshot, interval_state, internal) = self.build(harvests, socket_drops, timestamp_ms);
        if let Some(guard) = &self.settings.guard {
            guard.prune(self.generation as u32);
        }
        self.last_series = snapshot.series.len();
        self.last_duration = started.elapsed();
        let snapshot = Arc::new(snapshot);
        // Published first, so whoever sees a sink's output can already query it.
        if let Some((admin, _)) = &self.admin {
            admin.publish(Arc::clone(&snapshot), &internal);
        }
        let flushed = Arc::new(Flushed {
            snapshot,
            interval: interval_state,
            last,
            receipt: None,
        });
        for sink in &self.sinks {
            if self.global.is_some() {
                // Evicting the oldest queued flush could evict a closed interval.
                sink.offer_waiting(Arc::clone(&flushed));
            } else {
                sink.offer(Arc::clone(&flushed));
            }
        }
    }

    /// An aggregator's closed interval: finalized with its own timestamp (the interval's
    /// end) and offered like a local flush; its receipt fires once every sink is done.
    fn emit_closed(&mut self, closed: ClosedInterval) {
        let Some(global) = &mut self.global else {
            return;
        };
        let (state, receipt) = closed.into_parts();
        let interval_state = self.keep_interval_state.then(|| Arc::new(state.clone()));
        let snapshot = Arc::new(global.finalizer.finalize(state, &[]));
        let flushed = Arc::new(Flushed {
            snapshot,
            interval: interval_state,
            last: false,
            receipt: Some(receipt),
        });
        for sink in &self.sinks {
            sink.offer_waiting(Arc::clone(&flushed));
        }
    }

    /// Merge, the internal statistics, finalize.
    fn build(
        &mut self,
        harvests: Vec<Harvest>,
        socket_drops: Vec<(Protocol, u64)>,
        timestamp_ms: u64,
    ) -> (
        Snapshot,
        Option<Arc<crate::interval::IntervalState>>,
        Vec<stats::Stat>,
    ) {
        let Merged { state, receivers } = merge(
            harvests,
            timestamp_ms,
            self.settings.interval,
            self.settings.bounds,
        );
        let interval_state = self.keep_interval_state.then(|| Arc::new(state.clone()));
        let totals: Vec<SinkTotals> = self.sinks.iter().map(|s| s.counters().totals()).collect();
        let carry = self.finalizer.carry();
        let internal = stats::collect(&FlushFacts {
            receivers: &receivers,
            receive_buffers: &self.listeners.receive_buffers,
            socket_drops,
            series: self.last_series,
            flush_duration: self.last_duration,
            gauges_kept: carry.gauges_kept(),
            gauges_not_kept: carry.gauges_not_kept(),
            sketch_bins_collapsed: self.finalizer.sketch_bins_collapsed(),
            guard_tracked_names: self.settings.guard.as_ref().map(|g| g.tracked_names()),
            sinks: self
                .sinks
                .iter()
                .zip(&totals)
                .zip(&self.last_totals)
                .map(|((sink, now), last)| (sink.name(), *now, *last))
                .collect(),
            now_ms: timestamp_ms,
            fleet: self.global.as_mut().map(|g| {
                let (counters, gauges) = g.counters.read();
                let now = counters.map(|c| c.1);
                let reading = FleetReading {
                    now,
                    last: g.last,
                    gauges: gauges.map(|g| g.1),
                };
                g.last = now;
                reading
            }),
            plane: self.admin.as_ref().map(|(admin, _)| {
                let now = admin.counters.read();
                (now.clone(), std::mem::replace(&mut self.last_plane, now))
            }),
        });
        self.last_totals = totals;
        let snapshot = self.finalizer.finalize(state, &internal);
        (snapshot, interval_state, internal)
    }
}
