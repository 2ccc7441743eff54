//! Logging to stderr (journald adds its own metadata under systemd) and a rate limiter for log lines that hostile input could otherwise trigger at line rate.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use log::{LevelFilter, Log, Metadata, Record};

use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;
use crate::format::time::{rfc3339_millis, unix_millis};

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log level: error, warn, info, debug, trace (log.level).
    #[arg(
        id = "log.level",
        long = "log-level",
        value_name = "LEVEL",
        required = false
    )]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.level.parse::<LevelFilter>().is_err() {
            return Err(ConfigError::new(
                "log.level",
                format!(
                    "unknown level {:?} (use error, warn, info, debug or trace)",
                    self.level
                ),
            ));
        }
        Ok(())
    }

    /// The level (valid after [`LogConfig::validate`]).
    pub fn level(&self) -> LevelFilter {
        self.level.parse().unwrap_or(LevelFilter::Info)
    }
}

struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}: {}\n",
            rfc3339_millis(unix_millis(SystemTime::now())),
            record.level(),
            record.target(),
            record.args()
        );
        // One write per line so concurrent threads never interleave within a line.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at `level` (idempotent: later calls are ignored).
pub fn init(level: LevelFilter) {
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}

/// Allows one event per `period`; counts the events it suppressed in between.
#[derive(Debug)]
pub struct RateLimit {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(period: Duration) -> RateLimit {
        RateLimit {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when the caller may log now, `n` being how many events were suppressed since
    /// the last allowed one; `None` when this event should be suppressed.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_suppressed() {
        let mut rl = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(rl.allow(), Some(0));
        assert_eq!(rl.allow(), None);
        assert_eq!(rl.allow(), None);
        rl.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(rl.allow(), Some(2));
    }
}
