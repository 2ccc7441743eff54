//! The nested JSON record of one series, shared by the console sink and the Kafka
//! `json-nested` format.

use std::fmt::Write;

use crate::format::json::{write_num, write_plain_key, write_str};
use crate::snapshot::Snapshot;

/// Appends series `index` of `snapshot` as the nested JSON object used by the console sink
/// and the Kafka `json-nested` format (no trailing newline):
/// `{"name":…,"type":…,"tags":{…},"timestamp":<unix s>,"values":{…}}`.
pub fn render_nested(out: &mut String, snapshot: &Snapshot, index: usize) {
    let (key, value) = &snapshot.series[index];
    out.push_str("{\"name\":");
    write_str(out, key.name());
    out.push_str(",\"type\":\"");
    out.push_str(key.metric_type().as_str());
    out.push_str("\",\"tags\":{");
    for (i, (k, v)) in key.tags().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    let _ = write!(
        out,
        "}},\"timestamp\":{},\"values\":{{",
        snapshot.timestamp_secs()
    );
    let mut first = true;
    snapshot.fields(value).for_each(|field, v| {
        if !first {
            out.push(',');
        }
        first = false;
        write_plain_key(out, field);
        write_num(out, v);
    });
    out.push_str("}}");
}
