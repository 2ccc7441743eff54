//! End to end: the real binary, real UDP sockets, console output parsed and checked exactly.

use std::collections::BTreeMap;

use crate::common::{Daemon, LONG_INTERVAL, by_series, id, sender, values};

const SECS: f64 = 86400.0;

#[test]
fn known_mix_over_both_listeners() {
    let d = Daemon::start(&["--flush-interval-ms", LONG_INTERVAL, "--tag", "region=eu"]);
    let s = sender(d.statsd.unwrap());
    d.send_statsd(
        &s,
        b"api.requests:1|c|#env:prod\n\
          api.requests:3|c|@0.5|#env:prod\n\
          api.latency:100|ms|#env:prod\n\
          api.latency:300:200|ms|#env:prod\n\
          cpu;host=a:50|g\n\
          cpu;host=a:+5|g\n\
          users:alice|s\n\
          users:bob|s|#\n\
          users:alice|s\n\
          broken line\n\
          size:1:2:3|h\n\
          _e{5,4}:title|text\n",
    );
    let trace = r#"{"metric_name":"user.apptrace","metric_type":"trace","stage":"Init app","host":"192.44.2.2","env":"development"}"#;
    let done = r#"{"metric_name":"user.apptrace","metric_type":"trace","stage":"Done","host":"192.44.2.2","env":"development"}"#;
    d.send_pystatsd(&s, format!("{trace}\n{trace}\n{done}").as_bytes());
    d.send_pystatsd(
        &s,
        br#"{"metric_name":"user.latency","metric_type":"guage","value":4,"env":"development"}"#,
    );
    d.send_pystatsd(
        &s,
        br#"{"metric_name":"api.requests","metric_type":"counter","count":2,"env":"prod"}"#,
    );
    d.send_pystatsd(
        &s,
        br#"{"metric_name":"user.latency","metric_type":"guage","value":4,4}"#,
    );
    let out = d.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let got = by_series(&out.records);

    let r = ("region", "eu");
    let prod = [("env", "prod"), r];
    let app = |stage| {
        [
            ("env", "development"),
            ("host", "192.44.2.2"),
            ("stage", stage),
            r,
        ]
    };
    let mut expected = BTreeMap::new();
    expected.insert(
        id("api.requests", "counter", &prod),
        values(&[("count", 9.0), ("rate", 9.0 / SECS)]),
    );
    expected.insert(
        id("api.latency", "timer", &prod),
        values(&[
            ("count_90", 3.0),
            ("mean_90", 200.0),
            ("upper_90", 300.0),
            ("sum_90", 600.0),
            ("sum_squares_90", 140000.0),
            ("std", 81.64965809277261),
            ("upper", 300.0),
            ("lower", 100.0),
            ("count", 3.0),
            ("count_ps", 3.0 / SECS),
            ("sum", 600.0),
            ("sum_squares", 140000.0),
            ("mean", 200.0),
            ("median", 200.0),
        ]),
    );
    expected.insert(
        id("cpu", "gauge", &[("host", "a"), r]),
        values(&[("value", 55.0)]),
    );
    expected.insert(id("users", "set", &[r]), values(&[("count", 2.0)]));
    expected.insert(
        id("size", "histogram", &[r]),
        values(&[
            ("count_90", 3.0),
            ("mean_90", 2.0),
            ("upper_90", 3.0),
            ("sum_90", 6.0),
            ("sum_squares_90", 14.0),
            ("std", (2.0f64 / 3.0).sqrt()),
            ("upper", 3.0),
            ("lower", 1.0),
            ("count", 3.0),
            ("count_ps", 3.0 / SECS),
            ("sum", 6.0),
            ("sum_squares", 14.0),
            ("mean", 2.0),
            ("median", 2.0),
        ]),
    );
    expected.insert(
        id("user.apptrace", "trace", &app("Init app")),
        values(&[("count", 2.0)]),
    );
    expected.insert(
        id("user.apptrace", "trace", &app("Done")),
        values(&[("count", 1.0)]),
    );
    expected.insert(
        id("user.latency", "gauge", &[("env", "development"), r]),
        values(&[("value", 4.0)]),
    );
    let user_series: BTreeMap<_, _> = got
        .iter()
        .filter(|(k, _)| !k.0.starts_with("rstatsd."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(user_series, expected);

    let stat = |name: &str, mtype: &str, tags: &[(&str, &str)]| {
        let mut tags = tags.to_vec();
        tags.push(r);
        let key = id(&format!("rstatsd.{name}"), mtype, &tags);
        got.get(&key)
            .unwrap_or_else(|| panic!("missing {key:?}"))
            .clone()
    };
    let statsd = ("listener", "statsd");
    let pystatsd = ("listener", "pystatsd");
    let count = |v: f64| values(&[("count", v), ("rate", v / SECS)]);
    assert_eq!(stat("metrics_received", "counter", &[statsd]), count(13.0));
    assert_eq!(stat("metrics_received", "counter", &[pystatsd]), count(5.0));
    assert_eq!(stat("packets_received", "counter", &[statsd]), count(1.0));
    assert_eq!(stat("packets_received", "counter", &[pystatsd]), count(4.0));
    assert_eq!(stat("events_skipped", "counter", &[statsd]), count(1.0));
    assert_eq!(
        stat("bad_lines", "counter", &[statsd, ("reason", "no_value")]),
        count(1.0)
    );
    assert_eq!(
        stat(
            "bad_lines",
            "counter",
            &[pystatsd, ("reason", "invalid_json")]
        ),
        count(1.0)
    );
    let bad_lines: Vec<_> = got.keys().filter(|k| k.0 == "rstatsd.bad_lines").collect();
    assert_eq!(bad_lines.len(), 2, "{bad_lines:?}");
    assert_eq!(
        stat("receive_buffer_bytes", "gauge", &[statsd]),
        values(&[("value", 8388608.0)])
    );
}

#[test]
fn metrics_sent_just_before_sigterm_are_in_the_final_flush() {
    let d = Daemon::start(&["--no-pystatsd"]);
    let s = sender(d.statsd.unwrap());
    for _ in 0..100 {
        d.send_statsd(&s, b"last.words:1|c");
    }
    let out = d.stop();
    assert!(out.status.success());
    // The default 10 s interval may flush once during the test: sum over snapshots.
    let total: f64 = out
        .records
        .iter()
        .filter(|r| r["name"] == "last.words")
        .map(|r| r["values"]["count"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 100.0);
    out.assert_clean_stop();
}

#[test]
fn a_default_flush_carries_a_few_internal_series_and_full_detail_every_one() {
    let internal = |extra: &[&str]| {
        let mut args = vec!["--flush-interval-ms", LONG_INTERVAL];
        args.extend_from_slice(extra);
        let d = Daemon::start(&args);
        // The line listener is busy, the pystatsd listener idle.
        d.send_statsd(&sender(d.statsd.unwrap()), b"a:1|c\nb:2|g");
        let out = d.stop();
        out.assert_clean_stop();
        let mut names: Vec<String> = by_series(&out.records)
            .into_keys()
            .filter(|k| k.0.starts_with("rstatsd."))
            .map(|k| {
                let tags: Vec<String> = k.2.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {}", k.0, tags.join(","))
            })
            .collect();
        names.sort();
        names
    };
    let listener = |name: &str| {
        [
            format!("rstatsd.metrics_received listener={name}"),
            format!("rstatsd.packets_received listener={name}"),
            format!("rstatsd.receive_buffer_bytes listener={name}"),
            format!("rstatsd.socket_drops listener={name}"),
        ]
    };
    let mut expected: Vec<String> = listener("pystatsd")
        .into_iter()
        .chain(listener("statsd"))
        .chain(
            [
                "rstatsd.flush_duration_ms ",
                "rstatsd.gauges_kept ",
                "rstatsd.series ",
                "rstatsd.sink_buffered_bytes sink=console",
                "rstatsd.sink_delivered sink=console",
            ]
            .map(String::from),
        )
        .collect();
    expected.sort();
    assert_eq!(internal(&[]), expected);
    // Full detail: every counter of both listeners (each bad-line reason too), the guard,
    // every sink counter, and the admin plane's four counters and two connection gauges.
    let full = internal(&["--stats-detail", "full"]);
    assert_eq!(full.len(), 2 * (11 + 19 + 2) + 6 + 8 + 6, "{full:?}");
}

#[test]
fn ipv6_listener() {
    let d = Daemon::start(&[
        "--statsd-listen",
        "[::1]:0",
        "--no-pystatsd",
        "--flush-interval-ms",
        LONG_INTERVAL,
    ]);
    let addr = d.statsd.unwrap();
    assert!(addr.is_ipv6());
    d.send_statsd(&sender(addr), b"v6:2|c");
    let got = by_series(&d.stop().records);
    assert_eq!(
        got[&id("v6", "counter", &[])],
        values(&[("count", 2.0), ("rate", 2.0 / SECS)])
    );
}

#[test]
fn truncated_datagrams_keep_complete_lines_and_are_counted() {
    let d = Daemon::start(&[
        "--no-pystatsd",
        "--max-datagram-bytes",
        "512",
        "--flush-interval-ms",
        LONG_INTERVAL,
    ]);
    // 100 lines of 10 bytes; 512 bytes hold 51 complete lines.
    let payload = "trunc:1|c\n".repeat(100);
    d.send_statsd(&sender(d.statsd.unwrap()), payload.as_bytes());
    let got = by_series(&d.stop().records);
    assert_eq!(got[&id("trunc", "counter", &[])]["count"], 51.0);
    let key = id(
        "rstatsd.truncated_datagrams",
        "counter",
        &[("listener", "statsd")],
    );
    assert_eq!(got[&key]["count"], 1.0);
}

#[test]
fn sighup_is_ignored_not_fatal() {
    let d = Daemon::start(&["--no-pystatsd", "--flush-interval-ms", LONG_INTERVAL]);
    d.signal(nix::sys::signal::Signal::SIGHUP);
    // The daemon still works after SIGHUP: this metric must be in the final flush.
    d.send_statsd(&sender(d.statsd.unwrap()), b"after.hup:1|c");
    let out = d.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("SIGHUP: configuration reload is not supported")),
        "{:?}",
        out.stderr
    );
    let got = by_series(&out.records);
    assert_eq!(got[&id("after.hup", "counter", &[])]["count"], 1.0);
}

#[test]
fn systemd_readiness_is_sent_after_the_sockets_are_bound() {
    let d = Daemon::start(&["--no-pystatsd", "--flush-interval-ms", LONG_INTERVAL]);
    let statsd = d.statsd.unwrap();
    assert_eq!(
        d.ready,
        format!(
            "READY=1\nSTATUS=listening: statsd udp {statsd}, admin tcp {}, http tcp {}",
            d.admin.unwrap(),
            d.http.unwrap()
        )
    );
    // Ready means bound: a metric sent right away is received.
    d.send_statsd(&sender(statsd), b"ready:1|c");
    let out = d.stop();
    assert_eq!(out.notified, vec!["STOPPING=1"]);
    assert_eq!(
        by_series(&out.records)[&id("ready", "counter", &[])]["count"],
        1.0
    );
}
