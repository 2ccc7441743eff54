//! A receiver thread: batch-receives from its pool's sockets, parses in place into its
//! handler, pauses to coalesce wakeups, and answers the flusher between batches.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, recvmmsg};

use super::handler::State;
use super::pool::SocketPool;
use super::{Control, Harvest, MAX_PAUSE_FACTOR, POLL_INTERVAL, ReceiverSettings};
use crate::logging::RateLimit;
use crate::parse::Parser;

/// How long a receiver that found every socket with traffic held by other receivers waits
/// before it looks again: about one `recvmmsg` call of theirs.
const HELD_SOCKET_WAIT: Duration = Duration::from_micros(50);

/// Padding between the datagram slots of a receive buffer. Slots `max_datagram_bytes` apart
/// (64 KiB by default) would all start in the same few cache sets, so the kernel's copy of a
/// batch would evict its own beginning before the parser reads it; an odd number of cache
/// lines more puts every slot of a batch in different sets.
const SLOT_PADDING: usize = 5 * 64;

/// Upper bound on batches drained at shutdown, so a sender flooding the port cannot keep a
/// stopping daemon alive.
const MAX_DRAIN_BATCHES: usize = 10_000;

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

pub(super) struct ReceiverThread {
    pool: Arc<SocketPool>,
    /// The socket it reads first and waits on; it reads the others only while backlogged.
    home: usize,
    settings: ReceiverSettings,
    parser: Parser,
    pub(super) state: State,
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

impl ReceiverThread {
    pub(super) fn new(
        pool: Arc<SocketPool>,
        home: usize,
        settings: ReceiverSettings,
    ) -> ReceiverThread {
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
            state: State::new(&settings),
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
    pub(super) fn harvest(&mut self) -> Harvest {
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
    pub(super) fn pass(&mut self) -> (usize, bool) {
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
    pub(super) fn receive_batch(&mut self, socket: usize, flags: MsgFlags) -> Option<usize> {
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
pub(super) fn next_pause(
    pause: Duration,
    collected: usize,
    target: usize,
    base: Duration,
) -> Duration {
    let aimed = pause.mul_f64(target.max(1) as f64 / collected.max(1) as f64);
    ((pause + aimed) / 2).clamp(base, base * MAX_PAUSE_FACTOR)
}
