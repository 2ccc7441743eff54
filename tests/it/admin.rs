//! The admin plane against the real binary: every management command and HTTP endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Daemon, http, sender, wait_metric};

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

#[test]
fn a_thousand_silent_connections_delay_neither_health_nor_metrics() {
    let _alone = crate::common::alone();
    // 1,000 client sockets need more than the usual soft limit of 1,024 open files.
    rstatsd::server::raise_open_files_limit().unwrap();
    let d = Daemon::start(&[
        "--flush-interval-ms",
        "500",
        "--http-read-timeout-ms",
        "3000",
    ]);
    let web = d.http.unwrap();
    let silent: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(web).unwrap())
        .collect();
    let asked = Instant::now();
    assert_eq!(http(web, "GET", "/health"), (200, "up\n".into()));
    let health = asked.elapsed();
    let (status, metrics) = http(web, "GET", "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("\n# TYPE rstatsd_metrics_received_total counter\n"));
    assert!(metrics.ends_with('\n'), "a whole exposition");
    assert!(health <= Duration::from_secs(1), "/health took {health:?}");
    // Each silent one is closed by its read timeout, and counted.
    let timeouts = wait_metric(&d, "rstatsd_http_timeouts_total", WAIT, |n| n >= 1000.0);
    assert_eq!(timeouts, 1000.0);
    let peak_kib = peak_rss_kib(d.pid());
    eprintln!("1,000 silent HTTP connections: /health in {health:?}, peak RSS {peak_kib} KiB");
    assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB");
    drop(silent);
    d.stop().assert_clean_stop();
}

#[test]
fn a_client_that_never_reads_its_answers_does_not_delay_health() {
    let d = Daemon::start(&[
        "--flush-interval-ms",
        "500",
        "--http-write-timeout-ms",
        "1000",
    ]);
    let web = d.http.unwrap();
    // 20,000 pipelined /metrics requests whose answers (tens of megabytes, more than the
    // loopback's socket buffers hold) are never read: the server's writes to this client
    // block. Written from a thread: once they block, so may the requests.
    let stalled = TcpStream::connect(web).unwrap();
    let mut requests = stalled.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = requests.write_all("GET /metrics HTTP/1.1\r\n\r\n".repeat(20_000).as_bytes());
    });
    let asked = Instant::now();
    assert_eq!(http(web, "GET", "/health"), (200, "up\n".into()));
    assert!(
        asked.elapsed() <= Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // The answer it does not take is dropped with its connection by the write timeout.
    wait_metric(&d, "rstatsd_http_timeouts_total", WAIT, |n| n == 1.0);
    writer.join().unwrap();
    drop(stalled);
    d.stop().assert_clean_stop();
}

#[test]
fn ten_thousand_requests_from_eight_keep_alive_clients_are_all_answered() {
    let d = Daemon::start(&["--flush-interval-ms", "500"]);
    let web = d.http.unwrap();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(web).unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut answered = 0;
                for _ in 0..1250 {
                    stream
                        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let (status, body) = read_answer(&mut reader);
                    assert_eq!((status, body.as_str()), (200, "up\n"));
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let answered: u32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(answered, 10_000);
    let counted = "rstatsd_http_requests_total{path=\"/health\",status=\"200\"}";
    wait_metric(&d, counted, WAIT, |n| n == 10_000.0);
    let mut head = TcpStream::connect(web).unwrap();
    head.write_all(b"HEAD /health HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    head.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\
         Connection: close\r\n\r\n"
    );
    assert_eq!(http(web, "DELETE", "/health").0, 405);
    d.stop().assert_clean_stop();
}

#[test]
fn idle_management_connections_time_out_and_make_room() {
    let d = Daemon::start(&[
        "--flush-interval-ms",
        "500",
        "--admin-max-connections",
        "2",
        "--admin-idle-timeout-ms",
        "500",
    ]);
    let addr = d.admin.unwrap();
    let idle: Vec<Admin> = (0..2).map(|_| Admin::connect(addr)).collect();
    let mut idle = idle;
    // Both are being served (each answers), so the cap is reached.
    for a in &mut idle {
        assert_eq!(a.one("health"), "health: up\n");
    }
    let mut refused = Admin::connect(addr);
    assert_eq!(refused.line(), "ERROR too many connections\n");
    assert_eq!(refused.line(), "", "closed after the refusal");
    // The server closes the idle ones (end of stream), then a new client is served.
    for a in &mut idle {
        assert_eq!(a.line(), "");
    }
    let mut fresh = Admin::connect(addr);
    assert_eq!(fresh.one("health"), "health: up\n");
    wait_metric(&d, "rstatsd_admin_connections_refused_total", WAIT, |n| {
        n == 1.0
    });
    wait_metric(&d, "rstatsd_admin_timeouts_total", WAIT, |n| n == 2.0);
    let (_, metrics) = http(d.http.unwrap(), "GET", "/metrics");
    for limit in [
        "rstatsd_limit{limit=\"admin.max_connections\"} 2",
        "rstatsd_limit{limit=\"admin.idle_timeout_ms\"} 500",
        "rstatsd_limit{limit=\"http.max_connections\"} 1024",
    ] {
        assert!(metrics.lines().any(|l| l == limit), "{limit} missing");
    }
    d.stop().assert_clean_stop();
}

/// Reads one HTTP answer (status, body) off a kept-alive connection.
fn read_answer(reader: &mut BufReader<TcpStream>) -> (u16, String) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
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
