//! A [`Sketch`] as the DDSketch protobuf message (`ddsketch.proto` beside this file, the
//! schema DataDog's sketches-java, -go and -py share), so the `ddsketch` libraries decode it
//! and report the same quantiles.
//!
//! The mapping is written as `LogarithmicMapping` (interpolation `NONE`) with `gamma` =
//! γ and `indexOffset` = −1: sketches-py's key of a value is ⌈log_γ v⌉ + offset, so with −1
//! its keys are our bin indices (the OpenTelemetry indices) and its reported value of a key,
//! 2γ^(key−offset)/(1+γ), is ours. Stores are written contiguously
//! (`contiguousBinIndexOffset` + packed `contiguousBinCounts`), the form every reader
//! accepts; the reader here also takes the sparse `binCounts` map.

use super::sketch::{Mapping, Sketch, Store};
use crate::format::protobuf::{self, Field, double_field, len_field, tag, varint, zigzag};

/// Why bytes are not a sketch this build can merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadProto(pub &'static str);

impl std::fmt::Display for BadProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not a DDSketch protobuf this rstatsd can merge: {}",
            self.0
        )
    }
}

/// The index offset written (see the module docs).
const INDEX_OFFSET: f64 = -1.0;

/// Encodes `sketch` as a `DDSketch` message.
pub fn encode(sketch: &Sketch) -> Vec<u8> {
    let mut mapping = Vec::with_capacity(18);
    double_field(&mut mapping, 1, sketch.mapping().gamma());
    double_field(&mut mapping, 2, INDEX_OFFSET);
    let mut out = Vec::new();
    len_field(&mut out, 1, &mapping);
    len_field(&mut out, 2, &store(sketch.positive()));
    len_field(&mut out, 3, &store(sketch.negative()));
    if sketch.zero_count() > 0 {
        double_field(&mut out, 4, sketch.zero_count() as f64);
    }
    out
}

fn store(s: &Store) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.counts().len() * 8 + 8);
    if s.total() == 0 {
        return out;
    }
    let mut counts = Vec::with_capacity(s.counts().len() * 8);
    for &c in s.counts() {
        counts.extend_from_slice(&(c as f64).to_le_bytes());
    }
    len_field(&mut out, 2, &counts);
    tag(&mut out, 3, 0);
    varint(&mut out, zigzag(s.offset()));
    out
}

/// The shared field reader, its reasons as [`BadProto`], and a `fixed32` field read as the
/// varint 0 (no field of the DDSketch message is 32-bit; what this decoder always did).
fn fields(data: &[u8]) -> impl Iterator<Item = Result<(u32, Field<'_>), BadProto>> {
    protobuf::fields(data).map(|f| match f {
        Ok((n, Field::Fixed32(_))) => Ok((n, Field::Varint(0))),
        Ok(f) => Ok(f),
        Err(reason) => Err(BadProto(reason)),
    })
}

fn unzigzag(v: u64) -> Result<i32, BadProto> {
    protobuf::unzigzag(v).map_err(BadProto)
}

/// 2^53: the most samples a sketch holds (whole numbers in a double are exact up to it).
const MAX_SAMPLES: u64 = 1 << 53;

fn count(v: f64) -> Result<u64, BadProto> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < MAX_SAMPLES as f64 {
        Ok(v as u64)
    } else {
        Err(BadProto("a bin count is not a whole number of samples"))
    }
}

/// Decodes a `DDSketch` message into a sketch of `max_bins` bins per store. Only the
/// logarithmic mapping of an OpenTelemetry scale (γ = 2^(2^−s)) with an integer index
/// offset is accepted: those are the sketches whose bins merge with ours exactly.
pub fn decode(data: &[u8], max_bins: usize) -> Result<Sketch, BadProto> {
    let mut mapping = None;
    let mut stores: [Vec<(i32, u64)>; 2] = [Vec::new(), Vec::new()];
    let mut zero = 0;
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(m)) => mapping = Some(decode_mapping(m)?),
            (n @ (2 | 3), Field::Bytes(s)) => stores[(n - 2) as usize] = decode_store(s)?,
            (4, Field::Fixed64(b)) => zero = count(f64::from_le_bytes(b))?,
            _ => {}
        }
    }
    let (mapping, offset) = mapping.ok_or(BadProto("no mapping"))?;
    // Beyond 2^53 samples counts are not whole numbers in a double; refusing them also keeps
    // the stores' u64 totals (and a few merges of them) from overflowing.
    let samples = stores
        .iter()
        .flatten()
        .map(|&(_, n)| n)
        .chain([zero])
        .try_fold(0u64, |total, n| {
            total.checked_add(n).filter(|&t| t <= MAX_SAMPLES)
        });
    if samples.is_none() {
        return Err(BadProto("more samples than a sketch counts exactly"));
    }
    let mut sketch = Sketch::new(mapping, max_bins);
    let finite = mapping.finite_indices();
    let finite = i64::from(*finite.start())..=i64::from(*finite.end());
    let [positive, negative] = stores;
    for (negative, bins) in [(false, positive), (true, negative)] {
        for (key, n) in bins {
            if n == 0 {
                continue;
            }
            let index = i64::from(key) - i64::from(offset) - 1;
            // A bin no finite sample falls in would report an infinite (or zero) quantile.
            if !finite.contains(&index) {
                return Err(BadProto("bin index out of range"));
            }
            sketch.add_bin(negative, index as i32, n);
        }
    }
    sketch.add_zeros(zero);
    Ok(sketch)
}

