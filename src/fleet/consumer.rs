//! The consumer-group thread: an rdkafka `BaseConsumer` it polls itself (no async runtime),
//! feeding the [`Window`] and committing what every sink has taken.
//!
//! Rebalance callbacks run inside `poll`; they only queue the change, and the loop applies
//! it before it looks at the next message, so no message of a revoked partition is merged.
//! On assignment the committed metadata (`v1 closed_through=<ms>`) tells which intervals the
//! previous owner already emitted.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TryRecvError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::FleetConfig;
use super::window::{Window, WindowSettings};
use crate::aggregate::partial;
use crate::config_error::ConfigError;
use crate::flush::{ClosedInterval, IntervalInput};
use crate::format::time::unix_millis;
use crate::logging::RateLimit;
use crate::stats::FleetCounters;

/// Messages handled per loop turn at most, so receipts and closes are never starved.
const DRAIN: usize = 10_000;
/// Offsets are committed at most this often.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

enum GroupEvent {
    Assign(Vec<i32>),
    Revoke(Vec<i32>),
}

struct GroupContext {
    topic: String,
    events: parking_lot::Mutex<Vec<GroupEvent>>,
    /// The window's latest commit positions, for the revocation callback.
    positions: parking_lot::Mutex<Vec<(i32, super::window::Position)>>,
    counters: Arc<FleetCounters>,
    errors: parking_lot::Mutex<RateLimit>,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for GroupContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(suppressed) = self.errors.lock().allow() {
            log::warn!(
                "fleet: librdkafka: {error}: {reason} ({suppressed} more since the last report)"
            );
        }
    }
}

impl ConsumerContext for GroupContext {
    /// Before librdkafka gives the partitions up: commit what the sinks have taken of them,
    /// so their next owner replays as little as possible.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            if !consumer.assignment_lost() {
                let commit = positions_list(
                    &self.topic,
                    self.positions
                        .lock()
                        .iter()
                        .filter(|(p, _)| revoked.contains(p))
                        .copied(),
                );
                if commit.count() > 0 && consumer.commit(&commit, CommitMode::Sync).is_err() {
                    self.counters
                        .commit_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            self.events.lock().push(GroupEvent::Revoke(revoked));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.events.lock().push(GroupEvent::Assign(partitions(tpl)));
        }
    }

    /// A commit fails as a whole, or partition by partition (e.g. during a rebalance).
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let result = result.and_then(|()| {
            offsets
                .elements()
                .iter()
                .map(|e| e.error())
                .find(Result::is_err)
                .unwrap_or(Ok(()))
        });
        if let Err(e) = result {
            self.counters
                .commit_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(suppressed) = self.errors.lock().allow() {
                log::warn!(
                    "fleet: offset commit failed: {e} ({suppressed} more since the last report)"
                );
            }
        }
    }
}

/// What the flusher tells the input at shutdown.
enum Control {
    /// Stop reading and closing intervals (the final flush is next).
    Quiesce,
    /// The sinks are done: commit and leave the group.
    Finish,
}

/// The running input (see [`IntervalInput`]).
pub struct FleetInput {
    control: Sender<Control>,
    thread: JoinHandle<()>,
}

impl IntervalInput for FleetInput {
    fn quiesce(&mut self) {
        let _ = self.control.send(Control::Quiesce);
    }

    /// Commits what the sinks took, leaves the group (its partitions move to the other
    /// aggregators at once) and waits. Open intervals were never emitted and their offsets
    /// are uncommitted: the new owner replays them.
    fn finish(self: Box<Self>) {
        let _ = self.control.send(Control::Finish);
        if self.thread.join().is_err() {
            log::error!("fleet: input thread panicked");
        }
    }
}

