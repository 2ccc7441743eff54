//! Partials: the wire format of fleet-wide aggregation. A source writes, per flush interval,
//! one protobuf `Envelope{partial}` per series carrying the series' mergeable state (a
//! [`Value`]) and then an `Envelope{end}` per partition; an aggregator decodes them and merges
//! them into one [`super::Table`]. This module owns that format, both directions: the schema
//! is `partial.proto` beside this file (package `rstatsd.partial.v1`), whose comments are the
//! reference for every field's meaning.
//!
//! Writing is plain protobuf (proto3: default scalars omitted, oneof members and `seq` always
//! written when set); a timer's sketch is the DDSketch message of [`super::sketch_proto`], a
//! set's HyperLogLog DataSketches' HLL_8 ([`super::hll::Hll::to_datasketches`]).
//!
//! Reading validates everything and refuses with a [`BadPartial`] rather than guess: no
//! panic and no allocation beyond the input's size for any input. What is refused: a missing
//! or higher [`VERSION`]; neither a partial nor an end; a missing origin or name, an empty
//! name, strings that are not UTF-8; an unspecified or unknown type; a value missing or of
//! another kind than the type's (a `set` for a COUNTER); non-finite sums, gauge values,
//! samples or counts; tags out of key order or with a repeated key (a source's keys are
//! sorted and unique, so anything else is not one of ours: the tags are not normalized,
//! which could silently merge two series); raw samples alongside a sketch, a sketch without
//! totals or whose count differs from them; a sketch of another accuracy than the reader's
//! [`Bounds::sketch`]; members alongside an HLL. Unknown fields are skipped (forward
//! compatibility); a non-repeated field given twice takes the last value, embedded
//! messages included (they are not merged as protobuf would: no writer repeats them).
//!
//! The decoded state fits the reader's [`Bounds`]: raw samples beyond
//! `max_timer_samples` become a sketch, a sketch is decoded into `max_sketch_bins`, an exact
//! set goes through the set's insert (so it may become an HLL), an HLL finer than
//! `set_lg_k` is folded down to it.

use super::hll::Hll;
use super::samples::{Samples, Sketched, Totals};
use super::set::SetValue;
use super::{Bounds, Gauge, Value, sketch_proto};
use crate::format::protobuf::{
    self as pb, Field, double_field, len_field, message_field, packed_doubles, varint_field,
};
use crate::metric::{MetricType, SeriesKey};

/// The major version of the schema this module writes and the highest it reads.
pub const VERSION: u32 = 1;

/// Who wrote a message, and for which interval (`Origin` in the schema).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The source's stable identity.
    pub source_id: String,
    /// When this run of the source started (Unix ms).
    pub source_epoch_ms: u64,
    /// The start of the interval (Unix ms).
    pub interval_start_ms: u64,
    /// The interval's length (ms).
    pub interval_ms: u32,
}

/// The state of one series over one interval from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub origin: Origin,
    /// 0..n-1 per source run, interval and partition; `None` = unsequenced.
    pub seq: Option<u32>,
    pub key: SeriesKey,
    pub value: Value,
}

/// The end of one source's interval on one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalEnd {
    pub origin: Origin,
    /// Sequenced partials the source wrote to this partition for the interval.
    pub partials: u32,
    /// The partition count the source routed by.
    pub partitions: u32,
    /// The source's final flush (clean shutdown).
    pub last: bool,
}

/// One message of the partials topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    Partial(Partial),
    End(IntervalEnd),
}

/// Why bytes are not a partial this build can merge, by kind (each with its detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPartial {
    /// Not protobuf: truncated, a field of the wrong wire type, bad UTF-8.
    Wire(&'static str),
    /// No version, or a newer major version than this reader's.
    Version(&'static str),
    /// A field the message cannot do without is absent.
    Missing(&'static str),
    /// Well-formed, but not a value of rstatsd's model (a NaN, unsorted tags, a value of
    /// another type).
    Invalid(&'static str),
    /// An embedded DDSketch or HyperLogLog that does not decode.
    Sketch(&'static str),
    /// A sketch of another relative accuracy than this aggregator's: merging it would be
    /// wrong, so it is refused.
    SketchAccuracy,
}

impl BadPartial {
    /// What is wrong, in words.
    pub fn detail(&self) -> &'static str {
        match self {
            BadPartial::Wire(d)
            | BadPartial::Version(d)
            | BadPartial::Missing(d)
            | BadPartial::Invalid(d)
            | BadPartial::Sketch(d) => d,
            BadPartial::SketchAccuracy => "sketch accuracy differs from this aggregator's",
        }
    }
}

impl std::fmt::Display for BadPartial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an rstatsd partial: {}", self.detail())
    }
}

impl std::error::Error for BadPartial {}

/// The protobuf reader's errors are wire errors.
impl From<&'static str> for BadPartial {
    fn from(reason: &'static str) -> Self {
        BadPartial::Wire(reason)
    }
}

type Result<T> = std::result::Result<T, BadPartial>;

/// The schema's `MetricType` number of a type.
fn type_number(t: MetricType) -> u64 {
    match t {
        MetricType::Counter => 1,
        MetricType::Trace => 2,
        MetricType::Gauge => 3,
        MetricType::Timer => 4,
        MetricType::Histogram => 5,
        MetricType::Distribution => 6,
        MetricType::Set => 7,
    }
}

