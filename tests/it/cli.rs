//! The binary's command line: configuration errors (exit 2, naming file and key),
//! `--check-config`, `--help`, and start-up failures (exit 1).

use std::net::UdpSocket;
use std::process::{Command, Output};

use crate::common::{ConfigFile, Daemon, LONG_INTERVAL};

#[test]
fn unknown_key() {
    let e = config_error(
        "unknown",
        "[statsd]\nlisten = [\"127.0.0.1:8125\"]\nbogus = 1\n",
    );
    assert!(
        e.contains("key `statsd.bogus`: unknown field `bogus`"),
        "{e}"
    );
}

#[test]
fn unknown_section() {
    let e = config_error("section", "[graphite]\n");
    assert!(e.contains("key `graphite`"), "{e}");
}

#[test]
fn wrong_type() {
    let e = config_error("type", "[flush]\ninterval_ms = \"ten\"\n");
    assert!(e.contains("key `flush.interval_ms`: invalid type"), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn invalid_value() {
    let e = config_error("value", "[aggregation]\npercentiles = [90, 120]\n");
    assert!(
        e.contains("key `aggregation.percentiles[1]`: percentile 120"),
        "{e}"
    );
    let e = config_error("addr", "[statsd]\nlisten = [\"localhost\"]\n");
    assert!(e.contains("key `statsd.listen[0]`"), "{e}");
    let e = config_error("spool", "[spool]\ndir = \"/tmp/s\"\nmax_bytes = 4096\n");
    assert!(
        e.contains("key `spool.max_bytes`: must be at least 1048576"),
        "{e}"
    );
    let e = config_error("limit", "[limits]\nmax_tags = 0\n");
    assert!(
        e.contains("key `limits.max_tags`: must be at least 1"),
        "{e}"
    );
    let e = config_error(
        "graphite",
        "[sinks.g]\ntype = \"graphite\"\ndestinations = [\"carbon\"]\n",
    );
    assert!(
        e.contains("key `sinks.g.destinations[0]`: \"carbon\" is not host:port"),
        "{e}"
    );
    let e = config_error(
        "bins",
        "[sinks.g]\ntype = \"graphite\"\nhistogram = [{ metric = \"a\", bins = [1, \"max\"] }]\n",
    );
    assert!(
        e.contains("key `sinks.g.histogram[0].bins[1]`: must be a finite number or \"inf\""),
        "{e}"
    );
    let e = config_error("batch", "[receive]\nbatch_size = 0\n");
    assert!(
        e.contains("key `receive.batch_size`: must be between 1 and 1024"),
        "{e}"
    );
}

#[test]
fn invalid_toml_syntax() {
    let e = config_error("syntax", "[flush\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn unreadable_file() {
    let out = rstatsd(&["--config", "/nonexistent/rstatsd.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("/nonexistent/rstatsd.toml: cannot read"), "{e}");
}

#[test]
fn invalid_flag_value() {
    let out = rstatsd(&["--flush-interval-ms", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rstatsd(&["--flush-interval-ms", "1", "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.contains("key `flush.interval_ms`: must be at least 10"),
        "{e}"
    );
}

#[test]
fn check_config_accepts_a_valid_file() {
    let file = ConfigFile::new(
        "valid",
        "[statsd]\nlisten = [\"127.0.0.1:8125\", \"[::1]:8125\"]\n[tags]\nhost = \"a\"\n[sinks.out]\ntype = \"console\"\n",
    );
    let out = rstatsd(&["--check-config", "--config", file.path()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("configuration OK")
    );
}

#[test]
fn the_old_fleet_section_and_flags_still_work_with_one_warning() {
    let file = ConfigFile::new(
        "old-fleet",
        "[aggregate]\nfrom = [\"127.0.0.1:9092\"]\ntopic = \"p\"\n",
    );
    let out = rstatsd(&[
        "--check-config",
        "--config",
        file.path(),
        "--aggregate-grace-ms",
        "500",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "rstatsd: warning: deprecated configuration names, still read: [aggregate] (now \
         [fleet]), --aggregate-grace-ms (now --fleet-grace-ms); the old names will be removed \
         in a later release\n"
    );
}

#[test]
fn help_documents_every_flag() {
    let out = rstatsd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--check-config",
        "--statsd-listen",
        "--pystatsd-listen",
        "--receivers",
        "--batch-size",
        "--max-datagram-bytes",
        "--rcvbuf-bytes",
        "--coalesce-us",
        "--flush-interval-ms",
        "--snapshot-queue",
        "--percentiles",
        "--no-sanitize",
        "--delete-idle-gauges",
        "--idle-zero-flushes",
        "--max-name-bytes",
        "--max-tags",
        "--max-tag-key-bytes",
        "--max-tag-value-bytes",
        "--max-member-bytes",
        "--tag",
        "--stats-prefix",
        "--no-stats",
        "--console",
        "--log-level",
        "--source-id",
        "--fleet-from",
        "--fleet-topic",
        "--fleet-group",
        "--fleet-grace-ms",
        "--fleet-live-intervals",
        "--fleet-late",
        "--fleet-per-source-types",
        "--fleet-source-tag",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn port_in_use_fails_start_up_with_exit_1() {
    // A socket without SO_REUSEPORT blocks the daemon's group from joining the port.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = rstatsd(&[
        "--statsd-listen",
        &addr,
        "--no-pystatsd",
        "--no-admin",
        "--no-http",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.contains(&format!("cannot listen on statsd udp {addr}")),
        "{e}"
    );

    // The admin plane's ports likewise, before any receiver starts.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap().to_string();
    for (flag, name, other) in [
        ("--admin-listen", "admin", "--no-http"),
        ("--http-listen", "http", "--no-admin"),
    ] {
        let out = rstatsd(&[
            "--statsd-listen",
            "127.0.0.1:0",
            "--no-pystatsd",
            flag,
            &addr,
            other,
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(
            e.contains(&format!("cannot listen on {name} tcp {addr}")),
            "{e}"
        );
    }
}

#[test]
fn a_second_rstatsd_on_the_same_port_is_refused() {
    // Both would set SO_REUSEPORT; the second must not silently take a share of the traffic.
    let first = Daemon::start(&["--flush-interval-ms", LONG_INTERVAL, "--no-pystatsd"]);
    let addr = first.statsd.unwrap().to_string();
    let out = rstatsd(&[
        "--statsd-listen",
        &addr,
        "--no-pystatsd",
        "--no-admin",
        "--no-http",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(
        e.contains(&format!(
            "cannot listen on statsd udp {addr}: address in use: another socket (another \
             rstatsd?) already receives on this port"
        )),
        "{e}"
    );
    first.stop().assert_clean_stop();
}

#[test]
fn a_sink_that_gives_up_at_shutdown_says_so_once() {
    // Nothing listens on a port we bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = ConfigFile::new(
        "graphite-down",
        &format!(
            "[sinks.g]\ntype = \"graphite\"\ndestinations = [\"127.0.0.1:{port}\"]\n\
             shutdown_timeout_ms = 100\n"
        ),
    );
    let d = Daemon::start_single_flush(&file, &[]);
    // `stats.c`, `stats_counts.c` and `statsd.numStats`: three lines.
    d.send_statsd(&crate::common::sender(d.statsd.unwrap()), b"c:1|c");
    let out = d.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let sink = format!("g/127.0.0.1:{port}");
    let about_it: Vec<&String> = out
        .stderr
        .iter()
        .filter(|l| l.contains("undelivered"))
        .collect();
    assert_eq!(about_it.len(), 2, "{about_it:?}");
    assert!(
        about_it[0].ends_with(&format!(
            "sink {sink}: 3 messages undelivered at shutdown (0 delivered in total)"
        )),
        "{about_it:?}"
    );
    assert!(
        about_it[1].ends_with(&format!("stopped; undelivered messages: 3 in sink {sink}")),
        "{about_it:?}"
    );
}

#[test]
fn invalid_kafka_property_fails_start_up_with_exit_2() {
    let file = ConfigFile::new(
        "kafka-prop",
        "[sinks.k]\ntype = \"kafka\"\n[sinks.k.properties]\n\"no.such.property\" = \"1\"\n",
    );
    for extra in [&["--check-config"][..], &[][..]] {
        let mut args = vec![
            "--config",
            file.path(),
            "--statsd-listen",
            "127.0.0.1:0",
            "--no-pystatsd",
            "--no-admin",
            "--no-http",
        ];
        args.extend_from_slice(extra);
        let out = rstatsd(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(
            e.contains(&format!(
                "config file {}: key `sinks.k.properties.\"no.such.property\"`: librdkafka: No such configuration property",
                file.path()
            )),
            "{e}"
        );
    }
}

#[test]
fn invalid_kafka_settings_name_the_key() {
    let e = config_error(
        "kafka-topic",
        "[sinks.k]\ntype = \"kafka\"\ntopic = \"m.{tag:env}\"\n",
    );
    assert!(e.contains("key `sinks.k.default_topic`: required"), "{e}");
    let e = config_error(
        "kafka-comp",
        "[sinks.k]\ntype = \"kafka\"\ncompression = \"brotli\"\n",
    );
    assert!(e.contains("key `sinks.k.compression`"), "{e}");
    let e = config_error(
        "kafka-fmt",
        "[sinks.k]\ntype = \"kafka\"\nformat = \"xml\"\n",
    );
    assert!(e.contains("key `sinks.k.format`"), "{e}");
}

#[test]
fn invalid_fleet_settings_name_the_key() {
    let e = config_error(
        "agg-types",
        "[fleet]\nfrom = [\"127.0.0.1:9092\"]\nper_source_types = [\"gauge\", \"meter\"]\n",
    );
    assert!(
        e.contains("key `fleet.per_source_types[1]`: \"meter\" is not a metric type"),
        "{e}"
    );
    let e = config_error("agg-late", "[fleet]\nlate = \"keep\"\n");
    assert!(e.contains("key `fleet.late`"), "{e}");
    let e = config_error(
        "fleet-heartbeat",
        "[flush]\ninterval_ms = 2000\n[fleet]\nfrom = [\"127.0.0.1:9092\"]\nheartbeat_ms = 6000\n",
    );
    assert!(
        e.contains("key `fleet.heartbeat_ms`: must be below the session timeout (6000 ms)"),
        "{e}"
    );
    let e = config_error(
        "partial-topic",
        "[sinks.k]\ntype = \"kafka\"\nformat = \"partial\"\ntopic = \"m.{type}\"\n",
    );
    assert!(
        e.contains("key `sinks.k.topic`: format \"partial\" needs one fixed topic"),
        "{e}"
    );
}

fn rstatsd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rstatsd"))
        .args(args)
        .output()
        .expect("run rstatsd")
}

/// Runs `--check-config` on `text`; asserts exit code 2 and returns stderr.
fn config_error(name: &str, text: &str) -> String {
    let file = ConfigFile::new(name, text);
    let out = rstatsd(&["--check-config", "--config", file.path()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(file.path()), "file not named: {stderr}");
    stderr
}
