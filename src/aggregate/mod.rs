//! Aggregate stage: per-thread tables of mergeable values, and the statistics derived from
//! them at flush time.
//!
//! - [`Value`] is the aggregate of one series. The same type lives in a receiver's [`Table`]
//!   and in a [`crate::snapshot::Snapshot`], and [`Value::merge`] combines two of them, so
//!   per-thread tables (and, later, partial aggregates from other hosts) merge exactly.
//! - [`Table`] is owned by one receiver thread; nothing else touches it until the flusher
//!   takes it whole. [`round`] applies a receiver's untagged metrics to it a round at a
//!   time, so that their cache misses overlap.
//! - [`samples`] and [`set`]: the bounded state of timers and sets: exact up to
//!   [`Bounds`], then a DDSketch ([`sketch`]) or a HyperLogLog ([`hll`]), both mergeable.
//! - [`timer`] computes Etsy's timer statistics from sorted samples, or from a sketch.
//! - [`partial`]: the protobuf wire format of a series' state for fleet-wide aggregation
//!   (one message per series per interval from each source, merged by an aggregator).
//! - [`SeriesGuard`] is the cardinality guard the receivers share: it bounds the series
//!   held per interval, overall and per metric name.

mod guard;
pub mod hll;
pub mod partial;
pub mod round;
pub mod samples;
pub mod set;
pub mod sketch;
pub mod sketch_proto;
mod table;
pub mod timer;
mod value;

pub use guard::{AggregateLimits, Refusal, SeriesGuard};
pub use samples::{Samples, Sketched, Totals};
pub use set::SetValue;
pub use table::Table;
pub use value::{Gauge, Value};

use sketch::Mapping;

/// What bounds the state of one series: beyond these, timers switch to a sketch and sets to
/// a HyperLogLog (from `[limits]` and `[aggregation]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Raw samples kept per timer series per interval (`limits.max_timer_samples`).
    pub max_timer_samples: usize,
    /// The sketch's mapping (`aggregation.sketch_relative_accuracy`).
    pub sketch: Mapping,
    /// Bins per sketch store (`limits.max_sketch_bins`).
    pub max_sketch_bins: usize,
    /// Members an exact set holds at most (`limits.set_exact_members`); it also switches
    /// once its members weigh more than the HyperLogLog would.
    pub set_exact_members: usize,
    /// HyperLogLog precision: 2^set_lg_k registers (`aggregation.set_precision`).
    pub set_lg_k: u8,
}

impl Bounds {
    /// Nothing approximated, for tests and tools: timers stay raw, and sets switch only
    /// once their members weigh more than the largest HyperLogLog (2 MiB, 2^21 registers).
    pub const EXACT: Bounds = Bounds {
        max_timer_samples: usize::MAX,
        sketch: Mapping::SCALE_6,
        max_sketch_bins: 2048,
        set_exact_members: usize::MAX,
        set_lg_k: 21,
    };
}

impl Default for Bounds {
    /// The configuration's defaults.
    fn default() -> Self {
        let a = AggregateLimits::default();
        let c = AggregationConfig::default();
        Bounds {
            max_timer_samples: a.max_timer_samples,
            sketch: Mapping::for_accuracy(c.sketch_relative_accuracy),
            max_sketch_bins: a.max_sketch_bins,
            set_exact_members: a.set_exact_members,
            set_lg_k: c.set_precision,
        }
    }
}

use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;
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
    /// Relative accuracy α of timer percentiles beyond limits.max_timer_samples: the
    /// sketch's scale is the coarsest that meets it (aggregation.sketch_relative_accuracy).
    #[arg(
        id = "aggregation.sketch_relative_accuracy",
        long = "sketch-relative-accuracy",
        value_name = "ALPHA",
        required = false
    )]
    pub sketch_relative_accuracy: f64,
    /// HyperLogLog precision of sets beyond their exact bound: 2^P registers, standard error
    /// 1.04/√(2^P) (aggregation.set_precision).
    #[arg(
        id = "aggregation.set_precision",
        long = "set-precision",
        value_name = "P",
        required = false
    )]
    pub set_precision: u8,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        AggregationConfig {
            percentiles: vec![90.0],
            sanitize_names: true,
            delete_idle_gauges: false,
            idle_zero_flushes: 0,
            sketch_relative_accuracy: 0.01,
            set_precision: 14,
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
        let alpha = self.sketch_relative_accuracy;
        if !(alpha > 0.0 && alpha <= 0.1) {
            return Err(ConfigError::new(
                "aggregation.sketch_relative_accuracy",
                "must be in (0, 0.1]",
            ));
        }
        if !hll::Hll::LG_K.contains(&self.set_precision) {
            return Err(ConfigError::new(
                "aggregation.set_precision",
                "must be between 4 and 21",
            ));
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
