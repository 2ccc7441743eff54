//! `[admin]` and `[http]`: where the two planes listen and what bounds them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config_error::{ConfigError, within};

/// Timeouts are between 1 ms and an hour.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1..=3_600_000;

/// `[admin]`: Etsy's management interface (TCP). Loopback by default; binding elsewhere
/// is an explicit choice.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Disable the management interface (admin.enabled = false).
    #[arg(id = "admin.enabled", long = "no-admin", num_args = 0, default_missing_value = "false", action = clap::ArgAction::Set, required = false)]
    pub enabled: bool,
    /// Etsy management interface address (admin.listen).
    #[arg(
        id = "admin.listen",
        long = "admin-listen",
        value_name = "ADDR",
        required = false
    )]
    pub listen: SocketAddr,
    /// Management connections served at once; beyond, a new one is refused and counted
    /// (admin.max_connections).
    #[arg(
        id = "admin.max_connections",
        long = "admin-max-connections",
        value_name = "N",
        required = false
    )]
    pub max_connections: usize,
    /// A management connection idle this long is closed (admin.idle_timeout_ms).
    #[arg(
        id = "admin.idle_timeout_ms",
        long = "admin-idle-timeout-ms",
        value_name = "MS",
        required = false
    )]
    pub idle_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8126)),
            max_connections: 32,
            idle_timeout_ms: 300_000,
        }
    }
}

impl AdminConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "admin.max_connections",
            self.max_connections as u64,
            1..=65_536,
        )?;
        within("admin.idle_timeout_ms", self.idle_timeout_ms, TIMEOUT_MS)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// `[http]`: `/health` and `/metrics`. Loopback by default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, clap::Args)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Disable the HTTP endpoint (http.enabled = false).
    #[arg(id = "http.enabled", long = "no-http", num_args = 0, default_missing_value = "false", action = clap::ArgAction::Set, required = false)]
    pub enabled: bool,
    /// HTTP /health and /metrics address (http.listen).
    #[arg(
        id = "http.listen",
        long = "http-listen",
        value_name = "ADDR",
        required = false
    )]
    pub listen: SocketAddr,
    /// HTTP connections open at once; beyond, a new one is accepted, closed at once and
    /// counted (http.max_connections).
    #[arg(
        id = "http.max_connections",
        long = "http-max-connections",
        value_name = "N",
        required = false
    )]
    pub max_connections: usize,
    /// A request must arrive whole within this of the connection (or of the previous
    /// answer, with keep-alive), else the connection is closed (http.read_timeout_ms).
    #[arg(
        id = "http.read_timeout_ms",
        long = "http-read-timeout-ms",
        value_name = "MS",
        required = false
    )]
    pub read_timeout_ms: u64,
    /// An answer the client has not taken within this is dropped with its connection
    /// (http.write_timeout_ms).
    #[arg(
        id = "http.write_timeout_ms",
        long = "http-write-timeout-ms",
        value_name = "MS",
        required = false
    )]
    pub write_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 1024,
            read_timeout_ms: 5_000,
            write_timeout_ms: 5_000,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "http.max_connections",
            self.max_connections as u64,
            1..=65_536,
        )?;
        within("http.read_timeout_ms", self.read_timeout_ms, TIMEOUT_MS)?;
        within("http.write_timeout_ms", self.write_timeout_ms, TIMEOUT_MS)
    }
}
