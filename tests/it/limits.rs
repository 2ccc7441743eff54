//! The cardinality guard and the timer sample cap, against the real binary.

use std::collections::BTreeMap;

use crate::common::{Daemon, Id, LONG_INTERVAL, by_series, http, id, sender};

#[test]
fn series_cap_rejects_new_series_and_known_ones_keep_updating() {
    let d = Daemon::start(&[
        "--flush-interval-ms",
        LONG_INTERVAL,
        "--max-series",
        "100",
        "--receivers",
        "2",
    ]);
    // Limits are on /metrics (and in the admin `config`), not in every flush.
    let (_, metrics) = http(d.http.unwrap(), "GET", "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "rstatsd_limit{limit=\"limits.max_series\"} 100"),
        "{metrics}"
    );
    let s = sender(d.statsd.unwrap());
    for i in 0..150 {
        d.send_statsd(&s, format!("c{i}:1|c").as_bytes());
    }
    // c0 is admitted, c149 was not: more samples change only c0.
    d.send_statsd(&s, b"c0:2|c\nc149:5|c");
    let out = d.stop();
    out.assert_clean_stop();
    let got = by_series(&out.records);
    assert_eq!(user_series(&got).len(), 100);
    assert_eq!(got[&id("c0", "counter", &[])]["count"], 3.0);
    assert_eq!(got[&id("c99", "counter", &[])]["count"], 1.0);
    assert!(!got.contains_key(&id("c100", "counter", &[])));
    assert_eq!(stat(&got, "series_rejected"), 51.0);
    assert_eq!(stat(&got, "metrics_received"), 101.0);
    assert!(!got.keys().any(|k| k.0 == "rstatsd.limit"), "{got:?}");
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("new series of \"c100\" rejected: limits.max_series reached")),
        "{:?}",
        out.stderr
    );
}

#[test]
fn one_exploding_name_cannot_starve_the_others() {
    let d = Daemon::start(&[
        "--flush-interval-ms",
        LONG_INTERVAL,
        "--max-tag-sets-per-name",
        "3",
        // Every internal counter, zeros included, so the test can see `series_rejected = 0`.
        "--stats-detail",
        "full",
    ]);
    let s = sender(d.statsd.unwrap());
    for i in 0..10 {
        d.send_statsd(&s, format!("hot:1|c|#id:{i}").as_bytes());
    }
    d.send_statsd(
        &s,
        b"hot:1|c\nhot:1|ms|#id:0\ncold:1|c|#id:0\ncold:1|c|#id:1",
    );
    let out = d.stop();
    out.assert_clean_stop();
    let got = by_series(&out.records);
    let mut expected: Vec<Id> = (0..3)
        .map(|i| id("hot", "counter", &[("id", &i.to_string())]))
        .collect();
    // Untagged series of the name are not counted against it.
    expected.push(id("hot", "counter", &[]));
    expected.push(id("cold", "counter", &[("id", "0")]));
    expected.push(id("cold", "counter", &[("id", "1")]));
    expected.sort();
    let mut user: Vec<Id> = user_series(&got).into_iter().cloned().collect();
    user.sort();
    assert_eq!(user, expected);
    // 7 more counter ids, and the timer: a fourth tag set of `hot`.
    assert_eq!(stat(&got, "tag_sets_rejected"), 8.0);
    assert_eq!(stat(&got, "series_rejected"), 0.0);
}

#[test]
fn timer_samples_beyond_the_cap_keep_exact_totals() {
    let d = Daemon::start(&[
        "--flush-interval-ms",
        LONG_INTERVAL,
        "--max-timer-samples",
        "10",
    ]);
    let s = sender(d.statsd.unwrap());
    let lines: Vec<String> = (1..=100).map(|i| format!("t:{i}|ms")).collect();
    d.send_statsd(&s, lines.join("\n").as_bytes());
    d.send_statsd(&s, b"small:5|ms\nsmall:7|ms");
    let out = d.stop();
    out.assert_clean_stop();
    let got = by_series(&out.records);
    let t = &got[&id("t", "timer", &[])];
    for (field, v) in [
        ("count", 100.0),
        ("count_90", 90.0),
        ("upper", 100.0),
        ("lower", 1.0),
        ("sum", 5050.0),
        ("sum_squares", 338_350.0),
        ("mean", 50.5),
        ("std", (338_350.0f64 / 100.0 - 50.5 * 50.5).sqrt()),
    ] {
        assert_eq!(t[field], v, "{field}");
    }
    // From the sketch: within its relative accuracy (α ≈ 0.54 % at the default 1 %) of
    // Etsy's exact values.
    let alpha = (2f64.powf(1.0 / 64.0) - 1.0) / (2f64.powf(1.0 / 64.0) + 1.0);
    for (field, exact) in [("median", 50.5), ("upper_90", 90.0), ("mean_90", 45.5)] {
        let err = (t[field] - exact).abs() / exact;
        assert!(err <= alpha, "{field}: {} vs {exact}", t[field]);
    }
    assert_eq!(stat(&got, "samples_sketched"), 90.0);
    // Under the cap: Etsy's statistics exactly.
    let small = &got[&id("small", "timer", &[])];
    assert_eq!((small["median"], small["std"]), (6.0, 1.0));
}

/// Peak resident memory of a process, from /proc (kB → bytes).
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// Distinct series sent by [`ten_million_distinct_series_keep_memory_bounded`].
const FLOOD_SERIES: u64 = 10_000_000;
/// The memory bound that test states (README, "Limits").
const FLOOD_RSS_BOUND: u64 = 512 << 20;

