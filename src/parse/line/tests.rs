use super::*;
use crate::parse::testing::{Got, Recorder};

fn parse(input: &str) -> Recorder {
    parse_with(input, true)
}

fn parse_with(input: &str, sanitize: bool) -> Recorder {
    let mut p = LineParser::new(sanitize);
    let mut r = Recorder::default();
    p.parse_datagram(input.as_bytes(), &mut r);
    r
}

fn one(input: &str) -> Got {
    let r = parse(input);
    assert!(r.rejects.is_empty(), "{input}: {:?}", r.rejects);
    assert_eq!(r.metrics.len(), 1, "{input}");
    r.metrics[0].clone()
}

fn rejected(input: &str) -> Reject {
    let r = parse(input);
    assert!(r.metrics.is_empty(), "{input} gave {:?}", r.metrics);
    assert_eq!(r.rejects.len(), 1, "{input}");
    r.rejects[0].0
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The one-pass path for plain lines must mean exactly what the general parser means.
#[test]
fn plain_lines_agree_with_the_general_parser() {
    let lines: &[&[u8]] = &[
        b"a:1|c",
        b"a.b-c_d=e:2.5|g",
        b"a:+3|g",
        b"a:-3|g",
        b"a:-1|ms",
        b"a:320|ms",
        b"a:7|d",
        b"a:-4|h",
        b"a:u1|s",
        b"a:|c",
        b"a:1|",
        b"a:1|m",
        b"a:1|cc",
        b"a:1|c\r",
        b"a:1|c:2|ms",
        b"a:1:2|ms",
        b"a;k=v:1|c",
        b":1|c",
        b"a b:1|c",
        b"a/b:1|c",
        b"a:1|c|@0.5",
        b"a:1|c|#k:v",
        b"a:nan|g",
        b"a:1e400|c",
        b"a:\xff|s",
        b"a:\xc3\xa9|s",
        b"\xff:1|c",
        b"_e{1,1}:a|b",
        b"_sc|x|0",
        b"abcdef:1|c",
        b"a:abcd|s",
        b"a",
        b"",
        b"a:0x10|c",
        b"a:1234567890123456|c",
        b"a:123456789012345|ms",
        b"a:007|g",
        b"a:1.5e3|ms",
    ];
    for limits in [Limits::default(), crate::parse::testing::small_limits()] {
        for sanitize in [true, false] {
            let mut datagram = Vec::new();
            let mut general = Recorder::default();
            let mut p = LineParser::new(sanitize).with_limits(limits);
            for line in lines {
                p.parse_line(line, &mut general);
                datagram.extend_from_slice(line);
                datagram.push(b'\n');
            }
            let mut fast = Recorder::default();
            p.parse_datagram(&datagram, &mut fast);
            assert_eq!(fast.metrics, general.metrics);
            assert_eq!(fast.rejects, general.rejects);
            assert_eq!(fast.skips, general.skips);
        }
    }
}

#[test]
fn basic_types() {
    let cases = [
        ("a:1|c", MetricType::Counter, Sample::Value(1.0)),
        ("a:2.5|g", MetricType::Gauge, Sample::Value(2.5)),
        ("a:+3|g", MetricType::Gauge, Sample::Delta(3.0)),
        ("a:-3|g", MetricType::Gauge, Sample::Delta(-3.0)),
        ("a:320|ms", MetricType::Timer, Sample::Value(320.0)),
        ("a:-4|h", MetricType::Histogram, Sample::Value(-4.0)),
        ("a:7|d", MetricType::Distribution, Sample::Value(7.0)),
        ("a:user1|s", MetricType::Set, Sample::Member("user1".into())),
        ("a:-1|c", MetricType::Counter, Sample::Value(-1.0)),
    ];
    for (input, mtype, sample) in cases {
        let g = one(input);
        assert_eq!((g.name.as_str(), g.mtype, &g.sample), ("a", mtype, &sample));
        assert_eq!(g.rate, 1.0);
    }
}

#[test]
fn etsy_validity_cases() {
    assert_eq!(one("a:+10e1|c").sample, Sample::Value(100.0));
    assert_eq!(one("a:1|c|@.2").rate, 0.2);
    assert_eq!(one("a:1|c|@0.1").rate, 0.1);
    assert_eq!(one("a:1|c|@1").rate, 1.0);
    assert_eq!(rejected("a:-1|ms"), Reject::NegativeTimer);
    assert_eq!(rejected("a:1|c|@"), Reject::BadSampleRate);
    assert_eq!(rejected("a:1|c|@-1"), Reject::BadSampleRate);
    assert_eq!(rejected("a:1|c|@.1."), Reject::BadSampleRate);
    assert_eq!(rejected("a:1|c|@0"), Reject::BadSampleRate);
    assert_eq!(rejected("a:1|c|@1.5"), Reject::BadSampleRate);
    assert_eq!(rejected("a:1|c|@nan"), Reject::BadSampleRate);
    assert_eq!(rejected("a:|c"), Reject::BadValue);
    assert_eq!(rejected("a:|s"), Reject::BadValue);
    assert_eq!(rejected("a:x|c"), Reject::BadValue);
    assert_eq!(rejected("a:inf|g"), Reject::BadValue);
    assert_eq!(rejected("a:NaN|ms"), Reject::BadValue);
    assert_eq!(rejected("a:1"), Reject::NoType);
    assert_eq!(rejected("a"), Reject::NoValue);
    assert_eq!(rejected("a:1|x"), Reject::UnknownType);
    assert_eq!(rejected("a:1|"), Reject::UnknownType);
    assert_eq!(rejected(":1|c"), Reject::EmptyName);
    assert_eq!(rejected("$$:1|c"), Reject::EmptyName);
    assert_eq!(rejected("a:1|c|T12x"), Reject::BadTimestamp);
    assert_eq!(rejected("a:1|c|#:v"), Reject::BadTags);
    assert_eq!(rejected("a;novalue:1|c"), Reject::BadTags);
}

#[test]
fn dogstatsd_all_sections() {
    let g = one("page.views:1.5|ms|@0.5|#env:prod,region:eu,canary|T1656581400|c:abc123");
    assert_eq!(g.name, "page.views");
    assert_eq!(g.mtype, MetricType::Timer);
    assert_eq!(g.sample, Sample::Value(1.5));
    assert_eq!(g.rate, 0.5);
    assert_eq!(
        g.tags,
        tags(&[
            ("canary", ""),
            ("container_id", "abc123"),
            ("env", "prod"),
            ("region", "eu")
        ])
    );
    // Unknown extension sections are ignored, in any position after the type.
    let g = one("a:1|c|e:ext|#k:v|card:low");
    assert_eq!(g.tags, tags(&[("k", "v")]));
}

#[test]
fn tag_values_may_contain_colons_and_keys_repeat() {
    let g = one("a:1|c|#url:http://x:80/p,env:a,env:b");
    assert_eq!(g.tags, tags(&[("env", "b"), ("url", "http://x:80/p")]));
}

#[test]
fn graphite_tags_merge_with_dogstatsd_tags() {
    let g = one("cpu.load;host=web1;env=prod:0.5|g|#env:stage,dc:x");
    assert_eq!(g.name, "cpu.load");
    assert_eq!(
        g.tags,
        tags(&[("dc", "x"), ("env", "stage"), ("host", "web1")])
    );
}

#[test]
fn value_packing() {
    let r = parse("t:1:2:3|ms|@0.5|#k:v");
    assert!(r.rejects.is_empty());
    let vals: Vec<_> = r.metrics.iter().map(|g| g.sample.clone()).collect();
    assert_eq!(
        vals,
        vec![Sample::Value(1.0), Sample::Value(2.0), Sample::Value(3.0)]
    );
    assert!(
        r.metrics
            .iter()
            .all(|g| g.rate == 0.5 && g.tags == tags(&[("k", "v")]))
    );
    // One bad packed value rejects the whole line, nothing half-counted.
    let r = parse("t:1:x:3|ms");
    assert!(r.metrics.is_empty());
    assert_eq!(r.rejects.len(), 1);
    assert_eq!(rejected("t:1::3|ms"), Reject::BadValue);
}

#[test]
fn etsy_multi_metric_lines() {
    let r = parse("a:1|c:2|ms:+3|g|@0.5:7|s|@1:8|c");
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    let got: Vec<_> = r
        .metrics
        .iter()
        .map(|g| (g.mtype, g.sample.clone(), g.rate))
        .collect();
    assert_eq!(
        got,
        vec![
            (MetricType::Counter, Sample::Value(1.0), 1.0),
            (MetricType::Timer, Sample::Value(2.0), 1.0),
            (MetricType::Gauge, Sample::Delta(3.0), 0.5),
            (MetricType::Set, Sample::Member("7".into()), 1.0),
            (MetricType::Counter, Sample::Value(8.0), 1.0),
        ]
    );
    // A bad later group rejects the line before anything is emitted.
    let r = parse("a:1|c:2|zz");
    assert!(r.metrics.is_empty());
    assert_eq!(r.rejects[0].0, Reject::UnknownType);
}

#[test]
fn one_bad_line_keeps_the_others() {
    let r = parse("a:1|c\nbroken\n\nb:2|g\r\nc:-5|ms\n");
    let names: Vec<_> = r.metrics.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);
    let reasons: Vec<_> = r.rejects.iter().map(|(r, _)| *r).collect();
    assert_eq!(reasons, vec![Reject::NoValue, Reject::NegativeTimer]);
    assert_eq!(r.rejects[0].1, "broken");
}

