//! The spool's on-disk format, version 1 (specified in `FORMAT.md` next to this file): segment
//! files of framed records, one record per snapshot (or the undelivered part of one).
//!
//! This file owns encoding a record, decoding it back into a [`Batch`], and scanning a
//! segment after a crash: which records are whole, which are corrupt (skipped, and the
//! segment moved aside) and where a torn last record starts (truncated).

use std::collections::HashMap;
use std::sync::Arc;

use crate::sink::batch::Batch;

/// The first bytes of every segment file: magic and format version.
pub const SEGMENT_MAGIC: &[u8; 8] = b"RSTSPOOL";
pub const SEGMENT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_BYTES: usize = 12;

/// Every record starts with this marker, so a scan can find the next record after a
/// corrupt one.
const RECORD_MAGIC: &[u8; 4] = b"RREC";
/// Marker, body length, CRC32C, version.
pub const RECORD_HEADER_BYTES: usize = 13;
const RECORD_VERSION: u8 = 1;
const NO_TOPIC: u16 = u16::MAX;
const NO_KEY: u32 = u32::MAX;
const NO_PARTITION: i32 = -1;

/// The segment file header.
pub fn segment_header() -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

/// Appends one record holding the messages of `batch` that `keep` selects (by index) to
/// `out`; returns how many it holds.
pub fn encode(batch: &Batch, keep: impl Fn(usize) -> bool, out: &mut Vec<u8>) -> u32 {
    let start = out.len();
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&[0; 8]); // length and CRC, filled in below
    out.push(RECORD_VERSION);
    out.extend_from_slice(&batch.flushed_ms().to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for i in 0..batch.len() {
        if !keep(i) {
            continue;
        }
        let m = batch.message(i);
        match m.topic {
            // Topics are short (Kafka allows 249 bytes); longer ones cannot come from a
            // validated template, so they are cut rather than misframed.
            Some(t) => {
                let t = &t.as_bytes()[..t.len().min(usize::from(NO_TOPIC - 1))];
                out.extend_from_slice(&(t.len() as u16).to_le_bytes());
                out.extend_from_slice(t);
            }
            None => out.extend_from_slice(&NO_TOPIC.to_le_bytes()),
        }
        out.extend_from_slice(&m.partition.unwrap_or(NO_PARTITION).to_le_bytes());
        match m.key {
            Some(k) => {
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k);
            }
            None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
        }
        out.extend_from_slice(&(m.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(m.payload);
        count += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    let body_len = (out.len() - start - RECORD_HEADER_BYTES) as u32;
    out[start + 4..start + 8].copy_from_slice(&body_len.to_le_bytes());
    let crc = checksum(&out[start + 4..start + 8], &out[start + 12..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    count
}

/// CRC32C of the length field, the version byte and the body.
fn checksum(len: &[u8], version_and_body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), version_and_body)
}

/// What a whole record says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Offset of the record's first byte in its segment.
    pub offset: u64,
    /// Bytes of the whole record, header included.
    pub len: u32,
    pub messages: u32,
    pub flushed_ms: u64,
}

/// Why bytes are not a record.
#[derive(Debug, PartialEq, Eq)]
enum Bad {
    /// The header or the body runs past the end of the data.
    Incomplete,
    /// Marker, checksum, version or body structure is wrong.
    Corrupt,
}

/// Checks the record at `offset` of `data` (a whole segment).
fn check(data: &[u8], offset: usize) -> Result<RecordInfo, Bad> {
    let header = data
        .get(offset..offset + RECORD_HEADER_BYTES)
        .ok_or(Bad::Incomplete)?;
    if &header[..4] != RECORD_MAGIC {
        return Err(Bad::Corrupt);
    }
    let body_len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let end = offset
        .checked_add(RECORD_HEADER_BYTES + body_len)
        .ok_or(Bad::Corrupt)?;
    let body = data
        .get(offset + RECORD_HEADER_BYTES..end)
        .ok_or(Bad::Incomplete)?;
    if checksum(&header[4..8], &data[offset + 12..end]) != crc || header[12] != RECORD_VERSION {
        return Err(Bad::Corrupt);
    }
    let (flushed_ms, messages) = walk(body, |_, _, _, _| {}).ok_or(Bad::Corrupt)?;
    Ok(RecordInfo {
        offset: offset as u64,
        len: (end - offset) as u32,
        messages,
        flushed_ms,
    })
}

/// Reads a body, handing each message (topic, key, payload) to `each`; `None` when the body
/// is not well formed.
fn walk<'a>(
    body: &'a [u8],
    mut each: impl FnMut(Option<&'a str>, Option<i32>, Option<&'a [u8]>, &'a [u8]),
) -> Option<(u64, u32)> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&'a [u8]> {
        let s = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let flushed_ms = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    for _ in 0..count {
        let topic_len = u16::from_le_bytes(take(2)?.try_into().ok()?);
        let topic = match topic_len {
            NO_TOPIC => None,
            n => Some(std::str::from_utf8(take(usize::from(n))?).ok()?),
        };
        let partition = match i32::from_le_bytes(take(4)?.try_into().ok()?) {
            NO_PARTITION => None,
            p if p >= 0 => Some(p),
            _ => return None,
        };
        let key_len = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let key = match key_len {
            NO_KEY => None,
            n => Some(take(n as usize)?),
        };
        let payload_len = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let payload = take(payload_len as usize)?;
        each(topic, partition, key, payload);
    }
    (at == body.len()).then_some((flushed_ms, count))
}