#[test]
fn ten_million_distinct_series_keep_memory_bounded() {
    let _alone = crate::common::alone();
    let d = Daemon::start(&[
        "--flush-interval-ms",
        LONG_INTERVAL,
        "--max-series",
        "1000000",
    ]);
    // 20 metrics per datagram, each name distinct: `f<10 digits>:1|c`.
    const PER_DATAGRAM: usize = 20;
    const LINE: usize = 16;
    let mut datagram = Vec::with_capacity(PER_DATAGRAM * LINE);
    for _ in 0..PER_DATAGRAM {
        datagram.extend_from_slice(b"f0000000000:1|c\n");
    }
    let sockets: Vec<_> = (0..4).map(|_| sender(d.statsd.unwrap())).collect();
    let started = std::time::Instant::now();
    let mut n = 0u64;
    while n < FLOOD_SERIES {
        for line in datagram.chunks_mut(LINE) {
            let mut v = n;
            for digit in line[1..11].iter_mut().rev() {
                *digit = b'0' + (v % 10) as u8;
                v /= 10;
            }
            n += 1;
        }
        let socket = &sockets[(n / PER_DATAGRAM as u64 % 4) as usize];
        d.send_statsd(socket, &datagram);
    }
    let sent_in = started.elapsed();
    let peak = peak_rss_bytes(d.pid());
    let out = d.stop();
    out.assert_clean_stop();
    let got = by_series(&out.records);
    let (admitted, rejected) = (
        stat(&got, "metrics_received"),
        stat(&got, "series_rejected"),
    );
    // What the kernel dropped (the sender outruns the receivers) is visible as packets
    // missing from packets_received; everything that arrived is accounted for.
    eprintln!(
        "sent {FLOOD_SERIES} distinct series in {sent_in:?}; {admitted} admitted, {rejected} \
         rejected; peak RSS {} MiB",
        peak >> 20
    );
    assert_eq!(
        admitted + rejected,
        stat(&got, "packets_received") * PER_DATAGRAM as f64
    );
    assert_eq!(admitted, 1_000_000.0);
    assert_eq!(user_series(&got).len(), 1_000_000);
    assert!(
        rejected >= 1_000_000.0,
        "the flood must overrun the cap to test it"
    );
    assert!(peak < FLOOD_RSS_BOUND, "peak RSS {} MiB", peak >> 20);
}

/// Samples sent to one timer, and members to one set, by
/// [`one_timer_and_one_set_of_ten_million_keep_memory_bounded`].
const SKETCH_SAMPLES: u64 = 10_000_000;
/// Raw, the timer alone would hold 80 MB and the set ~500 MB; sketched, both stay tiny.
const SKETCH_RSS_BOUND: u64 = 32 << 20;

#[test]
fn one_timer_and_one_set_of_ten_million_keep_memory_bounded() {
    let _alone = crate::common::alone();
    let d = Daemon::start(&["--flush-interval-ms", LONG_INTERVAL, "--no-pystatsd"]);
    // Each datagram: 10 samples of `t` (1..=1000 ms) and 10 distinct members of `u`.
    const PAIRS: u64 = 10;
    let sockets: Vec<_> = (0..4).map(|_| sender(d.statsd.unwrap())).collect();
    let mut datagram = String::with_capacity(400);
    let mut n = 0u64;
    while n < SKETCH_SAMPLES {
        datagram.clear();
        for _ in 0..PAIRS {
            use std::fmt::Write;
            let _ = write!(datagram, "t:{}|ms\nu:{n:x}|s\n", n % 1000 + 1);
            n += 1;
        }
        d.send_statsd(&sockets[(n / PAIRS % 4) as usize], datagram.as_bytes());
    }
    let peak = peak_rss_bytes(d.pid());
    let out = d.stop();
    out.assert_clean_stop();
    let got = by_series(&out.records);
    // Datagrams arrive whole or not at all: half of what arrived was timer samples, half
    // distinct members.
    let arrived = stat(&got, "metrics_received") / 2.0;
    eprintln!(
        "{arrived} of {SKETCH_SAMPLES} pairs arrived; peak RSS {} MiB",
        peak >> 20
    );
    assert!(arrived > 1_000_000.0, "too few arrived to test the bound");
    let t = &got[&id("t", "timer", &[])];
    assert_eq!((t["count"], t["upper"], t["lower"]), (arrived, 1000.0, 1.0));
    let u = &got[&id("u", "set", &[])];
    let se = 1.04 / 128.0;
    assert!(
        (u["count"] - arrived).abs() <= 3.0 * se * arrived,
        "{} distinct members counted, {arrived} sent",
        u["count"]
    );
    assert!(peak < SKETCH_RSS_BOUND, "peak RSS {} MiB", peak >> 20);
}

fn user_series(got: &BTreeMap<Id, BTreeMap<String, f64>>) -> Vec<&Id> {
    got.keys()
        .filter(|k| !k.0.starts_with("rstatsd."))
        .collect()
}

fn stat(got: &BTreeMap<Id, BTreeMap<String, f64>>, name: &str) -> f64 {
    let key = id(
        &format!("rstatsd.{name}"),
        "counter",
        &[("listener", "statsd")],
    );
    got.get(&key).unwrap_or_else(|| panic!("missing {key:?}"))["count"]
}
