//! `sink` mode: receive with `recvmmsg` and count, nothing else. It uses the same batching
//! as rstatsd (drain, then pause 1 ms after a partial batch), so its CPU time is the floor
//! a statsd server's receive path can be compared with.

use std::io::IoSliceMut;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::socket::{MsgFlags, MultiHeaders, recvmmsg};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{SinkArgs, secs};

const BATCH: usize = 64;
const MAX_DATAGRAM: usize = 65536;
const COALESCE: Duration = Duration::from_millis(1);

pub fn run(args: &SinkArgs) -> Result<(), String> {
    let socket = Socket::new(
        Domain::for_address(args.listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .and_then(|s| {
        s.set_recv_buffer_size(args.rcvbuf)?;
        s.bind(&args.listen.into())?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(s)
    })
    .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let socket: UdpSocket = socket.into();
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    eprintln!("listening on {local}");

    let mut buffer = vec![0u8; BATCH * MAX_DATAGRAM];
    let mut headers = MultiHeaders::<()>::preallocate(BATCH, None);
    let (mut datagrams, mut metrics, mut bytes) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let cpu_start = cpu_time();
    let deadline = started + secs(args.duration);
    let mut tick = started + Duration::from_secs(1);
    let mut last = 0;
    let mut lengths = Vec::with_capacity(BATCH);
    while Instant::now() < deadline && args.datagrams.is_none_or(|d| datagrams < d) {
        lengths.clear();
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffer
                .chunks_mut(MAX_DATAGRAM)
                .map(|c| [IoSliceMut::new(c)])
                .collect();
            match recvmmsg(
                socket.as_raw_fd(),
                &mut headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => lengths.extend(results.map(|r| r.bytes)),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(format!("receive: {e}")),
            }
        }
        for (i, &len) in lengths.iter().enumerate() {
            let data = &buffer[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len];
            datagrams += 1;
            bytes += len as u64;
            metrics += data
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64;
        }
        if !lengths.is_empty() && lengths.len() < BATCH {
            std::thread::sleep(COALESCE);
        }
        if !args.quiet && Instant::now() >= tick {
            eprintln!(
                "{:>5.1}s received {datagrams} datagrams, {metrics} metrics ({} /s)",
                started.elapsed().as_secs_f64(),
                metrics - last
            );
            last = metrics;
            tick += Duration::from_secs(1);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu_start;
    let per_metric_ns = if metrics > 0 {
        cpu * 1e9 / metrics as f64
    } else {
        0.0
    };
    if args.json {
        println!(
            "{{\"mode\":\"sink\",\"datagrams\":{datagrams},\"metrics\":{metrics},\"bytes\":{bytes},\"seconds\":{elapsed:.3},\"cpu_seconds\":{cpu:.3},\"cpu_ns_per_metric\":{per_metric_ns:.1}}}"
        );
    } else {
        println!(
            "received {datagrams} datagrams, {metrics} metrics, {bytes} bytes in {elapsed:.2} s; \
             CPU {cpu:.3} s ({per_metric_ns:.1} ns per metric)"
        );
    }
    Ok(())
}

/// User plus system CPU seconds of this process.
fn cpu_time() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}
