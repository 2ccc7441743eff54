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
            "count" | "count_ps" | "count_90" | "count_top10" | "sum" | "sum_squares" | "mean"
            | "upper" | "lower" => 0.0,
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
