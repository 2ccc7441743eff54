//! The statsd line protocol: Etsy statsd, DogStatsD extensions and Graphite tags.
//!
//! ```text
//! name[;k=v...]:value[:value...]|type[|@rate][|#k:v,k2...][|T<unix>][|c:<container>][:value|type...]
//! ```
//!
//! - A datagram holds lines separated by `\n`; empty lines are skipped, a trailing `\r` is
//!   ignored.
//! - Types: `c`, `g` (a leading `+`/`-` makes a delta), `ms` (must be ≥ 0), `h`, `d`, `s`.
//! - `@rate` must lie in `(0, 1]`; counters add `value / rate`, timers count `1 / rate`.
//! - Value packing (`name:1:2:3|ms`) gives one metric per value. Etsy's multi-metric form
//!   (`name:1|c:2|ms`) continues after a `:` in the type or sample-rate section.
//! - DogStatsD tags `|#k:v,k2` (a bare `k2` has the empty value) and Graphite tags
//!   `name;k=v` are one tag set; a key given twice keeps its last value.
//! - `|T<unix>` is validated and ignored for aggregation; `|c:<id>` becomes tag
//!   `container_id`; other sections (future DogStatsD fields) are ignored.
//! - `_e{...}` events and `_sc|...` service checks are skipped (counted by the handler).

use std::borrow::Cow;

use super::sanitize::{plain_prefix, sanitize};
use super::{
    Handler, Limits, Reject, Skip, parse_finite, recycle_tags, split_at_byte, split_bytes,
};
use crate::metric::{Metric, MetricType, Sample, SeriesRef, TagRef, normalize_tags};

/// Parses line-protocol datagrams. One per receiver thread: it owns reusable scratch space.
#[derive(Default)]
pub struct LineParser {
    sanitize: bool,
    limits: Limits,
    tags: Vec<TagRef<'static>>,
    name_scratch: String,
}

/// DogStatsD events and service checks, which rstatsd counts and skips (whatever their
/// encoding).
fn skipped(line: &[u8]) -> Option<Skip> {
    if line.starts_with(b"_e{") {
        Some(Skip::Event)
    } else if line.starts_with(b"_sc|") {
        Some(Skip::ServiceCheck)
    } else {
        None
    }
}

impl LineParser {
    pub fn new(sanitize_names: bool) -> Self {
        LineParser {
            sanitize: sanitize_names,
            limits: Limits::default(),
            tags: Vec::with_capacity(16),
            name_scratch: String::new(),
        }
    }

    /// Replaces the default [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Parses every line of `datagram`.
    pub fn parse_datagram(&mut self, datagram: &[u8], handler: &mut impl Handler) {
        // Validating UTF-8 once for the whole datagram is cheaper than once per line; only a
        // datagram with invalid bytes falls back to checking (and rejecting) line by line.
        match std::str::from_utf8(datagram) {
            Ok(text) => self.parse_valid_datagram(text, handler),
            Err(_) => {
                for line in datagram.split(|&b| b == b'\n') {
                    self.parse_line(line, handler);
                }
            }
        }
    }

    fn parse_valid_datagram(&mut self, text: &str, handler: &mut impl Handler) {
        // Most lines are `name:value|type` with a plain name: those are parsed in one pass
        // over the bytes, without splitting the datagram into lines first. Anything else,
        // including every line that would be rejected, goes through the general parser,
        // which is the reference for what a line means.
        let mut rest = text;
        while !rest.is_empty() {
            let consumed = match self.plain_line(rest, handler) {
                Some(consumed) => consumed,
                None => {
                    let (line, next) = split_at_byte(rest, b'\n');
                    self.parse_valid_line(line, handler);
                    next.map_or(rest.len(), |_| line.len() + 1)
                }
            };
            rest = &rest[consumed..];
        }
    }

