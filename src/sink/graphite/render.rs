//! Etsy statsd's Graphite naming and number printing (`backends/graphite.js`), reproduced.
//!
//! | type | non-legacy (`legacy_namespace = false`) | legacy (Etsy's default) |
//! |---|---|---|
//! | counter | `<p>.counters.<k>.rate`, `<p>.counters.<k>.count` | `stats.<k>`, `stats_counts.<k>` |
//! | trace (a count of events, no rate) | `<p>.counters.<k>.count` | `stats_counts.<k>` |
//! | timer, histogram, distribution | `<p>.timers.<k>.<stat>`, `….histogram.bin_<ub>` | `stats.timers.<k>.<stat>` |
//! | gauge | `<p>.gauges.<k>` | `stats.gauges.<k>` |
//! | set | `<p>.sets.<k>.count` | `stats.sets.<k>.count` |
//! | per flush | `<p>.statsd.numStats` | `statsd.numStats` |
//!
//! `<p>` is `global_prefix` (default `stats`); each type prefix is configurable and an empty
//! prefix is left out, as in Etsy. Legacy mode ignores the prefixes, as Etsy does.
//! `global_suffix` is appended as `.<suffix>` to every path. Tags follow the path as
//! Graphite 1.1 tags (`path;k=v;k2=v2`, sorted by key), or are left out (`tags = false`).
//!
//! Graphite's plaintext protocol splits on whitespace and its tag syntax reserves `;`, `!`,
//! `^` and `=`: such bytes in a name or tag are replaced by `_` so one series can never
//! corrupt another line. A tag with an empty value is left out (Graphite requires a value).

use super::GraphiteConfig;
use crate::aggregate::timer::Percentile;
use crate::format::number::{js_number, push_js_number};
use crate::metric::SeriesKey;
use crate::sink::batch::Batch;
use crate::snapshot::{Fields, Snapshot};

/// Renders snapshots into plaintext lines; holds the precomputed namespaces.
#[derive(Debug, Clone)]
pub struct Renderer {
    counters: String,
    counts: Option<String>,
    timers: String,
    gauges: String,
    sets: String,
    num_stats: String,
    suffix: String,
    legacy: bool,
    tags: bool,
    counter_rates: bool,
    counter_counts: bool,
    absolute_counters: bool,
    timer_stats: Vec<String>,
    /// Etsy `histogram`: (metric-name substring, bins, each bin's path component).
    histogram: Vec<(String, Vec<Bin>, Vec<String>)>,
}

/// One histogram bin's upper bound (exclusive), or `inf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bin {
    Below(f64),
    Inf,
}

impl Bin {
    /// Etsy: `('bin_' + bound).replace('.', '_')` (only the first dot).
    fn name(self) -> String {
        match self {
            Bin::Below(v) => format!("bin_{}", js_number(v)).replacen('.', "_", 1),
            Bin::Inf => "bin_inf".into(),
        }
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(".")
}

impl Renderer {
    pub fn new(c: &GraphiteConfig) -> Renderer {
        let p = c.global_prefix.as_str();
        let (counters, counts, timers, gauges, sets, num_stats) = if c.legacy_namespace {
            (
                "stats".to_string(),
                Some("stats_counts".to_string()),
                "stats.timers".to_string(),
                "stats.gauges".to_string(),
                "stats.sets".to_string(),
                "statsd.numStats".to_string(),
            )
        } else {
            (
                join(&[p, &c.prefix_counter]),
                None,
                join(&[p, &c.prefix_timer]),
                join(&[p, &c.prefix_gauge]),
                join(&[p, &c.prefix_set]),
                join(&[p, "statsd", "numStats"]),
            )
        };
        Renderer {
            counters,
            counts,
            timers,
            gauges,
            sets,
            num_stats,
            suffix: if c.global_suffix.is_empty() {
                String::new()
            } else {
                format!(".{}", c.global_suffix)
            },
            legacy: c.legacy_namespace,
            tags: c.tags,
            counter_rates: c.counter_rates,
            counter_counts: c.counter_counts,
            absolute_counters: c.absolute_counters,
            timer_stats: c.timer_stats.clone(),
            histogram: c
                .histogram
                .iter()
                .map(|h| {
                    let bins = h.bins();
                    let names = bins.iter().map(|b| b.name()).collect();
                    (h.metric.clone(), bins, names)
                })
                .collect(),
        }
    }

