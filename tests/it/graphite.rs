//! The Graphite sink against a real TCP listener standing in for carbon: Etsy's paths and
//! numbers exactly, and delivery across a carbon restart.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::{ConfigFile, Daemon, TempDir, sender, wait_metric};

const WAIT: Duration = Duration::from_secs(20);

/// What [`Carbon`] reports when a connection ends.
const EOF: &str = "<eof>";

/// 7 / 86400 and 3 / 86400 as JavaScript prints them.
const RATE: &str = "0.00008101851851851852";
const COUNT_PS: &str = "0.00003472222222222222";

#[test]
fn legacy_namespace_is_etsys_default() {
    let got = lines_for("");
    let t = "stats.timers.api.latency";
    let expected = set(&[
        &format!("stats.api.requests;env=prod {RATE}"),
        "stats_counts.api.requests;env=prod 7",
        &format!("{t}.count_90 3"),
        &format!("{t}.mean_90 200"),
        &format!("{t}.upper_90 300"),
        &format!("{t}.sum_90 600"),
        &format!("{t}.sum_squares_90 140000"),
        &format!("{t}.std 81.64965809277261"),
        &format!("{t}.upper 300"),
        &format!("{t}.lower 100"),
        &format!("{t}.count 3"),
        &format!("{t}.count_ps {COUNT_PS}"),
        &format!("{t}.sum 600"),
        &format!("{t}.sum_squares 140000"),
        &format!("{t}.mean 200"),
        &format!("{t}.median 200"),
        // Etsy sanitizing made `cpu load` `cpu_load`; `;` in a tag value is escaped and an
        // empty-valued tag left out.
        "stats.gauges.cpu_load 50",
        "stats.sets.users.count;role=a_b 2",
        "statsd.numStats 4",
    ]);
    assert_eq!(got, expected);
}

#[test]
fn non_legacy_with_prefixes_suffix_filters_and_histogram() {
    let got = lines_for(
        "legacy_namespace = false\n\
         global_prefix = \"app\"\n\
         prefix_counter = \"c\"\n\
         prefix_gauge = \"\"\n\
         global_suffix = \"dc1\"\n\
         counter_counts = false\n\
         timer_stats = [\"count\", \"upper_percent\", \"histogram\"]\n\
         histogram = [{ metric = \"nomatch\", bins = [1] }, { metric = \"latency\", bins = [150, 250.5, \"inf\"] }]\n",
    );
    let t = "app.timers.api.latency";
    let expected = set(&[
        &format!("app.c.api.requests.rate.dc1;env=prod {RATE}"),
        &format!("{t}.upper_90.dc1 300"),
        &format!("{t}.count.dc1 3"),
        &format!("{t}.histogram.bin_150.dc1 1"),
        &format!("{t}.histogram.bin_250_5.dc1 1"),
        &format!("{t}.histogram.bin_inf.dc1 1"),
        "app.cpu_load.dc1 50",
        "app.sets.users.count.dc1;role=a_b 2",
        "app.statsd.numStats.dc1 4",
    ]);
    assert_eq!(got, expected);
}

#[test]
fn tags_off_and_absolute_counters() {
    let got = lines_for("tags = false\nabsolute_counters = true\ntimer_stats = [\"sum\"]\n");
    let expected = set(&[
        "stats.api.requests 7",
        "stats_counts.api.requests 7",
        "stats.timers.api.latency.sum 600",
        "stats.gauges.cpu_load 50",
        "stats.sets.users.count 2",
        "statsd.numStats 4",
    ]);
    assert_eq!(got, expected);
}

