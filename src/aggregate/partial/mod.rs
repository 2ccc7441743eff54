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
mod tests;