    /// Appends every line of `snapshot` to `out`; returns the number of lines.
    pub fn render(&self, snapshot: &Snapshot, out: &mut impl Lines) -> u64 {
        let ts = snapshot.timestamp_secs();
        let allowed = self.allowed_timer_stats(&snapshot.percentiles);
        let mut line = Line {
            out,
            ts,
            lines: 0,
            suffix: &self.suffix,
        };
        let mut num_stats = 0u64;
        let mut tags = String::new();
        let mut key = String::new();
        for (series, value) in &snapshot.series {
            tags.clear();
            if self.tags {
                write_tags(&mut tags, series);
            }
            key.clear();
            push_escaped(&mut key, series.name(), false);
            num_stats += 1;
            match snapshot.fields(value) {
                Fields::Counter { count, rate } => {
                    let rate = if self.absolute_counters { count } else { rate };
                    if self.counter_rates {
                        if self.legacy {
                            line.emit(&[&self.counters, &key], &tags, rate);
                        } else {
                            line.emit(&[&self.counters, &key, "rate"], &tags, rate);
                        }
                    }
                    if self.counter_counts {
                        self.emit_count(&mut line, &key, &tags, count);
                    }
                }
                // A trace is a count of events: its count is all it reports.
                Fields::Trace { count } => self.emit_count(&mut line, &key, &tags, count),
                Fields::Gauge { value } => line.emit(&[&self.gauges, &key], &tags, value),
                Fields::Set { set } => {
                    line.emit(&[&self.sets, &key, "count"], &tags, set.cardinality())
                }
                Fields::Timer(timer) => {
                    timer.for_each_stat(|stat, v| {
                        if allowed.as_ref().is_none_or(|a| a.iter().any(|s| s == stat)) {
                            line.emit(&[&self.timers, &key, stat], &tags, v);
                        }
                    });
                    let histogram_on = allowed
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|s| s == "histogram"));
                    if histogram_on && let Some((bins, names)) = self.bins_for(series.name()) {
                        let counts = bin_counts(timer.samples.weighted(), bins);
                        for ((_, freq), name) in counts.into_iter().zip(names) {
                            let freq = freq as f64;
                            line.emit(&[&self.timers, &key, "histogram", name], &tags, freq);
                        }
                    }
                }
            }
        }
        line.emit(&[&self.num_stats], "", num_stats as f64);
        line.lines
    }

    /// A counter's (or trace's) count: `stats_counts.<k>` (legacy) or `<counters>.<k>.count`.
    fn emit_count(&self, line: &mut Line<'_, impl Lines>, key: &str, tags: &str, count: f64) {
        match &self.counts {
            Some(counts) => line.emit(&[counts, key], tags, count),
            None => line.emit(&[&self.counters, key, "count"], tags, count),
        }
    }

    /// Etsy `histogram`: the first entry whose `metric` is a substring of the name.
    fn bins_for(&self, name: &str) -> Option<(&[Bin], &[String])> {
        self.histogram
            .iter()
            .find(|(m, _, _)| name.contains(m.as_str()))
            .map(|(_, bins, names)| (bins.as_slice(), names.as_slice()))
    }

    /// Etsy `calculatedTimerMetrics`: `None` sends everything; otherwise the listed
    /// statistics, where `<stat>_percent` selects that statistic for every percentile
    /// (`upper_percent` → `upper_90`, `lower_top10`…).
    fn allowed_timer_stats(&self, percentiles: &[Percentile]) -> Option<Vec<String>> {
        if self.timer_stats.is_empty() {
            return None;
        }
        let mut allowed = self.timer_stats.clone();
        for p in percentiles {
            let bases = [
                "count",
                "mean",
                if p.value() > 0.0 { "upper" } else { "lower" },
                "sum",
                "sum_squares",
            ];
            for (base, name) in bases.iter().zip(p.names()) {
                if self
                    .timer_stats
                    .iter()
                    .any(|s| *s == format!("{base}_percent"))
                {
                    allowed.push(name.to_string());
                }
            }
        }
        Some(allowed)
    }
}

/// Etsy's binning of sorted samples (or sketch bins: (value, count), ascending): each value
/// counts in the first bin whose bound it is below; values at or above the last finite
/// bound (with no `inf` bin) are not counted.
fn bin_counts(sorted: impl Iterator<Item = (f64, u64)>, bins: &[Bin]) -> Vec<(Bin, u64)> {
    let mut counts: Vec<(Bin, u64)> = bins.iter().map(|&b| (b, 0)).collect();
    let mut bin = 0;
    for (v, c) in sorted {
        while bin < bins.len() && matches!(bins[bin], Bin::Below(b) if v >= b) {
            bin += 1;
        }
        match counts.get_mut(bin) {
            Some((_, n)) => *n += c,
            None => break,
        }
    }
    counts
}

