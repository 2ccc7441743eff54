//! The admin plane against the real binary: every management command and HTTP endpoint.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::{Daemon, http, sender};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn management_commands() {
    let d = daemon_with_one_flush();
    let mut a = Admin::connect(d.admin.unwrap());
    assert_eq!(a.one("health"), "health: up\n");
    assert_eq!(
        a.one("help"),
        "Commands: stats, counters, timers, gauges, sets, delcounters, deltimers, delgauges, \
         delsets, health, config, help, quit\n"
    );
    assert_eq!(a.line(), "\n");
    assert_eq!(
        a.block("counters"),
        "{\n  \"api.requests;env=prod\": 5\n}\n"
    );
    assert_eq!(a.block("timers"), "{\n  \"lat\": [10, 20]\n}\n");
    assert_eq!(a.block("gauges"), "{\n  \"g\": 3\n}\n");
    assert_eq!(a.block("sets"), "{\n  \"u\": [\"a\", \"b\"]\n}\n");

    let stats = a.block("stats");
    let lines: Vec<&str> = stats.lines().collect();
    assert!(lines[0].starts_with("uptime: "), "{stats}");
    assert!(lines[1].starts_with("messages.last_msg_seen: "), "{stats}");
    assert_eq!(lines[2], "messages.bad_lines_seen: 1");
    assert!(
        lines.contains(&"rstatsd.metrics_received;listener=statsd: 6"),
        "{stats}"
    );
    assert!(
        lines.contains(&"rstatsd.bad_lines;listener=statsd;reason=no_value: 1"),
        "{stats}"
    );

    assert_eq!(a.block("delcounters api.*"), "deleted: api.requests\n");
    assert_eq!(a.block("counters"), "{}\n");
    assert_eq!(
        a.block("delgauges g nope"),
        "deleted: g\nmetric nope not found\n"
    );
    assert_eq!(a.block("gauges"), "{}\n");
    assert_eq!(a.block("deltimers lat"), "deleted: lat\n");
    assert_eq!(a.block("delsets u.*"), "metric u.* not found\n");
    assert!(a.block("config").contains("interval_ms: 1000"));
    assert_eq!(a.one("frobnicate"), "ERROR\n");
    assert_eq!(a.one("quit"), "", "quit closes the connection");

    // A deleted gauge is forgotten, not only hidden: the next flushes no longer repeat it.
    d.send_statsd(&sender(d.statsd.unwrap()), b"marker:1|c");
    let marker = d.wait_record(WAIT, |r| r["name"] == "marker")["timestamp"]
        .as_u64()
        .unwrap();
    let out = d.stop();
    out.assert_clean_stop();
    let gauge_flushes: Vec<u64> = out
        .records
        .iter()
        .filter(|r| r["name"] == "g")
        .map(|r| r["timestamp"].as_u64().unwrap())
        .collect();
    assert!(!gauge_flushes.is_empty());
    assert!(
        gauge_flushes.iter().all(|&t| t < marker),
        "g reported after delgauges: {gauge_flushes:?}, deleted before {marker}"
    );
}

#[test]
fn health_and_metrics_over_http() {
    let d = daemon_with_one_flush();
    let web = d.http.unwrap();
    assert_eq!(http(web, "GET", "/health"), (200, "up\n".into()));
    let mut a = Admin::connect(d.admin.unwrap());
    assert_eq!(a.one("health down"), "health: down\n");
    assert_eq!(http(web, "GET", "/health"), (503, "down\n".into()));
    assert_eq!(a.one("health UP"), "health: up\n");
    assert_eq!(http(web, "GET", "/health?probe=1").0, 200);

    let (status, metrics) = http(web, "GET", "/metrics");
    assert_eq!(status, 200);
    for expected in [
        "# TYPE rstatsd_metrics_received_total counter",
        "rstatsd_metrics_received_total{listener=\"statsd\"} 6",
        "rstatsd_packets_received_total{listener=\"statsd\"} 1",
        "rstatsd_bad_lines_total{listener=\"statsd\",reason=\"no_value\"} 1",
        "rstatsd_limit{limit=\"limits.max_series\"} 1000000",
        "rstatsd_sink_buffered_bytes{sink=\"console\"} 0",
        "# TYPE rstatsd_socket_drops gauge",
        "rstatsd_socket_drops{listener=\"statsd\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == expected),
            "{expected:?} missing in\n{metrics}"
        );
    }
    assert_eq!(http(web, "GET", "/nope").0, 404);
    assert_eq!(http(web, "POST", "/metrics").0, 405);
    d.stop().assert_clean_stop();
}

/// A management connection.
struct Admin {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Admin {
    fn connect(addr: SocketAddr) -> Admin {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Admin {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    /// Sends `command` and reads one answer line.
    fn one(&mut self, command: &str) -> String {
        writeln!(self.writer, "{command}").unwrap();
        self.line()
    }

    /// Sends `command` and reads up to and including the `END` line and the blank line.
    fn block(&mut self, command: &str) -> String {
        writeln!(self.writer, "{command}").unwrap();
        let mut out = String::new();
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "connection closed after {out:?}");
            if line == "END\n" {
                assert_eq!(self.line(), "\n");
                return out;
            }
            out.push_str(&line);
        }
    }
}

/// A daemon that has flushed a known interval (1 s flushes; the console record shows it).
fn daemon_with_one_flush() -> Daemon {
    let d = Daemon::start(&["--flush-interval-ms", "1000", "--no-stats"]);
    d.send_statsd(
        &sender(d.statsd.unwrap()),
        b"api.requests:5|c|#env:prod\nlat:20|ms\nlat:10|ms\ng:3|g\nu:b|s\nu:a|s\nbroken\n",
    );
    d.wait_record(WAIT, |r| r["name"] == "api.requests");
    d
}