fn metric_type(n: u64) -> Result<MetricType> {
    Ok(match n {
        0 => return Err(BadPartial::Invalid("metric type unspecified")),
        1 => MetricType::Counter,
        2 => MetricType::Trace,
        3 => MetricType::Gauge,
        4 => MetricType::Timer,
        5 => MetricType::Histogram,
        6 => MetricType::Distribution,
        7 => MetricType::Set,
        _ => return Err(BadPartial::Invalid("unknown metric type")),
    })
}

/// A varint field, omitted when 0 (proto3's default).
fn uint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        varint_field(out, field, v);
    }
}

/// A `double` field, omitted when +0.0 (proto3's default; −0.0 is written).
fn double_nonzero(out: &mut Vec<u8>, field: u32, v: f64) {
    if v.to_bits() != 0 {
        double_field(out, field, v);
    }
}

/// A `string` or `bytes` field, omitted when empty.
fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        len_field(out, field, b);
    }
}

fn encode_origin(out: &mut Vec<u8>, origin: &Origin) {
    message_field(out, 1, |out| {
        bytes_field(out, 1, origin.source_id.as_bytes());
        uint_field(out, 2, origin.source_epoch_ms);
        uint_field(out, 3, origin.interval_start_ms);
        uint_field(out, 4, u64::from(origin.interval_ms));
    });
}

/// Appends one `Envelope{partial}`. `gauge_unix_ns` is written as `Gauge.set_unix_ns` for
/// gauges (ignored otherwise). The type written is `key`'s; `value` must be of it.
pub fn encode_partial(
    out: &mut Vec<u8>,
    origin: &Origin,
    seq: Option<u32>,
    key: &SeriesKey,
    value: &Value,
    gauge_unix_ns: u64,
) {
    debug_assert_eq!(key.metric_type(), value.metric_type());
    varint_field(out, 1, u64::from(VERSION));
    message_field(out, 2, |out| {
        encode_origin(out, origin);
        if let Some(seq) = seq {
            varint_field(out, 2, u64::from(seq));
        }
        len_field(out, 3, key.name().as_bytes());
        varint_field(out, 4, type_number(key.metric_type()));
        for (k, v) in key.tags() {
            message_field(out, 5, |out| {
                bytes_field(out, 1, k.as_bytes());
                bytes_field(out, 2, v.as_bytes());
            });
        }
        match value {
            Value::Counter(sum) | Value::Trace(sum) => double_field(out, 6, *sum),
            Value::Gauge(g) => message_field(out, 7, |out| {
                double_nonzero(out, 1, g.value);
                uint_field(out, 2, u64::from(g.absolute));
                uint_field(out, 3, gauge_unix_ns);
            }),
            Value::Timer(s) | Value::Histogram(s) | Value::Distribution(s) => {
                message_field(out, 8, |out| encode_samples(out, s))
            }
            Value::Set(set) => message_field(out, 9, |out| match &**set {
                SetValue::Exact(exact) => {
                    for m in exact.members() {
                        len_field(out, 1, m.as_bytes());
                    }
                }
                SetValue::Estimated(hll) => len_field(out, 2, &hll.to_datasketches()),
            }),
        }
    });
}

fn encode_samples(out: &mut Vec<u8>, s: &Samples) {
    double_nonzero(out, 1, s.count);
    packed_doubles(out, 2, &s.values);
    if let Some(sk) = &s.sketched {
        len_field(out, 3, &sketch_proto::encode(&sk.sketch));
        let t = &sk.totals;
        message_field(out, 4, |out| {
            uint_field(out, 1, t.seen);
            double_nonzero(out, 2, t.sum);
            double_nonzero(out, 3, t.sum_squares);
            double_nonzero(out, 4, t.min);
            double_nonzero(out, 5, t.max);
        });
    }
}

/// Appends one `Envelope{end}`.
pub fn encode_end(out: &mut Vec<u8>, end: &IntervalEnd) {
    varint_field(out, 1, u64::from(VERSION));
    message_field(out, 3, |out| {
        encode_origin(out, &end.origin);
        uint_field(out, 2, u64::from(end.partials));
        uint_field(out, 3, u64::from(end.partitions));
        uint_field(out, 4, u64::from(end.last));
    });
}

/// Decodes one message (see the module docs for what is refused). The decoded state fits
/// `bounds`: sketches are read into `bounds.max_sketch_bins` and must have the mapping
/// `bounds.sketch`, raw samples and exact sets beyond their bounds become a sketch or an HLL.
pub fn decode(bytes: &[u8], bounds: &Bounds) -> std::result::Result<Envelope, BadPartial> {
    decode_envelope(bytes, bounds)
}

fn decode_envelope(bytes: &[u8], bounds: &Bounds) -> Result<Envelope> {
    let mut version = 0;
    let mut kind = None;
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => version = f.uint32()?,
            (n @ (2 | 3), f) => kind = Some((n, f.bytes()?)),
            _ => {}
        }
    }
    if version == 0 {
        return Err(BadPartial::Version("no version"));
    }
    if version > VERSION {
        return Err(BadPartial::Version(
            "a newer major version than this reader's",
        ));
    }
    match kind {
        Some((2, body)) => decode_partial(body, bounds).map(Envelope::Partial),
        Some((_, body)) => decode_end(body).map(Envelope::End),
        None => Err(BadPartial::Missing("neither a partial nor an interval end")),
    }
}

