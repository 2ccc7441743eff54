//! STUB (replaced by the codec branch).
#![allow(unused_variables, clippy::ptr_arg)]
use crate::aggregate::{Bounds, Value};
use crate::metric::SeriesKey;

pub const VERSION: u32 = 1;
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub source_id: String,
    pub source_epoch_ms: u64,
    pub interval_start_ms: u64,
    pub interval_ms: u32,
}
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub origin: Origin,
    pub seq: Option<u32>,
    pub key: SeriesKey,
    pub value: Value,
}
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalEnd {
    pub origin: Origin,
    pub partials: u32,
    pub partitions: u32,
    pub last: bool,
}
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    Partial(Partial),
    End(IntervalEnd),
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPartial(pub &'static str);
impl std::fmt::Display for BadPartial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an rstatsd partial: {}", self.0)
    }
}
impl std::error::Error for BadPartial {}
pub fn encode_partial(
    out: &mut Vec<u8>,
    origin: &Origin,
    seq: Option<u32>,
    key: &SeriesKey,
    value: &Value,
    gauge_unix_ns: u64,
) {
    todo!()
}
pub fn encode_end(out: &mut Vec<u8>, end: &IntervalEnd) {
    todo!()
}
pub fn decode(bytes: &[u8], bounds: &Bounds) -> Result<Envelope, BadPartial> {
    todo!()
}
