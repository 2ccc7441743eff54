//! rstatsd: a statsd server in Rust.
//!
//! The data path, one module per stage:
//!
//! ```text
//! receive ──► parse ──► aggregate ──► flush ──► sink
//! (UDP,       (line,    (per-thread   (swap,     (console,
//!  recvmmsg)   JSON)     tables)       merge)     Graphite, Kafka)
//! ```
//!
//! - [`receive`]: SO_REUSEPORT sockets, one receiver thread each, batched `recvmmsg`.
//! - [`parse`]: Etsy/DogStatsD/Graphite line protocol and pystatsd JSON → [`metric::Metric`].
//! - [`aggregate`]: mergeable per-series values in tables owned by one thread each.
//! - [`flush`]: interval timing, table swaps, merging, gauge persistence, internal stats.
//! - [`sink`]: the [`sink::Sink`] trait and its implementations.
//! - [`admin`]: off the data path, the management interface and HTTP `/health`, `/metrics`,
//!   fed by what the flusher publishes once per flush.
//!
//! Types that cross stages live in [`metric`] (series identity) and [`snapshot`].
//! [`config`] and [`cli`] define every setting; [`server`] wires the threads together.

#![forbid(unsafe_code)]

pub mod admin;
pub mod aggregate;
pub mod cli;
pub mod config;
pub mod flush;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod interval;
pub mod logging;
pub mod metric;
pub mod parse;
pub mod receive;
pub mod server;
pub mod settings;
pub mod sink;
pub mod snapshot;
pub mod stats;