    /// The fast path for one plain line at the start of `input`: `name:value|type` followed
    /// by `\n` or the end, where the name has only bytes that sanitizing keeps (and no `;`),
    /// there is one value and no section. Emits the metric and returns the bytes consumed
    /// (with the `\n`), or returns `None` without emitting anything when the line is not
    /// of that shape or not valid, leaving it to the general parser.
    #[inline]
    fn plain_line(&mut self, input: &str, handler: &mut impl Handler) -> Option<usize> {
        let bytes = input.as_bytes();
        let colon = plain_prefix(bytes);
        if colon == 0 || bytes.get(colon) != Some(&b':') || colon > self.limits.max_name_bytes {
            return None;
        }
        let value_start = colon + 1;
        // Find the value's end and, on the way, read it as an integer when it is one (most
        // are: `1`, `250`).
        let mut bar = value_start;
        let (mut integer, mut digits_only) = (0u64, true);
        loop {
            match *bytes.get(bar)? {
                b'|' => break,
                b':' | b'\n' => return None,
                d @ b'0'..=b'9' => {
                    integer = integer.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
                }
                _ => digits_only = false,
            }
            bar += 1;
        }
        let (mtype, end) = match bytes.get(bar + 1..) {
            Some([b'c', rest @ ..]) if ends_line(rest) => (MetricType::Counter, bar + 2),
            Some([b'g', rest @ ..]) if ends_line(rest) => (MetricType::Gauge, bar + 2),
            Some([b'm', b's', rest @ ..]) if ends_line(rest) => (MetricType::Timer, bar + 3),
            Some([b'h', rest @ ..]) if ends_line(rest) => (MetricType::Histogram, bar + 2),
            Some([b'd', rest @ ..]) if ends_line(rest) => (MetricType::Distribution, bar + 2),
            Some([b's', rest @ ..]) if ends_line(rest) => (MetricType::Set, bar + 2),
            _ => return None,
        };
        // What `parse_value` gives for up to 15 plain digits (they convert exactly), for
        // every type that takes a number.
        let sample =
            if digits_only && (1..=15).contains(&(bar - value_start)) && mtype != MetricType::Set {
                Sample::Value(integer as f64)
            } else {
                // The delimiters are ASCII, so these are char boundaries.
                let raw = &input[value_start..bar];
                if mtype == MetricType::Set && self.limits.check_member(raw).is_err() {
                    return None;
                }
                parse_value(raw, mtype).ok()?
            };
        handler.metric(&Metric {
            series: SeriesRef {
                name: &input[..colon],
                mtype,
                tags: &[],
            },
            sample,
            sample_rate: 1.0,
        });
        Some((end + 1).min(input.len()))
    }

    /// Parses one line (without its `\n`).
    pub fn parse_line(&mut self, line: &[u8], handler: &mut impl Handler) {
        match std::str::from_utf8(line) {
            Ok(text) => self.parse_valid_line(text, handler),
            Err(_) => {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match skipped(line) {
                    Some(kind) => handler.skip(kind),
                    None => handler.reject(Reject::InvalidUtf8, line),
                }
            }
        }
    }

