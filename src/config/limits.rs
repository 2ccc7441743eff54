//! `[limits]`: shared by two stages (the parsers' input limits and the aggregate stage's
//! cardinality guard), so declared here rather than in either.

use serde::{Deserialize, Serialize};

use super::toml_integers;
use crate::aggregate::AggregateLimits;
use crate::config_error::{ConfigError, at_least};
use crate::parse::Limits;

/// `[limits]`: what one metric may carry (checked by the parsers, rejections counted in
/// `bad_lines`) and how much the aggregate stage holds (the cardinality guard, see
/// [`crate::aggregate::SeriesGuard`]).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest metric name accepted (limits.max_name_bytes).
    #[arg(
        id = "limits.max_name_bytes",
        long = "max-name-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub max_name_bytes: usize,
    /// Most tags one metric may carry (limits.max_tags).
    #[arg(
        id = "limits.max_tags",
        long = "max-tags",
        value_name = "N",
        required = false
    )]
    pub max_tags: usize,
    /// Longest tag key accepted (limits.max_tag_key_bytes).
    #[arg(
        id = "limits.max_tag_key_bytes",
        long = "max-tag-key-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub max_tag_key_bytes: usize,
    /// Longest tag value accepted (limits.max_tag_value_bytes).
    #[arg(
        id = "limits.max_tag_value_bytes",
        long = "max-tag-value-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub max_tag_value_bytes: usize,
    /// Longest set member accepted (limits.max_member_bytes).
    #[arg(
        id = "limits.max_member_bytes",
        long = "max-member-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub max_member_bytes: usize,
    /// Most series held per flush interval, all receivers together (limits.max_series).
    #[arg(
        id = "limits.max_series",
        long = "max-series",
        value_name = "N",
        required = false
    )]
    pub max_series: usize,
    /// Most tagged series per metric name per interval (limits.max_tag_sets_per_name).
    #[arg(
        id = "limits.max_tag_sets_per_name",
        long = "max-tag-sets-per-name",
        value_name = "N",
        required = false
    )]
    pub max_tag_sets_per_name: usize,
    /// Raw samples kept per timer series per interval; beyond, a DDSketch
    /// (limits.max_timer_samples).
    #[arg(
        id = "limits.max_timer_samples",
        long = "max-timer-samples",
        value_name = "N",
        required = false
    )]
    pub max_timer_samples: usize,
    /// Gauges remembered across intervals (limits.max_gauges).
    #[arg(
        id = "limits.max_gauges",
        long = "max-gauges",
        value_name = "N",
        required = false
    )]
    pub max_gauges: usize,
    /// Bins per sign of a timer's sketch; beyond, the lowest collapse (limits.max_sketch_bins).
    #[arg(
        id = "limits.max_sketch_bins",
        long = "max-sketch-bins",
        value_name = "N",
        required = false
    )]
    pub max_sketch_bins: usize,
    /// Members a set keeps exactly (and no more than its HyperLogLog would weigh); beyond, a
    /// HyperLogLog (limits.set_exact_members).
    #[arg(
        id = "limits.set_exact_members",
        long = "set-exact-members",
        value_name = "N",
        required = false
    )]
    pub set_exact_members: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let p = Limits::default();
        let a = AggregateLimits::default();
        LimitsConfig {
            max_name_bytes: p.max_name_bytes,
            max_tags: p.max_tags,
            max_tag_key_bytes: p.max_tag_key_bytes,
            max_tag_value_bytes: p.max_tag_value_bytes,
            max_member_bytes: p.max_member_bytes,
            max_series: a.max_series,
            max_tag_sets_per_name: a.max_tag_sets_per_name,
            max_timer_samples: a.max_timer_samples,
            max_gauges: a.max_gauges,
            max_sketch_bins: a.max_sketch_bins,
            set_exact_members: a.set_exact_members,
        }
    }
}

impl LimitsConfig {
    /// The parsers' share.
    pub fn parse(&self) -> Limits {
        Limits {
            max_name_bytes: self.max_name_bytes,
            max_tags: self.max_tags,
            max_tag_key_bytes: self.max_tag_key_bytes,
            max_tag_value_bytes: self.max_tag_value_bytes,
            max_member_bytes: self.max_member_bytes,
        }
    }

    /// Every limit must be positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in toml_integers(self) {
            at_least(&format!("limits.{key}"), value, 1)?;
        }
        Ok(())
    }

    /// The aggregate stage's share.
    pub fn aggregate(&self) -> AggregateLimits {
        AggregateLimits {
            max_series: self.max_series,
            max_tag_sets_per_name: self.max_tag_sets_per_name,
            max_timer_samples: self.max_timer_samples,
            max_gauges: self.max_gauges,
            max_sketch_bins: self.max_sketch_bins,
            set_exact_members: self.set_exact_members,
        }
    }
}
