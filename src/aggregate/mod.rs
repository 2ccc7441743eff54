//! Aggregate stage: per-thread tables of mergeable values, and the statistics derived from
//! them at flush time.
//!
//! - [`Value`] is the aggregate of one series. The same type lives in a receiver's [`Table`]
//!   and in a [`crate::snapshot::Snapshot`], and [`Value::merge`] combines two of them, so
//!   per-thread tables (and, later, partial aggregates from other hosts) merge exactly.
//! - [`Table`] is owned by one receiver thread; nothing else touches it until the flusher
//!   takes it whole.
//! - [`timer`] computes Etsy's timer statistics from a sorted sample list.
//! - [`SeriesGuard`] is the cardinality guard the receivers share: it bounds the series
//!   held per interval, overall and per metric name.

mod guard;
mod table;
pub mod timer;
mod value;

pub use guard::{AggregateLimits, Refusal, SeriesGuard};
pub use table::Table;
pub use value::{Gauge, Members, Samples, Totals, Value};
