//! The receive stage's sockets: binding a listener's SO_REUSEPORT group, the receive buffer,
//! and the kernel's own drop counters for those sockets (`/proc/net/udp`).

use std::io;
use std::net::{SocketAddr, UdpSocket};

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};

use super::POLL_INTERVAL;
use crate::parse::Protocol;

/// A bound group of sockets sharing one address.
pub struct BoundGroup {
    pub sockets: Vec<UdpSocket>,
    /// The actual address (resolves port 0).
    pub local_addr: SocketAddr,
    /// Effective receive buffer per socket, as reported by the kernel.
    pub rcvbuf_bytes: usize,
}

/// Binds `count` SO_REUSEPORT sockets to `addr`. With port 0 the first socket picks a free
/// port and the others join it.
///
/// SO_REUSEPORT would also let this group join a port that another process of the same user
/// already holds, which would then silently take a share of the traffic. So the address is
/// first bound once *without* SO_REUSEPORT: that fails with `AddrInUse` while any other socket
/// holds the port, and the probe is closed before the group binds.
pub fn bind_group(addr: SocketAddr, count: usize, rcvbuf_bytes: usize) -> io::Result<BoundGroup> {
    let mut sockets = Vec::with_capacity(count);
    let mut local_addr = {
        let probe = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM,
            Some(SockProtocol::UDP),
        )?;
        if addr.is_ipv6() {
            probe.set_only_v6(true)?;
        }
        probe.bind(&addr.into()).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => io::Error::new(
                io::ErrorKind::AddrInUse,
                "address in use: another socket (another rstatsd?) already receives on this port",
            ),
            _ => e,
        })?;
        probe
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an inet socket"))?
    };
    let mut effective = 0;
    for _ in 0..count {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM,
            Some(SockProtocol::UDP),
        )?;
        socket.set_reuse_port(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        effective = set_receive_buffer(&socket, rcvbuf_bytes)?;
        socket.bind(&local_addr.into())?;
        socket.set_read_timeout(Some(POLL_INTERVAL))?;
        let socket: UdpSocket = socket.into();
        local_addr = socket.local_addr()?;
        sockets.push(socket);
    }
    if effective < rcvbuf_bytes {
        log::warn!(
            "{local_addr}: receive buffer is {effective} bytes, {rcvbuf_bytes} requested; the \
             kernel caps it at net.core.rmem_max: raise it with `sysctl -w net.core.rmem_max={rcvbuf_bytes}` \
             or bursts will be dropped by the kernel"
        );
    }
    Ok(BoundGroup {
        sockets,
        local_addr,
        rcvbuf_bytes: effective,
    })
}

/// Sets SO_RCVBUF, falling back to SO_RCVBUFFORCE (allowed with CAP_NET_ADMIN) when the
/// kernel clamps it. Returns the effective size (Linux reports twice the requested value
/// to account for bookkeeping; we report the usable half).
fn set_receive_buffer(socket: &Socket, bytes: usize) -> io::Result<usize> {
    socket.set_recv_buffer_size(bytes)?;
    let mut effective = socket.recv_buffer_size()? / 2;
    if effective < bytes {
        let forced = bytes.min(i32::MAX as usize);
        if setsockopt(socket, sockopt::RcvBufForce, &forced).is_ok() {
            effective = socket.recv_buffer_size()? / 2;
        }
    }
    Ok(effective)
}

/// The inode of a socket (its identity in /proc/net/udp), where /proc is available.
pub fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// The kernel's cumulative drop counters of our sockets, per listener, from
/// `/proc/net/udp` and `/proc/net/udp6` (the last column; matched by socket inode). Empty
/// where /proc is not available.
pub fn socket_drops(inodes: &[(Protocol, u64)]) -> Vec<(Protocol, u64)> {
    let mut out: Vec<(Protocol, u64)> = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(inode), Some(drops)) = (
                fields.get(9).and_then(|f| f.parse::<u64>().ok()),
                fields.last().and_then(|f| f.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if let Some((protocol, _)) = inodes.iter().find(|(_, i)| *i == inode) {
                match out.iter_mut().find(|(p, _)| p == protocol) {
                    Some((_, total)) => *total += drops,
                    None => out.push((*protocol, drops)),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_another_socket_is_refused() {
        let first = bind_group("127.0.0.1:0".parse().unwrap(), 2, 4096).unwrap();
        let err = bind_group(first.local_addr, 2, 4096)
            .err()
            .expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(
            err.to_string().contains("already receives on this port"),
            "{err}"
        );
        // Even a socket that itself allows SO_REUSEPORT keeps a second group out.
        let other = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        other.set_reuse_port(true).unwrap();
        other
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let held = other.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(
            bind_group(held, 1, 4096).err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
        // Once the holder is gone the port is free again.
        drop(first);
        drop(other);
        assert_eq!(bind_group(held, 2, 4096).unwrap().sockets.len(), 2);
    }
}