fn decode_mapping(data: &[u8]) -> Result<(Mapping, i32), BadProto> {
    let (mut gamma, mut offset, mut interpolation) = (None, 0.0, 0);
    for f in fields(data) {
        match f? {
            (1, Field::Fixed64(b)) => gamma = Some(f64::from_le_bytes(b)),
            (2, Field::Fixed64(b)) => offset = f64::from_le_bytes(b),
            (3, Field::Varint(v)) => interpolation = v,
            _ => {}
        }
    }
    if interpolation != 0 {
        return Err(BadProto("interpolated mapping"));
    }
    let gamma = gamma.ok_or(BadProto("no gamma"))?;
    let mapping = (0..=10)
        .map(Mapping::with_scale)
        .find(|m| (m.gamma() - gamma).abs() <= 1e-12 * gamma)
        .ok_or(BadProto("gamma is not 2^(2^-scale)"))?;
    if offset.fract() != 0.0 || offset.abs() > 1e6 {
        return Err(BadProto("index offset is not a small integer"));
    }
    Ok((mapping, offset as i32))
}

fn decode_store(data: &[u8]) -> Result<Vec<(i32, u64)>, BadProto> {
    let mut bins = Vec::new();
    let mut contiguous: Vec<u64> = Vec::new();
    let mut first = 0;
    for f in fields(data) {
        match f? {
            (1, Field::Bytes(entry)) => {
                let (mut key, mut value) = (0, 0);
                for e in fields(entry) {
                    match e? {
                        (1, Field::Varint(k)) => key = unzigzag(k)?,
                        (2, Field::Fixed64(b)) => value = count(f64::from_le_bytes(b))?,
                        _ => {}
                    }
                }
                bins.push((key, value));
            }
            (2, Field::Bytes(packed)) => {
                if packed.len() % 8 != 0 {
                    return Err(BadProto("packed counts"));
                }
                for c in packed.chunks_exact(8) {
                    let c: [u8; 8] = c.try_into().expect("chunks of 8");
                    contiguous.push(count(f64::from_le_bytes(c))?);
                }
            }
            (2, Field::Fixed64(b)) => contiguous.push(count(f64::from_le_bytes(b))?),
            (3, Field::Varint(v)) => first = unzigzag(v)?,
            _ => {}
        }
    }
    for (j, c) in contiguous.into_iter().enumerate() {
        let key = i32::try_from(j)
            .ok()
            .and_then(|j| first.checked_add(j))
            .ok_or(BadProto("bin index out of range"))?;
        bins.push((key, c));
    }
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bit_for_bit() {
        let mut s = Sketch::new(Mapping::with_scale(6), 2048);
        for v in [-250.0, -1.5, 0.0, 0.0, 0.001, 1.0, 3.0, 3.0, 7e5] {
            s.add(v);
        }
        let bytes = encode(&s);
        assert_eq!(decode(&bytes, 2048), Ok(s.clone()));
        assert_eq!(
            decode(&bytes[..bytes.len() - 3], 2048).err().map(|e| e.0),
            Some("truncated")
        );
        // Counts that would overflow the totals are refused.
        let mut huge = Sketch::new(Mapping::with_scale(6), 2048);
        huge.add_bin(false, 1, 1 << 52);
        huge.add_bin(false, 2, 1 << 52);
        assert_eq!(decode(&encode(&huge), 2048).map(|s| s.count()), Ok(1 << 53));
        huge.add_zeros(1);
        assert_eq!(
            decode(&encode(&huge), 2048).err().map(|e| e.0),
            Some("more samples than a sketch counts exactly")
        );
        // An empty sketch is a mapping and two empty stores.
        let empty = Sketch::new(Mapping::with_scale(6), 2048);
        assert_eq!(decode(&encode(&empty), 2048), Ok(empty));
    }

    #[test]
    fn bins_beyond_the_f64_range_are_refused() {
        // Scale 0 (γ = 2): index 1023 holds values up to 2^1024, index −1075 the smallest
        // subnormals; one beyond either holds no finite value. Key = index + offset + 1, in
        // the positive store (field 2) and the negative one (field 3), with the offset we
        // write (−1) and another (4).
        let refused = Err("bin index out of range");
        for offset in [INDEX_OFFSET, 4.0] {
            for store_field in [2, 3] {
                for (index, verdict) in [
                    (1023, Ok(1)),
                    (1024, refused),
                    (-1075, Ok(1)),
                    (-1076, refused),
                ] {
                    let key = index + offset as i32 + 1;
                    let mut mapping = Vec::new();
                    double_field(&mut mapping, 1, 2.0);
                    double_field(&mut mapping, 2, offset);
                    let mut store = Vec::new();
                    len_field(&mut store, 2, &1f64.to_le_bytes());
                    tag(&mut store, 3, 0);
                    varint(&mut store, zigzag(key));
                    let mut msg = Vec::new();
                    len_field(&mut msg, 1, &mapping);
                    len_field(&mut msg, store_field, &store);
                    let decoded = decode(&msg, 8);
                    let what = format!("index {index}, offset {offset}, store {store_field}");
                    assert_eq!(
                        decoded.as_ref().map(Sketch::count).map_err(|e| e.0),
                        verdict,
                        "{what}"
                    );
                    if let Ok(s) = decoded {
                        assert!(s.value_at(0).is_finite() && s.value_at(0) != 0.0, "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn foreign_mappings_are_refused() {
        let mut mapping = Vec::new();
        double_field(&mut mapping, 1, 1.02);
        let mut msg = Vec::new();
        len_field(&mut msg, 1, &mapping);
        assert_eq!(
            decode(&msg, 8).err().map(|e| e.0),
            Some("gamma is not 2^(2^-scale)")
        );
    }
}
