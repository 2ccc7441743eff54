//! Flush step two: an [`IntervalState`] → the [`Snapshot`] sinks render. Global tags, gauge
//! carry-over and idle zeros ([`CarryOver`]), internal statistics under the configured prefix,
//! and samples sorted for the statistics.

use std::sync::Arc;

use crate::aggregate::timer::Percentile;
use crate::aggregate::{Gauge, Table, Value};
use crate::interval::IntervalState;
use crate::metric::{MetricType, SeriesKey};
use crate::snapshot::Snapshot;
use crate::stats::{Detail, Stat, StatValue};

use super::carry::{CarryOver, CarrySettings};

/// Finalize settings, from the configuration.
#[derive(Debug, Clone)]
pub struct FinalizeSettings {
    pub percentiles: Arc<[Percentile]>,
    /// Tags added to every series that lacks the key.
    pub global_tags: Vec<(String, String)>,
    /// Internal statistics: the prefix and how many; `None` keeps them out of flushes.
    pub stats: Option<(String, Detail)>,
    pub carry: CarrySettings,
}

/// Turns interval states into snapshots, remembering what spans intervals.
#[derive(Debug)]
pub struct Finalizer {
    settings: FinalizeSettings,
    carry: CarryOver,
    /// Sketch bins collapsed in the last snapshot's timers (`limits.max_sketch_bins`).
    collapsed: u64,
}

impl Finalizer {
    pub fn new(settings: FinalizeSettings) -> Finalizer {
        let carry = CarryOver::new(settings.carry.clone());
        Finalizer {
            settings,
            carry,
            collapsed: 0,
        }
    }

    /// Sketch bins the last snapshot's timers collapsed to stay within
    /// `limits.max_sketch_bins`.
    pub fn sketch_bins_collapsed(&self) -> u64 {
        self.collapsed
    }

    /// The state that spans intervals (gauges, idle series).
    pub fn carry(&self) -> &CarryOver {
        &self.carry
    }

    /// Forgets persisted state of matching series (the admin `del*` commands).
    pub fn delete(&mut self, types: &[MetricType], pattern: &str) -> Vec<String> {
        self.carry.delete(types, pattern)
    }

    /// The snapshot of `state`, with `internal` statistics added as the settings say.
    pub fn finalize(&mut self, state: IntervalState, internal: &[Stat]) -> Snapshot {
        let IntervalState {
            timestamp_ms,
            interval,
            series: mut table,
        } = state;
        let tags = &self.settings.global_tags;
        if !tags.is_empty() {
            // Tagging can make two series one (`c` and `c;env=prod` under `env=prod`).
            let mut tagged = Table::with_capacity(table.len(), table.bounds());
            for (key, value) in table.drain() {
                tagged.merge_value(key.with_default_tags(tags), value);
            }
            table = tagged;
        }
        let mut series = self.carry.apply(table.drain());
        if let Some((prefix, detail)) = &self.settings.stats {
            for stat in internal.iter().filter(|s| s.in_flush(*detail)) {
                let key = stat_key(prefix, stat).with_default_tags(tags);
                series.push((key, stat_value(stat.value)));
            }
        }
        self.collapsed = 0;
        for (_, value) in &mut series {
            if let Some(s) = value.samples_mut() {
                s.values.sort_unstable_by(f64::total_cmp);
                self.collapsed += s.sketched.as_ref().map_or(0, |k| k.sketch.collapsed());
            }
        }
        Snapshot {
            timestamp_ms,
            interval,
            percentiles: Arc::clone(&self.settings.percentiles),
            series,
        }
    }
}

fn stat_key(prefix: &str, stat: &Stat) -> SeriesKey {
    let mtype = match stat.value {
        StatValue::Counter(_) => MetricType::Counter,
        StatValue::Gauge(_) => MetricType::Gauge,
    };
    let tags = stat.tags.iter().map(|(k, v)| (*k, v.as_str()));
    SeriesKey::new(format!("{prefix}{}", stat.name), mtype, tags)
}

fn stat_value(value: StatValue) -> Value {
    match value {
        StatValue::Counter(n) => Value::Counter(n as f64),
        StatValue::Gauge(v) => Value::Gauge(Gauge {
            value: v,
            absolute: true,
            stamp: 0,
        }),
    }
}

#[cfg(test)]
mod tests;