#[test]
fn events_and_service_checks_are_skipped() {
    let r = parse("_e{5,4}:title|text|#a:b\n_sc|svc|0\na:1|c");
    assert_eq!(r.skips, vec![Skip::Event, Skip::ServiceCheck]);
    assert_eq!(r.metrics.len(), 1);
    assert!(r.rejects.is_empty());
}

#[test]
fn sanitizing_is_configurable() {
    assert_eq!(one("my metric/x!:1|c").name, "my_metric-x");
    let r = parse_with("my metric/x!:1|c", false);
    assert_eq!(r.metrics[0].name, "my metric/x!");
    // Tags are never sanitized.
    assert_eq!(one("a:1|c|#path:/a b").tags, tags(&[("path", "/a b")]));
}

#[test]
fn limits_reject_oversized_inputs() {
    let limits = crate::parse::testing::small_limits();
    let parse = |s: &str| {
        let mut r = Recorder::default();
        LineParser::new(true)
            .with_limits(limits)
            .parse_datagram(s.as_bytes(), &mut r);
        r
    };
    for ok in [
        "abcde:1|c",
        "a:1|c|#k:v,k2:vvvv",
        "a;x=1:1|c|#k",
        "a:abc|s",
        "a:1|c|c:abcd",
    ] {
        let r = parse(ok);
        assert!(
            r.rejects.is_empty() && r.metrics.len() == 1,
            "{ok}: {:?}",
            r.rejects
        );
    }
    let cases = [
        ("abcdef:1|c", Reject::NameTooLong),
        ("a:1|c|#a,b,c", Reject::TooManyTags),
        ("a;x=1:1|c|#a,b", Reject::TooManyTags),
        ("a:1|c|#abcd:v", Reject::TagTooLong),
        ("a:1|c|#k:vvvvv", Reject::TagTooLong),
        ("a;k=vvvvv:1|c", Reject::TagTooLong),
        ("a:1|c|c:abcde", Reject::TagTooLong),
        ("a:abcd|s", Reject::MemberTooLong),
        ("a:x:abcd|s", Reject::MemberTooLong),
        // The second group breaks a limit: the whole line is rejected, nothing emitted.
        ("a:1|c:2|c|#a,b,c", Reject::TooManyTags),
    ];
    for (input, reason) in cases {
        let r = parse(input);
        assert!(r.metrics.is_empty(), "{input} gave {:?}", r.metrics);
        assert_eq!(
            r.rejects.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![reason],
            "{input}"
        );
    }
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut p = LineParser::new(true);
    let mut r = Recorder::default();
    p.parse_datagram(b"a\xff:1|c\nb:1|c", &mut r);
    assert_eq!(r.rejects[0].0, Reject::InvalidUtf8);
    assert_eq!(r.metrics.len(), 1);
}