/// Joins the group and starts the input thread; closed intervals go to `closed`.
pub fn spawn(
    config: &FleetConfig,
    window: WindowSettings,
    counters: Arc<FleetCounters>,
    closed: Sender<ClosedInterval>,
) -> Result<FleetInput, ConfigError> {
    let context = GroupContext {
        topic: config.topic.clone(),
        events: parking_lot::Mutex::new(Vec::new()),
        positions: parking_lot::Mutex::new(Vec::new()),
        counters: Arc::clone(&counters),
        errors: parking_lot::Mutex::new(RateLimit::new(Duration::from_secs(10))),
    };
    let consumer: BaseConsumer<GroupContext> = config
        .client_settings(window.interval_ms)
        .create(context, "consumer")?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| ConfigError::new("fleet.topic", format!("cannot subscribe: {e}")))?;
    let (control, stop) = crossbeam_channel::bounded(2);
    let mut input = Input {
        topic: config.topic.clone(),
        bounds: window.bounds,
        window: Window::new(window, Arc::clone(&counters)),
        closed,
        receipts: crossbeam_channel::unbounded(),
        counters,
        bad: RateLimit::new(Duration::from_secs(10)),
        last_commit: Instant::now(),
    };
    let thread = thread::Builder::new()
        .name("fleet-in".into())
        .spawn(move || input.run(&consumer, &stop))
        .map_err(|e| ConfigError::new("fleet", format!("cannot start the thread: {e}")))?;
    Ok(FleetInput { control, thread })
}

type GroupConsumer = BaseConsumer<GroupContext>;

type Settled = (u64, bool);

struct Input {
    topic: String,
    bounds: crate::aggregate::Bounds,
    window: Window,
    closed: Sender<ClosedInterval>,
    /// Receipts of emitted intervals: (id, taken by every sink).
    receipts: (Sender<Settled>, Receiver<Settled>),
    counters: Arc<FleetCounters>,
    bad: RateLimit,
    last_commit: Instant,
}

fn now_ms() -> u64 {
    unix_millis(SystemTime::now())
}

