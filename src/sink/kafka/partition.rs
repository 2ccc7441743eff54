//! Which partition a key lands on: the Java client's partitioner (and librdkafka's
//! `murmur2_random`, which the sink configures), computed here so that an encoder that must
//! know a message's partition before it is produced (`format = "partial"`: sequence numbers
//! and end-of-interval counts per partition) routes exactly as a keyed Java producer would.

/// The partition the Java client (and librdkafka's `murmur2_random`) picks for `key`.
pub fn java_partition(key: &[u8], partitions: u32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) as i32 % partitions.max(1) as i32
}

/// Kafka's `Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}
