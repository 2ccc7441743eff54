//! Writing partials: plain protobuf (proto3: default scalars omitted, oneof members and
//! `seq` always written when set).

use super::{IntervalEnd, Origin, VERSION, type_number};
use crate::aggregate::samples::Samples;
use crate::aggregate::set::SetValue;
use crate::aggregate::{Value, sketch_proto};
use crate::format::protobuf::{
    double_field, len_field, message_field, packed_doubles, varint_field,
};
use crate::metric::SeriesKey;

/// A varint field, omitted when 0 (proto3's default).
pub(super) fn uint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        varint_field(out, field, v);
    }
}

/// A `double` field, omitted when +0.0 (proto3's default; −0.0 is written).
fn double_nonzero(out: &mut Vec<u8>, field: u32, v: f64) {
    if v.to_bits() != 0 {
        double_field(out, field, v);
    }
}

/// A `string` or `bytes` field, omitted when empty.
fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        len_field(out, field, b);
    }
}

pub(super) fn encode_origin(out: &mut Vec<u8>, origin: &Origin) {
    message_field(out, 1, |out| {
        bytes_field(out, 1, origin.source_id.as_bytes());
        uint_field(out, 2, origin.source_epoch_ms);
        uint_field(out, 3, origin.interval_start_ms);
        uint_field(out, 4, u64::from(origin.interval_ms));
    });
}

/// Appends one `Envelope{partial}`. `gauge_unix_ns` is written as `Gauge.set_unix_ns` for
/// gauges (ignored otherwise). The type written is `key`'s; `value` must be of it.
pub fn encode_partial(
    out: &mut Vec<u8>,
    origin: &Origin,
    seq: Option<u32>,
    key: &SeriesKey,
    value: &Value,
    gauge_unix_ns: u64,
) {
    debug_assert_eq!(key.metric_type(), value.metric_type());
    varint_field(out, 1, u64::from(VERSION));
    message_field(out, 2, |out| {
        encode_origin(out, origin);
        if let Some(seq) = seq {
            varint_field(out, 2, u64::from(seq));
        }
        len_field(out, 3, key.name().as_bytes());
        varint_field(out, 4, type_number(key.metric_type()));
        for (k, v) in key.tags() {
            message_field(out, 5, |out| {
                bytes_field(out, 1, k.as_bytes());
                bytes_field(out, 2, v.as_bytes());
            });
        }
        match value {
            Value::Counter(sum) | Value::Trace(sum) => double_field(out, 6, *sum),
            Value::Gauge(g) => message_field(out, 7, |out| {
                double_nonzero(out, 1, g.value);
                uint_field(out, 2, u64::from(g.absolute));
                uint_field(out, 3, gauge_unix_ns);
            }),
            Value::Timer(s) | Value::Histogram(s) | Value::Distribution(s) => {
                message_field(out, 8, |out| encode_samples(out, s))
            }
            Value::Set(set) => message_field(out, 9, |out| match &**set {
                SetValue::Exact(exact) => {
                    for m in exact.members() {
                        len_field(out, 1, m.as_bytes());
                    }
                }
                SetValue::Estimated(hll) => len_field(out, 2, &hll.to_datasketches()),
            }),
        }
    });
}

fn encode_samples(out: &mut Vec<u8>, s: &Samples) {
    double_nonzero(out, 1, s.count);
    packed_doubles(out, 2, &s.values);
    if let Some(sk) = &s.sketched {
        len_field(out, 3, &sketch_proto::encode(&sk.sketch));
        let t = &sk.totals;
        message_field(out, 4, |out| {
            uint_field(out, 1, t.seen);
            double_nonzero(out, 2, t.sum);
            double_nonzero(out, 3, t.sum_squares);
            double_nonzero(out, 4, t.min);
            double_nonzero(out, 5, t.max);
        });
    }
}

/// Appends one `Envelope{end}`.
pub fn encode_end(out: &mut Vec<u8>, end: &IntervalEnd) {
    varint_field(out, 1, u64::from(VERSION));
    message_field(out, 3, |out| {
        encode_origin(out, &end.origin);
        uint_field(out, 2, u64::from(end.partials));
        uint_field(out, 3, u64::from(end.partitions));
        uint_field(out, 4, u64::from(end.last));
    });
}
