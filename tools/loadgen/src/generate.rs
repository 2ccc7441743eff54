//! Builds datagrams of generated metrics: deterministic per thread (xorshift), cheap enough
//! that generation never limits the offered rate.

use std::fmt::Write;

use crate::{Protocol, SendArgs};

/// Metric kinds the generator can produce, with their wire spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Timer,
    Set,
    Histogram,
    Trace,
}

fn parse_kind(protocol: Protocol, name: &str) -> Option<Kind> {
    match (protocol, name) {
        (Protocol::Line, "c") | (Protocol::Json, "counter") => Some(Kind::Counter),
        (Protocol::Line, "g") | (Protocol::Json, "gauge") => Some(Kind::Gauge),
        (Protocol::Line, "ms") | (Protocol::Json, "timer") => Some(Kind::Timer),
        (Protocol::Line, "s") | (Protocol::Json, "set") => Some(Kind::Set),
        (Protocol::Line, "h") | (Protocol::Json, "histogram") => Some(Kind::Histogram),
        (Protocol::Json, "trace") => Some(Kind::Trace),
        _ => None,
    }
}

/// Parses `--mix` (`c=60,ms=40`) into cumulative weights.
fn parse_mix(protocol: Protocol, mix: Option<&str>) -> Result<Vec<(Kind, u64)>, String> {
    let default = match protocol {
        Protocol::Line => "c=100",
        Protocol::Json => "counter=100",
    };
    let mut out = Vec::new();
    let mut total = 0;
    for item in mix.unwrap_or(default).split(',') {
        let (name, weight) = item
            .split_once('=')
            .ok_or_else(|| format!("--mix item {item:?} is not TYPE=WEIGHT"))?;
        let kind = parse_kind(protocol, name)
            .ok_or_else(|| format!("--mix: unknown type {name:?} for the {protocol:?} protocol"))?;
        let weight: u64 = weight
            .parse()
            .map_err(|_| format!("--mix: weight {weight:?} is not a whole number"))?;
        total += weight;
        out.push((kind, total));
    }
    if total == 0 {
        return Err("--mix: the weights add up to 0".into());
    }
    Ok(out)
}

/// Generates one sender thread's datagrams.
pub struct Generator {
    protocol: Protocol,
    keys: u64,
    tags: usize,
    per_datagram: usize,
    max_datagram: usize,
    mix: Vec<(Kind, u64)>,
    rng: u64,
    line: String,
}

impl Generator {
    pub fn new(args: &SendArgs, thread: usize) -> Result<Generator, String> {
        if args.per_datagram == 0 || args.keys == 0 {
            return Err("--per-datagram and --keys must be positive".into());
        }
        Ok(Generator {
            protocol: args.protocol,
            keys: args.keys,
            tags: args.tags,
            per_datagram: args.per_datagram,
            max_datagram: args.max_datagram,
            mix: parse_mix(args.protocol, args.mix.as_deref())?,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (thread as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F),
            line: String::with_capacity(256),
        })
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `out` with one datagram of at most `limit` metrics; returns how many.
    pub fn datagram(&mut self, out: &mut Vec<u8>, limit: u64) -> usize {
        out.clear();
        let mut n = 0;
        while n < self.per_datagram && (n as u64) < limit {
            self.metric();
            let extra = usize::from(!out.is_empty());
            if !out.is_empty() && out.len() + extra + self.line.len() > self.max_datagram {
                break;
            }
            if extra == 1 {
                out.push(b'\n');
            }
            out.extend_from_slice(self.line.as_bytes());
            n += 1;
        }
        n
    }

    /// Writes one metric into `self.line`.
    fn metric(&mut self) {
        let key = self.next() % self.keys;
        let pick = self.next() % self.mix.last().map_or(1, |m| m.1);
        let kind = self
            .mix
            .iter()
            .find(|(_, cum)| pick < *cum)
            .map_or(Kind::Counter, |m| m.0);
        let value = self.next() % 1000;
        let line = &mut self.line;
        line.clear();
        match self.protocol {
            Protocol::Line => {
                let (v, t) = match kind {
                    Kind::Counter | Kind::Trace => (1, "c"),
                    Kind::Gauge => (value, "g"),
                    Kind::Timer => (value, "ms"),
                    Kind::Set => (value, "s"),
                    Kind::Histogram => (value, "h"),
                };
                let _ = write!(line, "loadgen.k{key}:{v}|{t}");
                for t in 0..self.tags {
                    line.push_str(if t == 0 { "|#" } else { "," });
                    let _ = write!(line, "t{t}:v{}", key % 10);
                }
            }
            Protocol::Json => {
                let (t, field) = match kind {
                    Kind::Counter => ("counter", Some("count")),
                    Kind::Trace => ("trace", None),
                    Kind::Gauge => ("gauge", Some("value")),
                    Kind::Timer => ("timer", Some("value")),
                    Kind::Set => ("set", Some("value")),
                    Kind::Histogram => ("histogram", Some("value")),
                };
                let _ = write!(
                    line,
                    r#"{{"metric_name":"loadgen.k{key}","metric_type":"{t}""#
                );
                if let Some(f) = field {
                    let v = if kind == Kind::Counter { 1 } else { value };
                    let _ = write!(line, r#","{f}":{v}"#);
                }
                for t in 0..self.tags {
                    let _ = write!(line, r#","t{t}":"v{}""#, key % 10);
                }
                line.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> SendArgs {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: SendArgs,
        }
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        Wrap::parse_from(argv).args
    }

    #[test]
    fn packs_metrics_up_to_the_limits() {
        let mut g = Generator::new(&args(&["--per-datagram", "5", "--keys", "3"]), 0).unwrap();
        let mut out = Vec::new();
        assert_eq!(g.datagram(&mut out, 100), 5);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(
            text.lines()
                .all(|l| l.starts_with("loadgen.k") && l.ends_with(":1|c")),
            "{text}"
        );
        assert_eq!(g.datagram(&mut out, 2), 2);
        let mut g =
            Generator::new(&args(&["--per-datagram", "50", "--max-datagram", "40"]), 0).unwrap();
        let n = g.datagram(&mut out, 100);
        assert!(
            out.len() <= 40 && n >= 1,
            "{n} metrics in {} bytes",
            out.len()
        );
    }

    #[test]
    fn json_and_tags() {
        let mut g = Generator::new(
            &args(&[
                "--protocol",
                "json",
                "--mix",
                "trace=1",
                "--tags",
                "2",
                "--per-datagram",
                "1",
            ]),
            0,
        )
        .unwrap();
        let mut out = Vec::new();
        g.datagram(&mut out, 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(r#"{"metric_name":"loadgen.k"#), "{text}");
        assert!(text.contains(r#""metric_type":"trace","t0":"v"#), "{text}");
        assert!(Generator::new(&args(&["--mix", "c=0"]), 0).is_err());
        assert!(Generator::new(&args(&["--mix", "trace=1"]), 0).is_err());
    }
}
