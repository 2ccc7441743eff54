//! JSON writing shared by the JSON-emitting sinks and the admin plane.

use std::fmt::Write;

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut String, s: &str) {
    write_str_prefixed(out, "", s);
}

/// Appends `prefix` followed by `s` as one JSON string literal (`prefix` needs no escaping).
pub fn write_str_prefixed(out: &mut String, prefix: &str, s: &str) {
    out.push('"');
    out.push_str(prefix);
    // Most names and tags need no escaping. A branch-free pass (no early exit) so the
    // compiler vectorizes it.
    let special = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !special {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `"name":` for a name that needs no escaping (statistic names are ours).
pub fn write_plain_key(out: &mut String, name: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
}

/// Appends a number: integers without `.0`, other values as the shortest text that
/// round-trips (exponent notation only below 1e-5 or from 1e16 on). Non-finite values (an
/// overflowed sum) become `null`.
pub fn write_num(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str("null");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        // Exact: |v| < 2^53, so the conversion to i64 loses nothing.
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_strings() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn numbers() {
        let mut s = String::new();
        for v in [
            3.0,
            -0.0,
            0.1,
            -2.5,
            81.64965809277261,
            0.00010416666666666667,
            1e300,
            f64::INFINITY,
        ] {
            write_num(&mut s, v);
            s.push(' ');
        }
        assert_eq!(
            s,
            "3 0 0.1 -2.5 81.64965809277261 0.00010416666666666667 1e300 null "
        );
        // Every rendering parses back to the same value.
        for v in [0.1, 1.0 / 3.0, 123456.789, 5e-324, 1e16, 2.0f64.powi(60)] {
            let mut t = String::new();
            write_num(&mut t, v);
            assert_eq!(t.parse::<f64>().unwrap(), v, "{t}");
        }
    }
}
