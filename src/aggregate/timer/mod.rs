//! Etsy statsd timer statistics (`process_metrics.js`), reproduced exactly.
//!
//! For sorted samples `x[0..n)` and each percentile threshold `p`:
//! `k = round(|p|/100 · n)` (half up) when `n > 1`, else the single sample serves every
//! statistic; `k == 0` emits nothing for `p`. `p > 0` reports the lowest `k` samples
//! (`upper_p`), `p < 0` the highest `k` (`lower_topP`). Sums are running sums in ascending
//! order, and the top-`k` sum is a difference of running sums, as in Etsy, so the floating
//! point results match Etsy's bit for bit.

use std::fmt;

use crate::aggregate::{Sketched, Totals};

/// One configured percentile threshold with its precomputed statistic names.
#[derive(Clone, Debug, PartialEq)]
pub struct Percentile {
    value: f64,
    /// `count_90`, `mean_90`, `upper_90` (or `lower_top10`), `sum_90`, `sum_squares_90`.
    names: [String; 5],
}

/// A percentile outside `[-100, 0) ∪ (0, 100]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BadPercentile(pub f64);

impl fmt::Display for BadPercentile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "percentile {} is not a number in [-100, 0) or (0, 100]",
            self.0
        )
    }
}

impl Percentile {
    pub fn new(value: f64) -> Result<Percentile, BadPercentile> {
        if !value.is_finite() || value == 0.0 || value.abs() > 100.0 {
            return Err(BadPercentile(value));
        }
        // Etsy: ('' + pct).replace('.', '_').replace('-', 'top')
        let clean = value
            .to_string()
            .replacen('.', "_", 1)
            .replacen('-', "top", 1);
        let bound = if value > 0.0 { "upper" } else { "lower" };
        Ok(Percentile {
            value,
            names: [
                format!("count_{clean}"),
                format!("mean_{clean}"),
                format!("{bound}_{clean}"),
                format!("sum_{clean}"),
                format!("sum_squares_{clean}"),
            ],
        })
    }

    pub fn value(&self) -> f64 {
        self.value
    }

    /// The statistic names this threshold produces.
    pub fn names(&self) -> [&str; 5] {
        self.names.each_ref().map(String::as_str)
    }
}

/// The Etsy `mean` of sorted samples (0 when there are none).
pub fn mean(sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    running_sums(sorted, sorted.len()).0 / sorted.len() as f64
}

/// Calls `emit(name, value)` for every Etsy statistic of a timer, in Etsy's order.
///
/// `sorted` must be sorted ascending; `count` is Σ 1/sample_rate; `interval_secs` is the
/// configured flush interval. With no samples only `count` and `count_ps` are emitted (what
/// Etsy reports for an idle timer).
pub fn for_each_stat(
    sorted: &[f64],
    count: f64,
    percentiles: &[Percentile],
    interval_secs: f64,
    mut emit: impl FnMut(&str, f64),
) {
    let n = sorted.len();
    if n == 0 {
        emit("count", count);
        emit("count_ps", count / interval_secs);
        return;
    }
    let min = sorted[0];
    let max = sorted[n - 1];
    for p in percentiles {
        let (k, bound, sum, sum_squares) = if n > 1 {
            let k = (p.value.abs() / 100.0 * n as f64 + 0.5).floor() as usize;
            if k == 0 {
                continue;
            }
            if p.value > 0.0 {
                let (s, sq) = running_sums(sorted, k);
                (k, sorted[k - 1], s, sq)
            } else {
                let (all, all_sq) = running_sums(sorted, n);
                let (low, low_sq) = running_sums(sorted, n - k);
                (k, sorted[n - k], all - low, all_sq - low_sq)
            }
        } else {
            (1, max, min, min * min)
        };
        emit(&p.names[0], k as f64);
        emit(&p.names[1], sum / k as f64);
        emit(&p.names[2], bound);
        emit(&p.names[3], sum);
        emit(&p.names[4], sum_squares);
    }
    let (sum, sum_squares) = running_sums(sorted, n);
    let mean = sum / n as f64;
    let sum_of_diffs: f64 = sorted.iter().map(|x| (x - mean) * (x - mean)).sum();
    let mid = n / 2;
    let median = if n % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    };
    emit("std", (sum_of_diffs / n as f64).sqrt());
    emit("upper", max);
    emit("lower", min);
    emit("count", count);
    emit("count_ps", count / interval_secs);
    emit("sum", sum);
    emit("sum_squares", sum_squares);
    emit("mean", mean);
    emit("median", median);
}

