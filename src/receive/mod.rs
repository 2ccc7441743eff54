//! Receive stage: UDP sockets and the receiver threads that own them.
//!
//! Each listener address gets `receivers` sockets bound to the same port with `SO_REUSEPORT`,
//! so the kernel spreads senders over them (one sender socket always lands on the same
//! socket). Each receiver thread has a parser and a private [`Table`]: it receives with
//! `recvmmsg` in batches, parses in place and aggregates with no lock and no shared atomic
//! per metric.
//!
//! **Shared sockets.** The kernel spreads senders by a hash of their addresses, so a few busy
//! senders can all land on one socket: with 4 sender sockets and 2, measured at the sender
//! max, a 4:0 spread left one receiver idle and lost half the traffic, a 2:2 one lost a
//! tenth. So the sockets of an address are a [`SocketPool`] its receivers share:
//! - each receiver has a home socket, which it reads first and waits on;
//! - a socket whose last two batches came back full is *backlogged*, and every receiver then
//!   reads it too, one batch at a time: it takes the socket, reads a batch, hands it back and
//!   only then parses, so another receiver reads the next batch meanwhile;
//! - at moderate rates nothing is backlogged, so each receiver keeps to its own socket and its
//!   table to its own senders' keys;
//! - a socket is read by one receiver at a time, and a batch's gauge stamp is taken before
//!   its socket is handed back: the next batch of that socket is stamped later by whichever
//!   receiver reads it, so "last set wins" still follows each sender's order.
//!
//! **Wakeups.** A receiver reads its sockets without waiting; when they were empty it blocks
//! on its home socket with `recvmmsg(MSG_WAITFORONE)`, which returns as soon as one datagram
//! is there, so under moderate load every datagram would pay a thread wakeup. After batches
//! that did not fill up (the sockets are drained), the receiver therefore pauses and then
//! takes the whole backlog; a full batch loops immediately. The pause adapts
//! to the traffic: it aims at one full batch per wakeup, from what the last pause
//! collected, between `coalesce` (default 1 ms) and [`MAX_PAUSE_FACTOR`] times that, and
//! never longer than it takes to fill a quarter of the socket's receive buffer. A wakeup
//! costs a few microseconds of CPU (more in a VM), so at moderate rates a fixed 1 ms pause
//! spent more on wakeups than on parsing 20-metric datagrams, and every extra receiver
//! multiplied it: each receiver of a group sees only its share of the traffic.
//!
//! **Rounds.** Untagged metrics are applied to the table a [`Round`] at a time, so that
//! their lookups' cache misses overlap (see [`crate::aggregate::round`]); a batch applies its
//! last round before it returns, and any other metric applies the round before it.
//!
//! **Swaps.** Between batches the receiver answers the flusher's [`Control`] messages. An
//! idle receiver wakes at least every [`POLL_INTERVAL`] (socket read timeout), so a swap is
//! always answered within that bound. Every metric is in exactly one table: swaps happen only
//! between whole datagrams.

mod socket;

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, recvmmsg};
use serde::{Deserialize, Serialize};

pub use self::socket::{BoundGroup, bind_group, socket_drops, socket_inode};
use crate::aggregate::round::Round;
use crate::aggregate::{Bounds, Refusal, SeriesGuard, Table};
use crate::config_error::{ConfigError, at_least, within};
use crate::logging::RateLimit;
use crate::metric::Metric;
use crate::parse::{Handler, Limits, Parser, Protocol, Reject, Skip};
use crate::stats::ReceiverStats;

/// Longest time an idle receiver blocks before checking for flusher requests.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a receiver that found every socket with traffic held by other receivers waits
/// before it looks again: about one `recvmmsg` call of theirs.
const HELD_SOCKET_WAIT: Duration = Duration::from_micros(50);

/// How much longer than `coalesce` a receiver may pause when its batches come back small.
pub const MAX_PAUSE_FACTOR: u32 = 8;

