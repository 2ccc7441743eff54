//! `send` into `sink` over loopback: exact counts both ways.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rstatsd-loadgen"))
}

/// Starts a sink that stops after `datagrams`; returns it and its address.
fn sink(datagrams: u64) -> (std::process::Child, String) {
    let mut child = loadgen()
        .args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--quiet",
            "--duration",
            "30",
        ])
        .args(["--datagrams", &datagrams.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .to_string();
    (child, addr)
}

fn json_field(json: &str, field: &str) -> u64 {
    let start = json.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
    json[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `send` with `args` into a sink that stops after `datagrams`; returns both JSON
/// summaries (sender, sink).
fn send_into_sink(datagrams: u64, args: &[&str]) -> (String, String) {
    let (sink, addr) = sink(datagrams);
    let sent = loadgen()
        .args(["send", "--target", &addr, "--json", "--quiet"])
        .args(args)
        .output()
        .unwrap();
    assert!(sent.status.success(), "{sent:?}");
    let got = sink.wait_with_output().unwrap();
    (
        String::from_utf8(sent.stdout).unwrap(),
        String::from_utf8(got.stdout).unwrap(),
    )
}

#[test]
fn exact_counts_line_protocol() {
    let (sent, got) = send_into_sink(
        500,
        &[
            "--count",
            "10000",
            "--per-datagram",
            "20",
            "--rate",
            "200000",
            "--threads",
            "2",
            "--tags",
            "2",
            "--mix",
            "c=50,g=20,ms=20,s=10",
        ],
    );
    assert_eq!(json_field(&sent, "metrics"), 10000, "{sent}");
    assert_eq!(json_field(&sent, "datagrams"), 500, "{sent}");
    assert_eq!(json_field(&got, "datagrams"), 500, "{got}");
    assert_eq!(json_field(&got, "metrics"), 10000, "{got}");
}

#[test]
fn exact_counts_json_protocol() {
    let (_, got) = send_into_sink(
        300,
        &[
            "--count",
            "3000",
            "--per-datagram",
            "10",
            "--protocol",
            "json",
            "--mix",
            "counter=1,trace=1,gauge=1",
        ],
    );
    assert_eq!(json_field(&got, "datagrams"), 300, "{got}");
    assert_eq!(json_field(&got, "metrics"), 3000, "{got}");
}

#[test]
fn bad_mix_is_an_error() {
    let out = loadgen()
        .args(["send", "--count", "1", "--mix", "zz=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("unknown type \"zz\"")
    );
}
