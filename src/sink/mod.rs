//! Sinks: where flushes go.
//!
//! A sink is a folder that owns its config type, its validation, its `build` function and its
//! flags ([`SinkSpec`]), and registers itself with one line in [`registry`]. The rest of the
//! crate knows only "type name → builder".
//!
//! - This file: the [`Sink`] trait, what a flush hands a sink ([`Flushed`]) and how a sink
//!   type is configured and built ([`SinkSpec`]).
//! - [`SinkHandle`] (`handle.rs`) runs each sink on its own thread, fed through its own
//!   bounded queue of flushes; the flusher never waits on a sink.
//! - [`receipt`]: when every sink is done with a flush (the fleet stage commits on it).
//! - [`batch`]: one flush encoded for a transport, the unit the buffer and the spool share.
//! - [`nested`]: the nested JSON record of a series, shared by the console sink and the
//!   Kafka `json-nested` format.
//! - [`buffer`]: the one delivery buffer every networked sink uses (byte-bounded, oldest
//!   whole snapshots dropped first, in-flight data pinned) and the one pump/close loop over a
//!   sink's [`buffer::Transport`]; [`spool`]: the disk spool behind it (`[spool]`).
//! - [`console`], [`graphite`], [`kafka`]: the sinks.
//!
//! Adding a sink: a new folder with a config type implementing [`SinkSpec`] (whose `build`
//! usually wraps a [`buffer::Transport`] in a [`buffer::BufferedSink`]), and its line in
//! [`registry`].

pub mod batch;
pub mod buffer;
pub mod console;
pub mod graphite;
mod handle;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod nested;
pub mod receipt;
pub mod registry;
pub mod spool;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use self::handle::SinkHandle;
pub use self::receipt::Receipt;
pub use crate::config_error::ConfigError;
use crate::interval::IntervalState;
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

/// A sink's failure to write one flush at all (counted as `sink_write_errors`).
#[derive(Debug)]
pub enum SinkError {
    /// Writing to the destination failed.
    Io(std::io::Error),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Io(e) => write!(f, "write failed: {e}"),
        }
    }
}

impl std::error::Error for SinkError {}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError::Io(e)
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
