//! `[spool]` and the settings of one sink's spool derived from it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config_error::{ConfigError, at_least};

/// `[spool]`: the disk spool behind every sink's delivery buffer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// Spool undelivered snapshots under this directory, one subdirectory per sink
    /// (spool.dir; no spool when unset).
    #[arg(
        id = "spool.dir",
        long = "spool-dir",
        value_name = "DIR",
        required = false
    )]
    pub dir: Option<PathBuf>,
    /// Disk bytes per sink's spool; beyond, the oldest snapshots are dropped and counted
    /// (spool.max_bytes).
    #[arg(
        id = "spool.max_bytes",
        long = "spool-max-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub max_bytes: u64,
    /// A segment file is closed and a new one started beyond this size (spool.segment_bytes).
    #[arg(
        id = "spool.segment_bytes",
        long = "spool-segment-bytes",
        value_name = "BYTES",
        required = false
    )]
    pub segment_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
        }
    }
}

impl SpoolConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(ConfigError::new("spool.dir", "must not be empty"));
        }
        at_least("spool.max_bytes", self.max_bytes, 1 << 20)?;
        at_least("spool.segment_bytes", self.segment_bytes, 64 << 10)?;
        if self.segment_bytes > self.max_bytes {
            return Err(ConfigError::new(
                "spool.segment_bytes",
                "must not exceed spool.max_bytes",
            ));
        }
        Ok(())
    }

    /// The spool settings of the sink named `sink`, when a spool is configured.
    pub fn for_sink(&self, sink: &str) -> Option<SpoolSettings> {
        let dir = self.dir.as_ref()?.join(directory_name(sink));
        Some(SpoolSettings {
            dir,
            max_bytes: self.max_bytes,
            segment_bytes: self.segment_bytes,
        })
    }
}

/// A sink's directory name: its name with anything but `[A-Za-z0-9._-]` replaced by `_`
/// (`graphite/127.0.0.1:2003` → `graphite_127.0.0.1_2003`).
fn directory_name(sink: &str) -> String {
    sink.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One sink's spool settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
}