fn decode_origin(bytes: &[u8]) -> Result<Origin> {
    let mut origin = Origin {
        source_id: String::new(),
        source_epoch_ms: 0,
        interval_start_ms: 0,
        interval_ms: 0,
    };
    let mut source_id = "";
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => source_id = f.string()?,
            (2, f) => origin.source_epoch_ms = f.uint64()?,
            (3, f) => origin.interval_start_ms = f.uint64()?,
            (4, f) => origin.interval_ms = f.uint32()?,
            _ => {}
        }
    }
    origin.source_id = source_id.to_owned();
    Ok(origin)
}

fn decode_end(bytes: &[u8]) -> Result<IntervalEnd> {
    let (mut origin, mut partials, mut partitions, mut last) = (None, 0, 0, false);
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => origin = Some(f.bytes()?),
            (2, f) => partials = f.uint32()?,
            (3, f) => partitions = f.uint32()?,
            (4, f) => last = f.bool()?,
            _ => {}
        }
    }
    Ok(IntervalEnd {
        origin: decode_origin(origin.ok_or(BadPartial::Missing("no origin"))?)?,
        partials,
        partitions,
        last,
    })
}

/// A series' tags while decoding: on the stack for the usual few, so that the key's tag
/// slice is allocated once at its exact size.
struct TagBuf<'a> {
    inline: [(&'a str, &'a str); 8],
    len: usize,
    spill: Vec<(&'a str, &'a str)>,
}

impl<'a> TagBuf<'a> {
    fn new() -> Self {
        TagBuf {
            inline: [("", ""); 8],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, tag: (&'a str, &'a str)) {
        if self.spill.is_empty() && self.len < self.inline.len() {
            self.inline[self.len] = tag;
            self.len += 1;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(tag);
        }
    }

    fn as_slice(&self) -> &[(&'a str, &'a str)] {
        if self.spill.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spill
        }
    }
}

fn decode_tag(bytes: &[u8]) -> Result<(&str, &str)> {
    let (mut key, mut value) = ("", "");
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => key = f.string()?,
            (2, f) => value = f.string()?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn finite(v: f64, reason: &'static str) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(BadPartial::Invalid(reason))
    }
}

fn decode_partial(bytes: &[u8], bounds: &Bounds) -> Result<Partial> {
    let (mut origin, mut seq, mut name, mut mtype) = (None, None, None, 0);
    let mut tags = TagBuf::new();
    let mut value = None;
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => origin = Some(f.bytes()?),
            (2, f) => seq = Some(f.uint32()?),
            (3, f) => name = Some(f.string()?),
            (4, f) => mtype = f.uint64()?,
            (5, f) => tags.push(decode_tag(f.bytes()?)?),
            (n @ 6..=9, f) => value = Some((n, f)),
            _ => {}
        }
    }
    let origin = origin.ok_or(BadPartial::Missing("no origin"))?;
    let name = name.ok_or(BadPartial::Missing("no name"))?;
    if name.is_empty() {
        return Err(BadPartial::Invalid("empty name"));
    }
    let mtype = metric_type(mtype)?;
    let tags = tags.as_slice();
    if !tags.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(BadPartial::Invalid(
            "tags are not sorted by key, or a key repeats",
        ));
    }
    let (n, f) = value.ok_or(BadPartial::Missing("no value"))?;
    let value = match (mtype, n) {
        (MetricType::Counter, 6) => Value::Counter(finite(f.double()?, "a sum is not finite")?),
        (MetricType::Trace, 6) => Value::Trace(finite(f.double()?, "a sum is not finite")?),
        (MetricType::Gauge, 7) => Value::Gauge(decode_gauge(f.bytes()?)?),
        (MetricType::Timer, 8) => Value::Timer(Box::new(decode_samples(f.bytes()?, bounds)?)),
        (MetricType::Histogram, 8) => {
            Value::Histogram(Box::new(decode_samples(f.bytes()?, bounds)?))
        }
        (MetricType::Distribution, 8) => {
            Value::Distribution(Box::new(decode_samples(f.bytes()?, bounds)?))
        }
        (MetricType::Set, 9) => Value::Set(Box::new(decode_set(f.bytes()?, bounds)?)),
        _ => {
            return Err(BadPartial::Invalid(
                "the value's kind is not the metric type's",
            ));
        }
    };
    Ok(Partial {
        origin: decode_origin(origin)?,
        seq,
        key: SeriesKey::new(name, mtype, tags.iter().copied()),
        value,
    })
}

fn decode_gauge(bytes: &[u8]) -> Result<Gauge> {
    let mut g = Gauge {
        value: 0.0,
        absolute: false,
        stamp: 0,
    };
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => g.value = finite(f.double()?, "a gauge value is not finite")?,
            (2, f) => g.absolute = f.bool()?,
            (3, f) => g.stamp = f.uint64()?,
            _ => {}
        }
    }
    Ok(g)
}

