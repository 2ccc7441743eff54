//! A series' key as the table stores and finds it: its name inline or in the name arena
//! ([`Name`]), and the hash written for the receivers' short names.

use std::hash::BuildHasher;
use std::sync::LazyLock;

use hashbrown::DefaultHashBuilder;

use crate::metric::MetricType;

/// One random seed for every table of the process, so that a table's stored hashes stay
/// valid in any other table it is merged into (and a client cannot aim for collisions).
static SEED: LazyLock<[u64; 2]> = LazyLock::new(|| {
    let state = DefaultHashBuilder::default();
    [state.hash_one(1u8), state.hash_one(2u8)]
});

/// A series name: up to [`Name::INLINE`] bytes in place (most statsd names), so comparing
/// it reads the cache line the entry is in anyway; a longer one as its position in the
/// table's name arena.
#[derive(Debug, Clone)]
pub(super) struct Name(pub(super) [u8; 24]);

impl Name {
    pub(super) const INLINE: usize = 23;
    /// The last byte: the inline length, or this for a name in the arena.
    pub(super) const IN_ARENA: u8 = u8::MAX;

    pub(super) fn new(name: &str, arena: &mut String) -> Name {
        let mut bytes = [0u8; 24];
        if name.len() <= Name::INLINE {
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            bytes[23] = name.len() as u8;
        } else {
            let start = arena.len() as u64;
            arena.push_str(name);
            bytes[..8].copy_from_slice(&start.to_le_bytes());
            bytes[8..16].copy_from_slice(&(arena.len() as u64).to_le_bytes());
            bytes[23] = Name::IN_ARENA;
        }
        Name(bytes)
    }

    #[inline]
    pub(super) fn bytes<'n>(&'n self, arena: &'n str) -> &'n [u8] {
        match self.0[23] {
            Name::IN_ARENA => {
                let at = |i: usize| {
                    u64::from_le_bytes(self.0[i..i + 8].try_into().unwrap_or_default()) as usize
                };
                &arena.as_bytes()[at(0)..at(8)]
            }
            len => &self.0[..usize::from(len)],
        }
    }

    pub(super) fn as_str<'n>(&'n self, arena: &'n str) -> &'n str {
        // Both forms hold a copy of a whole `str`.
        std::str::from_utf8(self.bytes(arena)).unwrap_or_default()
    }
}

/// The folded multiply of foldhash and wyhash: the 128-bit product's halves, xored.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Up to 16 bytes as two words (overlapping when shorter; with the length mixed in by the
/// caller, different strings still give different pairs).
#[inline]
fn words(s: &[u8]) -> (u64, u64) {
    let n = s.len();
    let word = |at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            s[at..at + 4].try_into().unwrap_or_default(),
        ))
    };
    match n {
        8..=16 => (word(0), word(n - 8)),
        4..8 => (half(0), half(n - 4)),
        1..4 => (
            u64::from(s[0]) << 16 | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]),
            0,
        ),
        _ => (0, 0),
    }
}

/// Folds `s` into `state`.
#[inline]
fn hash_bytes(mut state: u64, seed: &[u64; 2], s: &[u8]) -> u64 {
    let mut chunks = s.chunks_exact(16);
    for chunk in &mut chunks {
        let (a, b) = words(chunk);
        state = fold(state ^ a ^ seed[0], b ^ seed[1]);
    }
    let (a, b) = words(chunks.remainder());
    fold(state ^ a ^ seed[0], b ^ seed[1] ^ s.len() as u64)
}

/// The hash a [slot] keeps: of the name, the type and the tags, in one pass written for
/// the receivers' short names (a generic `Hasher` costs a round per write).
#[inline]
pub(super) fn short_hash<'t>(
    name: &str,
    mtype: MetricType,
    tags: impl Iterator<Item = (&'t str, &'t str)>,
) -> u32 {
    let seed = &*SEED;
    let mut state = hash_bytes(mtype as u64, seed, name.as_bytes());
    for (k, v) in tags {
        state = hash_bytes(state, seed, k.as_bytes());
        state = hash_bytes(state ^ 0xff, seed, v.as_bytes());
    }
    (state >> 32) as u32
}

/// Where the index places a slot: rebuilt from the slot's 32 bits alone, because growing
/// the index re-places slots without their keys. The multiplication spreads those bits over
/// both ends of the word (the index uses the low bits for the position and the top seven as
/// a tag).
#[inline]
pub(super) fn place(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// `a == b`, without a call to `memcmp` for the short names most series have.
#[inline]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word =
        |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    match n {
        // Two overlapping words cover the whole name.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}
