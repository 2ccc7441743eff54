//! One carbon connection: connect with backoff, write lines from the delivery buffer, detect a
//! carbon that went away (see the delivery notes in [`super`]).

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};

use super::{GraphiteConfig, Renderer};
use crate::logging::RateLimit;
use crate::sink::batch::Batch;
use crate::sink::buffer::{DeliveryBuffer, Flow, Transport};
use crate::sink::{Flushed, SinkCounters};

/// The transport of one Graphite destination.
pub struct GraphiteTransport {
    name: String,
    destination: String,
    renderer: Arc<Renderer>,
    config: GraphiteConfig,
    counters: Arc<SinkCounters>,
    conn: Option<TcpStream>,
    next_attempt: Instant,
    backoff: Duration,
    error_log: RateLimit,
}

impl GraphiteTransport {
    pub fn new(
        name: &str,
        destination: &str,
        renderer: Arc<Renderer>,
        config: &GraphiteConfig,
        counters: Arc<SinkCounters>,
    ) -> GraphiteTransport {
        GraphiteTransport {
            name: name.to_string(),
            destination: destination.to_string(),
            renderer,
            config: config.clone(),
            counters,
            conn: None,
            next_attempt: Instant::now(),
            backoff: Duration::from_millis(config.reconnect_min_ms),
            error_log: RateLimit::new(Duration::from_secs(10)),
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

    /// Connects unless connected or backing off; false when there is no connection.
    fn ensure_connected(&mut self, buffered: usize) -> bool {
        if self.conn.is_some() {
            return true;
        }
        if Instant::now() < self.next_attempt {
            return false;
        }
        match self.connect() {
            Ok(stream) => {
                self.conn = Some(stream);
                self.backoff = Duration::from_millis(self.config.reconnect_min_ms);
                log::info!("sink {}: connected to {}", self.name, self.destination);
                true
            }
            Err(e) => {
                SinkCounters::add(&self.counters.connection_errors, 1);
                if let Some(suppressed) = self.error_log.allow() {
                    log::warn!(
                        "sink {}: cannot connect to {}: {e}; retrying in {:?}, {buffered} bytes \
                         buffered ({suppressed} more since the last report)",
                        self.name,
                        self.destination,
                        self.backoff,
                    );
                }
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff =
                    (self.backoff * 2).min(Duration::from_millis(self.config.reconnect_max_ms));
                false
            }
        }
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

    /// Drops the connection; the line a failed write may have cut goes again whole.
    fn disconnect(&mut self, batch: &mut Batch, why: &str) {
        self.conn = None;
        batch.rewind_partial();
        SinkCounters::add(&self.counters.connection_errors, 1);
        if let Some(suppressed) = self.error_log.allow() {
            log::warn!(
                "sink {}: {why}; reconnecting ({suppressed} more since the last report)",
                self.name
            );
        }
        self.next_attempt = Instant::now();
    }

    /// Writes as much of `batch` as the connection takes without waiting longer than one
    /// write timeout.
    fn write_batch(&mut self, batch: &mut Batch, buffered: usize) -> Flow {
        while batch.waiting() > 0 {
            if !self.ensure_connected(buffered) {
                return Flow::Blocked;
            }
            let stream = self.conn.as_mut().expect("connected above");
            if !batch.started() && GraphiteTransport::peer_closed(stream) {
                self.disconnect(batch, "connection closed by the destination");
                continue;
            }
            match stream.write(batch.unwritten()) {
                Ok(0) => self.disconnect(batch, "connection closed"),
                Ok(n) => {
                    let lines = batch.wrote(n);
                    SinkCounters::add(&self.counters.delivered, lines);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // Carbon is not reading; try again at the next poll.
                    return Flow::Blocked;
                }
                Err(e) => self.disconnect(batch, &format!("write failed: {e}")),
            }
        }
        Flow::Done
    }
}

impl Transport for GraphiteTransport {
    fn encode(&mut self, flushed: &Flushed, batch: &mut Batch) {
        self.renderer.render(&flushed.snapshot, batch);
    }

    fn deliver(&mut self, buffer: &mut DeliveryBuffer) {
        let buffered = buffer.bytes();
        buffer.deliver(|batch| self.write_batch(batch, buffered));
    }

    fn wait(&mut self, max: Duration) {
        let wait = self
            .next_attempt
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_millis(100));
        std::thread::sleep(wait.min(max));
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(50)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Gauge, Value};
    use crate::metric::{MetricType, SeriesKey};
    use crate::sink::Sink;
    use crate::sink::buffer::{BufferSettings, BufferedSink};
    use crate::snapshot::Snapshot;

    fn flushed(series: usize) -> Flushed {
        let gauge = Value::Gauge(Gauge {
            value: 1.0,
            absolute: true,
            stamp: 0,
        });
        let series = (0..series)
            .map(|i| {
                let key = SeriesKey::new(format!("g{i}"), MetricType::Gauge, [("a", "b")]);
                (key, gauge.clone())
            })
            .collect();
        Flushed::new(Arc::new(Snapshot {
            timestamp_ms: 1_795_323_600_000,
            interval: Duration::from_secs(10),
            percentiles: Vec::new().into(),
            series,
        }))
    }

    #[test]
    fn an_unreachable_destination_fills_the_buffer_and_drops_the_oldest_snapshots_whole() {
        // Nothing listens on an ephemeral port we bound and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = GraphiteConfig {
            reconnect_min_ms: 60_000,
            reconnect_max_ms: 60_000,
            ..GraphiteConfig::default()
        };
        let renderer = Arc::new(Renderer::new(&config));
        // Each snapshot: 2 gauges + numStats = 3 lines.
        let one = {
            let mut b = Batch::default();
            renderer.render(&flushed(2).snapshot, &mut b);
            b.bytes()
        };
        let counters: Arc<SinkCounters> = Arc::default();
        let destination = format!("127.0.0.1:{port}");
        let transport =
            GraphiteTransport::new("g", &destination, renderer, &config, Arc::clone(&counters));
        let settings = BufferSettings::memory(one * 2, Duration::from_millis(1));
        let mut sink = BufferedSink::new("g", transport, &settings, Arc::clone(&counters));
        for _ in 0..5 {
            sink.send(&flushed(2)).unwrap();
        }
        let totals = counters.totals();
        assert_eq!(
            totals.buffer_dropped, 9,
            "three snapshots of 3 lines dropped"
        );
        assert_eq!(totals.buffered_bytes, (one * 2) as u64);
        assert_eq!(totals.connection_errors, 1, "one attempt (backoff 60 s)");
        assert_eq!(sink.close(), 6);
    }
}
