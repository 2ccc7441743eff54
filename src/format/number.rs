//! Numbers as JavaScript prints them (`Number.prototype.toString`), which is what Etsy statsd
//! sends to Graphite and what its admin interface shows. Used by the Graphite sink and the
//! admin plane.

use std::fmt::Write as _;

/// Appends [`js_number`] of `v` to `out`, skipping the general conversion in the common
/// cases: integers below 2^53 print as integers, and wherever ryu's shortest form needs no
/// exponent (1e-5 ≤ |v| < 1e16) it is already JavaScript's.
pub fn push_js_number(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        // -0 prints as 0 in JavaScript; `as i64` maps it to 0.
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        return;
    }
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        let text = buf.format_finite(v);
        // Integers from 2^53 on print as ryu's `….0`; JavaScript pads shortest digits.
        if !text.contains('e') && !text.ends_with(".0") {
            out.extend_from_slice(text.as_bytes());
            return;
        }
    }
    out.extend_from_slice(js_number(v).as_bytes());
}

/// A number as JavaScript's `Number.prototype.toString` prints it (what Etsy sends):
/// integers without a fraction, the shortest digits that round-trip, and exponent notation
/// below 1e-6 and from 1e21 on (`1e-7`, `1.5e+21`).
pub fn js_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits from ryu, normalized to digits × 10^(exp − len).
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v.abs());
    let (mantissa, exp10) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().expect("ryu exponent")),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    // Position of the decimal point relative to the first significant digit.
    let n = int.len() as i32 - lead as i32 + exp10;
    let k = digits.len() as i32;
    let mut out = String::with_capacity(24);
    if v < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e >= 0 { "+" } else { "-" }, e.abs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_javascript() {
        for (v, js) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (100.0, "100"),
            (0.1, "0.1"),
            (0.3, "0.3"),
            (1.5, "1.5"),
            (81.64965809277261, "81.64965809277261"),
            (2.8722813232690143, "2.8722813232690143"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (123456789012.0, "123456789012"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e21, "1.5e+21"),
            (9007199254740993.0, "9007199254740992"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-6 * 1.5, "0.0000015"),
            (-2.5e-9, "-2.5e-9"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(js_number(v), js, "{v:e}");
            let mut fast = Vec::new();
            push_js_number(&mut fast, v);
            assert_eq!(String::from_utf8(fast).unwrap(), js, "{v:e} (fast path)");
        }
    }
}