/// Where rendered lines go: plain bytes, or a delivery batch with one message per line.
pub trait Lines {
    fn line(&mut self, write: impl FnOnce(&mut Vec<u8>));
}

impl Lines for Vec<u8> {
    fn line(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(self);
    }
}

impl Lines for Batch {
    fn line(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.push_with(None, None, write);
    }
}

struct Line<'a, L: Lines> {
    out: &'a mut L,
    ts: u64,
    lines: u64,
    suffix: &'a str,
}

impl<L: Lines> Line<'_, L> {
    fn emit(&mut self, parts: &[&str], tags: &str, value: f64) {
        let (ts, suffix) = (self.ts, self.suffix);
        self.out.line(|out| {
            let mut first = true;
            for part in parts.iter().filter(|p| !p.is_empty()) {
                if !first {
                    out.push(b'.');
                }
                first = false;
                out.extend_from_slice(part.as_bytes());
            }
            out.extend_from_slice(suffix.as_bytes());
            out.extend_from_slice(tags.as_bytes());
            out.push(b' ');
            push_js_number(out, value);
            out.push(b' ');
            out.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
            out.push(b'\n');
        });
        self.lines += 1;
    }
}

/// `;k=v` for each tag (keys sorted, as series keys keep them).
fn write_tags(out: &mut String, series: &SeriesKey) {
    for (k, v) in series.tags() {
        if k.is_empty() || v.is_empty() {
            continue;
        }
        out.push(';');
        push_escaped(out, k, true);
        out.push('=');
        let start = out.len();
        push_escaped(out, v, false);
        // Graphite: a value must not start with `~`.
        if out[start..].starts_with('~') {
            out.replace_range(start..start + 1, "_");
        }
    }
}

/// Copies `s`, replacing whitespace and Graphite's reserved `;` (and, in tag keys, `!^=`)
/// with `_`.
fn push_escaped(out: &mut String, s: &str, tag_key: bool) {
    for c in s.chars() {
        let reserved = c.is_whitespace() || c == ';' || (tag_key && matches!(c, '!' | '^' | '='));
        out.push(if reserved { '_' } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_a_count_without_a_rate() {
        use crate::aggregate::Value;
        use crate::metric::MetricType;
        let snapshot = Snapshot {
            timestamp_ms: 1_795_323_600_000,
            interval: std::time::Duration::from_secs(10),
            percentiles: Vec::new().into(),
            series: vec![
                (
                    SeriesKey::new("app.trace", MetricType::Trace, [("stage", "init")]),
                    Value::Trace(3.0),
                ),
                (
                    SeriesKey::new("app.hits", MetricType::Counter, [("stage", "init")]),
                    Value::Counter(3.0),
                ),
            ],
        };
        let render = |config: &GraphiteConfig| {
            let mut out = Vec::new();
            Renderer::new(config).render(&snapshot, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            render(&GraphiteConfig::default()),
            "stats_counts.app.trace;stage=init 3 1795323600\n\
             stats.app.hits;stage=init 0.3 1795323600\n\
             stats_counts.app.hits;stage=init 3 1795323600\n\
             statsd.numStats 2 1795323600\n"
        );
        let modern = GraphiteConfig {
            legacy_namespace: false,
            tags: false,
            ..GraphiteConfig::default()
        };
        assert_eq!(
            render(&modern),
            "stats.counters.app.trace.count 3 1795323600\n\
             stats.counters.app.hits.rate 0.3 1795323600\n\
             stats.counters.app.hits.count 3 1795323600\n\
             stats.statsd.numStats 2 1795323600\n"
        );
    }

    #[test]
    fn bins_follow_etsy() {
        let sorted = [1.0, 5.0, 10.0, 50.0, 500.0, 5000.0];
        let bins = [Bin::Below(10.0), Bin::Below(100.0), Bin::Inf];
        let weighted = || sorted.iter().map(|&v| (v, 1));
        assert_eq!(
            bin_counts(weighted(), &bins),
            vec![(bins[0], 2), (bins[1], 2), (bins[2], 2)]
        );
        // Without `inf`, values at or above the last bound are not counted.
        let bins = [Bin::Below(0.5), Bin::Below(10.0)];
        assert_eq!(
            bin_counts(weighted(), &bins),
            vec![(bins[0], 0), (bins[1], 2)]
        );
        assert_eq!(Bin::Below(0.5).name(), "bin_0_5");
        assert_eq!(Bin::Below(100.0).name(), "bin_100");
        assert_eq!(Bin::Inf.name(), "bin_inf");
    }
}