/// Padding between the datagram slots of a receive buffer. Slots `max_datagram_bytes` apart
/// (64 KiB by default) would all start in the same few cache sets, so the kernel's copy of a
/// batch would evict its own beginning before the parser reads it; an odd number of cache
/// lines more puts every slot of a batch in different sets.
const SLOT_PADDING: usize = 5 * 64;

/// Upper bound on batches drained at shutdown, so a sender flooding the port cannot keep a
/// stopping daemon alive.
const MAX_DRAIN_BATCHES: usize = 10_000;

/// One UDP listener (`[statsd]` or `[pystatsd]`). Its flags (`--statsd-listen`,
/// `--no-pystatsd`, `--receivers`, …) are in [`crate::cli`]: one type serves both sections.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    pub enabled: bool,
    /// Addresses to bind, IPv4 or IPv6 (`"[::1]:8125"`).
    pub listen: Vec<SocketAddr>,
    /// Receiver threads (one socket each) per address; 0 means one per CPU core.
    pub receivers: usize,
}

impl ListenerConfig {
    /// The default section of `protocol`'s listener.
    pub fn new(protocol: Protocol) -> ListenerConfig {
        ListenerConfig {
            enabled: true,
            listen: vec![protocol.default_listen()],
            receivers: 0,
        }
    }

    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.enabled && self.listen.is_empty() {
            return Err(ConfigError::new(
                format!("{section}.listen"),
                "no address to listen on (set `enabled = false` to disable the listener)",
            ));
        }
        within(
            &format!("{section}.receivers"),
            self.receivers as u64,
            0..=1024,
        )
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            enabled: true,
            listen: Vec::new(),
            receivers: 0,
        }
    }
}

/// `[receive]`: how receivers read their sockets.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiveConfig {
    /// Datagrams per recvmmsg call (receive.batch_size).
    #[arg(
        id = "receive.batch_size",
        long = "batch-size",
        value_name = "N",
        required = false
    )]
    pub batch_size: usize,
    /// Largest datagram received whole; larger ones are truncated and counted
    /// (receive.max_datagram_bytes).
    #[arg(
        id = "receive.max_datagram_bytes",
        long = "max-datagram-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub max_datagram_bytes: usize,
    /// SO_RCVBUF per socket (receive.rcvbuf_bytes).
    #[arg(
        id = "receive.rcvbuf_bytes",
        long = "rcvbuf-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub rcvbuf_bytes: usize,
    /// Pause after draining a socket, to receive in larger batches (receive.coalesce_us).
    #[arg(
        id = "receive.coalesce_us",
        long = "coalesce-us",
        value_name = "MICROSECONDS",
        required = false
    )]
    pub coalesce_us: u64,
}

impl Default for ReceiveConfig {
    fn default() -> Self {
        ReceiveConfig {
            batch_size: 64,
            max_datagram_bytes: 65536,
            rcvbuf_bytes: 8 << 20,
            coalesce_us: 1000,
        }
    }
}

impl ReceiveConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within("receive.batch_size", self.batch_size as u64, 1..=1024)?;
        within(
            "receive.max_datagram_bytes",
            self.max_datagram_bytes as u64,
            512..=65536,
        )?;
        at_least("receive.rcvbuf_bytes", self.rcvbuf_bytes as u64, 4096)?;
        within("receive.coalesce_us", self.coalesce_us, 0..=100_000)
    }
}

/// What a receiver needs besides its socket.
#[derive(Clone, Debug)]
pub struct ReceiverSettings {
    pub protocol: Protocol,
    pub batch_size: usize,
    pub max_datagram_bytes: usize,
    pub coalesce: Duration,
    pub sanitize_names: bool,
    pub limits: Limits,
    /// When timers and sets switch to their sketches.
    pub bounds: Bounds,
    /// The cardinality guard, shared by every receiver of the server.
    pub guard: Arc<SeriesGuard>,
    /// The one clock every receiver stamps gauge sets with, so that "last set wins" compares
    /// stamps of different receivers correctly.
    pub epoch: Instant,
}

