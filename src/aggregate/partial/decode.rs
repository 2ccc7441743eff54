//! Reading partials: every field validated, refused with a [`BadPartial`] rather than
//! guessed (see the module docs of `partial` for what is refused).

use super::{BadPartial, Envelope, IntervalEnd, Origin, Partial, Result, VERSION, metric_type};
use crate::aggregate::hll::Hll;
use crate::aggregate::samples::{Samples, Sketched, Totals};
use crate::aggregate::set::SetValue;
use crate::aggregate::{Bounds, Gauge, Value, sketch_proto};
use crate::format::protobuf::{self as pb, Field};
use crate::metric::{MetricType, SeriesKey};

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
