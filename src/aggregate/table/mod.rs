//! The per-thread aggregation table.

mod key;

use std::convert::Infallible;

use hashbrown::HashTable;

use self::key::{Name, place, same_bytes, short_hash};

use crate::aggregate::{Bounds, Refusal, SeriesGuard, Value};
use crate::metric::{Metric, MetricType, Sample, SeriesKey, SeriesRef, Tags};

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

/// No tags as `None`, so an untagged series allocates nothing for them.
fn boxed_tags(tags: Tags) -> Option<Box<Tags>> {
    (!tags.is_empty()).then(|| Box::new(tags))
}

fn tag_slice(tags: &Option<Box<Tags>>) -> &[(Box<str>, Box<str>)] {
    tags.as_deref().map_or(&[], |t| &t[..])
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
