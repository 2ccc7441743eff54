//! `send` mode: paced sender threads, one socket each, `sendmmsg` batches.

use std::io::IoSlice;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

use crate::generate::Generator;
use crate::{SendArgs, secs};

#[derive(Default)]
struct Counters {
    metrics: AtomicU64,
    datagrams: AtomicU64,
    errors: AtomicU64,
}

pub fn run(args: &SendArgs) -> Result<(), String> {
    let threads = args.threads.max(1);
    let batch = args.batch.clamp(1, 1024);
    // Validate the generator settings once, before any thread starts.
    Generator::new(args, 0)?;
    let verify = match &args.verify {
        Some(arg) => {
            let addr = crate::verify::endpoint(arg)?;
            Some((addr, crate::verify::counted(addr)?))
        }
        None => None,
    };
    let counters = Arc::new(Counters::default());
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = args.count.is_none().then(|| started + secs(args.duration));
    let reporter = (!args.quiet).then(|| {
        let (counters, done) = (Arc::clone(&counters), Arc::clone(&done));
        thread::spawn(move || report_progress(&counters, &done, started))
    });
    let mut handles = Vec::new();
    for t in 0..threads {
        let quota = args
            .count
            .map(|c| c / threads as u64 + u64::from((t as u64) < c % threads as u64));
        let per_thread_rate = args.rate as f64 / threads as f64;
        let (args, counters) = (args.clone(), Arc::clone(&counters));
        handles.push(thread::spawn(move || -> Result<(), String> {
            let socket = UdpSocket::bind(if args.target.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .and_then(|s| s.connect(args.target).map(|_| s))
            .map_err(|e| format!("socket to {}: {e}", args.target))?;
            let mut generator = Generator::new(&args, t)?;
            sender(
                &socket,
                &mut generator,
                batch,
                quota,
                deadline,
                per_thread_rate,
                &counters,
            );
            Ok(())
        }));
    }
    let mut result = Ok(());
    for h in handles {
        if let Err(e) = h
            .join()
            .map_err(|_| "a sender thread panicked".to_string())
            .and_then(|r| r)
        {
            result = Err(e);
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    result?;
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = counters.metrics.load(Ordering::Relaxed);
    let datagrams = counters.datagrams.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let received = match verify {
        Some((addr, before)) => Some(crate::verify::wait_for(
            addr,
            before,
            metrics,
            secs(args.verify_settle),
        )?),
        None => None,
    };
    let loss =
        |received: u64| 100.0 * metrics.saturating_sub(received) as f64 / metrics.max(1) as f64;
    if args.json {
        let verified = received
            .map(|r| format!(",\"received\":{r},\"loss_percent\":{:.3}", loss(r)))
            .unwrap_or_default();
        println!(
            "{{\"mode\":\"send\",\"target\":\"{}\",\"metrics\":{metrics},\"datagrams\":{datagrams},\"errors\":{errors},\"seconds\":{elapsed:.3},\"metrics_per_second\":{:.0}{verified}}}",
            args.target,
            metrics as f64 / elapsed
        );
    } else {
        println!(
            "sent {metrics} metrics in {datagrams} datagrams to {} in {elapsed:.2} s ({:.0} metrics/s), {errors} send errors",
            args.target,
            metrics as f64 / elapsed
        );
        if let Some(r) = received {
            println!(
                "verified: rstatsd counted {r} of {metrics} offered metrics, loss {:.3} %",
                loss(r)
            );
        }
    }
    Ok(())
}

fn sender(
    socket: &UdpSocket,
    generator: &mut Generator,
    batch: usize,
    quota: Option<u64>,
    deadline: Option<Instant>,
    rate: f64,
    counters: &Counters,
) {
    let mut buffers: Vec<Vec<u8>> = (0..batch).map(|_| Vec::with_capacity(2048)).collect();
    let mut metrics_in: Vec<u64> = vec![0; batch];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let addrs: Vec<Option<SockaddrStorage>> = vec![None; batch];
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
        let remaining = quota.map_or(u64::MAX, |q| q - sent);
        if remaining == 0 {
            return;
        }
        // Build one batch of datagrams.
        let mut n = 0;
        let mut planned: u64 = 0;
        while n < batch && planned < remaining {
            let m = generator.datagram(&mut buffers[n], remaining - planned) as u64;
            metrics_in[n] = m;
            planned += m;
            n += 1;
        }
        // Pacing: wait until this batch is due at the target rate.
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        let mut first = 0;
        while first < n {
            let slices: Vec<[IoSlice<'_>; 1]> = buffers[first..n]
                .iter()
                .map(|b| [IoSlice::new(b)])
                .collect();
            match sendmmsg(
                socket.as_raw_fd(),
                &mut headers,
                &slices,
                &addrs[..n - first],
                [],
                MsgFlags::empty(),
            ) {
                Ok(results) => {
                    let count = results.count();
                    let m: u64 = metrics_in[first..first + count].iter().sum();
                    counters
                        .datagrams
                        .fetch_add(count as u64, Ordering::Relaxed);
                    counters.metrics.fetch_add(m, Ordering::Relaxed);
                    sent += m;
                    first += count.max(1);
                }
                Err(_) => {
                    // E.g. ECONNREFUSED (nothing listening yet): count it and move on.
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    sent += metrics_in[first];
                    first += 1;
                }
            }
        }
    }
}

fn report_progress(counters: &Counters, done: &AtomicBool, started: Instant) {
    let mut last = 0;
    let mut tick = started;
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
        if tick.elapsed() < Duration::from_secs(1) {
            continue;
        }
        tick += Duration::from_secs(1);
        let now = counters.metrics.load(Ordering::Relaxed);
        eprintln!(
            "{:>5.1}s sent {now} metrics ({} /s), {} datagrams, {} errors",
            started.elapsed().as_secs_f64(),
            now - last,
            counters.datagrams.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed)
        );
        last = now;
    }
}