/// Requests from the flusher.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Hand over the table and counters, start a fresh interval.
    Swap,
    /// Stop receiving, drain what the socket already holds, hand over everything, exit.
    Final,
}

/// A receiver's answer to [`Control`]: everything aggregated since the last swap.
#[derive(Debug)]
pub struct Harvest {
    pub protocol: Protocol,
    pub table: Table,
    pub stats: ReceiverStats,
}

/// The sockets of one listener address, shared by its receivers (see the module docs).
pub struct SocketPool {
    sockets: Vec<UdpSocket>,
    /// Per socket: a receiver is reading it.
    busy: Vec<AtomicBool>,
    /// Per socket: its last batch was full.
    last_full: Vec<AtomicBool>,
    /// Per socket: its last two batches were full, so it holds more than its reader keeps
    /// up with. One full batch is not enough: a paused receiver aims at one per wakeup.
    backlogged: Vec<AtomicBool>,
}

impl SocketPool {
    pub fn new(sockets: Vec<UdpSocket>) -> Arc<SocketPool> {
        let flags = || sockets.iter().map(|_| AtomicBool::new(false)).collect();
        Arc::new(SocketPool {
            busy: flags(),
            last_full: flags(),
            backlogged: flags(),
            sockets,
        })
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Socket `i`, if no receiver is reading it: this receiver's until [`SocketPool::give`].
    fn take(&self, i: usize) -> bool {
        self.busy[i]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Hands socket `i` back; `full` when the batch just read from it filled up. Release:
    /// whoever takes it next sees everything done before, the batch's stamp included.
    fn give(&self, i: usize, full: bool) {
        let was_full = self.last_full[i].swap(full, Ordering::Relaxed);
        self.backlogged[i].store(full && was_full, Ordering::Relaxed);
        self.busy[i].store(false, Ordering::Release);
    }
}

/// Starts a receiver thread reading `pool`'s sockets, socket `home` first.
pub fn spawn(
    id: usize,
    home: usize,
    pool: Arc<SocketPool>,
    settings: ReceiverSettings,
    control: Receiver<Control>,
    harvests: Sender<Harvest>,
) -> io::Result<JoinHandle<()>> {
    let name = format!("recv-{}-{id}", settings.protocol.name());
    thread::Builder::new().name(name).spawn(move || {
        let mut receiver = ReceiverThread::new(pool, home, settings);
        receiver.run(&control, &harvests);
    })
}

struct ReceiverThread {
    pool: Arc<SocketPool>,
    /// The socket it reads first and waits on; it reads the others only while backlogged.
    home: usize,
    settings: ReceiverSettings,
    parser: Parser,
    state: State,
    buffer: Vec<u8>,
    /// (length, truncated) of each datagram of the last batch.
    lengths: Vec<(usize, bool)>,
    headers: MultiHeaders<()>,
    error_log: RateLimit,
    /// The current pause after a partial batch (see the module docs).
    pause: Duration,
    /// Datagrams received since the last pause ended.
    since_pause: usize,
    /// About how many datagrams a socket's receive buffer holds.
    buffer_datagrams: usize,
}

/// The part a parser's [`Handler`] writes to.
struct State {
    table: Table,
    stats: ReceiverStats,
    /// Nanoseconds since the server's epoch at the current batch: orders gauge sets across
    /// receivers.
    stamp: u64,
    epoch: Instant,
    protocol: Protocol,
    reject_log: RateLimit,
    guard: Arc<SeriesGuard>,
    /// Intervals (harvests) so far: the guard's per-name counts restart with each.
    generation: u32,
    /// Untagged metrics waiting to be applied together (see the module docs).
    round: Round,
    refusal_log: RateLimit,
}

impl Handler for State {
    #[inline]
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        if self.round.defer(metric) {
            if self.round.is_full() {
                self.apply_round();
            }
            return;
        }
        self.apply_round();
        let outcome = self
            .table
            .apply_guarded(metric, self.stamp, &self.guard, self.generation);
        State::count(
            &mut self.stats,
            &mut self.refusal_log,
            self.protocol,
            metric,
            outcome,
        );
    }

    fn reject(&mut self, reason: Reject, input: &[u8]) {
        self.stats.bad_lines[reason.index()] += 1;
        if let Some(suppressed) = self.reject_log.allow() {
            let excerpt = String::from_utf8_lossy(&input[..input.len().min(200)]);
            log::warn!(
                "{}: rejected input ({}): {excerpt:?} ({suppressed} more rejected since the last report)",
                self.protocol.name(),
                reason.as_str(),
            );
        }
    }

    fn skip(&mut self, kind: Skip) {
        match kind {
            Skip::Event => self.stats.events_skipped += 1,
            Skip::ServiceCheck => self.stats.service_checks_skipped += 1,
        }
    }
}

impl State {
    /// Applies the waiting round, counting what it applied and what the guard refused.
    fn apply_round(&mut self) {
        let (guard, generation) = (&self.guard, self.generation);
        let (stats, log, protocol) = (&mut self.stats, &mut self.refusal_log, self.protocol);
        self.round.apply(
            &mut self.table,
            self.stamp,
            |series| guard.admit_series(series, generation),
            |metric, outcome| State::count(stats, log, protocol, metric, outcome),
        );
    }

