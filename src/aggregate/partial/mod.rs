//! Partials: the wire format of fleet-wide aggregation. A source writes, per flush interval,
//! one protobuf `Envelope{partial}` per series carrying the series' mergeable state (a
//! [`Value`]) and then an `Envelope{end}` per partition; an aggregator decodes them and merges
//! them into one [`super::Table`]. This module owns that format, both directions: the schema
//! is `src/aggregate/partial.proto` (package `rstatsd.partial.v1`), whose comments are the
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
//! [`Bounds::sketch`](super::Bounds::sketch); members alongside an HLL. Unknown fields are skipped (forward
//! compatibility); a non-repeated field given twice takes the last value, embedded
//! messages included (they are not merged as protobuf would: no writer repeats them).
//!
//! The decoded state fits the reader's [`Bounds`](super::Bounds): raw samples beyond
//! `max_timer_samples` become a sketch, a sketch is decoded into `max_sketch_bins`, an exact
//! set goes through the set's insert (so it may become an HLL), an HLL finer than
//! `set_lg_k` is folded down to it.

mod decode;
mod encode;

pub use self::decode::decode;
pub use self::encode::{encode_end, encode_partial};
use super::Value;
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

pub(super) type Result<T> = std::result::Result<T, BadPartial>;

/// The schema's `MetricType` number of a type.
pub(super) fn type_number(t: MetricType) -> u64 {
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

pub(super) fn metric_type(n: u64) -> Result<MetricType> {
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

#[cfg(test)]
mod tests;
