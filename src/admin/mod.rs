//! The admin plane: Etsy's management interface on TCP ([`mgmt`], default 127.0.0.1:8126)
//! and an HTTP endpoint with `/health` and Prometheus `/metrics` ([`http`], default
//! 127.0.0.1:8080). Both are off the data path: they read what the flusher publishes once
//! per flush ([`AdminState`]) and never touch a receiver.
//!
//! - The views (`counters`, `timers`, `gauges`, `sets`) show the last flushed snapshot:
//!   the current interval lives in the receivers' thread-local tables until the flush.
//! - `/metrics` and `stats` show the internal statistics accumulated since start: counters
//!   summed over every flush, gauges as of the last flush. They advance once per flush.
//! - `del*` commands ask the flusher to forget persisted state (gauges, idle series owed
//!   zero reports), and remove the series from the views.

mod config;
pub mod http;
pub mod mgmt;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use crossbeam_channel::Sender;

pub use self::config::{AdminConfig, HttpConfig};
use crate::format::time::unix_millis;
use crate::metric::{MetricType, SeriesKey};
use crate::snapshot::Snapshot;
use crate::stats::{PlaneCounters, Stat, StatValue};

/// A request the flusher answers between flushes.
#[derive(Debug)]
pub enum FlusherCommand {
    /// Forget persisted state of series of these types whose names match; reply with the
    /// names forgotten.
    Delete {
        types: &'static [MetricType],
        pattern: String,
        reply: Sender<Vec<String>>,
    },
}

/// Internal statistics accumulated since start, by (name without prefix, tags).
#[derive(Debug, Default, Clone)]
pub struct StatTotals {
    pub counters: BTreeMap<(String, Vec<(String, String)>), f64>,
    pub gauges: BTreeMap<(String, Vec<(String, String)>), f64>,
}

/// What the flusher publishes for the admin plane.
#[derive(Debug)]
pub struct AdminState {
    started: Instant,
    healthy: AtomicBool,
    /// Unix seconds of the last flush that received a metric (Etsy `last_msg_seen`).
    last_msg_seen: AtomicU64,
    latest: Mutex<Option<Arc<Snapshot>>>,
    totals: Mutex<StatTotals>,
    commands: Mutex<Option<Sender<FlusherCommand>>>,
    config_text: String,
    /// The HTTP and management threads' counters, read by the flusher at each flush.
    pub counters: PlaneCounters,
}

/// Locks a mutex; a panicked holder leaves plain data that is still valid to read.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AdminState {
    /// `config_text`: the effective configuration, shown by `config`; `limits`: every
    /// configured limit by key, shown on `/metrics` as `limit` gauges.
    pub fn new(config_text: String, limits: Vec<(String, u64)>) -> AdminState {
        let mut totals = StatTotals::default();
        for (key, value) in limits {
            let id = ("limit".to_string(), vec![("limit".to_string(), key)]);
            totals.gauges.insert(id, value as f64);
        }
        AdminState {
            started: Instant::now(),
            healthy: AtomicBool::new(true),
            last_msg_seen: AtomicU64::new(unix_millis(SystemTime::now()) / 1000),
            latest: Mutex::new(None),
            totals: Mutex::new(totals),
            commands: Mutex::new(None),
            config_text,
            counters: PlaneCounters::default(),
        }
    }

    pub fn set_commands(&self, commands: Sender<FlusherCommand>) {
        *lock(&self.commands) = Some(commands);
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::Relaxed);
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn last_msg_seen(&self) -> u64 {
        self.last_msg_seen.load(Ordering::Relaxed)
    }

    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        lock(&self.latest).clone()
    }

    pub fn totals(&self) -> StatTotals {
        lock(&self.totals).clone()
    }

    /// Called by the flusher after each flush with the snapshot and that interval's
    /// internal statistics (names without prefix).
    pub fn publish(&self, snapshot: Arc<Snapshot>, internal: &[Stat]) {
        let mut totals = lock(&self.totals);
        for stat in internal {
            let id = (
                stat.name.to_string(),
                stat.tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            );
            match stat.value {
                StatValue::Counter(n) => *totals.counters.entry(id).or_default() += n as f64,
                StatValue::Gauge(v) => {
                    totals.gauges.insert(id, v);
                }
            }
        }
        let received = internal
            .iter()
            .any(|s| s.name == "metrics_received" && s.value != StatValue::Counter(0));
        drop(totals);
        if received {
            self.last_msg_seen
                .store(snapshot.timestamp_secs(), Ordering::Relaxed);
        }
        *lock(&self.latest) = Some(snapshot);
    }

    /// Deletes series of `types` matching `pattern` (`name`, or `prefix.*`) from the views
    /// and from the flusher's persisted state. Returns the names deleted, sorted.
    pub fn delete(&self, types: &'static [MetricType], pattern: &str) -> Vec<String> {
        let mut deleted = Vec::new();
        {
            let mut latest = lock(&self.latest);
            if let Some(snapshot) = latest.as_ref() {
                let keep = |key: &SeriesKey| {
                    !(types.contains(&key.metric_type()) && matches(pattern, key.name()))
                };
                if snapshot.series.iter().any(|(k, _)| !keep(k)) {
                    let mut copy = Snapshot {
                        timestamp_ms: snapshot.timestamp_ms,
                        interval: snapshot.interval,
                        percentiles: Arc::clone(&snapshot.percentiles),
                        series: Vec::with_capacity(snapshot.series.len()),
                    };
                    for (k, v) in &snapshot.series {
                        if keep(k) {
                            copy.series.push((k.clone(), v.clone()));
                        } else {
                            deleted.push(k.name().to_string());
                        }
                    }
                    *latest = Some(Arc::new(copy));
                }
            }
        }
        let commands = lock(&self.commands).clone();
        if let Some(commands) = commands {
            let (reply, answer) = crossbeam_channel::bounded(1);
            let sent = commands.send(FlusherCommand::Delete {
                types,
                pattern: pattern.to_string(),
                reply,
            });
            if sent.is_ok()
                && let Ok(names) = answer.recv_timeout(std::time::Duration::from_secs(10))
            {
                deleted.extend(names);
            }
        }
        deleted.sort();
        deleted.dedup();
        deleted
    }
}

/// Etsy's delete pattern: `prefix.*` matches every name starting with `prefix.`; anything
/// else matches the name exactly.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => name.starts_with(prefix),
        _ => pattern == name,
    }
}

/// A series as the views name it: `name;k=v;k2=v2` (Graphite tag syntax).
pub fn series_id(key: &SeriesKey) -> String {
    let mut id = key.name().to_string();
    for (k, v) in key.tags() {
        id.push(';');
        id.push_str(k);
        id.push('=');
        id.push_str(v);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_patterns_follow_etsy() {
        assert!(matches("api.*", "api.requests"));
        assert!(!matches("api.*", "apix.requests"));
        assert!(matches("api.requests", "api.requests"));
        assert!(!matches("api", "api.requests"));
        assert!(!matches("api*", "api.requests"));
    }
}
