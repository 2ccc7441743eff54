//! What outlives an interval: gauge values (Etsy gauges persist until deleted) and idle
//! series still owed zero reports (`aggregation.idle_zero_flushes`). The admin `del*`
//! commands forget entries here.

use std::time::Duration;

use hashbrown::HashMap;

use crate::aggregate::{Gauge, Value};
use crate::logging::RateLimit;
use crate::metric::{MetricType, SeriesKey};

/// Carry-over settings, from `[aggregation]` and `[limits]`.
#[derive(Debug, Clone)]
pub struct CarrySettings {
    pub delete_idle_gauges: bool,
    pub idle_zero_flushes: u32,
    /// Gauges remembered across intervals.
    pub max_gauges: usize,
}

/// The state that spans intervals.
#[derive(Debug)]
pub struct CarryOver {
    settings: CarrySettings,
    /// Gauge value and the flush generation that last updated it.
    gauges: HashMap<SeriesKey, (f64, u64)>,
    /// Zero reports still owed to idle series, and the generation that last saw them.
    idle: HashMap<SeriesKey, (u32, u64)>,
    generation: u64,
    /// New gauges not remembered in the last flush because `max_gauges` was reached.
    not_kept: u64,
    log: RateLimit,
}

impl CarryOver {
    pub fn new(settings: CarrySettings) -> CarryOver {
        CarryOver {
            settings,
            gauges: HashMap::new(),
            idle: HashMap::new(),
            generation: 0,
            not_kept: 0,
            log: RateLimit::new(Duration::from_secs(60)),
        }
    }

    /// Gauges remembered now.
    pub fn gauges_kept(&self) -> usize {
        self.gauges.len()
    }

    /// New gauges the last interval could not remember (`limits.max_gauges`).
    pub fn gauges_not_kept(&self) -> u64 {
        self.not_kept
    }

    /// Resolves one interval's series against what earlier intervals left: gauge deltas
    /// apply to the remembered value, unchanged gauges repeat, idle series report zero.
    pub fn apply(
        &mut self,
        series: impl Iterator<Item = (SeriesKey, Value)>,
    ) -> Vec<(SeriesKey, Value)> {
        self.generation += 1;
        let generation = self.generation;
        let track_idle = self.settings.idle_zero_flushes > 0;
        let max_gauges = self.settings.max_gauges;
        let mut not_kept = 0;
        let mut out = Vec::with_capacity(series.size_hint().0 + self.gauges.len());
        for (key, value) in series {
            let value = match value {
                Value::Gauge(g) => {
                    let resolved = match self.gauges.get_mut(&key) {
                        Some(known) => {
                            *known = (g.resolve(Some(known.0)), generation);
                            known.0
                        }
                        None => {
                            let resolved = g.resolve(None);
                            if self.gauges.len() < max_gauges {
                                self.gauges.insert(key.clone(), (resolved, generation));
                            } else {
                                not_kept += 1;
                            }
                            resolved
                        }
                    };
                    Value::Gauge(absolute(resolved))
                }
                Value::Counter(_)
                | Value::Trace(_)
                | Value::Timer(_)
                | Value::Histogram(_)
                | Value::Distribution(_)
                | Value::Set(_) => {
                    if track_idle {
                        let owed = self.settings.idle_zero_flushes;
                        self.idle.insert(key.clone(), (owed, generation));
                    }
                    value
                }
            };
            out.push((key, value));
        }

        let delete_idle_gauges = self.settings.delete_idle_gauges;
        self.gauges.retain(|key, (value, seen)| {
            if *seen == generation {
                return true;
            }
            if delete_idle_gauges {
                return false;
            }
            out.push((key.clone(), Value::Gauge(absolute(*value))));
            true
        });
        self.idle.retain(|key, (remaining, seen)| {
            if *seen == generation {
                return true;
            }
            if *remaining == 0 {
                return false;
            }
            *remaining -= 1;
            out.push((key.clone(), Value::empty(key.metric_type())));
            true
        });

        if not_kept > 0
            && let Some(suppressed) = self.log.allow()
        {
            log::warn!(
                "{not_kept} new gauges reported but not remembered for later intervals: \
                 limits.max_gauges ({max_gauges}) reached ({suppressed} more reports suppressed)"
            );
        }
        self.not_kept = not_kept;
        out
    }

    /// Forgets the remembered gauges and owed zero reports of series of `types` whose name
    /// matches `pattern` (see [`crate::admin::matches`]). Returns the names forgotten.
    pub fn delete(&mut self, types: &[MetricType], pattern: &str) -> Vec<String> {
        let mut deleted = Vec::new();
        let mut forget = |key: &SeriesKey| {
            let hit =
                types.contains(&key.metric_type()) && crate::admin::matches(pattern, key.name());
            if hit {
                deleted.push(key.name().to_string());
            }
            !hit
        };
        self.gauges.retain(|key, _| forget(key));
        self.idle.retain(|key, _| forget(key));
        deleted
    }
}

fn absolute(value: f64) -> Gauge {
    Gauge {
        value,
        absolute: true,
        stamp: 0,
    }
}
