//! Parse stage: datagram bytes → [`Metric`]s, handed one at a time to a [`Handler`].
//!
//! Each input [`Protocol`] has a parser; [`Parser`] dispatches to it:
//! - [`mod@line`]: Etsy statsd lines with DogStatsD and Graphite extensions (`[statsd]`);
//! - [`json`]: pystatsd JSON objects, parsed with simd-json (`[pystatsd]`).
//!
//! Adding an input protocol: a parser module here, a [`Protocol`] variant (the compiler then
//! asks for its name, default address and parser), and its listener section in
//! [`crate::config::Config`]. This module does not own sockets (that is [`crate::receive`]).
//!
//! Parsers never allocate per metric for well-formed input: names, tags and set members borrow
//! from the datagram, and the tag list and name scratch buffers are reused across calls.
//! Every input that cannot become a metric is reported to the handler with a [`Reject`]
//! reason; the parser never panics and a bad line never affects the other lines of a datagram.

pub mod json;
pub mod line;
pub mod sanitize;

use crate::metric::{Metric, TagRef};

/// The wire format a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// Etsy/DogStatsD line protocol.
    Statsd,
    /// pystatsd JSON objects.
    Pystatsd,
}

impl Protocol {
    /// Every protocol, in the order listeners start.
    pub const ALL: [Protocol; 2] = [Protocol::Statsd, Protocol::Pystatsd];

    /// The listener's name: its config section and the `listener` tag of internal stats.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Statsd => "statsd",
            Protocol::Pystatsd => "pystatsd",
        }
    }

    /// Where the listener binds by default: loopback, on the port its clients expect.
    pub fn default_listen(self) -> std::net::SocketAddr {
        let port = match self {
            Protocol::Statsd => 8125,
            Protocol::Pystatsd => 5090,
        };
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A parser for this protocol.
    pub fn parser(self, sanitize_names: bool, limits: Limits) -> Parser {
        match self {
            Protocol::Statsd => Parser::Line(LineParser::new(sanitize_names).with_limits(limits)),
            Protocol::Pystatsd => Parser::Json(JsonParser::new(sanitize_names).with_limits(limits)),
        }
    }
}

/// One receiver's parser, whichever protocol it speaks.
pub enum Parser {
    Line(LineParser),
    Json(JsonParser),
}

impl Parser {
    /// Parses one datagram (the JSON parser works in place, hence `&mut`).
    #[inline]
    pub fn parse_datagram(&mut self, datagram: &mut [u8], handler: &mut impl Handler) {
        match self {
            Parser::Line(p) => p.parse_datagram(datagram, handler),
            Parser::Json(p) => p.parse_datagram(datagram, handler),
        }
    }
}

use json::JsonParser;
use line::LineParser;

/// Why an input line or object was rejected. Each reason is its own internal counter
/// (`bad_lines` with tag `reason`, see [`Reject::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// No `:` after the name.
    NoValue,
    /// No `|type` section.
    NoType,
    /// The type is not one of `c g ms h d s` (or, for JSON, a known `metric_type`).
    UnknownType,
    /// The name is empty (also after sanitizing).
    EmptyName,
    /// The value is empty, not a number, or not finite.
    BadValue,
    /// A timer (`ms`) value is negative.
    NegativeTimer,
    /// The sample rate is not a number in `(0, 1]`.
    BadSampleRate,
    /// A tag has an empty key, or a Graphite tag lacks `=`.
    BadTags,
    /// The `|T` timestamp is not a non-negative integer.
    BadTimestamp,
    /// JSON: the object is not valid JSON.
    InvalidJson,
    /// JSON: the document is not an object.
    NotObject,
    /// JSON: `metric_name` is missing or not a string.
    MissingName,
    /// JSON: `metric_type` is missing or not a string.
    MissingType,
    /// JSON: a tag value is null, an object or an array.
    BadTagValue,
    /// The name is longer than `limits.max_name_bytes`.
    NameTooLong,
    /// More tags than `limits.max_tags`.
    TooManyTags,
    /// A tag key or value is longer than its limit.
    TagTooLong,
    /// A set member is longer than `limits.max_member_bytes`.
    MemberTooLong,
}

