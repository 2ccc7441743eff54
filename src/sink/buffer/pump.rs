//! [`Transport`]: how a sink reaches its destination; [`BufferedSink`]: a [`Sink`] made of a
//! transport and a [`DeliveryBuffer`], pumping the buffer into the transport and, at close,
//! what is left into the spool.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{BufferSettings, DeliveryBuffer};
use crate::sink::batch::Batch;
use crate::sink::{Flushed, Receipt, Sink, SinkCounters, SinkError};

/// How a sink reaches its destination; [`BufferedSink`] drives it.
pub trait Transport: Send {
    /// Encodes one flush into messages.
    fn encode(&mut self, flushed: &Flushed, batch: &mut Batch);

    /// True when the transport reports each message taken as delivered (or failed) through
    /// [`DeliveryBuffer::resolve`]; otherwise a message taken counts as delivered.
    fn acknowledges(&self) -> bool {
        false
    }

    /// Moves messages from the front of `buffer` to the destination until it pushes back
    /// (and takes back what the destination returned for retry).
    fn deliver(&mut self, buffer: &mut DeliveryBuffer);

    /// Waits up to `max` for progress (delivery reports, a reconnect coming due).
    fn wait(&mut self, max: Duration);

    /// How often to pump while no flush arrives.
    fn poll_interval(&self) -> Duration;

    /// Close gave up: take back what the destination has not confirmed (its delivery
    /// reports no longer count) so the buffer can spool it.
    fn abandon(&mut self, _buffer: &mut DeliveryBuffer) {}
}

/// A [`Sink`] made of a transport and a delivery buffer.
pub struct BufferedSink<T: Transport> {
    transport: T,
    buffer: DeliveryBuffer,
    shutdown_timeout: Duration,
}

impl<T: Transport> BufferedSink<T> {
    /// A sink named `name`.
    pub fn new(
        name: &str,
        transport: T,
        settings: &BufferSettings,
        counters: Arc<SinkCounters>,
    ) -> BufferedSink<T> {
        let mut buffer = DeliveryBuffer::new(name, settings, counters);
        if transport.acknowledges() {
            buffer.set_acknowledged();
        }
        BufferedSink {
            transport,
            buffer,
            shutdown_timeout: settings.shutdown_timeout,
        }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }
}

impl<T: Transport> Sink for BufferedSink<T> {
    fn send(&mut self, flushed: &Flushed) -> Result<(), SinkError> {
        let mut batch = Batch::default();
        self.transport.encode(flushed, &mut batch);
        batch.set_flushed_ms(flushed.snapshot.timestamp_ms);
        let receipt = flushed.receipt.as_ref().map(Receipt::hold);
        self.buffer.push_held(batch, receipt);
        self.transport.deliver(&mut self.buffer);
        Ok(())
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(self.transport.poll_interval())
    }

    fn poll(&mut self) {
        self.transport.deliver(&mut self.buffer);
    }

    /// Delivers within the shutdown timeout; then what is left goes to the spool (logged:
    /// "spooled N messages"), and only what could not be spooled is undelivered.
    fn close(&mut self) -> u64 {
        let deadline = Instant::now() + self.shutdown_timeout;
        loop {
            self.transport.deliver(&mut self.buffer);
            let now = Instant::now();
            if self.buffer.undelivered() == 0 || now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            self.transport.wait(wait);
        }
        self.transport.abandon(&mut self.buffer);
        let (spooled, lost) = self.buffer.spool_everything();
        if spooled > 0 {
            self.buffer
                .counters
                .spooled_at_close
                .store(spooled, Ordering::Relaxed);
            log::warn!(
                "spooled {spooled} messages for sink {}; the next start delivers them first",
                self.buffer.name
            );
        }
        lost
    }
}