#[test]
fn a_carbon_restart_loses_and_duplicates_nothing() {
    let mut carbon = Carbon::start(0);
    let port = carbon.addr.port();
    let config = ConfigFile::new(
        "graphite-restart",
        &format!(
            "[sinks.graphite]\ntype = \"graphite\"\ndestinations = [\"{}\"]\n\
             reconnect_min_ms = 20\nreconnect_max_ms = 100\n\
             [sinks.console]\ntype = \"console\"\n",
            carbon.addr
        ),
    );
    let d = Daemon::start(&[
        "--config",
        config.path(),
        "--flush-interval-ms",
        "1000",
        "--no-stats",
    ]);
    let s = sender(d.statsd.unwrap());
    let hits = |n: u32| {
        d.send_statsd(&s, format!("hits:{n}|c").as_bytes());
        // The console sink shows when the flush carrying it has happened.
        d.wait_record(WAIT, |r| {
            r["name"] == "hits" && r["values"]["count"] == f64::from(n)
        });
    };
    let mut got = Vec::new();
    hits(1);
    got.extend(carbon.lines_until("statsd.numStats "));
    carbon.kill();
    // Two flushes while carbon is down: they wait in the sink's buffer.
    hits(2);
    hits(3);
    let carbon = Carbon::start(port);
    hits(4);
    got.extend(carbon.lines_until("stats_counts.hits 4 "));
    got.extend(carbon.lines_until("statsd.numStats "));
    d.stop().assert_clean_stop();

    let counts: Vec<&str> = got
        .iter()
        .filter_map(|l| l.strip_prefix("stats_counts.hits "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(counts, ["1", "2", "3", "4"], "{got:?}");
    // Every flush sends one numStats line: their timestamps are consecutive seconds, each
    // once (no flush lost, none sent twice).
    let stamps: Vec<u64> = got
        .iter()
        .filter(|l| l.starts_with("statsd.numStats "))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    let first = stamps[0];
    let expected: Vec<u64> = (first..first + stamps.len() as u64).collect();
    assert_eq!(stamps, expected, "{got:?}");
    assert!(stamps.len() >= 4, "{got:?}");
}

#[test]
fn carbon_down_beyond_the_memory_buffer_with_a_spool_loses_and_duplicates_nothing() {
    let mut carbon = Carbon::start(0);
    let port = carbon.addr.port();
    carbon.kill();
    let spool = TempDir::new("graphite-spool");
    // 4 KiB of memory: each snapshot (50 counters, 100 lines) is larger than that.
    let config = ConfigFile::new(
        "graphite-spool",
        &format!(
            "[sinks.graphite]\ntype = \"graphite\"\ndestinations = [\"127.0.0.1:{port}\"]\n\
             buffer_bytes = 4096\nreconnect_min_ms = 20\nreconnect_max_ms = 100\n\
             [sinks.console]\ntype = \"console\"\n"
        ),
    );
    let d = Daemon::start(&[
        "--config",
        config.path(),
        "--flush-interval-ms",
        "300",
        "--no-stats",
        "--spool-dir",
        spool.path(),
    ]);
    let s = sender(d.statsd.unwrap());
    let round = |n: u32| {
        let lines: Vec<String> = (0..50).map(|i| format!("g.k{i}:{n}|c")).collect();
        d.send_statsd(&s, lines.join("\n").as_bytes());
        // The console sink shows when the flush carrying the round has happened.
        d.wait_record(WAIT, |r| {
            r["name"] == "g.k49" && r["values"]["count"] == f64::from(n)
        });
    };
    for n in 1..=5 {
        round(n);
    }
    let sink = "{sink=\"graphite/127.0.0.1:PORT\"}".replace("PORT", &port.to_string());
    wait_metric(
        &d,
        &format!("rstatsd_sink_spool_records{sink}"),
        WAIT,
        |v| v >= 4.0,
    );
    let carbon = Carbon::start(port);
    round(6);
    wait_metric(
        &d,
        &format!("rstatsd_sink_spool_records{sink}"),
        WAIT,
        |v| v == 0.0,
    );
    d.stop().assert_clean_stop();
    let mut got = carbon.lines_until(EOF);
    got.pop();
    let counts: Vec<(u32, u32)> = got
        .iter()
        .filter_map(|l| l.strip_prefix("stats_counts.g.k"))
        .map(|l| {
            let mut f = l.split(' ');
            (
                f.next().unwrap().parse().unwrap(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    // Every round's line of every key, once, and each key's rounds in order.
    for key in 0..50 {
        let rounds: Vec<u32> = counts
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(rounds, [1, 2, 3, 4, 5, 6], "key {key}");
    }
}

/// A plaintext carbon receiver: accepts connections and forwards every line it reads.
struct Carbon {
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Carbon {
    fn start(port: u16) -> Carbon {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, lines) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stop2, conns2) = (Arc::clone(&stop), Arc::clone(&conns));
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let stream = stream.unwrap();
                conns2.lock().unwrap().push(stream.try_clone().unwrap());
                let tx = tx.clone();
                thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = tx.send(line);
                    }
                    // The connection is finished: everything it carried has been sent.
                    let _ = tx.send(EOF.to_string());
                });
            }
        });
        Carbon {
            addr,
            lines,
            stop,
            conns,
            acceptor: Some(acceptor),
        }
    }

    /// Stops listening and closes every connection, like a carbon that died.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the listener is dropped.
        let _ = TcpStream::connect(self.addr);
        self.acceptor.take().unwrap().join().unwrap();
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Lines until one starts with `last` (that one included).
    fn lines_until(&self, last: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no {last:?} line; got {out:?}"));
            let done = line.starts_with(last);
            out.push(line);
            if done {
                return out;
            }
        }
    }
}

impl Drop for Carbon {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.kill();
        }
    }
}

const INPUT: &[u8] = b"api.requests:1|c|#env:prod\n\
    api.requests:3|c|@0.5|#env:prod\n\
    api.latency:100|ms\n\
    api.latency:300:200|ms\n\
    cpu load:50|g\n\
    users:alice|s|#role:a;b,empty:\n\
    users:bob|s|#role:a;b,empty:\n";

/// Runs the daemon with `sink` (the body of a `[sinks.graphite]` table) on [`INPUT`], one
/// (final) flush; returns the lines with the common timestamp checked and removed.
fn lines_for(sink: &str) -> BTreeSet<String> {
    let carbon = Carbon::start(0);
    let config = ConfigFile::new(
        "graphite",
        &format!(
            "[sinks.graphite]\ntype = \"graphite\"\ndestinations = [\"{}\"]\n{sink}",
            carbon.addr
        ),
    );
    let d = Daemon::start_single_flush(&config, &[]);
    d.send_statsd(&sender(d.statsd.unwrap()), INPUT);
    let out = d.stop();
    out.assert_clean_stop();
    let lines = carbon.lines_until_num_stats();
    let ts: BTreeSet<&str> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(ts.len(), 1, "one flush, one timestamp: {lines:?}");
    let ts = ts.into_iter().next().unwrap();
    let set: BTreeSet<String> = lines
        .iter()
        .map(|l| l.strip_suffix(ts).unwrap().trim_end().to_string())
        .collect();
    assert_eq!(set.len(), lines.len(), "duplicate lines: {lines:?}");
    set
}

impl Carbon {
    fn lines_until_num_stats(&self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = self.lines.recv_timeout(WAIT).expect("lines up to numStats");
            let done = line.contains("numStats");
            out.push(line);
            if done {
                return out;
            }
        }
    }
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|l| l.to_string()).collect()
}
