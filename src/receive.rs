//! Receive stage: UDP sockets and the receiver threads that own them.
//!
//! Each listener address gets `receivers` sockets bound to the same port with `SO_REUSEPORT`,
//! so the kernel spreads senders over them (one sender socket always lands on the same
//! receiver). Each receiver thread owns one socket, a parser and a private [`Table`]: it
//! receives with `recvmmsg` in batches, parses in place and aggregates with no lock and no
//! shared atomic.
//!
//! **Wakeups.** A blocking `recvmmsg(MSG_WAITFORONE)` returns as soon as one datagram is
//! there, so under moderate load every datagram would pay a thread wakeup. After a batch
//! that did not fill up (the socket is drained), the receiver therefore sleeps for
//! `coalesce` (default 1 ms — a few hundred datagrams, far below what the 8 MiB buffer
//! absorbs) and then takes the whole backlog in one call. A full batch loops immediately.
//!
//! **Swaps.** Between batches the receiver answers the flusher's [`Control`] messages. An
//! idle receiver wakes at least every [`POLL_INTERVAL`] (socket read timeout), so a swap is
//! always answered within that bound. Every metric is in exactly one table: swaps happen only
//! between whole datagrams.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, recvmmsg, setsockopt, sockopt};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use crate::aggregate::{Refusal, SeriesGuard, Table};
use crate::logging::RateLimit;
use crate::metric::Metric;
use crate::parse::json::JsonParser;
use crate::parse::line::LineParser;
use crate::parse::{Handler, Limits, Reject, Skip};
use crate::stats::ReceiverStats;

/// Longest time an idle receiver blocks before checking for flusher requests.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Upper bound on batches drained at shutdown, so a sender flooding the port cannot keep a
/// stopping daemon alive.
const MAX_DRAIN_BATCHES: usize = 10_000;

/// The wire format a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Etsy/DogStatsD line protocol.
    Statsd,
    /// pystatsd JSON objects.
    Pystatsd,
}

impl Protocol {
    /// The listener's name (config section, `listener` tag of internal stats).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Statsd => "statsd",
            Protocol::Pystatsd => "pystatsd",
        }
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
    /// Samples kept per timer series per interval.
    pub max_timer_samples: usize,
    /// The cardinality guard, shared by every receiver of the server.
    pub guard: Arc<SeriesGuard>,
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

/// A bound group of sockets sharing one address.
pub struct BoundGroup {
    pub sockets: Vec<UdpSocket>,
    /// The actual address (resolves port 0).
    pub local_addr: SocketAddr,
    /// Effective receive buffer per socket, as reported by the kernel.
    pub rcvbuf_bytes: usize,
}

/// Binds `count` SO_REUSEPORT sockets to `addr`. With port 0 the first socket picks a free
/// port and the others join it.
pub fn bind_group(addr: SocketAddr, count: usize, rcvbuf_bytes: usize) -> io::Result<BoundGroup> {
    let mut sockets = Vec::with_capacity(count);
    let mut local_addr = addr;
    let mut effective = 0;
    for _ in 0..count {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM,
            Some(SockProtocol::UDP),
        )?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        effective = set_receive_buffer(&socket, rcvbuf_bytes)?;
        socket.bind(&local_addr.into())?;
        socket.set_read_timeout(Some(POLL_INTERVAL))?;
        let socket: UdpSocket = socket.into();
        local_addr = socket.local_addr()?;
        sockets.push(socket);
    }
    if effective < rcvbuf_bytes {
        log::warn!(
            "{local_addr}: receive buffer is {effective} bytes, {rcvbuf_bytes} requested; the \
             kernel caps it at net.core.rmem_max: raise it with `sysctl -w net.core.rmem_max={rcvbuf_bytes}` \
             or bursts will be dropped by the kernel"
        );
    }
    Ok(BoundGroup {
        sockets,
        local_addr,
        rcvbuf_bytes: effective,
    })
}

/// Sets SO_RCVBUF, falling back to SO_RCVBUFFORCE (allowed with CAP_NET_ADMIN) when the
/// kernel clamps it. Returns the effective size (Linux reports twice the requested value
/// to account for bookkeeping; we report the usable half).
fn set_receive_buffer(socket: &Socket, bytes: usize) -> io::Result<usize> {
    socket.set_recv_buffer_size(bytes)?;
    let mut effective = socket.recv_buffer_size()? / 2;
    if effective < bytes {
        let forced = bytes.min(i32::MAX as usize);
        if setsockopt(socket, sockopt::RcvBufForce, &forced).is_ok() {
            effective = socket.recv_buffer_size()? / 2;
        }
    }
    Ok(effective)
}

/// Starts a receiver thread on `socket`.
pub fn spawn(
    id: usize,
    socket: UdpSocket,
    settings: ReceiverSettings,
    control: Receiver<Control>,
    harvests: Sender<Harvest>,
) -> io::Result<JoinHandle<()>> {
    let name = format!("recv-{}-{id}", settings.protocol.name());
    thread::Builder::new().name(name).spawn(move || {
        let mut receiver = ReceiverThread::new(socket, settings);
        receiver.run(&control, &harvests);
    })
}

enum Parser {
    Line(LineParser),
    Json(JsonParser),
}

struct ReceiverThread {
    socket: UdpSocket,
    settings: ReceiverSettings,
    parser: Parser,
    state: State,
    buffer: Vec<u8>,
    /// (length, truncated) of each datagram of the last batch.
    lengths: Vec<(usize, bool)>,
    headers: MultiHeaders<()>,
    error_log: RateLimit,
}

