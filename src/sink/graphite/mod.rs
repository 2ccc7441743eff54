//! The Graphite sink: Etsy statsd's Graphite output over the plaintext carbon protocol
//! (`path value unix_ts\n` over TCP).
//!
//! Naming and numbers are Etsy's ([`render`]). Each destination is its own sink (own thread,
//! own buffer, named `<sink>/<host:port>`), so one slow or absent carbon never holds back
//! another or any other sink.
//!
//! **Delivery.** A snapshot is rendered into one buffer of complete lines the moment it
//! arrives. The buffer is bounded (`buffer_bytes`, default 64 MiB); when a new snapshot does
//! not fit, the oldest waiting snapshots are dropped whole and counted (`sink_dropped`
//! lines). While the destination is down the sink reconnects with exponential backoff
//! (`reconnect_min_ms` doubling up to `reconnect_max_ms`). Writes have a timeout, so a
//! stalled carbon delays only this sink. After a partial write the rest is sent next; after
//! a failed write the line it cut is sent again whole on the new connection (carbon
//! discards the unterminated fragment of a closed connection), so no line is torn or
//! duplicated.
//!
//! Carbon never answers, so TCP alone cannot tell whether bytes the kernel accepted reached
//! it. Before each snapshot the sink checks whether carbon closed the connection (a
//! non-blocking peek: carbon sends nothing, so readable means closed) and reconnects
//! first; a restarted carbon therefore loses nothing that was flushed while it was down.
//! What remains is TCP's own window: lines accepted by the kernel just before a network
//! failure is detected can be lost (at most once, never duplicated).

mod render;

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};
use serde::Deserialize;

pub use render::{Bin, Renderer};

use super::{Sink, SinkCounters, SinkError};
use crate::logging::RateLimit;
use crate::snapshot::Snapshot;

/// `[sinks.NAME] type = "graphite"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraphiteConfig {
    /// `host:port` of each carbon; each gets every series.
    pub destinations: Vec<String>,
    /// Etsy's `legacyNamespace` (default true, as in Etsy).
    pub legacy_namespace: bool,
    pub global_prefix: String,
    pub prefix_counter: String,
    pub prefix_timer: String,
    pub prefix_gauge: String,
    pub prefix_set: String,
    pub global_suffix: String,
    /// Send tags as Graphite 1.1 tags; false drops them.
    pub tags: bool,
    /// Counters: send the per-second rate (`stats.<k>` / `.rate`).
    pub counter_rates: bool,
    /// Counters: send the count (`stats_counts.<k>` / `.count`; Etsy `flush_counts`).
    pub counter_counts: bool,
    /// The rate series carries the count instead of count per second (pystatsd's
    /// `--no-aggregate-counters`).
    pub absolute_counters: bool,
    /// Etsy `calculatedTimerMetrics`: timer statistics to send; empty = all.
    pub timer_stats: Vec<String>,
    /// Etsy `histogram`: bins per metric-name substring, first match wins.
    pub histogram: Vec<HistogramConfig>,
    /// Bytes of rendered lines waiting per destination before the oldest are dropped.
    pub buffer_bytes: usize,
    pub connect_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// How long shutdown keeps trying to deliver what is buffered.
    pub shutdown_timeout_ms: u64,
}

impl Default for GraphiteConfig {
    fn default() -> Self {
        GraphiteConfig {
            destinations: vec!["127.0.0.1:2003".into()],
            legacy_namespace: true,
            global_prefix: "stats".into(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            global_suffix: String::new(),
            tags: true,
            counter_rates: true,
            counter_counts: true,
            absolute_counters: false,
            timer_stats: Vec::new(),
            histogram: Vec::new(),
            buffer_bytes: 64 << 20,
            connect_timeout_ms: 2_000,
            write_timeout_ms: 5_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            shutdown_timeout_ms: 5_000,
        }
    }
}

/// One `histogram` entry: `{ metric = "api.", bins = [10, 100, "inf"] }`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HistogramConfig {
    pub metric: String,
    pub bins: Vec<BinConfig>,
}

