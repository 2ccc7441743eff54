//! [`SocketPool`]: the sockets of one listener address, shared by its receivers (see the
//! stage docs in `receive/mod.rs` for why).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The sockets of one listener address, shared by its receivers (see the module docs).
pub struct SocketPool {
    pub(super) sockets: Vec<UdpSocket>,
    /// Per socket: a receiver is reading it.
    pub(super) busy: Vec<AtomicBool>,
    /// Per socket: its last batch was full.
    pub(super) last_full: Vec<AtomicBool>,
    /// Per socket: its last two batches were full, so it holds more than its reader keeps
    /// up with. One full batch is not enough: a paused receiver aims at one per wakeup.
    pub(super) backlogged: Vec<AtomicBool>,
}

impl SocketPool {
    pub fn new(sockets: Vec<UdpSocket>) -> Arc<SocketPool> {
        let flags = || sockets.iter().map(|_| AtomicBool::new(false)).collect();
        Arc::new(SocketPool {
            busy: flags(),
            last_full: flags(),
            backlogged: flags(),
            sockets,
        })
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Socket `i`, if no receiver is reading it: this receiver's until [`SocketPool::give`].
    pub(super) fn take(&self, i: usize) -> bool {
        self.busy[i]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Hands socket `i` back; `full` when the batch just read from it filled up. Release:
    /// whoever takes it next sees everything done before, the batch's stamp included.
    pub(super) fn give(&self, i: usize, full: bool) {
        let was_full = self.last_full[i].swap(full, Ordering::Relaxed);
        self.backlogged[i].store(full && was_full, Ordering::Relaxed);
        self.busy[i].store(false, Ordering::Release);
    }
}
