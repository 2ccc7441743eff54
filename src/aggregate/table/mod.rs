//! The per-thread aggregation table.

use std::convert::Infallible;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::aggregate::{Bounds, Refusal, SeriesGuard, Value};
use crate::metric::{Metric, MetricType, Sample, SeriesKey, SeriesRef, Tags};

/// One random seed for every table of the process, so that a table's stored hashes stay
/// valid in any other table it is merged into (and a client cannot aim for collisions).
static SEED: LazyLock<[u64; 2]> = LazyLock::new(|| {
    let state = DefaultHashBuilder::default();
    [state.hash_one(1u8), state.hash_one(2u8)]
});

/// Series → aggregate, written by exactly one receiver thread.
///
/// Lookups use the parser's borrowed [`crate::metric::SeriesRef`], so updating a series the
/// table already holds allocates nothing; only a series' first sample in an interval copies
/// its name (into the table's name arena) and tags.
///
/// Layout, for the receivers' hot path: the hash index holds only an entry number and 32
/// bits of the series' hash, so most probes are settled without touching an entry; entries
/// sit in one dense vector (56 bytes each: name position, tags, value; the type is the
/// value's variant); and the names are back to back in one string instead of one heap
/// allocation each, so a lookup's name comparison reads memory its neighbours keep warm.
/// That also makes a series cheaper: about 120 bytes for a counter with a 29-byte name at
/// 1,000,000 series, where a map of owned keys took 184.
#[derive(Debug, Clone)]
pub struct Table {
    index: HashTable<Slot>,
    entries: Vec<Entry>,
    /// Every entry's name, back to back.
    names: String,
    /// When timers and sets switch to their sketches.
    bounds: Bounds,
    /// Samples and members that went into a sketch (a timer's DDSketch, a set's
    /// HyperLogLog) instead of being kept exactly.
    sketched: u64,
    /// Timer-like samples of known series not yet in their [`Samples`](super::Samples), in
    /// arrival order (see [`Table::settle`]).
    log: Vec<Logged>,
}

/// A timer-like sample waiting in a table's log.
#[derive(Debug, Clone, Copy)]
struct Logged {
    entry: u32,
    value: f64,
    sample_rate: f64,
}

/// Samples a table logs before it settles them: 96 KiB, written in sequence, so the log's
/// tail is the one line of it a receiver keeps hot.
const LOG: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Position in `entries` (a table of 2^32 entries would need 224 GiB for them alone).
    entry: u32,
    /// The upper half of the series' hash: what the index is placed by, and a filter that
    /// rejects nearly every non-matching entry before its name is read.
    hash: u32,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Name,
    /// `None` for the common series without tags: a thin pointer leaves the name room.
    tags: Option<Box<Tags>>,
    value: Value,
}

/// A series name: up to [`Name::INLINE`] bytes in place (most statsd names), so comparing
/// it reads the cache line the entry is in anyway; a longer one as its position in the
/// table's name arena.
#[derive(Debug, Clone)]
struct Name([u8; 24]);

impl Name {
    const INLINE: usize = 23;
    /// The last byte: the inline length, or this for a name in the arena.
    const IN_ARENA: u8 = u8::MAX;