/// Decodes a whole record (as a scan accepted it, read back from disk) into a
/// batch; `None` when it fails its checks.
pub fn decode(record: &[u8]) -> Option<Batch> {
    check(record, 0).ok()?;
    let mut topics: HashMap<&str, Arc<str>> = HashMap::new();
    let mut batch = Batch::default();
    let (flushed_ms, _) = walk(
        &record[RECORD_HEADER_BYTES..],
        |topic, partition, key, payload| {
            let topic = topic.map(|t| Arc::clone(topics.entry(t).or_insert_with(|| Arc::from(t))));
            batch.push(topic, key, payload);
            if let Some(p) = partition {
                batch.set_partition(p);
            }
        },
    )?;
    batch.set_flushed_ms(flushed_ms);
    Some(batch)
}

/// The verdict on one segment file's contents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The whole, valid records, in file order.
    pub records: Vec<RecordInfo>,
    /// Offsets of corrupt stretches skipped (a record that fails its checks, up to the next
    /// valid one).
    pub corrupt: Vec<u64>,
    /// Where a torn last record starts: the file is truncated there.
    pub torn_at: Option<u64>,
    /// The header is not a version-1 segment header.
    pub bad_header: bool,
}

/// Scans a segment. A record that fails its checks with a valid record after it is corrupt
/// (skipped); one with nothing valid after it is the torn tail of an interrupted write.
pub fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    if data.len() < SEGMENT_HEADER_BYTES || data[..SEGMENT_HEADER_BYTES] != segment_header() {
        out.bad_header = true;
        return out;
    }
    let mut at = SEGMENT_HEADER_BYTES;
    while at < data.len() {
        match check(data, at) {
            Ok(info) => {
                at += info.len as usize;
                out.records.push(info);
            }
            Err(_) => match next_valid(data, at + 1) {
                Some(next) => {
                    out.corrupt.push(at as u64);
                    at = next;
                }
                None => {
                    out.torn_at = Some(at as u64);
                    break;
                }
            },
        }
    }
    out
}

/// The offset of the next valid record at or after `from`.
fn next_valid(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = data.get(at..)?.windows(4).position(|w| w == RECORD_MAGIC) {
        if check(data, at + i).is_ok() {
            return Some(at + i);
        }
        at += i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(flushed_ms: u64, messages: &[(Option<&str>, Option<&str>, &str)]) -> Batch {
        let mut b = Batch::default();
        for (t, k, p) in messages {
            b.push(t.map(Arc::from), k.map(str::as_bytes), p.as_bytes());
        }
        b.set_flushed_ms(flushed_ms);
        b
    }

    type Owned = (Option<String>, Option<Vec<u8>>, Vec<u8>);

    fn messages(b: &Batch) -> Vec<Owned> {
        (0..b.len())
            .map(|i| {
                let m = b.message(i);
                (
                    m.topic.map(|t| t.to_string()),
                    m.key.map(<[u8]>::to_vec),
                    m.payload.to_vec(),
                )
            })
            .collect()
    }

    fn segment(records: &[Batch]) -> (Vec<u8>, Vec<usize>) {
        let mut data = segment_header().to_vec();
        let mut starts = Vec::new();
        for r in records {
            starts.push(data.len());
            encode(r, |_| true, &mut data);
        }
        (data, starts)
    }

    #[test]
    fn records_round_trip_with_topics_keys_and_empty_payloads() {
        let b = batch(
            1_795_323_600_000,
            &[
                (Some("metrics"), Some("k1"), "{\"a\":1}"),
                (None, None, ""),
                (Some("metrics"), None, "x"),
            ],
        );
        let mut b = b;
        b.set_partition(7);
        let mut out = Vec::new();
        assert_eq!(encode(&b, |i| i != 1, &mut out), 2);
        let back = decode(&out).unwrap();
        assert_eq!(back.flushed_ms(), 1_795_323_600_000);
        assert_eq!(
            (back.message(0).partition, back.message(1).partition),
            (None, Some(7))
        );
        assert_eq!(
            messages(&back),
            vec![
                (
                    Some("metrics".into()),
                    Some(b"k1".to_vec()),
                    b"{\"a\":1}".to_vec()
                ),
                (Some("metrics".into()), None, b"x".to_vec()),
            ]
        );
    }

    #[test]
    fn a_flipped_byte_is_skipped_and_a_torn_tail_found() {
        let records: Vec<Batch> = (0..4)
            .map(|i| batch(i, &[(None, None, "line 1 2\n"), (None, None, "more 3 4\n")]))
            .collect();
        let (mut data, starts) = segment(&records);
        // Flip a payload byte of record 1, and cut record 3 in the middle.
        data[starts[1] + RECORD_HEADER_BYTES + 20] ^= 0x40;
        data.truncate(starts[3] + 17);
        let scan = scan(&data);
        let offsets: Vec<u64> = scan.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![starts[0] as u64, starts[2] as u64]);
        assert_eq!(scan.corrupt, vec![starts[1] as u64]);
        assert_eq!(scan.torn_at, Some(starts[3] as u64));
        assert!(!scan.bad_header);
        assert_eq!(scan.records[1].flushed_ms, 2);
        assert_eq!(scan.records[1].messages, 2);
    }

    #[test]
    fn a_corrupt_length_field_loses_only_that_record() {
        let records: Vec<Batch> = (0..3)
            .map(|i| batch(i, &[(None, None, "a 1 1\n")]))
            .collect();
        let (mut data, starts) = segment(&records);
        data[starts[0] + 5] ^= 0x01;
        let scan = scan(&data);
        assert_eq!(scan.corrupt, vec![starts[0] as u64]);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.torn_at, None);
    }

    #[test]
    fn a_foreign_file_is_a_bad_header() {
        assert!(scan(b"not a spool segment").bad_header);
        assert!(scan(b"").bad_header);
        let (data, _) = segment(&[]);
        assert_eq!(scan(&data), Scan::default());
    }
}
