//! pystatsd JSON datagrams, parsed with simd-json's tape API.
//!
//! ```json
//! {"metric_name": "user.latency", "metric_type": "guage", "value": 4, "env": "dev"}
//! ```
//!
//! - `metric_name` (non-empty string) and `metric_type` (string) are mandatory.
//! - `metric_type`: `trace` (counts datagrams), `counter` (adds `count`, default 1),
//!   `guage`/`gauge` (last `value`), `timer`, `histogram` (`value` is a sample) and `set`
//!   (`value`, string or number, is a member).
//! - The key the type consumes (`value` or `count`) is not a tag; every other key is. String,
//!   number and bool values become tag strings (`4`, `4.5`, `true`); null, objects and arrays
//!   reject the object.
//! - A datagram may hold several objects separated by newlines; each is judged on its own.
//!
//! Parsing is in place: simd-json unescapes strings inside the datagram buffer, and the tape
//! and scratch buffers are reused, so a datagram allocates nothing in the steady state.

use std::borrow::Cow;

use simd_json::prelude::*;
use simd_json::tape::{Tape, Value};

use super::sanitize::sanitize;
use super::{Handler, Limits, Reject, recycle_tags};
use crate::metric::{Metric, MetricType, Sample, SeriesRef, TagRef, normalize_tags};

/// Parses pystatsd JSON datagrams. One per receiver thread.
pub struct JsonParser {
    sanitize: bool,
    limits: Limits,
    buffers: simd_json::Buffers,
    tape: Option<Tape<'static>>,
    tags: Vec<TagRef<'static>>,
    name_scratch: String,
}

/// Which key carries the value, per `metric_type`.
#[derive(Clone, Copy)]
enum ValueKey {
    None,
    Count,
    Value,
}

impl JsonParser {
    pub fn new(sanitize_names: bool) -> Self {
        JsonParser {
            sanitize: sanitize_names,
            limits: Limits::default(),
            buffers: simd_json::Buffers::new(2048),
            tape: Some(Tape::null().reset()),
            tags: Vec::with_capacity(16),
            name_scratch: String::new(),
        }
    }

    /// Replaces the default [`Limits`].
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Parses every newline-separated object of `datagram`, in place.
    pub fn parse_datagram(&mut self, datagram: &mut [u8], handler: &mut impl Handler) {
        for object in datagram.split_mut(|&b| b == b'\n') {
            if object.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.parse_object(object, handler);
        }
    }

    /// Parses one JSON document.
    pub fn parse_object(&mut self, object: &mut [u8], handler: &mut impl Handler) {
        // Kept for the rejection report: simd-json rewrites the buffer while unescaping.
        let mut tape = self.tape.take().unwrap_or_else(Tape::null).reset();
        let mut tags = recycle_tags(std::mem::take(&mut self.tags));
        let parsed = {
            // Reborrow so the original bytes stay reachable for a rejection report.
            let input: &mut [u8] = &mut *object;
            match simd_json::fill_tape(input, &mut self.buffers, &mut tape) {
                Ok(()) => self.emit(tape.as_value(), &mut tags, handler),
                Err(_) => Err(Reject::InvalidJson),
            }
        };
        self.tags = recycle_tags(tags);
        self.tape = Some(tape.reset());
        if let Err(reason) = parsed {
            handler.reject(reason, object);
        }
    }

    fn emit<'t, 'i>(
        &mut self,
        doc: Value<'t, 'i>,
        tags: &mut Vec<TagRef<'i>>,
        handler: &mut impl Handler,
    ) -> Result<(), Reject> {
        let object = doc.as_object().ok_or(Reject::NotObject)?;
        let raw_name = object
            .get("metric_name")
            .and_then(|v| v.into_string())
            .ok_or(Reject::MissingName)?;
        let type_name = object
            .get("metric_type")
            .and_then(|v| v.into_string())
            .ok_or(Reject::MissingType)?;
        let (mtype, value_key) = match type_name {
            "trace" => (MetricType::Trace, ValueKey::None),
            "counter" => (MetricType::Counter, ValueKey::Count),
            "guage" | "gauge" => (MetricType::Gauge, ValueKey::Value),
            "timer" => (MetricType::Timer, ValueKey::Value),
            "histogram" => (MetricType::Histogram, ValueKey::Value),
            "set" => (MetricType::Set, ValueKey::Value),
            _ => return Err(Reject::UnknownType),
        };
        let mut sample = match value_key {
            ValueKey::None | ValueKey::Count => Some(Sample::Value(1.0)),
            ValueKey::Value => None,
        };
        tags.clear();
        for (key, value) in object.iter() {
            match (key, value_key) {
                ("metric_name" | "metric_type", _) => {}
                ("count", ValueKey::Count) => {
                    sample = Some(Sample::Value(finite(value).ok_or(Reject::BadValue)?));
                }
                ("value", ValueKey::Value) => {
                    sample = Some(match mtype {
                        MetricType::Set => {
                            let member = tag_text(value).ok_or(Reject::BadValue)?;
                            self.limits.check_member(&member)?;
                            Sample::Member(member)
                        }
                        MetricType::Timer if finite(value).is_some_and(|v| v < 0.0) => {
                            return Err(Reject::NegativeTimer);
                        }
                        MetricType::Counter
                        | MetricType::Gauge
                        | MetricType::Timer
                        | MetricType::Histogram
                        | MetricType::Distribution
                        | MetricType::Trace => {
                            Sample::Value(finite(value).ok_or(Reject::BadValue)?)
                        }
                    });
                }
                _ => tags.push((key, tag_text(value).ok_or(Reject::BadTagValue)?)),
            }
        }
        let sample = sample.ok_or(Reject::BadValue)?;
        normalize_tags(tags);
        self.limits.check(raw_name, tags)?;
        let name = if self.sanitize {
            sanitize(raw_name, &mut self.name_scratch)
        } else {
            raw_name
        };
        if name.is_empty() {
            return Err(Reject::EmptyName);
        }
        handler.metric(&Metric {
            series: SeriesRef { name, mtype, tags },
            sample,
            sample_rate: 1.0,
        });
        Ok(())
    }
}

/// A JSON number as a finite f64 (bools and strings are not numbers).
fn finite(v: Value<'_, '_>) -> Option<f64> {
    let f = v.cast_f64()?;
    f.is_finite().then_some(f)
}

/// A scalar as tag text: strings as they are, numbers and bools in their JSON spelling.
fn tag_text<'i>(v: Value<'_, 'i>) -> Option<Cow<'i, str>> {
    if let Some(s) = v.into_string() {
        return Some(Cow::Borrowed(s));
    }
    if let Some(b) = v.as_bool() {
        return Some(Cow::Borrowed(if b { "true" } else { "false" }));
    }
    if let Some(i) = v.as_i64() {
        return Some(Cow::Owned(i.to_string()));
    }
    if let Some(u) = v.as_u64() {
        return Some(Cow::Owned(u.to_string()));
    }
    v.as_f64().map(|f| Cow::Owned(f.to_string()))
}

#[cfg(test)]
mod tests;
