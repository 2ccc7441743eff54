//! Etsy statsd key sanitizing (`keyNameSanitize`, on by default).
//!
//! Runs of whitespace become `_`, `/` becomes `-`, and every character outside
//! `[a-zA-Z0-9_.\-;=]` is dropped — applied to metric names, never to tag values, which
//! downstream formats escape for themselves.

/// Bytes that survive sanitizing unchanged (a table: this check runs on every name).
static ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b';' | b'=');
        c += 1;
    }
    t
};

#[inline]
fn allowed(c: u8) -> bool {
    ALLOWED[c as usize]
}

/// The bytes that sanitizing keeps, except `;` (which starts Graphite tags).
static PLAIN: [bool; 256] = {
    let mut t = ALLOWED;
    t[b';' as usize] = false;
    t
};

/// True for a byte that sanitizing keeps and that cannot start Graphite tags (`;`): a name
/// made of these bytes is the same raw, sanitized or not, and carries no tags.
#[inline]
fn plain_name_byte(c: u8) -> bool {
    PLAIN[c as usize]
}

/// The length of the longest prefix of `bytes` made of [`plain_name_byte`]s.
///
/// Eight bytes at a time, without a branch inside a chunk: the table lookups of a chunk do
/// not wait on each other's comparisons, which made the byte-by-byte scan of a name the
/// largest single share of parsing a plain line.
#[inline]
pub(crate) fn plain_prefix(bytes: &[u8]) -> usize {
    let mut plain = 0;
    for chunk in bytes.chunks_exact(8) {
        if !chunk.iter().fold(true, |all, &b| all & plain_name_byte(b)) {
            break;
        }
        plain += 8;
    }
    plain
        + bytes[plain..]
            .iter()
            .position(|&b| !plain_name_byte(b))
            .unwrap_or(bytes.len() - plain)
}

/// Returns `name` sanitized: borrowed when nothing changes (the common case), otherwise
/// written into `scratch`, which is reused across calls.
#[inline]
pub fn sanitize<'a>(name: &'a str, scratch: &'a mut String) -> &'a str {
    if name.bytes().all(allowed) {
        return name;
    }
    scratch.clear();
    let mut in_space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            if !in_space {
                scratch.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        if c == '/' {
            scratch.push('-');
        } else if c.is_ascii() && allowed(c as u8) {
            scratch.push(c);
        }
    }
    scratch
}

#[cfg(test)]
mod tests {
    use super::{plain_prefix, sanitize};

    #[test]
    fn plain_prefixes_end_at_the_first_byte_sanitizing_changes_or_a_tag_start() {
        let name = b"abcdefgh.ABCDEFGH-0123456_=xyz";
        for len in 0..=name.len() {
            assert_eq!(plain_prefix(&name[..len]), len);
            for stop in [b':', b';', b' ', b'/', b'\n', 0xc3] {
                let mut line = name[..len].to_vec();
                line.push(stop);
                line.extend_from_slice(b"1|c");
                assert_eq!(plain_prefix(&line), len, "{len} {stop}");
            }
        }
    }

    fn s(name: &str) -> String {
        let mut scratch = String::new();
        sanitize(name, &mut scratch).to_string()
    }

    #[test]
    fn etsy_rules() {
        assert_eq!(s("foo.bar"), "foo.bar");
        assert_eq!(s("foo  bar\tbaz"), "foo_bar_baz");
        assert_eq!(s("a/b/c"), "a-b-c");
        assert_eq!(s("a#b$c!d"), "abcd");
        assert_eq!(s("tag;k=v"), "tag;k=v");
        assert_eq!(s("héllo wörld"), "hllo_wrld");
        assert_eq!(s("@@@"), "");
    }
}