    fn parse_valid_line(&mut self, text: &str, handler: &mut impl Handler) {
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return;
        }
        if let Some(kind) = skipped(text.as_bytes()) {
            return handler.skip(kind);
        }
        let line = text.as_bytes();
        let mut tags = recycle_tags(std::mem::take(&mut self.tags));
        if let Err(reason) = self.parse_text(text, &mut tags, handler) {
            handler.reject(reason, line);
        }
        self.tags = recycle_tags(tags);
    }

    fn parse_text<'a>(
        &mut self,
        text: &'a str,
        tags: &mut Vec<TagRef<'a>>,
        handler: &mut impl Handler,
    ) -> Result<(), Reject> {
        let (key, body) = split_at_byte(text, b':');
        let body = body.ok_or(Reject::NoValue)?;
        let (raw_name, graphite_tags) = split_at_byte(key, b';');
        let graphite_tags = graphite_tags.unwrap_or("");
        let limits = self.limits;
        if raw_name.len() > limits.max_name_bytes {
            return Err(Reject::NameTooLong);
        }
        let name = if self.sanitize {
            sanitize(raw_name, &mut self.name_scratch)
        } else {
            raw_name
        };
        if name.is_empty() {
            return Err(Reject::EmptyName);
        }
        let mut graphite_count = 0;
        for part in split_bytes(graphite_tags, b';').filter(|p| !p.is_empty()) {
            match split_at_byte(part, b'=') {
                (k, Some(v)) if !k.is_empty() => check_tag(&limits, k, v)?,
                _ => return Err(Reject::BadTags),
            }
            graphite_count += 1;
        }
        // A line is accepted or rejected whole: every group of an Etsy multi-metric line
        // (limits included) is validated before the first metric is emitted.
        let first = Group::parse(body, &limits)?;
        let mut group_tags = first.tag_count;
        let mut rest = first.next;
        loop {
            if graphite_count + group_tags > limits.max_tags {
                return Err(Reject::TooManyTags);
            }
            let Some(body) = rest else { break };
            let group = Group::parse(body, &limits)?;
            group_tags = group.tag_count;
            rest = group.next;
        }
        let mut group = first;
        loop {
            tags.clear();
            if !graphite_tags.is_empty() {
                for part in split_bytes(graphite_tags, b';').filter(|p| !p.is_empty()) {
                    let (k, v) = split_at_byte(part, b'=');
                    tags.push((k, Cow::Borrowed(v.unwrap_or(""))));
                }
            }
            if !group.tags.is_empty() {
                for item in split_bytes(group.tags, b',').filter(|p| !p.is_empty()) {
                    let (k, v) = split_at_byte(item, b':');
                    tags.push((k, Cow::Borrowed(v.unwrap_or(""))));
                }
            }
            if let Some(id) = group.container {
                tags.push(("container_id", Cow::Borrowed(id)));
            }
            normalize_tags(tags);
            let series = SeriesRef {
                name,
                mtype: group.mtype,
                tags,
            };
            let rate = group.rate;
            let mut emit = |sample| {
                handler.metric(&Metric {
                    series,
                    sample,
                    sample_rate: rate,
                })
            };
            if group.packed {
                for raw in split_bytes(group.values, b':') {
                    emit(parse_value(raw, group.mtype)?);
                }
            } else {
                emit(group.first);
            }
            match group.next {
                Some(body) => group = Group::parse(body, &limits)?,
                None => return Ok(()),
            }
        }
    }
}

/// True when `rest` (what follows a metric type) ends the line.
#[inline]
fn ends_line(rest: &[u8]) -> bool {
    matches!(rest.first(), None | Some(b'\n'))
}

/// One validated `values|type[|sections]` group of a line.
struct Group<'a> {
    values: &'a str,
    /// The first (for an unpacked group: the only) value, already parsed.
    first: Sample<'a>,
    /// True when `values` holds several `:`-separated values.
    packed: bool,
    mtype: MetricType,
    rate: f64,
    /// DogStatsD tag list without the `#`; empty when absent.
    tags: &'a str,
    /// Tags this group adds (DogStatsD tags and the container id).
    tag_count: usize,
    container: Option<&'a str>,
    /// The next group of an Etsy multi-metric line.
    next: Option<&'a str>,
}