/// Appends the little-endian doubles of a packed field.
fn unpack_doubles(mut packed: &[u8], values: &mut Vec<f64>) -> Result<()> {
    if !packed.len().is_multiple_of(8) {
        return Err(BadPartial::Wire(
            "packed doubles are not a whole number of doubles",
        ));
    }
    values.reserve(packed.len() / 8);
    while let Some((v, rest)) = packed.split_first_chunk::<8>() {
        values.push(f64::from_le_bytes(*v));
        packed = rest;
    }
    Ok(())
}

fn decode_samples(bytes: &[u8], bounds: &Bounds) -> Result<Samples> {
    let (mut count, mut values, mut ddsketch, mut totals) = (0.0, Vec::new(), None, None);
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => count = f.double()?,
            (2, Field::Bytes(packed)) => unpack_doubles(packed, &mut values)?,
            (2, f) => values.push(f.double()?),
            (3, f) => ddsketch = Some(f.bytes()?),
            (4, f) => totals = Some(f.bytes()?),
            _ => {}
        }
    }
    if !(count.is_finite() && count >= 0.0) {
        return Err(BadPartial::Invalid(
            "a samples count is not finite and non-negative",
        ));
    }
    if !values.iter().all(|v| v.is_finite()) {
        return Err(BadPartial::Invalid("a sample is not finite"));
    }
    let Some(ddsketch) = ddsketch else {
        if totals.is_some() {
            return Err(BadPartial::Invalid("totals without a sketch"));
        }
        let raw = Samples {
            values,
            count,
            sketched: None,
        };
        if raw.values.len() <= bounds.max_timer_samples {
            return Ok(raw);
        }
        let mut samples = Samples::default();
        samples.merge(raw, bounds);
        return Ok(samples);
    };
    if !values.is_empty() {
        return Err(BadPartial::Invalid("raw samples alongside a sketch"));
    }
    let sketch = sketch_proto::decode(ddsketch, bounds.max_sketch_bins)
        .map_err(|e| BadPartial::Sketch(e.0))?;
    if *sketch.mapping() != bounds.sketch {
        return Err(BadPartial::SketchAccuracy);
    }
    let totals = decode_totals(totals.ok_or(BadPartial::Missing("a sketch without its totals"))?)?;
    if totals.seen != sketch.count() {
        return Err(BadPartial::Invalid("the totals' count is not the sketch's"));
    }
    Ok(Samples {
        values,
        count,
        sketched: Some(Box::new(Sketched { sketch, totals })),
    })
}

fn decode_totals(bytes: &[u8]) -> Result<Totals> {
    let mut t = Totals {
        seen: 0,
        sum: 0.0,
        sum_squares: 0.0,
        min: 0.0,
        max: 0.0,
    };
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => t.seen = f.uint64()?,
            (2, f) => t.sum = f.double()?,
            (3, f) => t.sum_squares = f.double()?,
            (4, f) => t.min = f.double()?,
            (5, f) => t.max = f.double()?,
            _ => {}
        }
    }
    // Infinities are what an empty sketch's min and max are; NaN is nobody's total.
    if [t.sum, t.sum_squares, t.min, t.max]
        .iter()
        .any(|v| v.is_nan())
    {
        return Err(BadPartial::Invalid("a total is NaN"));
    }
    Ok(t)
}