/// A bin bound: a number or `"inf"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum BinConfig {
    Number(f64),
    Text(String),
}

impl HistogramConfig {
    /// The bins (valid after [`GraphiteConfig::validate`]).
    pub fn bins(&self) -> Vec<Bin> {
        self.bins
            .iter()
            .map(|b| match b {
                BinConfig::Number(v) => Bin::Below(*v),
                BinConfig::Text(_) => Bin::Inf,
            })
            .collect()
    }
}

impl GraphiteConfig {
    /// Checks what serde cannot; errors are (key under `prefix`, reason).
    pub fn validate(&self, prefix: &str) -> Result<(), (String, String)> {
        let err = |key: &str, reason: String| Err((format!("{prefix}.{key}"), reason));
        if self.destinations.is_empty() {
            return err("destinations", "at least one host:port is required".into());
        }
        for (i, d) in self.destinations.iter().enumerate() {
            let port = d.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok().filter(|p| *p != 0)
            });
            if port.is_none() {
                return err(
                    &format!("destinations[{i}]"),
                    format!("{d:?} is not host:port"),
                );
            }
        }
        for (i, h) in self.histogram.iter().enumerate() {
            for (j, b) in h.bins.iter().enumerate() {
                let ok = match b {
                    BinConfig::Number(v) => v.is_finite(),
                    BinConfig::Text(t) => t == "inf",
                };
                if !ok {
                    return err(
                        &format!("histogram[{i}].bins[{j}]"),
                        "must be a finite number or \"inf\"".into(),
                    );
                }
            }
        }
        for (key, v) in [
            ("buffer_bytes", self.buffer_bytes as u64),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("write_timeout_ms", self.write_timeout_ms),
            ("reconnect_min_ms", self.reconnect_min_ms),
        ] {
            if v == 0 {
                return err(key, "must be at least 1".into());
            }
        }
        if self.reconnect_max_ms < self.reconnect_min_ms {
            return err(
                "reconnect_max_ms",
                "must be at least reconnect_min_ms".into(),
            );
        }
        Ok(())
    }
}

/// One snapshot's rendered lines, waiting to be written.
#[derive(Debug)]
struct Chunk {
    bytes: Vec<u8>,
    lines: u64,
    /// Bytes already written.
    sent: usize,
}

/// A sink writing to one carbon destination.
pub struct GraphiteSink {
    name: String,
    destination: String,
    renderer: Arc<Renderer>,
    config: GraphiteConfig,
    counters: Arc<SinkCounters>,
    pending: VecDeque<Chunk>,
    pending_bytes: usize,
    conn: Option<TcpStream>,
    next_attempt: Instant,
    backoff: Duration,
    error_log: RateLimit,
}

impl GraphiteSink {
    pub fn new(
        name: &str,
        destination: &str,
        renderer: Arc<Renderer>,
        config: &GraphiteConfig,
        counters: Arc<SinkCounters>,
    ) -> GraphiteSink {
        GraphiteSink {
            name: name.to_string(),
            destination: destination.to_string(),
            renderer,
            config: config.clone(),
            counters,
            pending: VecDeque::new(),
            pending_bytes: 0,
            conn: None,
            next_attempt: Instant::now(),
            backoff: Duration::from_millis(config.reconnect_min_ms),
            error_log: RateLimit::new(Duration::from_secs(10)),
        }
    }

    fn pending_lines(&self) -> u64 {
        self.pending.iter().map(|c| c.lines).sum()
    }

    fn set_buffered(&self) {
        self.counters
            .buffered_bytes
            .store(self.pending_bytes as u64, Ordering::Relaxed);
    }