    /// Counts a metric the table took, or one the cardinality guard refused (and logs
    /// that, rate-limited). Fields rather than `self`: a round's callback borrows them
    /// while the round borrows the table.
    #[inline]
    fn count(
        stats: &mut ReceiverStats,
        log: &mut RateLimit,
        protocol: Protocol,
        metric: &Metric<'_, '_>,
        outcome: Result<(), Refusal>,
    ) {
        match outcome {
            Ok(()) => stats.metrics_received += 1,
            Err(refusal) => State::refused(stats, log, protocol, refusal, metric),
        }
    }

    #[cold]
    fn refused(
        stats: &mut ReceiverStats,
        log: &mut RateLimit,
        protocol: Protocol,
        refusal: Refusal,
        metric: &Metric<'_, '_>,
    ) {
        let limit = match refusal {
            Refusal::Series => {
                stats.series_rejected += 1;
                "limits.max_series"
            }
            Refusal::TagSets => {
                stats.tag_sets_rejected += 1;
                "limits.max_tag_sets_per_name"
            }
        };
        if let Some(suppressed) = log.allow() {
            log::warn!(
                "{}: new series of {:?} rejected: {limit} reached for this interval; known \
                 series keep updating ({suppressed} more rejected since the last report)",
                protocol.name(),
                metric.series.name,
            );
        }
    }
}

impl ReceiverThread {
    fn new(pool: Arc<SocketPool>, home: usize, settings: ReceiverSettings) -> ReceiverThread {
        let parser = settings
            .protocol
            .parser(settings.sanitize_names, settings.limits);
        // Linux reports (and charges datagrams against) twice the size set; a datagram costs
        // its payload plus about 1 KiB of bookkeeping, and ours are at most ~1.5 KiB.
        let buffer_bytes = pool
            .sockets
            .first()
            .and_then(|s| socket2::SockRef::from(s).recv_buffer_size().ok())
            .unwrap_or(0);
        ReceiverThread {
            buffer: vec![0; settings.batch_size * (settings.max_datagram_bytes + SLOT_PADDING)],
            pause: settings.coalesce,
            since_pause: 0,
            buffer_datagrams: buffer_bytes / 2560,
            lengths: Vec::with_capacity(settings.batch_size),
            headers: MultiHeaders::preallocate(settings.batch_size, None),
            state: State {
                table: Table::with_capacity(0, settings.bounds),
                stats: ReceiverStats::default(),
                stamp: 0,
                epoch: settings.epoch,
                protocol: settings.protocol,
                reject_log: RateLimit::new(Duration::from_secs(10)),
                guard: Arc::clone(&settings.guard),
                generation: 0,
                round: Round::new(),
                refusal_log: RateLimit::new(Duration::from_secs(10)),
            },
            error_log: RateLimit::new(Duration::from_secs(10)),
            pool,
            home,
            settings,
            parser,
        }
    }

