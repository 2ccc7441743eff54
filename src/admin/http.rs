//! A small HTTP/1.1 endpoint (default 127.0.0.1:8080), one short-lived connection at a time
//! per request, no async runtime:
//!
//! - `GET /health`: `200 up` or `503 down` (after `health down` on the management port);
//! - `GET /metrics`: every internal statistic in the Prometheus text exposition format
//!   (version 0.0.4): counters as `rstatsd_<name>_total`, gauges as `rstatsd_<name>`, with
//!   their tags as labels; they advance once per flush.
//!
//! Anything else is `404` (unknown path) or `405` (not GET/HEAD). Requests larger than
//! [`MAX_REQUEST`] or slower than [`REQUEST_TIMEOUT`] are dropped.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::{AdminState, StatTotals};
use crate::format::number::js_number;

pub const MAX_REQUEST: u64 = 8192;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves requests on `listener` from one thread: each request is small and answered from
/// memory, so one thread keeps up with any scrape rate and bounds what a client can hold.
pub fn spawn(listener: TcpListener, state: Arc<AdminState>) -> io::Result<()> {
    thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Err(e) = serve(stream, &state) {
                    log::debug!("http: {e}");
                }
            }
        })?;
    Ok(())
}

fn serve(stream: TcpStream, state: &AdminState) -> io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Read (and ignore) the headers, up to the blank line.
    let mut header = String::new();
    loop {
        header.clear();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/health") if state.healthy() => (200, "text/plain", "up\n".to_string()),
        ("GET" | "HEAD", "/health") => (503, "text/plain", "down\n".to_string()),
        ("GET" | "HEAD", "/metrics") => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus(&state.totals(), state.uptime_secs()),
        ),
        ("GET" | "HEAD", _) => (404, "text/plain", "not found\n".to_string()),
        _ => (405, "text/plain", "method not allowed\n".to_string()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut out = io::BufWriter::new(&stream);
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

/// The Prometheus text format of the accumulated internal statistics.
pub fn prometheus(totals: &StatTotals, uptime_secs: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE rstatsd_uptime_seconds gauge");
    let _ = writeln!(out, "rstatsd_uptime_seconds {uptime_secs}");
    for (map, kind, suffix) in [
        (&totals.counters, "counter", "_total"),
        (&totals.gauges, "gauge", ""),
    ] {
        let mut last = "";
        for ((name, tags), value) in map {
            if name != last {
                let _ = writeln!(out, "# TYPE rstatsd_{}{suffix} {kind}", metric_name(name));
                last = name;
            }
            let _ = write!(out, "rstatsd_{}{suffix}", metric_name(name));
            if !tags.is_empty() {
                out.push('{');
                for (i, (k, v)) in tags.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{}=\"", metric_name(k));
                    for c in v.chars() {
                        match c {
                            '\\' => out.push_str("\\\\"),
                            '"' => out.push_str("\\\""),
                            '\n' => out.push_str("\\n"),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", js_number(*value));
        }
    }
    out
}

/// Prometheus names allow `[a-zA-Z0-9_:]`; anything else becomes `_`.
fn metric_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut t = StatTotals::default();
        let tags = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        t.counters.insert(
            (
                "bad_lines".into(),
                tags(&[("listener", "statsd"), ("reason", "no_value")]),
            ),
            3.0,
        );
        t.counters.insert(
            (
                "bad_lines".into(),
                tags(&[("listener", "statsd"), ("reason", "bad\"v")]),
            ),
            1.0,
        );
        t.gauges.insert(
            ("limit".into(), tags(&[("limit", "limits.max_series")])),
            1e6,
        );
        assert_eq!(
            prometheus(&t, 7),
            "# TYPE rstatsd_uptime_seconds gauge\n\
             rstatsd_uptime_seconds 7\n\
             # TYPE rstatsd_bad_lines_total counter\n\
             rstatsd_bad_lines_total{listener=\"statsd\",reason=\"bad\\\"v\"} 1\n\
             rstatsd_bad_lines_total{listener=\"statsd\",reason=\"no_value\"} 3\n\
             # TYPE rstatsd_limit gauge\n\
             rstatsd_limit{limit=\"limits.max_series\"} 1000000\n"
        );
    }
}