/// The part a parser's [`Handler`] writes to.
struct State {
    table: Table,
    stats: ReceiverStats,
    /// Monotonic time of the current batch, orders gauge sets across receivers.
    stamp: u64,
    epoch: Instant,
    protocol: Protocol,
    reject_log: RateLimit,
    guard: Arc<SeriesGuard>,
    /// Intervals (harvests) so far: the guard's per-name counts restart with each.
    generation: u32,
    refusal_log: RateLimit,
}

impl Handler for State {
    #[inline]
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        match self
            .table
            .apply_guarded(metric, self.stamp, &self.guard, self.generation)
        {
            Ok(()) => self.stats.metrics_received += 1,
            Err(refusal) => self.refused(refusal, metric),
        }
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
    #[cold]
    fn refused(&mut self, refusal: Refusal, metric: &Metric<'_, '_>) {
        let limit = match refusal {
            Refusal::Series => {
                self.stats.series_rejected += 1;
                "limits.max_series"
            }
            Refusal::TagSets => {
                self.stats.tag_sets_rejected += 1;
                "limits.max_tag_sets_per_name"
            }
        };
        if let Some(suppressed) = self.refusal_log.allow() {
            log::warn!(
                "{}: new series of {:?} rejected: {limit} reached for this interval; known \
                 series keep updating ({suppressed} more rejected since the last report)",
                self.protocol.name(),
                metric.series.name,
            );
        }
    }
}

impl ReceiverThread {
    fn new(socket: UdpSocket, settings: ReceiverSettings) -> ReceiverThread {
        let parser = match settings.protocol {
            Protocol::Statsd => {
                Parser::Line(LineParser::new(settings.sanitize_names).with_limits(settings.limits))
            }
            Protocol::Pystatsd => {
                Parser::Json(JsonParser::new(settings.sanitize_names).with_limits(settings.limits))
            }
        };
        ReceiverThread {
            buffer: vec![0; settings.batch_size * settings.max_datagram_bytes],
            lengths: Vec::with_capacity(settings.batch_size),
            headers: MultiHeaders::preallocate(settings.batch_size, None),
            state: State {
                table: Table::with_capacity(0, settings.max_timer_samples),
                stats: ReceiverStats::default(),
                stamp: 0,
                epoch: Instant::now(),
                protocol: settings.protocol,
                reject_log: RateLimit::new(Duration::from_secs(10)),
                guard: Arc::clone(&settings.guard),
                generation: 0,
                refusal_log: RateLimit::new(Duration::from_secs(10)),
            },
            error_log: RateLimit::new(Duration::from_secs(10)),
            socket,
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
            let received = self.receive_batch(MsgFlags::MSG_WAITFORONE);
            if received > 0
                && received < self.settings.batch_size
                && !self.settings.coalesce.is_zero()
            {
                thread::sleep(self.settings.coalesce);
            }
        }
    }

    /// Takes the table and counters, leaving empty ones sized like the last interval.
    fn harvest(&mut self) -> Harvest {
        let state = &mut self.state;
        let capacity_hint = state.table.len();
        let fresh = Table::with_capacity(capacity_hint, self.settings.max_timer_samples);
        let table = std::mem::replace(&mut state.table, fresh);
        state.generation = state.generation.wrapping_add(1);
        let mut stats = std::mem::take(&mut state.stats);
        stats.timer_samples_reservoir = table.reservoir_samples();
        Harvest {
            protocol: self.settings.protocol,
            table,
            stats,
        }
    }

    /// Reads what the socket holds right now, without waiting.
    fn drain(&mut self) {
        for _ in 0..MAX_DRAIN_BATCHES {
            if self.receive_batch(MsgFlags::MSG_DONTWAIT) == 0 {
                break;
            }
        }
    }

    /// One `recvmmsg` call and the processing of what it returned; returns the number of
    /// datagrams.
    fn receive_batch(&mut self, flags: MsgFlags) -> usize {
        let max = self.settings.max_datagram_bytes;
        self.lengths.clear();
        {
            let mut slices: Vec<[io::IoSliceMut<'_>; 1]> = self
                .buffer
                .chunks_mut(max)
                .map(|chunk| [io::IoSliceMut::new(chunk)])
                .collect();
            match recvmmsg(
                self.socket.as_raw_fd(),
                &mut self.headers,
                slices.iter_mut(),
                flags,
                None,
            ) {
                Ok(results) => {
                    for msg in results {
                        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
                        self.lengths.push((msg.bytes, truncated));
                    }
                }
                Err(Errno::EAGAIN | Errno::EINTR) => return 0,
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
                    return 0;
                }
            }
        }
        let count = self.lengths.len();
        if count == 0 {
            return 0;
        }
        let stats = &mut self.state.stats;
        stats.recv_batches += 1;
        stats.packets_received += count as u64;
        self.state.stamp = self.state.epoch.elapsed().as_nanos() as u64;
        for (i, chunk) in self.buffer.chunks_mut(max).take(count).enumerate() {
            let (mut len, truncated) = self.lengths[i];
            self.state.stats.bytes_received += len as u64;
            if truncated {
                // Keep the complete lines; the cut-off last line would be corrupt.
                self.state.stats.truncated_datagrams += 1;
                len = chunk[..len].iter().rposition(|&b| b == b'\n').unwrap_or(0);
            }
            let datagram = &mut chunk[..len];
            match &mut self.parser {
                Parser::Line(p) => p.parse_datagram(datagram, &mut self.state),
                Parser::Json(p) => p.parse_datagram(datagram, &mut self.state),
            }
        }
        count
    }
}
