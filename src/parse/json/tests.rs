use super::*;
use crate::parse::testing::Recorder;

fn parse(input: &str) -> Recorder {
    let mut p = JsonParser::new(true);
    let mut r = Recorder::default();
    let mut buf = input.as_bytes().to_vec();
    p.parse_datagram(&mut buf, &mut r);
    r
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn seed_readme_trace_example() {
    let r = parse(
        r#"{"metric_name": "user.apptrace", "metric_type": "trace", "stage": "Init app", "host": "192.44.2.2", "env": "development"}"#,
    );
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    let g = &r.metrics[0];
    assert_eq!(g.name, "user.apptrace");
    assert_eq!(g.mtype, MetricType::Trace);
    assert_eq!(g.sample, Sample::Value(1.0));
    assert_eq!(
        g.tags,
        tags(&[
            ("env", "development"),
            ("host", "192.44.2.2"),
            ("stage", "Init app")
        ])
    );
}

#[test]
fn seed_readme_guage_example() {
    // The README's `'value': 4,4` is a Python typo; the intended object has value 4.
    let r = parse(
        r#"{"metric_name": "user.latency", "metric_type": "guage", "value": 4, "stage": "Init app", "host": "192.44.2.2", "env": "development"}"#,
    );
    let g = &r.metrics[0];
    assert_eq!(
        (g.name.as_str(), g.mtype),
        ("user.latency", MetricType::Gauge)
    );
    assert_eq!(g.sample, Sample::Value(4.0));
    assert_eq!(g.tags.len(), 3);
    // The typo itself is invalid JSON and is rejected.
    let r = parse(r#"{"metric_name": "user.latency", "metric_type": "guage", "value": 4,4}"#);
    assert_eq!(r.rejects[0].0, Reject::InvalidJson);
}

#[test]
fn every_metric_type() {
    let r = parse(concat!(
        r#"{"metric_name":"a","metric_type":"counter","count":2.5,"env":"x"}"#,
        "\n",
        r#"{"metric_name":"a","metric_type":"counter"}"#,
        "\n",
        r#"{"metric_name":"a","metric_type":"gauge","value":-3}"#,
        "\n",
        r#"{"metric_name":"a","metric_type":"timer","value":12.5}"#,
        "\n",
        r#"{"metric_name":"a","metric_type":"histogram","value":-1}"#,
        "\n",
        r#"{"metric_name":"a","metric_type":"set","value":"u1"}"#,
        "\n",
        r#"{"metric_name":"a","metric_type":"set","value":42}"#,
    ));
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    let got: Vec<_> = r
        .metrics
        .iter()
        .map(|g| (g.mtype, g.sample.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (MetricType::Counter, Sample::Value(2.5)),
            (MetricType::Counter, Sample::Value(1.0)),
            (MetricType::Gauge, Sample::Value(-3.0)),
            (MetricType::Timer, Sample::Value(12.5)),
            (MetricType::Histogram, Sample::Value(-1.0)),
            (MetricType::Set, Sample::Member("u1".into())),
            (MetricType::Set, Sample::Member("42".into())),
        ]
    );
    assert_eq!(r.metrics[0].tags, tags(&[("env", "x")]));
}

#[test]
fn scalar_tags_become_strings_and_unused_value_keys_are_tags() {
    let r = parse(
        r#"{"metric_name":"a","metric_type":"trace","n":4,"f":4.5,"neg":-2,"ok":true,"no":false,"value":"v","s":"x\"y"}"#,
    );
    assert!(r.rejects.is_empty(), "{:?}", r.rejects);
    assert_eq!(
        r.metrics[0].tags,
        tags(&[
            ("f", "4.5"),
            ("n", "4"),
            ("neg", "-2"),
            ("no", "false"),
            ("ok", "true"),
            ("s", "x\"y"),
            ("value", "v"),
        ])
    );
}

#[test]
fn malformed_objects() {
    let cases = [
        ("not json", Reject::InvalidJson),
        ("[1,2]", Reject::NotObject),
        ("\"str\"", Reject::NotObject),
        (r#"{"metric_type":"trace"}"#, Reject::MissingName),
        (
            r#"{"metric_name":5,"metric_type":"trace"}"#,
            Reject::MissingName,
        ),
        (r#"{"metric_name":"a"}"#, Reject::MissingType),
        (
            r#"{"metric_name":"a","metric_type":"bogus"}"#,
            Reject::UnknownType,
        ),
        (
            r#"{"metric_name":"a","metric_type":"guage"}"#,
            Reject::BadValue,
        ),
        (
            r#"{"metric_name":"a","metric_type":"guage","value":"4"}"#,
            Reject::BadValue,
        ),
        (
            r#"{"metric_name":"a","metric_type":"counter","count":true}"#,
            Reject::BadValue,
        ),
        (
            r#"{"metric_name":"a","metric_type":"timer","value":-1}"#,
            Reject::NegativeTimer,
        ),
        (
            r#"{"metric_name":"a","metric_type":"trace","t":{"x":1}}"#,
            Reject::BadTagValue,
        ),
        (
            r#"{"metric_name":"a","metric_type":"trace","t":[1]}"#,
            Reject::BadTagValue,
        ),
        (
            r#"{"metric_name":"a","metric_type":"trace","t":null}"#,
            Reject::BadTagValue,
        ),
        (
            r#"{"metric_name":"","metric_type":"trace"}"#,
            Reject::EmptyName,
        ),
    ];
    for (input, reason) in cases {
        let r = parse(input);
        assert!(r.metrics.is_empty(), "{input}");
        assert_eq!(r.rejects.len(), 1, "{input}");
        assert_eq!(r.rejects[0].0, reason, "{input}");
    }
}

#[test]
fn limits_reject_oversized_objects() {
    let limits = crate::parse::testing::small_limits();
    let parse = |s: &str| {
        let mut r = Recorder::default();
        let mut buf = s.as_bytes().to_vec();
        JsonParser::new(true)
            .with_limits(limits)
            .parse_datagram(&mut buf, &mut r);
        r
    };
    let ok =
        parse(r#"{"metric_name":"abcde","metric_type":"set","value":"abc","k":"vvvv","n":1234}"#);
    assert!(
        ok.rejects.is_empty() && ok.metrics.len() == 1,
        "{:?}",
        ok.rejects
    );
    let cases = [
        (
            r#"{"metric_name":"abcdef","metric_type":"trace"}"#,
            Reject::NameTooLong,
        ),
        (
            r#"{"metric_name":"a","metric_type":"trace","a":"1","b":"2","c":"3"}"#,
            Reject::TooManyTags,
        ),
        (
            r#"{"metric_name":"a","metric_type":"trace","abcd":"1"}"#,
            Reject::TagTooLong,
        ),
        (
            r#"{"metric_name":"a","metric_type":"trace","k":12345}"#,
            Reject::TagTooLong,
        ),
        (
            r#"{"metric_name":"a","metric_type":"set","value":"abcd"}"#,
            Reject::MemberTooLong,
        ),
    ];
    for (input, reason) in cases {
        let r = parse(input);
        assert!(r.metrics.is_empty(), "{input}");
        assert_eq!(
            r.rejects.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![reason],
            "{input}"
        );
    }
}

#[test]
fn one_bad_object_keeps_the_others() {
    let r = parse(concat!(
        r#"{"metric_name":"a","metric_type":"trace"}"#,
        "\n{broken\n\n",
        r#"{"metric_name":"b","metric_type":"trace"}"#,
        "\n"
    ));
    let names: Vec<_> = r.metrics.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);
    assert_eq!(r.rejects.len(), 1);
}