fn decode_set(bytes: &[u8], bounds: &Bounds) -> Result<SetValue> {
    let mut set = SetValue::default();
    let mut hll = None;
    let mut members = false;
    for f in pb::fields(bytes) {
        match f? {
            (1, f) => {
                set.insert(f.string()?, bounds);
                members = true;
            }
            (2, f) => hll = Some(f.bytes()?),
            _ => {}
        }
    }
    let Some(hll) = hll else {
        return Ok(set);
    };
    if members {
        return Err(BadPartial::Invalid("members alongside an HLL"));
    }
    let hll = Hll::from_datasketches(hll).map_err(|e| BadPartial::Sketch(e.0))?;
    if hll.lg_k() <= bounds.set_lg_k {
        return Ok(SetValue::Estimated(Box::new(hll)));
    }
    // Finer than this reader's: folded down to its precision.
    let mut coarse = Hll::new(bounds.set_lg_k);
    coarse.merge(&hll);
    Ok(SetValue::Estimated(Box::new(coarse)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::sketch::Mapping;
    use crate::metric::Sample;
    use proptest::prelude::*;

    fn origin() -> Origin {
        Origin {
            source_id: "web-042".into(),
            source_epoch_ms: 1_795_000_000_000,
            interval_start_ms: 1_795_323_600_000,
            interval_ms: 10_000,
        }
    }

    /// Small caps, so that a few samples or members reach the sketch and the HLL.
    fn small() -> Bounds {
        Bounds {
            max_timer_samples: 4,
            set_exact_members: 4,
            set_lg_k: 8,
            ..Bounds::default()
        }
    }

    fn key(name: &str, mtype: MetricType) -> SeriesKey {
        SeriesKey::new(name, mtype, [("env", "prod"), ("az", "b")])
    }

    fn value(mtype: MetricType, samples: &[Sample<'_>], bounds: &Bounds) -> Value {
        let mut v = Value::empty(mtype);
        for (i, s) in samples.iter().enumerate() {
            v.update(s, 0.5, i as u64, bounds);
        }
        v
    }

    fn numbers(n: u32) -> Vec<Sample<'static>> {
        (1..=n)
            .map(|i| Sample::Value(f64::from(i) * 1.25))
            .collect()
    }

    fn members(range: std::ops::Range<u32>) -> Vec<Sample<'static>> {
        range
            .map(|i| Sample::Member(format!("user-{i}").into()))
            .collect()
    }

    fn encoded(seq: Option<u32>, key: &SeriesKey, value: &Value, ns: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_partial(&mut out, &origin(), seq, key, value, ns);
        out
    }

    fn decoded(bytes: &[u8], bounds: &Bounds) -> Partial {
        match decode(bytes, bounds) {
            Ok(Envelope::Partial(p)) => p,
            other => panic!("not a partial: {other:?}"),
        }
    }

    /// Encodes and decodes; the partial must come back equal.
    fn round_trip(key: SeriesKey, value: Value, bounds: &Bounds) -> Value {
        let p = decoded(&encoded(Some(7), &key, &value, 0), bounds);
        assert_eq!((p.origin, p.seq, &p.key), (origin(), Some(7), &key));
        assert_eq!(p.value, value, "{key:?}");
        p.value
    }

    #[test]
    fn every_value_kind_round_trips() {
        let b = Bounds::default();
        round_trip(key("hits", MetricType::Counter), Value::Counter(12.5), &b);
        round_trip(
            SeriesKey::new("bare", MetricType::Counter, [("", ""); 0]),
            Value::Counter(0.0),
            &b,
        );
        round_trip(key("events", MetricType::Trace), Value::Trace(3.0), &b);
        let delta = value(MetricType::Gauge, &[Sample::Delta(-2.5)], &b);
        round_trip(key("queue", MetricType::Gauge), delta, &b);
        for mtype in [
            MetricType::Timer,
            MetricType::Histogram,
            MetricType::Distribution,
        ] {
            let raw = round_trip(key("t", mtype), value(mtype, &numbers(3), &b), &b);
            assert_eq!(raw.clone().samples_mut().unwrap().values.len(), 3);
        }
        let set = value(MetricType::Set, &members(0..3), &b);
        assert!(matches!(&set, Value::Set(s) if matches!(**s, SetValue::Exact(_))));
        round_trip(key("users", MetricType::Set), set, &b);
        let empty = Value::empty(MetricType::Set);
        round_trip(key("nobody", MetricType::Set), empty, &b);
    }

    #[test]
    fn an_absolute_gauge_carries_its_wall_clock_time() {
        let g = value(
            MetricType::Gauge,
            &[Sample::Value(10.0), Sample::Delta(1.0)],
            &Bounds::default(),
        );
        let bytes = encoded(
            None,
            &key("g", MetricType::Gauge),
            &g,
            1_795_323_605_123_456_789,
        );
        let p = decoded(&bytes, &Bounds::default());
        assert_eq!(
            p.value,
            Value::Gauge(Gauge {
                value: 11.0,
                absolute: true,
                stamp: 1_795_323_605_123_456_789,
            })
        );
    }

    #[test]
    fn sketched_timers_and_hll_sets_round_trip() {
        let b = small();
        let timer = value(MetricType::Timer, &numbers(50), &b);
        let Value::Timer(s) = &timer else { panic!() };
        assert!(s.values.is_empty() && s.sketched.is_some());
        assert_eq!(s.sketched.as_ref().unwrap().sketch.collapsed(), 0);
        round_trip(key("t", MetricType::Timer), timer, &b);
        let d = value(MetricType::Distribution, &numbers(9), &b);
        round_trip(key("d", MetricType::Distribution), d, &b);

        let set = value(MetricType::Set, &members(0..100), &b);
        assert!(matches!(&set, Value::Set(s) if matches!(**s, SetValue::Estimated(_))));
        round_trip(key("u", MetricType::Set), set, &b);
    }

    #[test]
    fn decoded_state_fits_the_readers_bounds() {
        let exact = Bounds::EXACT;
        let (b, key) = (small(), key("t", MetricType::Timer));
        // Raw samples beyond the reader's cap: the sketch the reader would have built.
        let raw = value(MetricType::Timer, &numbers(10), &exact);
        let p = decoded(&encoded(None, &key, &raw, 0), &b);
        assert_eq!(p.value, value(MetricType::Timer, &numbers(10), &b));
        // A big exact set becomes the reader's HLL.
        let key = SeriesKey::new("u", MetricType::Set, [("", ""); 0]);
        let set = value(MetricType::Set, &members(0..10), &exact);
        let p = decoded(&encoded(None, &key, &set, 0), &b);
        assert_eq!(p.value, value(MetricType::Set, &members(0..10), &b));
        // A finer HLL is folded to the reader's precision.
        let fine = Bounds { set_lg_k: 12, ..b };
        let set = value(MetricType::Set, &members(0..100), &fine);
        let Value::Set(s) = decoded(&encoded(None, &key, &set, 0), &b).value else {
            panic!()
        };
        let SetValue::Estimated(h) = *s else { panic!() };
        assert_eq!(h.lg_k(), 8);
        let SetValue::Estimated(direct) = *value_set(&members(0..100), &b) else {
            panic!()
        };
        assert_eq!(*h, *direct);
        // A sketch of another accuracy is refused.
        let timer = value(MetricType::Timer, &numbers(10), &b);
        let other = Bounds {
            sketch: Mapping::with_scale(4),
            ..b
        };
        assert_eq!(
            decode(&encoded(None, &key_t(), &timer, 0), &other),
            Err(BadPartial::SketchAccuracy)
        );
    }

    fn value_set(m: &[Sample<'_>], b: &Bounds) -> Box<SetValue> {
        match value(MetricType::Set, m, b) {
            Value::Set(s) => s,
            _ => unreachable!(),
        }
    }

    fn key_t() -> SeriesKey {
        key("t", MetricType::Timer)
    }

    #[test]
    fn interval_end_round_trips() {
        for end in [
            IntervalEnd {
                origin: origin(),
                partials: 1234,
                partitions: 12,
                last: true,
            },
            IntervalEnd {
                origin: Origin {
                    source_id: String::new(),
                    source_epoch_ms: 0,
                    interval_start_ms: 0,
                    interval_ms: 0,
                },
                partials: 0,
                partitions: 0,
                last: false,
            },
        ] {
            let mut out = Vec::new();
            encode_end(&mut out, &end);
            assert_eq!(
                decode(&out, &Bounds::default()),
                Ok(Envelope::End(end.clone()))
            );
        }
    }

    #[test]
    fn seq_absent_is_not_seq_zero() {
        let (k, v) = (key("c", MetricType::Counter), Value::Counter(1.0));
        let (none, zero) = (encoded(None, &k, &v, 0), encoded(Some(0), &k, &v, 0));
        assert_ne!(none, zero);
        assert_eq!(decoded(&none, &Bounds::default()).seq, None);
        assert_eq!(decoded(&zero, &Bounds::default()).seq, Some(0));
    }

    #[test]
    fn merging_decoded_partials_is_merging_the_states() {
        let b = small();
        let cases = [
            (
                MetricType::Counter,
                value(MetricType::Counter, &numbers(3), &b),
                value(MetricType::Counter, &numbers(5), &b),
            ),
            (
                MetricType::Timer,
                value(MetricType::Timer, &numbers(2), &b),
                value(MetricType::Timer, &numbers(2), &b),
            ),
            (
                MetricType::Timer,
                value(MetricType::Timer, &numbers(3), &b),
                value(MetricType::Timer, &numbers(30), &b),
            ),
            (
                MetricType::Set,
                value(MetricType::Set, &members(0..3), &b),
                value(MetricType::Set, &members(2..4), &b),
            ),
            (
                MetricType::Set,
                value(MetricType::Set, &members(0..3), &b),
                value(MetricType::Set, &members(2..60), &b),
            ),
        ];
        for (mtype, a, c) in cases {
            let k = key("m", mtype);
            let mut want = a.clone();
            want.merge(c.clone(), &b);
            let mut got = decoded(&encoded(None, &k, &a, 0), &b).value;
            got.merge(decoded(&encoded(None, &k, &c, 0), &b).value, &b);
            assert_eq!(got, want, "{mtype}");
        }
    }

    /// An envelope of `version` around a partial body that `body` writes.
    fn envelope(version: u64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        uint_field(&mut out, 1, version);
        message_field(&mut out, 2, body);
        out
    }

    /// A partial body: origin, name, type, then `rest`.
    fn body(name: &str, mtype: u64, rest: impl FnOnce(&mut Vec<u8>)) -> impl FnOnce(&mut Vec<u8>) {
        move |out| {
            encode_origin(out, &origin());
            len_field(out, 3, name.as_bytes());
            varint_field(out, 4, mtype);
            rest(out);
        }
    }

    fn tag(out: &mut Vec<u8>, k: &str, v: &str) {
        message_field(out, 5, |out| {
            len_field(out, 1, k.as_bytes());
            len_field(out, 2, v.as_bytes());
        });
    }

    fn reason(bytes: &[u8]) -> &'static str {
        match decode(bytes, &Bounds::default()) {
            Err(e) => e.detail(),
            Ok(e) => panic!("decoded {e:?}"),
        }
    }

    #[test]
    fn what_is_refused() {
        let sum = |v: f64| move |out: &mut Vec<u8>| double_field(out, 6, v);
        assert_eq!(
            reason(&envelope(2, body("c", 1, sum(1.0)))),
            "a newer major version than this reader's"
        );
        assert_eq!(reason(&envelope(0, body("c", 1, sum(1.0)))), "no version");
        assert_eq!(reason(&[8, 1]), "neither a partial nor an interval end");
        assert_eq!(reason(&[]), "no version");
        let no_origin = envelope(1, |out| {
            len_field(out, 3, b"c");
            varint_field(out, 4, 1);
            double_field(out, 6, 1.0);
        });
        assert_eq!(reason(&no_origin), "no origin");
        let no_name = envelope(1, |out| {
            encode_origin(out, &origin());
            varint_field(out, 4, 1);
            double_field(out, 6, 1.0);
        });
        assert_eq!(reason(&no_name), "no name");
        assert_eq!(reason(&envelope(1, body("", 1, sum(1.0)))), "empty name");
        let latin1 = envelope(1, |out| {
            encode_origin(out, &origin());
            len_field(out, 3, b"caf\xe9");
            varint_field(out, 4, 1);
            double_field(out, 6, 1.0);
        });
        assert_eq!(reason(&latin1), "a string is not UTF-8");
        let bad_tag = envelope(
            1,
            body("c", 1, |out| {
                message_field(out, 5, |out| len_field(out, 2, b"\xff"));
                double_field(out, 6, 1.0);
            }),
        );
        assert_eq!(reason(&bad_tag), "a string is not UTF-8");
        assert_eq!(
            reason(&envelope(1, body("c", 0, sum(1.0)))),
            "metric type unspecified"
        );
        assert_eq!(
            reason(&envelope(1, body("c", 8, sum(1.0)))),
            "unknown metric type"
        );
        let mismatch = "the value's kind is not the metric type's";
        let set_counter = body("c", 1, |out| message_field(out, 9, |_| {}));
        assert_eq!(reason(&envelope(1, set_counter)), mismatch);
        assert_eq!(reason(&envelope(1, body("g", 3, sum(1.0)))), mismatch);
        assert_eq!(reason(&envelope(1, body("c", 1, |_| {}))), "no value");
        for v in [f64::NAN, f64::INFINITY] {
            assert_eq!(
                reason(&envelope(1, body("c", 1, sum(v)))),
                "a sum is not finite"
            );
            assert_eq!(
                reason(&envelope(1, body("c", 2, sum(v)))),
                "a sum is not finite"
            );
        }
        let tagged = |tags: &'static [(&'static str, &'static str)]| {
            envelope(
                1,
                body("c", 1, move |out| {
                    for (k, v) in tags {
                        tag(out, k, v);
                    }
                    double_field(out, 6, 1.0);
                }),
            )
        };
        let unsorted = "tags are not sorted by key, or a key repeats";
        assert_eq!(reason(&tagged(&[("b", "1"), ("a", "2")])), unsorted);
        assert_eq!(reason(&tagged(&[("a", "1"), ("a", "2")])), unsorted);
        let ok = decoded(&tagged(&[("a", "1"), ("b", "")]), &Bounds::default());
        assert_eq!(
            ok.key,
            SeriesKey::new("c", MetricType::Counter, [("a", "1"), ("b", "")])
        );
        // Wrong wire type for a known field.
        let varint_sum = body("c", 1, |out| varint_field(out, 6, 1));
        assert_eq!(
            reason(&envelope(1, varint_sum)),
            "a field has the wrong wire type"
        );
        // Samples and sets.
        let samples =
            |f: fn(&mut Vec<u8>)| envelope(1, body("t", 4, move |out| message_field(out, 8, f)));
        assert_eq!(
            reason(&samples(|out| packed_doubles(out, 2, &[1.0, f64::NAN]))),
            "a sample is not finite"
        );
        assert_eq!(
            reason(&samples(|out| double_field(out, 1, -1.0))),
            "a samples count is not finite and non-negative"
        );
        assert_eq!(
            reason(&samples(|out| len_field(out, 2, &[0; 7]))),
            "packed doubles are not a whole number of doubles"
        );
        let sketch = sketch_proto::encode(&crate::aggregate::sketch::Sketch::new(
            Bounds::default().sketch,
            64,
        ));
        let with_sketch = |values: &[f64], totals: bool| {
            let sketch = sketch.clone();
            let values = values.to_vec();
            envelope(
                1,
                body("t", 4, move |out| {
                    message_field(out, 8, |out| {
                        packed_doubles(out, 2, &values);
                        len_field(out, 3, &sketch);
                        if totals {
                            message_field(out, 4, |out| varint_field(out, 1, 1));
                        }
                    })
                }),
            )
        };
        assert_eq!(
            reason(&with_sketch(&[1.0], false)),
            "raw samples alongside a sketch"
        );
        assert_eq!(
            reason(&with_sketch(&[], false)),
            "a sketch without its totals"
        );
        assert_eq!(
            reason(&with_sketch(&[], true)),
            "the totals' count is not the sketch's"
        );
        assert_eq!(
            reason(&samples(|out| message_field(out, 4, |_| {}))),
            "totals without a sketch"
        );
        let sets =
            |f: fn(&mut Vec<u8>)| envelope(1, body("s", 7, move |out| message_field(out, 9, f)));
        assert_eq!(
            reason(&sets(|out| {
                len_field(out, 1, b"x");
                len_field(out, 2, &Hll::new(8).to_datasketches());
            })),
            "members alongside an HLL"
        );
        assert_eq!(
            reason(&sets(|out| len_field(out, 2, b"not an hll"))),
            "shorter than its preamble"
        );
        let gauge = envelope(
            1,
            body("g", 3, |out| {
                message_field(out, 7, |out| double_field(out, 1, f64::INFINITY))
            }),
        );
        assert_eq!(reason(&gauge), "a gauge value is not finite");
        let mut end = Vec::new();
        varint_field(&mut end, 1, 1);
        message_field(&mut end, 3, |out| varint_field(out, 2, 5));
        assert_eq!(reason(&end), "no origin");
        assert_eq!(
            decode(&end, &Bounds::default()),
            Err(BadPartial::Missing("no origin"))
        );
        assert_eq!(
            BadPartial::Invalid("x").to_string(),
            "not an rstatsd partial: x"
        );
    }

    #[test]
    fn every_truncation_is_refused_without_panicking() {
        let b = small();
        let mut all = Vec::new();
        let values = [
            (MetricType::Counter, Value::Counter(3.0)),
            (
                MetricType::Gauge,
                value(MetricType::Gauge, &[Sample::Value(1.0)], &b),
            ),
            (MetricType::Timer, value(MetricType::Timer, &numbers(3), &b)),
            (
                MetricType::Timer,
                value(MetricType::Timer, &numbers(300), &b),
            ),
            (MetricType::Set, value(MetricType::Set, &members(0..3), &b)),
            (MetricType::Set, value(MetricType::Set, &members(0..30), &b)),
        ];
        for (mtype, v) in &values {
            all.push(encoded(Some(1), &key("m", *mtype), v, 5));
        }
        let mut end = Vec::new();
        encode_end(
            &mut end,
            &IntervalEnd {
                origin: origin(),
                partials: 3,
                partitions: 2,
                last: true,
            },
        );
        all.push(end);
        for bytes in all {
            assert!(decode(&bytes, &b).is_ok());
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut], &b).is_err(), "prefix of {cut} bytes");
            }
        }
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let k = key("c", MetricType::Counter);
        let want = decoded(
            &encoded(Some(3), &k, &Value::Counter(2.0), 0),
            &Bounds::default(),
        );
        let mut bytes = envelope(1, |out| {
            varint_field(out, 99, 5);
            encode_origin(out, &origin());
            pb::tag(out, 85, 5); // a fixed32 field
            out.extend_from_slice(&[1, 2, 3, 4]);
            varint_field(out, 2, 3);
            len_field(out, 3, b"c");
            varint_field(out, 4, 1);
            for (k, v) in [("az", "b"), ("env", "prod")] {
                message_field(out, 5, |out| {
                    len_field(out, 1, k.as_bytes());
                    double_field(out, 7, 1.5);
                    len_field(out, 2, v.as_bytes());
                });
            }
            double_field(out, 6, 2.0);
            len_field(out, 1000, b"future");
        });
        len_field(&mut bytes, 4, b"a future kind");
        varint_field(&mut bytes, 77, 1);
        assert_eq!(decoded(&bytes, &Bounds::default()), want);
    }

    /// The fuzz target's seeds (`fuzz/corpus_seeds/partial_decode/`): one message of every
    /// kind. `RSTATSD_WRITE_SEEDS=1 cargo test --lib partial::tests::fuzz_seeds` rewrites them.
    #[test]
    fn fuzz_seeds_decode_to_what_wrote_them() {
        let b = Bounds {
            set_lg_k: 6,
            ..small()
        };
        let mut seeds = Vec::new();
        let mut seed = |name: &str, key: SeriesKey, value: Value, ns: u64| {
            seeds.push((name.to_owned(), encoded(Some(3), &key, &value, ns)));
        };
        seed(
            "counter",
            key("hits", MetricType::Counter),
            Value::Counter(2.5),
            0,
        );
        let g = value(MetricType::Gauge, &[Sample::Value(4.0)], &b);
        seed(
            "gauge",
            key("queue", MetricType::Gauge),
            g,
            1_795_323_605_000_000_000,
        );
        let raw = value(MetricType::Timer, &numbers(3), &b);
        seed("timer_raw", key("t", MetricType::Timer), raw, 0);
        let sketched = value(MetricType::Histogram, &numbers(20), &b);
        seed(
            "histogram_sketched",
            key("h", MetricType::Histogram),
            sketched,
            0,
        );
        let exact = value(MetricType::Set, &members(0..1), &b);
        seed("set_exact", key("u", MetricType::Set), exact, 0);
        let hll = value(MetricType::Set, &members(0..40), &b);
        seed("set_hll", key("u", MetricType::Set), hll, 0);
        let mut end = Vec::new();
        let interval_end = IntervalEnd {
            origin: origin(),
            partials: 4,
            partitions: 2,
            last: false,
        };
        encode_end(&mut end, &interval_end);
        seeds.push(("end".to_owned(), end));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus_seeds/partial_decode");
        for (name, bytes) in seeds {
            let path = dir.join(name);
            if std::env::var_os("RSTATSD_WRITE_SEEDS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            }
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(
                decode(&on_disk, &b),
                decode(&bytes, &b),
                "{}",
                path.display()
            );
            assert!(decode(&bytes, &b).is_ok());
        }
    }

    proptest! {
        #[test]
        fn counters_and_gauges_round_trip(
            name in "[a-z.]{1,20}",
            tags in proptest::collection::btree_map("[a-z]{0,5}", "\\PC{0,8}", 0..12),
            sum in -1e12f64..1e12,
            seq in proptest::option::of(any::<u32>()),
            absolute in any::<bool>(),
            ns in any::<u64>(),
        ) {
            let b = Bounds::default();
            let key = SeriesKey::new(name.as_str(), MetricType::Counter, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let p = decoded(&encoded(seq, &key, &Value::Counter(sum), 0), &b);
            prop_assert_eq!((p.seq, &p.key, &p.value), (seq, &key, &Value::Counter(sum)));
            let key = SeriesKey::new(name.as_str(), MetricType::Gauge, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let g = Value::Gauge(Gauge { value: sum, absolute, stamp: ns });
            let p = decoded(&encoded(seq, &key, &g, ns), &b);
            prop_assert_eq!((&p.key, &p.value), (&key, &g));
        }
    }
}
