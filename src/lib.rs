//! rstatsd: a statsd server in Rust.
//!
//! The data path, one module per stage:
//!
//! ```text
//! receive ──► parse ──► aggregate ──► flush: merge ──► finalize ──► sink
//! (UDP,       (line,    (per-thread   (tables →        (→ Snapshot)   (console,
//!  recvmmsg)   JSON)     tables)       IntervalState)                  Graphite, Kafka)
//! ```
//!
//! - [`receive`]: SO_REUSEPORT sockets, one receiver thread each, batched `recvmmsg`.
//! - [`parse`]: the input protocols and their parsers → [`metric::Metric`].
//! - [`aggregate`]: one aggregate type per metric type, in tables owned by one thread each.
//! - [`flush`]: interval timing and harvesting, then [`flush::merge()`] and
//!   [`flush::Finalizer`].
//! - [`sink`]: the [`sink::Sink`] trait, the shared delivery buffer, the sinks and their
//!   registry.
//! - [`admin`]: off the data path, the management interface and HTTP `/health`, `/metrics`,
//!   fed by what the flusher publishes once per flush.
//!
//! Types that cross stages live at the top: [`metric`] (metric types, series identity),
//! [`interval`] (the mergeable state of one interval) and [`snapshot`] (the finalized result
//! and the one typed view every output reads). [`stats`] names every internal statistic.
//! [`config`] assembles the sections each component declares, [`settings`] holds their
//! shared error type, [`cli`] the flags, [`mod@format`] the text formatting outputs share, and
//! [`server`] wires the threads together.

#![forbid(unsafe_code)]

pub mod admin;
pub mod aggregate;
pub mod cli;
pub mod config;
pub mod config_error;
pub mod fleet;
pub mod flush;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod interval;
#[cfg(feature = "kafka")]
pub mod kafka_client;
pub mod logging;
pub mod metric;
pub mod parse;
pub mod receive;
pub mod server;
pub mod sink;
pub mod snapshot;
pub mod stats;
