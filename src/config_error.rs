//! What every configuration section shares: [`ConfigError`]. Components own their sections
//! (`receive::ReceiveConfig`, `sink::kafka::KafkaConfig`, …) and validate them with it;
//! [`crate::config`] assembles the sections, and [`crate::cli`] attaches the file name to an
//! error, in one place. Kept apart from `config` so that no component imports the module that
//! imports it.

use std::fmt;
use std::path::PathBuf;

/// A configuration error: where, which key, why. Exit code 2.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file, when the value came from one.
    pub file: Option<PathBuf>,
    /// Dotted key path (`flush.interval_ms`), empty when the file as a whole is at fault.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    /// An error about `key` (no file yet: the loader attaches it).
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error, said of `file`.
    pub fn in_file(self, file: Option<PathBuf>) -> ConfigError {
        ConfigError { file, ..self }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "config file {}: ", file.display())?,
            None => write!(f, "configuration: ")?,
        }
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Checks that a number is at least `min`, naming `key` otherwise.
pub fn at_least(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::new(key, format!("must be at least {min}")));
    }
    Ok(())
}

/// Checks that a number is within `range`, naming `key` otherwise.
pub fn within(
    key: &str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<(), ConfigError> {
    if !range.contains(&value) {
        return Err(ConfigError::new(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(())
}