impl Reject {
    /// Every reason, in a fixed order; [`Reject::index`] indexes this array.
    pub const ALL: [Reject; 19] = [
        Reject::InvalidUtf8,
        Reject::NoValue,
        Reject::NoType,
        Reject::UnknownType,
        Reject::EmptyName,
        Reject::BadValue,
        Reject::NegativeTimer,
        Reject::BadSampleRate,
        Reject::BadTags,
        Reject::BadTimestamp,
        Reject::InvalidJson,
        Reject::NotObject,
        Reject::MissingName,
        Reject::MissingType,
        Reject::BadTagValue,
        Reject::NameTooLong,
        Reject::TooManyTags,
        Reject::TagTooLong,
        Reject::MemberTooLong,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The value of the `reason` tag on the `bad_lines` internal counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::InvalidUtf8 => "invalid_utf8",
            Reject::NoValue => "no_value",
            Reject::NoType => "no_type",
            Reject::UnknownType => "unknown_type",
            Reject::EmptyName => "empty_name",
            Reject::BadValue => "bad_value",
            Reject::NegativeTimer => "negative_timer",
            Reject::BadSampleRate => "bad_sample_rate",
            Reject::BadTags => "bad_tags",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::InvalidJson => "invalid_json",
            Reject::NotObject => "not_object",
            Reject::MissingName => "missing_name",
            Reject::MissingType => "missing_type",
            Reject::BadTagValue => "bad_tag_value",
            Reject::NameTooLong => "name_too_long",
            Reject::TooManyTags => "too_many_tags",
            Reject::TagTooLong => "tag_too_long",
            Reject::MemberTooLong => "member_too_long",
        }
    }
}

/// Size limits on what one metric may carry, so a hostile client cannot make a single
/// series arbitrarily large. Lengths are in bytes of the received text (before sanitizing).
/// Part of the `[limits]` section of the configuration ([`crate::config::LimitsConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_name_bytes: usize,
    pub max_tags: usize,
    pub max_tag_key_bytes: usize,
    pub max_tag_value_bytes: usize,
    pub max_member_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name_bytes: 256,
            max_tags: 64,
            max_tag_key_bytes: 128,
            max_tag_value_bytes: 256,
            max_member_bytes: 256,
        }
    }
}

impl Limits {
    /// Checks a parsed name and its (normalized) tags.
    #[inline]
    pub(crate) fn check(&self, raw_name: &str, tags: &[TagRef<'_>]) -> Result<(), Reject> {
        if raw_name.len() > self.max_name_bytes {
            return Err(Reject::NameTooLong);
        }
        if tags.len() > self.max_tags {
            return Err(Reject::TooManyTags);
        }
        if tags
            .iter()
            .any(|(k, v)| k.len() > self.max_tag_key_bytes || v.len() > self.max_tag_value_bytes)
        {
            return Err(Reject::TagTooLong);
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn check_member(&self, member: &str) -> Result<(), Reject> {
        if member.len() > self.max_member_bytes {
            return Err(Reject::MemberTooLong);
        }
        Ok(())
    }
}

/// Well-formed inputs that carry no metric and are deliberately skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A DogStatsD event (`_e{...}`).
    Event,
    /// A DogStatsD service check (`_sc|...`).
    ServiceCheck,
}

/// Receives the output of a parser.
pub trait Handler {
    /// One metric value. Packed values (`a:1:2|ms`) arrive as one call each.
    fn metric(&mut self, metric: &Metric<'_, '_>);
    /// An input that was rejected; `input` is the offending line or object.
    fn reject(&mut self, reason: Reject, input: &[u8]);
    /// A well-formed input that carries no metric.
    fn skip(&mut self, kind: Skip);
}

/// Reuses a tag vector's allocation for borrows of a new lifetime.
///
/// The vector is emptied first, so no value of the old lifetime survives; the in-place
/// `collect` specialisation keeps the allocation because both element types have the same
/// layout (and if it did not, this would only allocate, never misbehave).
pub(crate) fn recycle_tags<'new>(mut tags: Vec<TagRef<'_>>) -> Vec<TagRef<'new>> {
    tags.clear();
    tags.into_iter().map(|_| unreachable!()).collect()
}

