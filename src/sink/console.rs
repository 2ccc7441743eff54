//! The console sink: one JSON object per series per flush, one per line, on stdout.
//!
//! ```json
//! {"name":"api.latency","type":"timer","tags":{"env":"prod"},"timestamp":1795323600,"values":{"count_90":9,"mean_90":5,...}}
//! ```
//!
//! `timestamp` is the flush time in Unix seconds; `values` holds the fields of
//! [`Snapshot::for_each_field`] (the same object as the Kafka `json-nested` format). This is the default sink (pystatsd's debug mode, Etsy's
//! console backend), so `rstatsd` with no arguments shows what it aggregates.

use std::io::Write;

use serde::Deserialize;

use super::{Sink, SinkError};
use crate::format::json::render_nested;
use crate::snapshot::Snapshot;

/// `[sinks.NAME] type = "console"`. No options yet.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {}

/// Writes snapshots as JSON lines to a writer (stdout in the daemon).
pub struct ConsoleSink<W: Write + Send> {
    out: W,
    line: String,
}

impl<W: Write + Send> ConsoleSink<W> {
    pub fn new(out: W) -> Self {
        ConsoleSink {
            out,
            line: String::with_capacity(1024),
        }
    }
}

impl<W: Write + Send> Sink for ConsoleSink<W> {
    fn send(&mut self, snapshot: &Snapshot) -> Result<(), SinkError> {
        for i in 0..snapshot.series.len() {
            self.line.clear();
            render_nested(&mut self.line, snapshot, i);
            self.line.push('\n');
            self.out.write_all(self.line.as_bytes())?;
        }
        self.out.flush()?;
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}