    fn run(&mut self, control: &Receiver<Control>, harvests: &Sender<Harvest>) {
        loop {
            match control.try_recv() {
                Ok(Control::Swap) => {
                    if harvests.send(self.harvest()).is_err() {
                        return;
                    }
                }
                Ok(Control::Final) | Err(TryRecvError::Disconnected) => {
                    self.drain();
                    let _ = harvests.send(self.harvest());
                    return;
                }
                Err(TryRecvError::Empty) => {}
            }
            let (mut received, mut full) = self.pass();
            if received == 0 && !full {
                (received, full) = self.wait_for_traffic();
            }
            self.since_pause += received;
            if received > 0 && !full && !self.settings.coalesce.is_zero() {
                self.pause = next_pause(
                    self.pause,
                    self.since_pause,
                    self.settings.batch_size.min(self.buffer_datagrams / 4),
                    self.settings.coalesce,
                );
                thread::sleep(self.pause);
                self.since_pause = 0;
            }
        }
    }

    /// Takes the table and counters, leaving empty ones sized like the last interval.
    fn harvest(&mut self) -> Harvest {
        let state = &mut self.state;
        debug_assert!(state.round.is_empty(), "every batch applies its last round");
        let fresh = state.table.sized_like();
        let mut table = std::mem::replace(&mut state.table, fresh);
        state.generation = state.generation.wrapping_add(1);
        let mut stats = std::mem::take(&mut state.stats);
        stats.samples_sketched = table.sketched();
        Harvest {
            protocol: self.settings.protocol,
            table,
            stats,
        }
    }

    /// One batch from its home socket and from every other one that is backlogged, without
    /// waiting: (datagrams, whether a socket may hold more). At moderate rates a receiver
    /// thus reads its own socket only, as its table stays warm for its own senders' keys.
    fn pass(&mut self) -> (usize, bool) {
        let (mut received, mut more) = (0, false);
        let count = self.pool.len();
        for k in 0..count {
            let i = (self.home + k) % count;
            if k > 0 && !self.pool.backlogged[i].load(Ordering::Relaxed) {
                continue;
            }
            match self.receive_batch(i, MsgFlags::MSG_DONTWAIT) {
                Some(n) => {
                    received += n;
                    more |= n == self.settings.batch_size;
                }
                // Another receiver is in the middle of a read of it: it has traffic, so come
                // back shortly instead of blocking or pausing.
                None => more = true,
            }
        }
        if received == 0 && more {
            thread::sleep(HELD_SOCKET_WAIT);
        }
        (received, more)
    }

    /// Its socket was empty and no other backlogged: block on its own until a datagram comes
    /// (or the read timeout, [`POLL_INTERVAL`], passes).
    fn wait_for_traffic(&mut self) -> (usize, bool) {
        match self.receive_batch(self.home, MsgFlags::MSG_WAITFORONE) {
            Some(n) => (n, n == self.settings.batch_size),
            None => (0, true),
        }
    }

    /// Reads what the sockets hold right now, without waiting. One that another receiver is
    /// reading is drained by that one.
    fn drain(&mut self) {
        let mut batches = 0;
        for i in 0..self.pool.len() {
            while batches < MAX_DRAIN_BATCHES
                && self.receive_batch(i, MsgFlags::MSG_DONTWAIT).unwrap_or(0) > 0
            {
                batches += 1;
            }
        }
    }