/// Parses a finite float the way both protocols need it (no `inf`, no `NaN`).
#[inline]
pub(crate) fn parse_finite(s: &str) -> Option<f64> {
    // Fast path for the most common values (`1`, `250`): up to 15 plain digits convert
    // exactly, so the result is identical to the general parser's.
    let b = s.as_bytes();
    if !b.is_empty() && b.len() <= 15 && b.iter().all(u8::is_ascii_digit) {
        let n = b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        return Some(n as f64);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// Splits `s` at the first `byte` (an ASCII delimiter, so both halves are valid `str`s).
#[inline]
pub(crate) fn split_at_byte(s: &str, byte: u8) -> (&str, Option<&str>) {
    // A plain loop: statsd fields are a few bytes long, too short for SIMD search to pay.
    match s.as_bytes().iter().position(|&b| b == byte) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Iterates over the `byte`-separated parts of `s`.
#[inline]
pub(crate) fn split_bytes(s: &str, byte: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let (part, next) = split_at_byte(rest?, byte);
        rest = next;
        Some(part)
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! A handler that records everything, for parser tests.
    use super::*;
    use crate::metric::{MetricType, Sample};

    #[derive(Debug, Clone, PartialEq)]
    pub struct Got {
        pub name: String,
        pub mtype: MetricType,
        pub tags: Vec<(String, String)>,
        pub sample: Sample<'static>,
        pub rate: f64,
    }

    /// Limits small enough to hit in a one-line test.
    pub fn small_limits() -> Limits {
        Limits {
            max_name_bytes: 5,
            max_tags: 2,
            max_tag_key_bytes: 3,
            max_tag_value_bytes: 4,
            max_member_bytes: 3,
        }
    }

    #[derive(Default, Debug)]
    pub struct Recorder {
        pub metrics: Vec<Got>,
        pub rejects: Vec<(Reject, String)>,
        pub skips: Vec<Skip>,
    }

    impl Handler for Recorder {
        fn metric(&mut self, m: &Metric<'_, '_>) {
            let sample = match &m.sample {
                Sample::Value(v) => Sample::Value(*v),
                Sample::Delta(v) => Sample::Delta(*v),
                Sample::Member(s) => Sample::Member(s.to_string().into()),
            };
            self.metrics.push(Got {
                name: m.series.name.to_string(),
                mtype: m.series.mtype,
                tags: m
                    .series
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                sample,
                rate: m.sample_rate,
            });
        }
        fn reject(&mut self, reason: Reject, input: &[u8]) {
            self.rejects
                .push((reason, String::from_utf8_lossy(input).into_owned()));
        }
        fn skip(&mut self, kind: Skip) {
            self.skips.push(kind);
        }
    }

    #[test]
    fn recycle_keeps_capacity() {
        let mut v: Vec<TagRef<'static>> = Vec::with_capacity(16);
        v.push(("a", "b".into()));
        let cap = v.capacity();
        let r: Vec<TagRef<'_>> = recycle_tags(v);
        assert!(r.is_empty());
        assert_eq!(r.capacity(), cap);
    }

    #[test]
    fn parse_finite_fast_path_matches_the_general_parser() {
        for s in [
            "0",
            "1",
            "007",
            "123456789012345",
            "1234567890123456",
            "1.5",
            "+1",
            "-0",
        ] {
            assert_eq!(parse_finite(s), s.parse::<f64>().ok(), "{s}");
        }
        assert_eq!(parse_finite(""), None);
        assert_eq!(parse_finite("inf"), None);
        assert_eq!(parse_finite("NaN"), None);
    }

    #[test]
    fn byte_splitting() {
        assert_eq!(split_at_byte("a:b:c", b':'), ("a", Some("b:c")));
        assert_eq!(split_at_byte("abc", b':'), ("abc", None));
        assert_eq!(
            split_bytes("a,,b,", b',').collect::<Vec<_>>(),
            vec!["a", "", "b", ""]
        );
        assert_eq!(split_bytes("", b',').collect::<Vec<_>>(), vec![""]);
    }

    #[test]
    fn reject_indexes_match_all() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
