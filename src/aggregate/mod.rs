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

use serde::{Deserialize, Serialize};

use crate::settings::ConfigError;
use timer::Percentile;

/// `[aggregation]`: how series are aggregated and what persists between intervals.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct AggregationConfig {
    /// Timer percentiles, comma separated, e.g. `90,99.9,-10` (aggregation.percentiles).
    #[arg(
        id = "aggregation.percentiles",
        long = "percentiles",
        value_name = "LIST",
        value_delimiter = ',',
        allow_negative_numbers = true,
        required = false
    )]
    pub percentiles: Vec<f64>,
    /// Keep metric names exactly as received (aggregation.sanitize_names = false).
    #[arg(id = "aggregation.sanitize_names", long = "no-sanitize", num_args = 0, default_missing_value = "false", action = clap::ArgAction::Set, required = false)]
    pub sanitize_names: bool,
    /// Report gauges only in intervals in which they changed (aggregation.delete_idle_gauges).
    #[arg(id = "aggregation.delete_idle_gauges", long = "delete-idle-gauges", num_args = 0, default_missing_value = "true", action = clap::ArgAction::Set, required = false)]
    pub delete_idle_gauges: bool,
    /// Report idle counters, timers and sets as zero for N flushes
    /// (aggregation.idle_zero_flushes).
    #[arg(
        id = "aggregation.idle_zero_flushes",
        long = "idle-zero-flushes",
        value_name = "N",
        required = false
    )]
    pub idle_zero_flushes: u32,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        AggregationConfig {
            percentiles: vec![90.0],
            sanitize_names: true,
            delete_idle_gauges: false,
            idle_zero_flushes: 0,
        }
    }
}

impl AggregationConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, &p) in self.percentiles.iter().enumerate() {
            Percentile::new(p).map_err(|e| {
                ConfigError::new(format!("aggregation.percentiles[{i}]"), e.to_string())
            })?;
        }
        Ok(())
    }

    /// The configured percentiles (valid after [`AggregationConfig::validate`]).
    pub fn percentiles(&self) -> Vec<Percentile> {
        self.percentiles
            .iter()
            .filter_map(|&p| Percentile::new(p).ok())
            .collect()
    }
}
pub use table::Table;
pub use value::{Gauge, Members, Samples, Totals, Value};