    fn new(name: &str, arena: &mut String) -> Name {
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
    fn bytes<'n>(&'n self, arena: &'n str) -> &'n [u8] {
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

    fn as_str<'n>(&'n self, arena: &'n str) -> &'n str {
        // Both forms hold a copy of a whole `str`.
        std::str::from_utf8(self.bytes(arena)).unwrap_or_default()
    }
}

/// No tags as `None`, so an untagged series allocates nothing for them.
fn boxed_tags(tags: Tags) -> Option<Box<Tags>> {
    (!tags.is_empty()).then(|| Box::new(tags))
}

fn tag_slice(tags: &Option<Box<Tags>>) -> &[(Box<str>, Box<str>)] {
    tags.as_deref().map_or(&[], |t| &t[..])
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

/// The hash a [`Slot`] keeps: of the name, the type and the tags, in one pass written for
/// the receivers' short names (a generic `Hasher` costs a round per write).
#[inline]
fn short_hash<'t>(
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
fn place(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// `a == b`, without a call to `memcmp` for the short names most series have.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
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

fn ref_tags<'t>(series: &'t SeriesRef<'_, '_>) -> impl Iterator<Item = (&'t str, &'t str)> {
    series.tags.iter().map(|(k, v)| (*k, &**v))
}

impl Entry {
    #[inline(always)]
    fn is_ref(&self, names: &str, series: &SeriesRef<'_, '_>) -> bool {
        self.value.metric_type() == series.mtype
            && same_bytes(self.name.bytes(names), series.name.as_bytes())
            && tag_slice(&self.tags).len() == series.tags.len()
            && tag_slice(&self.tags)
                .iter()
                .zip(series.tags.iter())
                .all(|((k1, v1), (k2, v2))| **k1 == **k2 && **v1 == **v2)
    }

    #[inline]
    fn is_key<'t>(
        &self,
        names: &str,
        name: &str,
        mtype: MetricType,
        mut tags: impl ExactSizeIterator<Item = (&'t str, &'t str)>,
    ) -> bool {
        self.value.metric_type() == mtype
            && self.name.bytes(names) == name.as_bytes()
            && tag_slice(&self.tags).len() == tags.len()
            && tag_slice(&self.tags)
                .iter()
                .all(|(k1, v1)| tags.next() == Some((&**k1, &**v1)))
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::with_capacity(0, Bounds::EXACT)
    }
}

impl Table {
    /// An empty table that keeps every timer sample and set member exactly.
    pub fn new() -> Table {
        Table::default()
    }

    /// An empty table with room for `series` series without rehashing, within `bounds`.
    pub fn with_capacity(series: usize, bounds: Bounds) -> Table {
        Table {
            index: HashTable::with_capacity(series),
            entries: Vec::with_capacity(series),
            names: String::new(),
            bounds,
            sketched: 0,
            log: Vec::new(),
        }
    }

    /// An empty table with room for as many series and name bytes as `self` holds: what
    /// a receiver starts an interval with, so a steady load does not regrow it.
    pub fn sized_like(&self) -> Table {
        let mut table = Table::with_capacity(self.len(), self.bounds);
        table.names.reserve(self.names.len());
        table.log.reserve(self.log.capacity());
        table
    }

    /// Applies one metric. `stamp` orders absolute gauge sets across threads.
    #[inline]
    pub fn apply(&mut self, metric: &Metric<'_, '_>, stamp: u64) {
        let Ok(()) = self.apply_admitted(metric, stamp, |_| Ok::<(), Infallible>(()));
    }

    /// Applies one metric; a series new to this table is inserted only if the cardinality
    /// guard admits it in the receiver's interval `generation`.
    #[inline]
    pub fn apply_guarded(
        &mut self,
        metric: &Metric<'_, '_>,
        stamp: u64,
        guard: &SeriesGuard,
        generation: u32,
    ) -> Result<(), Refusal> {
        self.apply_admitted(metric, stamp, |series| {
            guard.admit_series(series, generation)
        })
    }

    /// Applies one metric; a series new to this table is inserted only if `admit` allows it
    /// (the cardinality guard), else `admit`'s error is returned and nothing changes.
    #[inline]
    pub fn apply_admitted<E>(
        &mut self,
        metric: &Metric<'_, '_>,
        stamp: u64,
        admit: impl FnOnce(&SeriesRef<'_, '_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let series = &metric.series;
        let hash = short_hash(series.name, series.mtype, ref_tags(series));
        self.apply_hashed(hash, metric, stamp, admit)
    }

    /// [`Table::apply_admitted`] with the series' hash already computed.
    #[inline]
    fn apply_hashed<E>(
        &mut self,
        hash: u32,
        metric: &Metric<'_, '_>,
        stamp: u64,
        admit: impl FnOnce(&SeriesRef<'_, '_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let series = &metric.series;
        let (entries, names) = (&self.entries, self.names.as_str());
        let found = self.index.find(place(hash), |slot| {
            slot.hash == hash && entries[slot.entry as usize].is_ref(names, series)
        });
        if let Some(slot) = found {
            self.update(slot.entry, metric, stamp);
        } else {
            admit(series)?;
            let tags = series
                .tags
                .iter()
                .map(|(k, v)| (Box::from(*k), Box::from(&**v)))
                .collect();
            let value = Value::new(series.mtype, &metric.sample, metric.sample_rate, stamp);
            self.insert(hash, series.name, tags, value);
        }
        Ok(())
    }

    #[inline(always)]
    fn update(&mut self, entry: u32, metric: &Metric<'_, '_>, stamp: u64) {
        let value = &mut self.entries[entry as usize].value;
        match (value, &metric.sample) {
            // Counters are most of the traffic: their update without the call.
            (Value::Counter(sum), Sample::Value(v)) => *sum += v / metric.sample_rate,
            (Value::Timer(_) | Value::Histogram(_) | Value::Distribution(_), Sample::Value(v)) => {
                self.log.push(Logged {
                    entry,
                    value: *v,
                    sample_rate: metric.sample_rate,
                });
                if self.log.len() >= LOG {
                    self.settle();
                }
            }
            (value, sample) => {
                if !value.update(sample, metric.sample_rate, stamp, &self.bounds) {
                    self.sketched += 1;
                }
            }
        }
    }

    /// Moves the logged timer samples into their series, in the order they arrived, through
    /// [`Value::update`]: what applying them one by one would have left.
    ///
    /// Why a log: adding a sample to a timer reads its boxed samples and the line its next
    /// sample goes to, two more dependent cache misses per sample in a receiver (a quarter
    /// of its time in rounds at the sender max on this project's VM, before). Appending to
    /// one log misses nothing; settling it is a loop whose iterations do not depend on each
    /// other, so their misses overlap, and a busy timer's lines are read once per settle
    /// instead of once per sample. Every read of the table's contents settles first
    /// ([`Table::get`] expects it done).
    pub fn settle(&mut self) {
        for logged in self.log.drain(..) {
            let value = &mut self.entries[logged.entry as usize].value;
            let sample = Sample::Value(logged.value);
            if !value.update(&sample, logged.sample_rate, 0, &self.bounds) {
                self.sketched += 1;
            }
        }
    }

    /// The hash of an untagged series, for [`Table::locate`] and [`Table::apply_located`].
    #[inline]
    pub fn plain_hash(name: &str, mtype: MetricType) -> u32 {
        short_hash(name, mtype, std::iter::empty())
    }

    /// The entry the index files under `hash`, if any: the first step of a lookup, without
    /// the comparison of names (see [`Table::apply_located`]).
    ///
    /// Looking up a series is a chain of dependent loads (index slot, then entry), and in a
    /// receiver each is usually a cache miss: on this project's 2-vCPU
    /// VM, with the senders on the same cores, they were half of a receiver's time at
    /// 200,000 metrics/s. Misses of *independent* loads overlap (one cost ~180 ns there,
    /// eight at once ~25 ns each), so a receiver looks up a round of metrics one step at a
    /// time: `locate` for each, then [`Table::touch`] for all, then `apply_located`.
    #[inline]
    pub fn locate(&self, hash: u32) -> Option<u32> {
        self.index
            .find(place(hash), |slot| slot.hash == hash)
            .map(|slot| slot.entry)
    }

    /// Reads the entries that applying a metric to each of `located` will read, so that
    /// their misses overlap: the pass does not branch on what it loads. (Names too long to
    /// be inline, in the name arena, are left to the lookup; a timer's samples are not read
    /// at all, see [`Table::settle`].) The return value is only for `black_box`.
    pub fn touch(&self, located: impl Iterator<Item = u32>) -> u64 {
        let mut read = 0u64;
        for entry in located {
            if let Some(e) = self.entries.get(entry as usize) {
                read = read.wrapping_add(u64::from(e.name.0[0]) + e.value.metric_type() as u64);
            }
        }
        read
    }

    /// [`Table::apply_admitted`] for an untagged metric whose series `located` says where
    /// the index files `hash` (from [`Table::plain_hash`]). The entry's name is compared as
    /// usual; only the index probe is saved, unless the hash's first entry is another series.
    #[inline]
    pub fn apply_located<E>(
        &mut self,
        located: Option<u32>,
        hash: u32,
        metric: &Metric<'_, '_>,
        stamp: u64,
        admit: impl FnOnce(&SeriesRef<'_, '_>) -> Result<(), E>,
    ) -> Result<(), E> {
        debug_assert!(metric.series.tags.is_empty());
        if let Some(entry) = located
            && self
                .entries
                .get(entry as usize)
                .is_some_and(|e| e.is_ref(&self.names, &metric.series))
        {
            self.update(entry, metric, stamp);
            return Ok(());
        }
        self.apply_hashed(hash, metric, stamp, admit)
    }

    /// Adds a series known to be absent.
    fn insert(&mut self, hash: u32, name: &str, tags: Tags, value: Value) {
        let entry = u32::try_from(self.entries.len()).expect("fewer than 2^32 series");
        self.entries.push(Entry {
            name: Name::new(name, &mut self.names),
            tags: boxed_tags(tags),
            value,
        });
        self.index
            .insert_unique(place(hash), Slot { entry, hash }, |slot| place(slot.hash));
    }

    /// Folds a value into the series `key` (merging when present).
    pub fn merge_value(&mut self, key: SeriesKey, value: Value) {
        self.settle();
        let hash = short_hash(key.name(), key.metric_type(), key.tags());
        let (name, mtype, tags) = key.into_parts();
        self.merge_hashed(hash, &name, mtype, tags, value);
    }

    fn merge_hashed(&mut self, hash: u32, name: &str, mtype: MetricType, tags: Tags, value: Value) {
        let (entries, names) = (&self.entries, self.names.as_str());
        let found = self.index.find(place(hash), |slot| {
            let same_tags = tags.iter().map(|(k, v)| (&**k, &**v));
            slot.hash == hash && entries[slot.entry as usize].is_key(names, name, mtype, same_tags)
        });
        match found {
            Some(slot) => self.entries[slot.entry as usize]
                .value
                .merge(value, &self.bounds),
            None => self.insert(hash, name, tags, value),
        }
    }

    /// Folds every series of `other` into `self`.
    pub fn merge(&mut self, mut other: Table) {
        self.settle();
        other.settle();
        self.sketched += other.sketched;
        if self.is_empty() {
            // Cheapest case (one receiver, or the first table): adopt the other's storage.
            self.index = other.index;
            self.entries = other.entries;
            self.names = other.names;
            return;
        }
        // The hashes are the process-wide hasher's, so `other`'s slots are valid here.
        let mut hashes = vec![0u32; other.entries.len()];
        for slot in other.index.iter() {
            hashes[slot.entry as usize] = slot.hash;
        }
        self.index
            .reserve(other.entries.len(), |slot| place(slot.hash));
        self.entries.reserve(other.entries.len());
        let names = other.names;
        // In chunks, the index probes first (by hash alone) and then the entries: the
        // probes of a chunk do not depend on each other, so their cache misses overlap
        // instead of coming one after the other (tables this large are not in any cache).
        const CHUNK: usize = 32;
        let mut entries = other.entries.into_iter().zip(hashes).peekable();
        let mut candidates = [None::<u32>; CHUNK];
        while entries.peek().is_some() {
            let chunk: Vec<(Entry, u32)> = entries.by_ref().take(CHUNK).collect();
            for (candidate, (_, hash)) in candidates.iter_mut().zip(&chunk) {
                *candidate = self
                    .index
                    .find(place(*hash), |slot| slot.hash == *hash)
                    .map(|slot| slot.entry);
            }
            for ((entry, hash), candidate) in chunk.into_iter().zip(candidates) {
                let name = entry.name.as_str(&names);
                let mtype = entry.value.metric_type();
                let tags = entry.tags.map_or_else(Tags::default, |t| *t);
                if let Some(i) = candidate {
                    let known = &mut self.entries[i as usize];
                    let same_tags = tags.iter().map(|(k, v)| (&**k, &**v));
                    if known.is_key(&self.names, name, mtype, same_tags) {
                        known.value.merge(entry.value, &self.bounds);
                        continue;
                    }
                }
                // Absent, or another series with the same 32 hash bits first.
                self.merge_hashed(hash, name, mtype, tags, entry.value);
            }
        }
    }

    /// When timers and sets switch to their sketches.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Samples and members this table (and the tables merged into it) sent into a sketch.
    pub fn sketched(&mut self) -> u64 {
        self.settle();
        self.sketched
    }

    /// The aggregate of `key`, in a table that has settled ([`Table::settle`]) since it
    /// last applied a metric.
    pub fn get(&self, key: &SeriesKey) -> Option<&Value> {
        debug_assert!(self.log.is_empty(), "a table is read after it settles");
        let hash = short_hash(key.name(), key.metric_type(), key.tags());
        self.index
            .find(place(hash), |slot| {
                slot.hash == hash
                    && self.entries[slot.entry as usize].is_key(
                        &self.names,
                        key.name(),
                        key.metric_type(),
                        key.tags(),
                    )
            })
            .map(|slot| &self.entries[slot.entry as usize].value)
    }

    /// Moves every series out, leaving the table empty (the index and entry vector keep
    /// their capacity).
    pub fn drain(&mut self) -> impl Iterator<Item = (SeriesKey, Value)> + '_ {
        self.settle();
        self.index.clear();
        let names = std::mem::take(&mut self.names);
        self.entries.drain(..).map(move |entry| {
            let mtype = entry.value.metric_type();
            let tags = entry.tags.map_or_else(Tags::default, |t| *t);
            let key = SeriesKey::from_parts(entry.name.as_str(&names).into(), mtype, tags);
            (key, entry.value)
        })
    }
}

#[cfg(test)]
mod tests;
