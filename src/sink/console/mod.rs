//! The console sink: one JSON object per series per flush, one per line, on stdout.
//!
//! ```json
//! {"name":"api.latency","type":"timer","tags":{"env":"prod"},"timestamp":1795323600,"values":{"count_90":9,"mean_90":5,...}}
//! ```
//!
//! `timestamp` is the flush time in Unix seconds; `values` holds the series' output fields
//! ([`crate::snapshot::Fields`]; the same object as the Kafka `json-nested` format). This is
//! the default sink (pystatsd's debug mode, Etsy's console backend), so `rstatsd` with no
//! arguments shows what it aggregates. It writes directly, with no delivery buffer: stdout
//! either takes the lines or fails.

use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use serde::Deserialize;

use super::{
    BuildContext, BuiltSink, ConfigError, Flushed, Sink, SinkCounters, SinkError, SinkSpec,
};
use crate::sink::nested::render_nested;

/// `[sinks.NAME] type = "console"`. No options yet.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {}

/// `--console`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsoleFlags {
    /// Also print aggregates to stdout when other sinks are configured (adds sink `console`).
    #[arg(long)]
    pub console: bool,
}

impl SinkSpec for ConsoleConfig {
    type Flags = ConsoleFlags;

    fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }

    fn build(&self, name: &str, _: &BuildContext) -> Result<Vec<BuiltSink>, ConfigError> {
        let counters: Arc<SinkCounters> = Arc::default();
        let out = BufWriter::with_capacity(1 << 16, io::stdout());
        Ok(vec![BuiltSink {
            name: name.to_string(),
            sink: Box::new(ConsoleSink::new(out, Arc::clone(&counters))),
            counters,
        }])
    }

    fn flagged_sink(flags: &ConsoleFlags) -> Option<&'static str> {
        flags.console.then_some("console")
    }

    fn apply_flags(&mut self, _flags: &ConsoleFlags) {}
}

/// Writes snapshots as JSON lines to a writer (stdout in the daemon).
pub struct ConsoleSink<W: Write + Send> {
    out: W,
    line: String,
    counters: Arc<SinkCounters>,
}

impl<W: Write + Send> ConsoleSink<W> {
    pub fn new(out: W, counters: Arc<SinkCounters>) -> Self {
        ConsoleSink {
            out,
            line: String::with_capacity(1024),
            counters,
        }
    }
}

impl<W: Write + Send> Sink for ConsoleSink<W> {
    fn send(&mut self, flushed: &Flushed) -> Result<(), SinkError> {
        let snapshot = &flushed.snapshot;
        for i in 0..snapshot.series.len() {
            self.line.clear();
            render_nested(&mut self.line, snapshot, i);
            self.line.push('\n');
            self.out.write_all(self.line.as_bytes())?;
        }
        self.out.flush()?;
        SinkCounters::add(&self.counters.delivered, snapshot.series.len() as u64);
        Ok(())
    }

    fn close(&mut self) -> u64 {
        if let Err(e) = self.out.flush() {
            log::error!("console: cannot flush stdout: {e}");
        }
        0
    }
}
