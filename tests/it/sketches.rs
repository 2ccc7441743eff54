//! Accuracy and merge laws of the bounded timer and set state: DDSketch percentiles within α
//! of Etsy's exact ones, HyperLogLog counts within three standard errors, and merging that
//! does not depend on how the samples were split.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rstatsd::aggregate::sketch::Mapping;
use rstatsd::aggregate::timer::{Percentile, for_each_stat, for_each_stat_sketched};
use rstatsd::aggregate::{Bounds, SetValue, Value};
use rstatsd::metric::{MetricType, Sample};

/// Every reported threshold (`upper_<p>`, `lower_top<p>`) and the median are within α of
/// Etsy's exact values, for four shapes of data at three sizes.
#[test]
fn sketched_percentiles_are_within_alpha_of_etsys() {
    let bounds = Bounds {
        max_timer_samples: 50,
        ..Bounds::default()
    };
    let alpha = bounds.sketch.relative_accuracy();
    for name in ["uniform", "lognormal", "pareto", "bimodal"] {
        for n in [100, 10_000, 1_000_000] {
            let values = distribution(name, n, 7);
            let exact = exact_stats(&values);
            let got = sketched_stats(&timer(&values, &bounds));
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                exact.keys().collect::<Vec<_>>()
            );
            for key in [
                "upper_50",
                "upper_90",
                "upper_99",
                "upper_99_9",
                "lower_top10",
                "median",
            ] {
                let err = (got[key] - exact[key]).abs() / exact[key].abs();
                assert!(
                    err <= alpha,
                    "{name} n={n} {key}: {} vs {}",
                    got[key],
                    exact[key]
                );
            }
            for key in ["count", "upper", "lower", "count_99_9"] {
                assert_eq!(got[key], exact[key], "{name} n={n} {key}");
            }
            // Exact sums, added in arrival order where Etsy adds in sorted order.
            for key in ["sum", "sum_squares", "mean"] {
                let err = (got[key] - exact[key]).abs() / exact[key].abs();
                assert!(
                    err <= 1e-12,
                    "{name} n={n} {key}: {} vs {}",
                    got[key],
                    exact[key]
                );
            }
        }
    }
}

#[test]
fn set_counts_are_within_three_standard_errors() {
    let bounds = Bounds::default();
    let se = 1.04 / f64::sqrt(f64::from(1u32 << bounds.set_lg_k));
    for n in [1_000u64, 100_000, 10_000_000] {
        for seed in 0..2 {
            let mut set = Value::empty(MetricType::Set);
            for i in 0..n {
                let member = format!("{seed}:{i:x}");
                set.update(&Sample::Member(member.as_str().into()), 1.0, 0, &bounds);
            }
            let Value::Set(set) = set else { panic!() };
            assert!(matches!(*set, SetValue::Estimated(_)), "n={n}");
            let err = (set.cardinality() - n as f64).abs() / n as f64;
            assert!(err <= 3.0 * se, "n={n} seed={seed}: {}", set.cardinality());
        }
    }
}

fn split<T: Clone>(values: &[T], cuts: &[usize]) -> Vec<Vec<T>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (values.len() + 1)).collect();
    cuts.sort();
    let mut parts = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([values.len()]) {
        parts.push(values[start..c].to_vec());
        start = c;
    }
    parts
}

fn bins(v: &Value) -> String {
    let Value::Timer(s) = v else { panic!() };
    match &s.sketched {
        Some(sk) => format!(
            "{:?} {:?} {} {}",
            sk.sketch.positive(),
            sk.sketch.negative(),
            sk.sketch.zero_count(),
            sk.totals.seen
        ),
        None => {
            let mut raw = s.values.clone();
            raw.sort_by(f64::total_cmp);
            format!("raw {raw:?}")
        }
    }
}