/// Like [`for_each_stat`] (same names, same order) for a timer that saw more samples than
/// it keeps raw, from its sketch and exact totals.
///
/// Exact: `count`, `count_ps`, `count_<p>`, `sum`, `sum_squares`, `mean`, `upper`, `lower`
/// and `std` (from the exact sums). Within the sketch's relative accuracy α of the exact
/// value: `median`, `upper_<p>` (`lower_top<p>`), `mean_<p>`, `sum_<p>` (each sample of the
/// tail stands as its bin's value) and, within 2α + α², `sum_squares_<p>`.
pub fn for_each_stat_sketched(
    sketched: &Sketched,
    count: f64,
    percentiles: &[Percentile],
    interval_secs: f64,
    mut emit: impl FnMut(&str, f64),
) {
    let t = &sketched.totals;
    let sketch = &sketched.sketch;
    let n = t.seen;
    if n == 0 {
        return for_each_stat(&[], count, percentiles, interval_secs, emit);
    }
    // Reported values never leave the exact range.
    let at = |rank: u64| sketch.value_at(rank).clamp(t.min, t.max);
    for p in percentiles {
        let k = (p.value.abs() / 100.0 * n as f64 + 0.5).floor() as u64;
        if k == 0 {
            continue;
        }
        let (bound, (sum, sum_squares)) = if p.value > 0.0 {
            (at(k - 1), tail_sums(sketch.values(), k, t))
        } else {
            let descending: Vec<(f64, u64)> = sketch.values().collect();
            (at(n - k), tail_sums(descending.into_iter().rev(), k, t))
        };
        emit(&p.names[0], k as f64);
        emit(&p.names[1], sum / k as f64);
        emit(&p.names[2], bound);
        emit(&p.names[3], sum);
        emit(&p.names[4], sum_squares);
    }
    let mean = t.sum / n as f64;
    let median = if n % 2 == 1 {
        at(n / 2)
    } else {
        (at(n / 2 - 1) + at(n / 2)) / 2.0
    };
    emit(
        "std",
        (t.sum_squares / n as f64 - mean * mean).max(0.0).sqrt(),
    );
    emit("upper", t.max);
    emit("lower", t.min);
    emit("count", count);
    emit("count_ps", count / interval_secs);
    emit("sum", t.sum);
    emit("sum_squares", t.sum_squares);
    emit("mean", mean);
    emit("median", median);
}

/// Sum and sum of squares of the first `k` samples of `bins` ((value, count), in the order
/// the tail is taken), each sample standing as its bin's value within the exact range.
fn tail_sums(bins: impl Iterator<Item = (f64, u64)>, k: u64, t: &Totals) -> (f64, f64) {
    let (mut left, mut sum, mut sum_squares) = (k, 0.0, 0.0);
    for (v, c) in bins {
        let v = v.clamp(t.min, t.max);
        let take = c.min(left);
        sum += v * take as f64;
        sum_squares += v * v * take as f64;
        left -= take;
        if left == 0 {
            break;
        }
    }
    (sum, sum_squares)
}

/// Sum and sum of squares of the first `k` samples, accumulated in ascending order.
fn running_sums(sorted: &[f64], k: usize) -> (f64, f64) {
    sorted[..k]
        .iter()
        .fold((0.0, 0.0), |(s, sq), &x| (s + x, x * x + sq))
}

#[cfg(test)]
mod tests;
