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

mod handler;
mod pool;
mod receiver;
mod socket;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use self::pool::SocketPool;
pub use self::receiver::spawn;
pub use self::socket::{BoundGroup, bind_group, socket_drops, socket_inode};
use crate::aggregate::{Bounds, SeriesGuard, Table};
use crate::config_error::{ConfigError, at_least, within};
use crate::parse::{Limits, Protocol};
use crate::stats::ReceiverStats;

/// Longest time an idle receiver blocks before checking for flusher requests.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How much longer than `coalesce` a receiver may pause when its batches come back small.
pub const MAX_PAUSE_FACTOR: u32 = 8;

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