    /// One `recvmmsg` call on `socket` and the processing of what it returned; returns the
    /// number of datagrams, or `None` when another receiver is reading that socket.
    fn receive_batch(&mut self, socket: usize, flags: MsgFlags) -> Option<usize> {
        if !self.pool.take(socket) {
            return None;
        }
        let max = self.settings.max_datagram_bytes;
        let stride = max + SLOT_PADDING;
        self.lengths.clear();
        let received = {
            let mut slices: Vec<[io::IoSliceMut<'_>; 1]> = self
                .buffer
                .chunks_mut(stride)
                .map(|chunk| [io::IoSliceMut::new(&mut chunk[..max])])
                .collect();
            recvmmsg(
                self.pool.sockets[socket].as_raw_fd(),
                &mut self.headers,
                slices.iter_mut(),
                flags,
                None,
            )
            .map(|results| {
                for msg in results {
                    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
                    self.lengths.push((msg.bytes, truncated));
                }
            })
        };
        // Stamped before the socket is given back: its next batch, whichever receiver reads
        // it, is stamped later (see the module docs). An empty read has nothing to stamp.
        if !self.lengths.is_empty() {
            self.state.stamp = self.state.epoch.elapsed().as_nanos() as u64;
        }
        self.pool
            .give(socket, self.lengths.len() == self.settings.batch_size);
        match received {
            Ok(()) => {}
            Err(Errno::EAGAIN | Errno::EINTR) => return Some(0),
            Err(err) => {
                self.state.stats.recv_errors += 1;
                if let Some(suppressed) = self.error_log.allow() {
                    log::error!(
                        "{}: receive failed: {err} ({suppressed} more since the last report)",
                        self.settings.protocol.name()
                    );
                }
                // Avoid spinning on a persistent error.
                thread::sleep(POLL_INTERVAL);
                return Some(0);
            }
        }
        let count = self.lengths.len();
        if count == 0 {
            return Some(0);
        }
        let stats = &mut self.state.stats;
        stats.recv_batches += 1;
        stats.packets_received += count as u64;
        for (i, chunk) in self.buffer.chunks_mut(stride).take(count).enumerate() {
            let (mut len, truncated) = self.lengths[i];
            self.state.stats.bytes_received += len as u64;
            if truncated {
                // Keep the complete lines; the cut-off last line would be corrupt.
                self.state.stats.truncated_datagrams += 1;
                len = chunk[..len].iter().rposition(|&b| b == b'\n').unwrap_or(0);
            }
            let datagram = &mut chunk[..len];
            self.parser.parse_datagram(datagram, &mut self.state);
        }
        self.state.apply_round();
        Some(count)
    }
}

/// The pause after the next partial batch, given the last `pause` and the datagrams it
/// collected: aimed at `target` datagrams per wakeup at the rate seen, moving halfway there
/// (a burst or a lull does not swing it at once), within `base..=base * MAX_PAUSE_FACTOR`.
fn next_pause(pause: Duration, collected: usize, target: usize, base: Duration) -> Duration {
    let aimed = pause.mul_f64(target.max(1) as f64 / collected.max(1) as f64);
    ((pause + aimed) / 2).clamp(base, base * MAX_PAUSE_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{AggregateLimits, Value};

    #[test]
    fn the_pause_grows_while_batches_come_back_small_and_shrinks_under_load() {
        let base = Duration::from_millis(1);
        let mut pause = base;
        for _ in 0..20 {
            pause = next_pause(pause, 4, 64, base);
        }
        assert_eq!(pause, base * MAX_PAUSE_FACTOR);
        pause = next_pause(pause, 640, 64, base);
        assert!(pause < base * 5, "{pause:?}");
        for _ in 0..20 {
            pause = next_pause(pause, 640, 64, base);
        }
        assert_eq!(pause, base);
        // One full batch per pause is where it settles.
        assert_eq!(next_pause(base * 3, 64, 64, base), base * 3);
    }
    use crate::metric::{MetricType, SeriesKey};

    fn settings(batch_size: usize) -> ReceiverSettings {
        ReceiverSettings {
            protocol: Protocol::Statsd,
            batch_size,
            max_datagram_bytes: 1024,
            coalesce: Duration::ZERO,
            sanitize_names: true,
            limits: Limits::default(),
            bounds: Bounds::default(),
            guard: Arc::new(SeriesGuard::new(&AggregateLimits::default())),
            epoch: Instant::now(),
        }
    }

    #[test]
    fn a_backlogged_socket_is_shared_and_keeps_its_senders_order() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 2, 1 << 20).unwrap();
        let addr = group.local_addr;
        let pool = SocketPool::new(group.sockets);
        // One epoch for both, as in a server: stamps of different receivers are compared.
        let settings = settings(4);
        let mut a = ReceiverThread::new(Arc::clone(&pool), 0, settings.clone());
        let mut b = ReceiverThread::new(Arc::clone(&pool), 1, settings);
        // One sender socket: the kernel puts all of it on one of the two sockets.
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 1..=12 {
            sender
                .send_to(format!("c:1|c\ng:{i}|g").as_bytes(), addr)
                .unwrap();
        }
        // Whichever socket it is, its owner's first two batches (of 4) fill up, so the other
        // receiver reads the third; after that the socket is empty.
        let mut got = [0, 0];
        for _ in 0..3 {
            got[0] += a.pass().0;
            got[1] += b.pass().0;
        }
        got.sort();
        assert_eq!(got, [4, 8]);
        assert_eq!((a.pass(), b.pass()), ((0, false), (0, false)));
        let counter = SeriesKey::new("c", MetricType::Counter, Vec::<(&str, &str)>::new());
        let gauge = SeriesKey::new("g", MetricType::Gauge, Vec::<(&str, &str)>::new());
        // The later batch carries the later stamp: the sender's last gauge wins the merge,
        // in either direction.
        for (mut into, from) in [(a.state.table.clone(), &b), (b.state.table.clone(), &a)] {
            into.merge(from.state.table.clone());
            assert!(matches!(into.get(&counter), Some(Value::Counter(c)) if *c == 12.0));
            let Some(Value::Gauge(g)) = into.get(&gauge) else {
                panic!("no gauge")
            };
            assert_eq!(g.value, 12.0);
        }
        // Every socket is handed back, and none is backlogged any more.
        for i in 0..2 {
            assert!(!pool.busy[i].load(Ordering::Relaxed));
            assert!(!pool.backlogged[i].load(Ordering::Relaxed));
        }
    }

    #[test]
    fn gauge_stamps_count_from_the_servers_epoch_not_the_threads_start() {
        let group = bind_group("127.0.0.1:0".parse().unwrap(), 1, 1 << 20).unwrap();
        let addr = group.local_addr;
        let an_hour = Duration::from_secs(3600);
        let settings = ReceiverSettings {
            // A receiver started an hour after the server (the epoch) must stamp later than
            // one started with it: stamps from different receivers are compared.
            epoch: Instant::now() - an_hour,
            ..settings(4)
        };
        let mut receiver = ReceiverThread::new(SocketPool::new(group.sockets), 0, settings);
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(b"g:1|g", addr)
            .unwrap();
        assert_eq!(receiver.receive_batch(0, MsgFlags::empty()), Some(1));
        let key = SeriesKey::new("g", MetricType::Gauge, Vec::<(&str, &str)>::new());
        let Some(Value::Gauge(g)) = receiver.state.table.get(&key) else {
            panic!("no gauge")
        };
        assert!(g.stamp >= an_hour.as_nanos() as u64, "stamp {}", g.stamp);
    }
}