    /// Drops the oldest whole snapshots that have not started to go out until `incoming`
    /// more bytes fit (a snapshot larger than the whole buffer is still kept alone).
    fn make_room(&mut self, incoming: usize) {
        let in_progress = self.pending.front().is_some_and(|c| c.sent > 0);
        let first_droppable = usize::from(in_progress);
        while self.pending_bytes + incoming > self.config.buffer_bytes
            && self.pending.len() > first_droppable
        {
            let dropped = self.pending.remove(first_droppable).expect("index checked");
            self.pending_bytes -= dropped.bytes.len();
            self.counters
                .dropped
                .fetch_add(dropped.lines, Ordering::Relaxed);
            log::warn!(
                "sink {}: buffer full ({} bytes), dropped the oldest snapshot ({} lines)",
                self.name,
                self.config.buffer_bytes,
                dropped.lines
            );
        }
    }

    fn connect(&mut self) -> io::Result<TcpStream> {
        let timeout = Duration::from_millis(self.config.connect_timeout_ms);
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address resolved");
        for addr in self.destination.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_write_timeout(Some(Duration::from_millis(
                        self.config.write_timeout_ms,
                    )))?;
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// True when the peer has closed the connection (or reset it). Carbon never sends, so
    /// anything readable means the connection is finished.
    fn peer_closed(stream: &TcpStream) -> bool {
        let mut byte = [0u8; 1];
        match recv(
            stream.as_raw_fd(),
            &mut byte,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Err(Errno::EAGAIN) => false,
            Ok(_) | Err(_) => true,
        }
    }

    fn disconnect(&mut self, why: &str) {
        self.conn = None;
        // Resend the line a failed write may have cut, whole.
        if let Some(front) = self.pending.front_mut() {
            front.sent = front.bytes[..front.sent]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
        }
        if let Some(suppressed) = self.error_log.allow() {
            log::warn!(
                "sink {}: {why}; reconnecting ({suppressed} more since the last report)",
                self.name
            );
        }
        self.next_attempt = Instant::now();
    }

    /// Writes as much as possible without waiting longer than one write timeout.
    fn pump(&mut self) {
        while !self.pending.is_empty() {
            if self.conn.is_none() {
                if Instant::now() < self.next_attempt {
                    return;
                }
                match self.connect() {
                    Ok(stream) => {
                        self.conn = Some(stream);
                        self.backoff = Duration::from_millis(self.config.reconnect_min_ms);
                        log::info!("sink {}: connected to {}", self.name, self.destination);
                    }
                    Err(e) => {
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                        if let Some(suppressed) = self.error_log.allow() {
                            log::warn!(
                                "sink {}: cannot connect to {}: {e}; retrying in {:?}, {} bytes \
                                 buffered ({suppressed} more since the last report)",
                                self.name,
                                self.destination,
                                self.backoff,
                                self.pending_bytes
                            );
                        }
                        self.next_attempt = Instant::now() + self.backoff;
                        self.backoff = (self.backoff * 2)
                            .min(Duration::from_millis(self.config.reconnect_max_ms));
                        return;
                    }
                }
            }
            let stream = self.conn.as_mut().expect("connected above");
            let front = self.pending.front_mut().expect("not empty");
            if front.sent == 0 && GraphiteSink::peer_closed(stream) {
                self.disconnect("connection closed by the destination");
                continue;
            }
            match stream.write(&front.bytes[front.sent..]) {
                Ok(0) => self.disconnect("connection closed"),
                Ok(n) => {
                    front.sent += n;
                    if front.sent == front.bytes.len() {
                        let done = self.pending.pop_front().expect("not empty");
                        self.pending_bytes -= done.bytes.len();
                        self.counters
                            .delivered
                            .fetch_add(done.lines, Ordering::Relaxed);
                        self.set_buffered();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // Carbon is not reading; try again at the next poll.
                    return;
                }
                Err(e) => self.disconnect(&format!("write failed: {e}")),
            }
        }
    }
}

impl Sink for GraphiteSink {
    fn send(&mut self, snapshot: &Snapshot) -> Result<(), SinkError> {
        let mut bytes = Vec::with_capacity(snapshot.series.len() * 64);
        let lines = self.renderer.render(snapshot, &mut bytes);
        self.make_room(bytes.len());
        self.pending_bytes += bytes.len();
        self.pending.push_back(Chunk {
            bytes,
            lines,
            sent: 0,
        });
        self.set_buffered();
        self.pump();
        Ok(())
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }

    fn poll(&mut self) {
        self.pump();
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let deadline = Instant::now() + Duration::from_millis(self.config.shutdown_timeout_ms);
        while !self.pending.is_empty() && Instant::now() < deadline {
            self.pump();
            if !self.pending.is_empty() {
                let wait = self
                    .next_attempt
                    .saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(10), Duration::from_millis(100));
                std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
            }
        }
        let undelivered = self.pending_lines();
        self.counters
            .undelivered
            .store(undelivered, Ordering::Relaxed);
        if undelivered > 0 {
            return Err(SinkError(format!(
                "{undelivered} lines undelivered to {} at shutdown",
                self.destination
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Value;
    use crate::metric::{MetricType, SeriesKey};

    fn snapshot(series: usize) -> Snapshot {
        Snapshot {
            timestamp_ms: 1_795_323_600_000,
            interval: Duration::from_secs(10),
            percentiles: Vec::new().into(),
            series: (0..series)
                .map(|i| {
                    let key = SeriesKey::new(
                        format!("g{i}"),
                        MetricType::Gauge,
                        Vec::<(&str, &str)>::new(),
                    );
                    (
                        key,
                        Value::Gauge(crate::aggregate::Gauge {
                            value: 1.0,
                            absolute: true,
                            stamp: 0,
                        }),
                    )
                })
                .collect(),
        }
    }

    /// A sink whose destination refuses connections (nothing listens on an ephemeral port
    /// we bound and released).
    fn unreachable_sink(buffer_bytes: usize) -> GraphiteSink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = GraphiteConfig {
            buffer_bytes,
            reconnect_min_ms: 60_000,
            reconnect_max_ms: 60_000,
            shutdown_timeout_ms: 1,
            ..GraphiteConfig::default()
        };
        GraphiteSink::new(
            "g",
            &format!("127.0.0.1:{port}"),
            Arc::new(Renderer::new(&config)),
            &config,
            Arc::default(),
        )
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_snapshots_whole() {
        // Each snapshot: 2 gauges + numStats = 3 lines of 30-odd bytes.
        let one = {
            let mut b = Vec::new();
            Renderer::new(&GraphiteConfig::default()).render(&snapshot(2), &mut b);
            b.len()
        };
        let mut sink = unreachable_sink(one * 2);
        for _ in 0..5 {
            sink.send(&snapshot(2)).unwrap();
        }
        let totals = sink.counters.totals();
        assert_eq!(totals.dropped, 9, "three snapshots of 3 lines dropped");
        assert_eq!(totals.buffered_bytes, (one * 2) as u64);
        assert_eq!(totals.errors, 1, "one connection attempt (backoff 60 s)");
        assert!(sink.close().is_err());
        assert_eq!(sink.counters.totals().undelivered, 6);
    }

    #[test]
    fn a_failed_write_resends_the_cut_line_whole() {
        let mut sink = unreachable_sink(1 << 20);
        sink.pending.push_back(Chunk {
            bytes: b"a 1 1\nbb 2 1\nc 3 1\n".to_vec(),
            lines: 3,
            sent: 9,
        });
        sink.disconnect("test");
        assert_eq!(sink.pending[0].sent, 6, "back to the start of `bb 2 1`");
        sink.pending[0].sent = 13;
        sink.disconnect("test");
        assert_eq!(
            sink.pending[0].sent, 13,
            "at a line boundary: nothing to resend"
        );
    }
}
