//! The HTTP endpoint (default 127.0.0.1:8080):
//!
//! - `GET /health`: `200 up` or `503 down` (after `health down` on the management port);
//! - `GET /metrics`: every internal statistic in the Prometheus text exposition format
//!   (version 0.0.4): counters as `rstatsd_<name>_total`, gauges as `rstatsd_<name>`, with
//!   their tags as labels; they advance once per flush.
//!
//! `HEAD` of either answers the headers alone; another path is `404`, another method `405`
//! (with `Allow: GET, HEAD`). This file answers a request; `server.rs` is the event loop
//! that serves every connection at once on one thread, each with its own deadlines, so a
//! silent or stalled client holds up nobody but itself (see there for the bounds).

mod server;

use std::fmt::Write as _;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

pub use self::server::Bounds;
use super::{AdminState, StatTotals};
use crate::format::number::js_number;

/// Serves `listener` on its own thread until the process exits.
pub fn spawn(listener: TcpListener, state: Arc<AdminState>, bounds: Bounds) -> io::Result<()> {
    let server = server::Server::new(listener, bounds)?;
    thread::Builder::new()
        .name("admin-http".into())
        .spawn(move || server.run(|request| answer(request, &state), &state.counters))?;
    Ok(())
}

/// An answer: status, content type and body.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// The answer to `method path`, and the path label it is counted under.
fn answer(request: &server::Request<'_>, state: &AdminState) -> (Answer, &'static str) {
    let text = |status, body: &str| Answer {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    };
    let path = request.path.split('?').next().unwrap_or("");
    let label = match path {
        "/health" => "/health",
        "/metrics" => "/metrics",
        _ => "other",
    };
    let answer = match (request.method, label) {
        ("GET" | "HEAD", "/health") if state.healthy() => text(200, "up\n"),
        ("GET" | "HEAD", "/health") => text(503, "down\n"),
        ("GET" | "HEAD", "/metrics") => Answer {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(&state.totals(), state.uptime_secs()),
        },
        ("GET" | "HEAD", _) => text(404, "not found\n"),
        _ => text(405, "method not allowed\n"),
    };
    (answer, label)
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