impl Input {
    fn run(&mut self, consumer: &GroupConsumer, control: &Receiver<Control>) {
        log::info!(
            "fleet: reading partials from topic {} as a member of the group",
            self.topic
        );
        loop {
            match control.try_recv() {
                Err(TryRecvError::Empty) => {}
                Ok(Control::Quiesce) => {
                    self.quiesced(consumer, control);
                    break;
                }
                Ok(Control::Finish) | Err(TryRecvError::Disconnected) => break,
            }
            self.apply_events(consumer);
            for (id, taken) in self.receipts.1.try_iter() {
                self.window.settle(id, taken);
            }
            let mut stopping = false;
            for c in self.window.close_due(now_ms()) {
                if stopping {
                    // Dropped unsent: not taken, never committed.
                    continue;
                }
                let mut closed = ClosedInterval::new(c.state, c.id, self.receipts.0.clone());
                // Backpressure from the sinks: wait, but never past a shutdown request.
                loop {
                    match self.closed.send_timeout(closed, Duration::from_millis(100)) {
                        Ok(()) => break,
                        Err(SendTimeoutError::Timeout(c)) if control.is_empty() => closed = c,
                        Err(_) => {
                            stopping = true;
                            break;
                        }
                    }
                }
            }
            if stopping {
                continue;
            }
            self.share_positions(consumer);
            if self.last_commit.elapsed() >= COMMIT_EVERY {
                self.commit(consumer, CommitMode::Async);
            }
            let mut message = consumer.poll(Duration::from_millis(50));
            let mut handled = 0;
            while let Some(result) = message {
                // A rebalance served inside that poll applies before the next message.
                self.apply_events(consumer);
                match result {
                    Ok(msg) => {
                        let (p, offset) = (msg.partition(), msg.offset());
                        let now = now_ms();
                        match partial::decode(msg.payload().unwrap_or_default(), &self.bounds) {
                            Ok(envelope) => self.window.offer(p, offset, envelope, now),
                            Err(e) => {
                                self.counters
                                    .invalid
                                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                self.window.skip(p, offset, now);
                                if let Some(suppressed) = self.bad.allow() {
                                    log::warn!(
                                        "fleet: partition {p} offset {offset}: {e} \
                                         ({suppressed} more since the last report)"
                                    );
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(suppressed) = self.bad.allow() {
                            log::warn!(
                                "fleet: consumer: {e} ({suppressed} more since the last report)"
                            );
                        }
                    }
                }
                handled += 1;
                if handled >= DRAIN {
                    break;
                }
                message = consumer.poll(Duration::ZERO);
            }
        }
        for (id, taken) in self.receipts.1.try_iter() {
            self.window.settle(id, taken);
        }
        self.commit(consumer, CommitMode::Sync);
        log::info!("fleet: leaving the group");
    }

    /// At shutdown, while the final flush and the sinks finish: settle what they take.
    fn quiesced(&mut self, consumer: &GroupConsumer, control: &Receiver<Control>) {
        loop {
            match control.recv_timeout(Duration::from_millis(50)) {
                Ok(Control::Finish) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return;
                }
                Ok(Control::Quiesce) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            }
            for (id, taken) in self.receipts.1.try_iter() {
                self.window.settle(id, taken);
            }
            if self.last_commit.elapsed() >= COMMIT_EVERY {
                self.commit(consumer, CommitMode::Async);
            }
        }
    }

    /// The positions a revocation commits (inside the rebalance callback, while the
    /// partitions are still ours).
    fn share_positions(&self, consumer: &GroupConsumer) {
        *consumer.context().positions.lock() = self.window.positions();
    }

    /// Applies the rebalances `poll` reported.
    fn apply_events(&mut self, consumer: &GroupConsumer) {
        let events = std::mem::take(&mut *consumer.context().events.lock());
        for event in events {
            self.counters
                .rebalances
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match event {
                GroupEvent::Revoke(parts) => {
                    // Their positions were committed in the callback, while still ours.
                    for p in &parts {
                        self.window.revoke(*p);
                    }
                    log::info!("fleet: partitions {parts:?} revoked");
                }
                GroupEvent::Assign(parts) => {
                    let closed = self.committed(consumer, &parts);
                    let now = now_ms();
                    for p in &parts {
                        let through = closed.iter().find(|(q, _)| q == p).and_then(|c| c.1);
                        self.window.assign(*p, through, now);
                    }
                    log::info!("fleet: partitions {parts:?} assigned");
                }
            }
        }
    }

    /// The `closed_through` each partition's last commit recorded.
    fn committed(&self, consumer: &GroupConsumer, parts: &[i32]) -> Vec<(i32, Option<u64>)> {
        let mut tpl = TopicPartitionList::new();
        for p in parts {
            tpl.add_partition(&self.topic, *p);
        }
        match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.partition(), parse_metadata(e.metadata())))
                .collect(),
            Err(e) => {
                log::warn!(
                    "fleet: cannot read the committed offsets of {parts:?}: {e}; \
                     intervals emitted before the rebalance may be emitted again"
                );
                Vec::new()
            }
        }
    }

    fn commit(&mut self, consumer: &GroupConsumer, mode: CommitMode) {
        self.last_commit = Instant::now();
        let positions = self.window.commits();
        if positions.is_empty() {
            return;
        }
        let tpl = positions_list(&self.topic, positions.into_iter());
        self.counters
            .commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = consumer.commit(&tpl, mode) {
            self.counters
                .commit_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(suppressed) = self.bad.allow() {
                log::warn!(
                    "fleet: offset commit failed: {e} ({suppressed} more since the last report)"
                );
            }
        }
    }
}

/// A commit of `positions`: offsets with their `v1 closed_through=<ms>` metadata.
fn positions_list(
    topic: &str,
    positions: impl Iterator<Item = (i32, super::window::Position)>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, position) in positions {
        let mut e = tpl.add_partition(topic, p);
        if e.set_offset(Offset::Offset(position.offset)).is_err() {
            continue;
        }
        if let Some(c) = position.closed_through {
            e.set_metadata(format!("v1 closed_through={c}"));
        }
    }
    tpl
}

/// `v1 closed_through=<ms>` → the interval start.
fn parse_metadata(metadata: &str) -> Option<u64> {
    metadata
        .strip_prefix("v1 closed_through=")
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn commit_metadata_round_trips() {
        assert_eq!(
            super::parse_metadata("v1 closed_through=1700000000000"),
            Some(1_700_000_000_000)
        );
        assert_eq!(super::parse_metadata(""), None);
        assert_eq!(super::parse_metadata("v2 something"), None);
    }
}