impl<'a> Group<'a> {
    fn parse(body: &'a str, limits: &Limits) -> Result<Group<'a>, Reject> {
        let (values, rest) = split_at_byte(body, b'|');
        let (type_section, mut sections) = split_at_byte(rest.ok_or(Reject::NoType)?, b'|');
        let (type_str, cont) = split_at_byte(type_section, b':');
        let mut next = cont.map(|_| continuation(type_section, body));
        let mtype = match type_str.as_bytes() {
            b"c" => MetricType::Counter,
            b"g" => MetricType::Gauge,
            b"ms" => MetricType::Timer,
            b"h" => MetricType::Histogram,
            b"d" => MetricType::Distribution,
            b"s" => MetricType::Set,
            _ => return Err(Reject::UnknownType),
        };
        let (first_raw, more) = split_at_byte(values, b':');
        let first = parse_value(first_raw, mtype)?;
        if mtype == MetricType::Set {
            limits.check_member(first_raw)?;
        }
        if let Some(more) = more {
            for raw in split_bytes(more, b':') {
                parse_value(raw, mtype)?;
                if mtype == MetricType::Set {
                    limits.check_member(raw)?;
                }
            }
        }
        let mut group = Group {
            values,
            first,
            packed: more.is_some(),
            mtype,
            rate: 1.0,
            tags: "",
            tag_count: 0,
            container: None,
            next: None,
        };
        while next.is_none() {
            let Some(rest) = sections else { break };
            let (section, after) = split_at_byte(rest, b'|');
            sections = after;
            match section.as_bytes().first() {
                Some(b'@') => {
                    let (rate, cont) = split_at_byte(&section[1..], b':');
                    if cont.is_some() {
                        next = Some(continuation(section, body));
                    }
                    group.rate = match parse_finite(rate) {
                        Some(r) if r > 0.0 && r <= 1.0 => r,
                        _ => return Err(Reject::BadSampleRate),
                    };
                }
                Some(b'#') => {
                    let tags = &section[1..];
                    for item in split_bytes(tags, b',').filter(|t| !t.is_empty()) {
                        let (k, v) = split_at_byte(item, b':');
                        if k.is_empty() {
                            return Err(Reject::BadTags);
                        }
                        check_tag(limits, k, v.unwrap_or(""))?;
                        group.tag_count += 1;
                    }
                    group.tags = tags;
                }
                Some(b'T') => {
                    let ts = &section[1..];
                    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Reject::BadTimestamp);
                    }
                }
                Some(b'c') if section.as_bytes().get(1) == Some(&b':') => {
                    // The key (`container_id`) is ours; only the value is the client's.
                    check_tag(limits, "", &section[2..])?;
                    group.container = Some(&section[2..]);
                    group.tag_count += 1;
                }
                // Any other section is a DogStatsD extension we do not use: ignored.
                _ => {}
            }
        }
        group.next = next;
        Ok(group)
    }
}

fn check_tag(limits: &Limits, key: &str, value: &str) -> Result<(), Reject> {
    if key.len() > limits.max_tag_key_bytes || value.len() > limits.max_tag_value_bytes {
        return Err(Reject::TagTooLong);
    }
    Ok(())
}

/// The rest of `body` after the first `:` of `section` (a subslice of `body`): the next
/// group of an Etsy multi-metric line.
fn continuation<'a>(section: &'a str, body: &'a str) -> &'a str {
    let start = section.as_ptr() as usize - body.as_ptr() as usize;
    let colon = section
        .bytes()
        .position(|b| b == b':')
        .map_or(section.len(), |i| i + 1);
    &body[start + colon..]
}

#[inline]
fn parse_value(raw: &str, mtype: MetricType) -> Result<Sample<'_>, Reject> {
    match mtype {
        MetricType::Set => {
            if raw.is_empty() {
                Err(Reject::BadValue)
            } else {
                Ok(Sample::Member(Cow::Borrowed(raw)))
            }
        }
        MetricType::Gauge => {
            let v = parse_finite(raw).ok_or(Reject::BadValue)?;
            if raw.starts_with(['+', '-']) {
                Ok(Sample::Delta(v))
            } else {
                Ok(Sample::Value(v))
            }
        }
        MetricType::Timer => match parse_finite(raw) {
            Some(v) if v < 0.0 => Err(Reject::NegativeTimer),
            Some(v) => Ok(Sample::Value(v)),
            None => Err(Reject::BadValue),
        },
        MetricType::Counter
        | MetricType::Histogram
        | MetricType::Distribution
        | MetricType::Trace => parse_finite(raw).map(Sample::Value).ok_or(Reject::BadValue),
    }
}

#[cfg(test)]
mod tests;
