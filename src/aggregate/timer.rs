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
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stats(values: &[f64], rate: f64, pcts: &[f64], interval: f64) -> BTreeMap<String, f64> {
        let pcts: Vec<Percentile> = pcts.iter().map(|&p| Percentile::new(p).unwrap()).collect();
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let count = values.len() as f64 / rate;
        let mut out = BTreeMap::new();
        for_each_stat(&sorted, count, &pcts, interval, |k, v| {
            assert!(out.insert(k.to_string(), v).is_none(), "duplicate {k}");
        });
        out
    }

    fn check(got: &BTreeMap<String, f64>, expected: &[(&str, f64)]) {
        for (k, v) in expected {
            assert_eq!(got.get(*k), Some(v), "{k} in {got:?}");
        }
    }

    #[test]
    fn golden_single_value() {
        let got = stats(&[100.0], 1.0, &[90.0], 10.0);
        check(
            &got,
            &[
                ("count_90", 1.0),
                ("mean_90", 100.0),
                ("upper_90", 100.0),
                ("sum_90", 100.0),
                ("sum_squares_90", 10000.0),
                ("std", 0.0),
                ("upper", 100.0),
                ("lower", 100.0),
                ("count", 1.0),
                ("count_ps", 0.1),
                ("sum", 100.0),
                ("sum_squares", 10000.0),
                ("mean", 100.0),
                ("median", 100.0),
            ],
        );
        assert_eq!(got.len(), 14);
    }

    #[test]
    fn golden_three_values_two_percentiles() {
        let got = stats(&[300.0, 100.0, 200.0], 1.0, &[90.0, 80.0], 10.0);
        check(
            &got,
            &[
                ("count_90", 3.0),
                ("mean_90", 200.0),
                ("upper_90", 300.0),
                ("sum_90", 600.0),
                ("sum_squares_90", 140000.0),
                ("count_80", 2.0),
                ("mean_80", 150.0),
                ("upper_80", 200.0),
                ("sum_80", 300.0),
                ("sum_squares_80", 50000.0),
                ("std", 81.64965809277261),
                ("median", 200.0),
                ("count_ps", 0.3),
            ],
        );
    }

    #[test]
    fn golden_one_to_ten_with_negative_and_fractional() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let got = stats(&values, 1.0, &[90.0, 50.0, -10.0, 99.9], 10.0);
        check(
            &got,
            &[
                ("count_90", 9.0),
                ("mean_90", 5.0),
                ("upper_90", 9.0),
                ("sum_90", 45.0),
                ("count_50", 5.0),
                ("upper_50", 5.0),
                ("mean_50", 3.0),
                ("count_top10", 1.0),
                ("lower_top10", 10.0),
                ("mean_top10", 10.0),
                ("count_99_9", 10.0),
                ("upper_99_9", 10.0),
                ("std", 2.8722813232690143),
                ("median", 5.5),
            ],
        );
    }

    #[test]
    fn golden_sample_rate_and_one_second_interval() {
        let got = stats(&[100.0, 200.0], 0.1, &[90.0], 1.0);
        check(
            &got,
            &[
                ("count_90", 2.0),
                ("mean_90", 150.0),
                ("upper_90", 200.0),
                ("std", 50.0),
                ("count", 20.0),
                ("count_ps", 20.0),
                ("mean", 150.0),
            ],
        );
    }

    #[test]
    fn golden_rounding_and_empty_threshold() {
        let got = stats(&[1.0, 2.0, 3.0, 4.0], 1.0, &[12.5, 50.0, 10.0], 10.0);
        check(
            &got,
            &[
                ("count_12_5", 1.0),
                ("upper_12_5", 1.0),
                ("count_50", 2.0),
                ("mean_50", 1.5),
            ],
        );
        assert!(got.keys().all(|k| !k.ends_with("_10")), "{got:?}");
    }

    #[test]
    fn idle_timer_reports_zero_count_only() {
        let mut out = Vec::new();
        for_each_stat(&[], 0.0, &[Percentile::new(90.0).unwrap()], 10.0, |k, v| {
            out.push((k.to_string(), v))
        });
        assert_eq!(
            out,
            vec![("count".to_string(), 0.0), ("count_ps".to_string(), 0.0)]
        );
    }

    #[test]
    fn percentile_validation_and_names() {
        assert!(Percentile::new(0.0).is_err());
        assert!(Percentile::new(100.5).is_err());
        assert!(Percentile::new(f64::NAN).is_err());
        assert_eq!(Percentile::new(-10.0).unwrap().names[2], "lower_top10");
        assert_eq!(Percentile::new(99.9).unwrap().names[0], "count_99_9");
        assert_eq!(Percentile::new(100.0).unwrap().names[2], "upper_100");
    }

    #[test]
    fn sketched_stats_keep_exact_totals_and_estimate_within_alpha() {
        use crate::aggregate::sketch::{Mapping, Sketch};
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let mut sketch = Sketch::new(Mapping::with_scale(6), 2048);
        for &v in &values {
            sketch.add(v);
        }
        let sketched = Sketched {
            sketch,
            totals: Totals {
                seen: 1000,
                sum: 500_500.0,
                sum_squares: values.iter().map(|v| v * v).sum(),
                min: 1.0,
                max: 1000.0,
            },
        };
        let pcts = [
            Percentile::new(90.0).unwrap(),
            Percentile::new(-10.0).unwrap(),
        ];
        let mut got = BTreeMap::new();
        for_each_stat_sketched(&sketched, 2000.0, &pcts, 10.0, |k, v| {
            assert!(got.insert(k.to_string(), v).is_none(), "duplicate {k}");
        });
        let exact = stats(&values, 0.5, &[90.0, -10.0], 10.0);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            exact.keys().collect::<Vec<_>>()
        );
        let alpha = Mapping::with_scale(6).relative_accuracy();
        for (name, want) in &exact {
            let bound = match name.as_str() {
                "count" | "count_ps" | "count_90" | "count_top10" | "sum" | "sum_squares"
                | "mean" | "upper" | "lower" => 0.0,
                "std" => 1e-9,
                n if n.starts_with("sum_squares_") => 2.0 * alpha + alpha * alpha,
                _ => alpha,
            };
            let err = (got[name] - want).abs() / want.abs();
            assert!(
                err <= bound,
                "{name}: {} vs {want} (error {err})",
                got[name]
            );
        }
    }
}