proptest! {
    /// Merging the sketches (or raw samples) of any split, in either order, gives the bins of
    /// the whole, bit for bit: commutative, associative, parts = whole.
    #[test]
    fn timer_merges_do_not_depend_on_the_split(
        values in prop::collection::vec(-1e6f64..1e6, 0..400),
        cuts in prop::collection::vec(0usize..400, 0..4),
        cap in 1usize..50,
        max_bins in 8usize..64,
    ) {
        let bounds = Bounds { max_timer_samples: cap, max_sketch_bins: max_bins, ..Bounds::default() };
        let whole = timer(&values, &bounds);
        let parts: Vec<Value> = split(&values, &cuts).iter().map(|p| timer(p, &bounds)).collect();
        let mut forward = Value::empty(MetricType::Timer);
        for p in parts.iter().cloned() {
            forward.merge(p, &bounds);
        }
        let mut backward = Value::empty(MetricType::Timer);
        for p in parts.into_iter().rev() {
            backward.merge(p, &bounds);
        }
        prop_assert_eq!(bins(&forward), bins(&whole));
        prop_assert_eq!(bins(&backward), bins(&whole));
    }

    /// Sets likewise: the same members in any split give the same exact members, or the
    /// same registers.
    #[test]
    fn set_merges_do_not_depend_on_the_split(
        members in prop::collection::vec(0u32..500, 0..400),
        cuts in prop::collection::vec(0usize..400, 0..4),
        exact in 1usize..100,
    ) {
        let bounds = Bounds { set_exact_members: exact, set_lg_k: 8, ..Bounds::default() };
        let set = |ms: &[u32]| {
            let mut v = Value::empty(MetricType::Set);
            for m in ms {
                v.update(&Sample::Member(m.to_string().into()), 1.0, 0, &bounds);
            }
            v
        };
        let parts: Vec<Value> = split(&members, &cuts).iter().map(|p| set(p)).collect();
        let whole = set(&members);
        let mut merged = Value::empty(MetricType::Set);
        for p in parts.into_iter().rev() {
            merged.merge(p, &bounds);
        }
        let canonical = |v: &Value| match v {
            Value::Set(s) => match &**s {
                SetValue::Exact(e) => {
                    let mut m: Vec<&str> = e.members().collect();
                    m.sort();
                    format!("{m:?}")
                }
                SetValue::Estimated(h) => format!("{:?}", h.to_datasketches()),
            },
            _ => unreachable!(),
        };
        // Whether a set is exact depends only on its distinct members, so the whole and the
        // merge agree on that too.
        prop_assert_eq!(canonical(&merged), canonical(&whole));
    }
}

#[test]
fn scale_follows_the_configured_accuracy() {
    assert_eq!(Mapping::for_accuracy(0.01).scale(), 6);
    assert_eq!(Mapping::for_accuracy(0.02).scale(), 5);
    assert_eq!(Mapping::for_accuracy(0.001).scale(), 9);
}

/// SplitMix64: a seeded, portable stream of uniform numbers in (0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + f64::EPSILON
    }

    fn normal(&mut self) -> f64 {
        (-2.0 * self.next().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.next()).cos()
    }
}

fn distribution(name: &str, n: usize, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..n)
        .map(|_| match name {
            "uniform" => r.next() * 1000.0,
            "lognormal" => (r.normal() + 3.0).exp(),
            "pareto" => 10.0 / r.next().powf(1.0 / 1.5),
            _ => {
                if r.next() < 0.7 {
                    (100.0 + 10.0 * r.normal()).abs()
                } else {
                    (1000.0 + 50.0 * r.normal()).abs()
                }
            }
        })
        .collect()
}

fn percentiles() -> Vec<Percentile> {
    [50.0, 90.0, 99.0, 99.9, -10.0]
        .map(|p| Percentile::new(p).unwrap())
        .to_vec()
}

fn exact_stats(values: &[f64]) -> BTreeMap<String, f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut out = BTreeMap::new();
    for_each_stat(
        &sorted,
        values.len() as f64,
        &percentiles(),
        10.0,
        |k, v| {
            out.insert(k.to_string(), v);
        },
    );
    out
}

fn timer(values: &[f64], bounds: &Bounds) -> Value {
    let mut v = Value::empty(MetricType::Timer);
    for &x in values {
        v.update(&Sample::Value(x), 1.0, 0, bounds);
    }
    v
}

fn sketched_stats(value: &Value) -> BTreeMap<String, f64> {
    let Value::Timer(s) = value else {
        panic!("a timer")
    };
    let sketched = s.sketched.as_ref().expect("beyond the cap");
    let mut out = BTreeMap::new();
    for_each_stat_sketched(sketched, s.count, &percentiles(), 10.0, |k, v| {
        out.insert(k.to_string(), v);
    });
    out
}
