//! Hand-rolled protobuf wire format: the writers and the field reader the binary formats
//! (the DDSketch message, the partials of fleet-wide aggregation) are built from. No schema
//! here: each format matches field numbers and wire types itself and skips what it does not
//! know. Errors are a `&'static str` reason each format wraps in its own error type.

/// Wire type of a varint field.
pub(crate) const VARINT: u8 = 0;
/// Wire type of a 64-bit little-endian field (`double`, `fixed64`).
pub(crate) const FIXED64: u8 = 1;
/// Wire type of a length-delimited field (bytes, strings, messages, packed scalars).
pub(crate) const LEN: u8 = 2;

/// Writes a field's key: its number and wire type.
#[inline]
pub(crate) fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

/// Writes a base-128 varint.
#[inline]
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The `sint32` encoding of `v`.
pub(crate) fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

/// Reads a `sint32` (the inverse of [`zigzag`]).
pub(crate) fn unzigzag(v: u64) -> Result<i32, &'static str> {
    let v = u32::try_from(v).map_err(|_| "sint32 out of range")?;
    Ok((v >> 1) as i32 ^ -((v & 1) as i32))
}

/// A varint field (`uint32`, `uint64`, `bool`, enums).
#[inline]
pub(crate) fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, VARINT);
    varint(out, v);
}

/// A `double` field.
#[inline]
pub(crate) fn double_field(out: &mut Vec<u8>, field: u32, v: f64) {
    tag(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length-delimited field of `bytes` (also a `string` or an encoded message).
#[inline]
pub(crate) fn len_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A packed `repeated double` field (nothing when `values` is empty, as proto3 writes it).
pub(crate) fn packed_doubles(out: &mut Vec<u8>, field: u32, values: &[f64]) {
    if values.is_empty() {
        return;
    }
    tag(out, field, LEN);
    varint(out, values.len() as u64 * 8);
    out.reserve(values.len() * 8);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// An embedded message field whose body `body` appends to `out` in place: its length is
/// written first as one byte and widened afterwards if the body is 128 bytes or more, so
/// no message is built in a buffer of its own.
#[inline]
pub(crate) fn message_field(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let at = out.len();
    out.push(0);
    body(out);
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, len as u64);
        out.splice(at..=at, prefix);
    }
}

/// One field's value as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

impl<'a> Field<'a> {
    /// The value of a `double` field.
    pub(crate) fn double(self) -> Result<f64, &'static str> {
        match self {
            Field::Fixed64(b) => Ok(f64::from_le_bytes(b)),
            _ => Err(WIRE_TYPE),
        }
    }

    /// The value of a `uint64` field.
    pub(crate) fn uint64(self) -> Result<u64, &'static str> {
        match self {
            Field::Varint(v) => Ok(v),
            _ => Err(WIRE_TYPE),
        }
    }

    /// The value of a `uint32` field; a varint beyond 32 bits is refused (protobuf would
    /// truncate it).
    pub(crate) fn uint32(self) -> Result<u32, &'static str> {
        u32::try_from(self.uint64()?).map_err(|_| "uint32 out of range")
    }

    /// The value of a `bool` field.
    pub(crate) fn bool(self) -> Result<bool, &'static str> {
        Ok(self.uint64()? != 0)
    }

    /// The value of a `bytes` or embedded-message field.
    pub(crate) fn bytes(self) -> Result<&'a [u8], &'static str> {
        match self {
            Field::Bytes(b) => Ok(b),
            _ => Err(WIRE_TYPE),
        }
    }

    /// The value of a `string` field: UTF-8.
    pub(crate) fn string(self) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a string is not UTF-8")
    }
}

/// The reason for a known field of an unexpected wire type.
const WIRE_TYPE: &str = "a field has the wrong wire type";

/// Iterates over a message's fields; unknown wire types (groups, reserved) are an error,
/// unknown fields are the caller's to skip.
#[inline]
pub(crate) fn fields(
    mut data: &[u8],
) -> impl Iterator<Item = Result<(u32, Field<'_>), &'static str>> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        Some(next_field(&mut data))
    })
}

#[inline]
fn next_field<'a>(data: &mut &'a [u8]) -> Result<(u32, Field<'a>), &'static str> {
    let key = read_varint(data)?;
    let field = u32::try_from(key >> 3).map_err(|_| "field number")?;
    let value = match key & 7 {
        0 => Field::Varint(read_varint(data)?),
        1 => {
            let (v, rest) = data.split_first_chunk::<8>().ok_or("truncated")?;
            *data = rest;
            Field::Fixed64(*v)
        }
        2 => {
            let len = usize::try_from(read_varint(data)?).map_err(|_| "length")?;
            if len > data.len() {
                return Err("truncated");
            }
            let (v, rest) = data.split_at(len);
            *data = rest;
            Field::Bytes(v)
        }
        5 => {
            let (v, rest) = data.split_first_chunk::<4>().ok_or("truncated")?;
            *data = rest;
            Field::Fixed32(*v)
        }
        _ => return Err("wire type"),
    };
    Ok((field, value))
}

/// Reads a base-128 varint off the front of `data`.
#[inline]
pub(crate) fn read_varint(data: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = data.split_first().ok_or("truncated varint")?;
        *data = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("varint too long")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            let mut data = &out[..];
            assert_eq!(read_varint(&mut data), Ok(v));
            assert!(data.is_empty());
        }
        for v in [0, 1, -1, i32::MAX, i32::MIN] {
            assert_eq!(unzigzag(zigzag(v)), Ok(v));
        }
        assert_eq!(read_varint(&mut &[0x80u8; 10][..]), Err("varint too long"));
    }

    #[test]
    fn every_field_kind_reads_back() {
        let mut out = Vec::new();
        varint_field(&mut out, 1, 150);
        double_field(&mut out, 2, 2.5);
        len_field(&mut out, 3, b"abc");
        let long = vec![7u8; 300];
        message_field(&mut out, 4, |out| out.extend_from_slice(&long));
        message_field(&mut out, 5, |_| {});
        out.extend_from_slice(&[0x35, 1, 2, 3, 4]); // field 6, fixed32
        let got: Vec<_> = fields(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            [
                (1, Field::Varint(150)),
                (2, Field::Fixed64(2.5f64.to_le_bytes())),
                (3, Field::Bytes(b"abc")),
                (4, Field::Bytes(&long)),
                (5, Field::Bytes(b"")),
                (6, Field::Fixed32([1, 2, 3, 4])),
            ]
        );
        assert_eq!(got[2].1.string(), Ok("abc"));
        assert_eq!(got[0].1.double(), Err(WIRE_TYPE));
        assert_eq!(
            fields(&[0x0b]).next(),
            Some(Err("wire type")),
            "groups are refused"
        );
    }
}
