//! `--verify`: reads rstatsd's `GET /metrics` before and after a run and reports how many
//! of the offered metrics the server counted, and the loss.
//!
//! "Counted" is `rstatsd_metrics_received_total` plus the metrics the cardinality guard
//! refused (`rstatsd_series_rejected_total`, `rstatsd_tag_sets_rejected_total`): all of
//! them arrived. rstatsd's counters advance once per flush, so after sending this waits
//! until the count covers what was sent, or stops changing for longer than a flush
//! interval (`--verify-settle`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

const COUNTED: [&str; 3] = [
    "rstatsd_metrics_received_total",
    "rstatsd_series_rejected_total",
    "rstatsd_tag_sets_rejected_total",
];

/// The metrics endpoint, from `host:port` or `http://host:port[/metrics]`.
pub fn endpoint(arg: &str) -> Result<SocketAddr, String> {
    let rest = arg.strip_prefix("http://").unwrap_or(arg);
    let host = rest.split('/').next().unwrap_or(rest);
    host.to_socket_addrs()
        .map_err(|e| format!("--verify {arg}: {e}"))?
        .next()
        .ok_or_else(|| format!("--verify {arg}: no address"))
}

/// The sum of the counted series in one scrape.
pub fn counted(addr: SocketAddr) -> Result<u64, String> {
    let fail = |e: std::io::Error| format!("GET http://{addr}/metrics: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("http://{addr}/metrics: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "http://{addr}/metrics: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(sum_counted(body))
}

/// Sums every sample of the counted metric names (all label sets) in exposition text.
pub fn sum_counted(body: &str) -> u64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let name_end = l.find(['{', ' '])?;
            COUNTED.contains(&&l[..name_end]).then(|| {
                let value = l.rsplit(' ').next()?;
                value.parse::<f64>().ok()
            })?
        })
        .sum::<f64>() as u64
}

/// Waits until the server counted `offered` more than `before`, or the count has not moved
/// for `settle`; returns the count since `before`.
pub fn wait_for(
    addr: SocketAddr,
    before: u64,
    offered: u64,
    settle: Duration,
) -> Result<u64, String> {
    let mut last = counted(addr)?;
    let mut moved = Instant::now();
    while last.saturating_sub(before) < offered && moved.elapsed() < settle {
        thread::sleep(Duration::from_millis(200));
        let now = counted(addr)?;
        if now != last {
            last = now;
            moved = Instant::now();
        }
    }
    Ok(last.saturating_sub(before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_counted_series_over_labels() {
        let body = "# TYPE rstatsd_metrics_received_total counter\n\
                    rstatsd_metrics_received_total{listener=\"statsd\"} 1000\n\
                    rstatsd_metrics_received_total{listener=\"pystatsd\"} 20\n\
                    rstatsd_series_rejected_total{listener=\"statsd\"} 5\n\
                    rstatsd_packets_received_total{listener=\"statsd\"} 50\n\
                    rstatsd_metrics_received_totalx 7\n";
        assert_eq!(sum_counted(body), 1025);
        assert_eq!(
            endpoint("http://127.0.0.1:8080/metrics").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
    }
}
