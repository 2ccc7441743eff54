use super::*;

fn sketch(values: impl IntoIterator<Item = f64>, max_bins: usize) -> Sketch {
    let mut s = Sketch::new(Mapping::with_scale(6), max_bins);
    for v in values {
        s.add(v);
    }
    s
}

#[test]
fn scale_six_meets_one_percent_and_bins_are_opentelemetry_buckets() {
    let m = Mapping::for_accuracy(0.01);
    assert_eq!(m.scale(), 6);
    assert!((m.relative_accuracy() - 0.005415).abs() < 1e-6);
    // OTel scale 6: bucket i is (2^(i/64), 2^((i+1)/64)]; 1.0 is the upper bound of
    // bucket -1, 2.0 of bucket 63.
    assert_eq!(m.index(1.0), -1);
    assert_eq!(m.index(1.0001), 0);
    assert_eq!(m.index(2.0), 63);
    assert_eq!(m.index(2.0001), 64);
    for v in [1e-9, 0.003, 1.0, 7.5, 250.0, 1e12] {
        let reported = m.value(m.index(v));
        assert!(
            (reported - v).abs() <= m.relative_accuracy() * v,
            "{v}: {reported}"
        );
    }
}

#[test]
fn the_table_index_is_the_logarithm_index() {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut differ = 0;
    for scale in 0..=6 {
        let m = Mapping::with_scale(scale);
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Magnitudes from 1e-300 to 1e300, and exact powers of two.
            let v = f64::from_bits((x >> 2) | 0x0010_0000_0000_0000).abs();
            if !v.is_normal() {
                continue;
            }
            let (fast, slow) = (m.index(v), m.index_by_log(v));
            // The logarithm rounds; within a few ulps of a bound the two may differ by one.
            assert!(
                (fast - slow).abs() <= 1,
                "scale {scale} {v:e}: {fast} vs {slow}"
            );
            differ += usize::from(fast != slow);
        }
        for e in -20..20 {
            let v = f64::powi(2.0, e);
            assert_eq!(m.index(v), (e << scale) - 1, "scale {scale} 2^{e}");
        }
    }
    assert!(differ <= 10, "{differ} of 1,400,000 differ");
}

#[test]
fn the_extremes_of_the_f64_range_report_finite_values() {
    for scale in 0..=10 {
        let m = Mapping::with_scale(scale);
        let (low, high) = (*m.finite_indices().start(), *m.finite_indices().end());
        assert_eq!((low, high), (m.index(f64::from_bits(1)), m.index(f64::MAX)));
        let top = m.value(high);
        assert!(top.is_finite() && top <= f64::MAX, "scale {scale}: {top}");
        // Within α of f64::MAX, unless clamped to it.
        assert!(
            top >= f64::MAX * (1.0 - m.relative_accuracy()),
            "scale {scale}"
        );
        assert!(m.value(low) > 0.0, "scale {scale}");
    }
    let s = sketch([-f64::MAX, f64::MAX], 2048);
    assert!(s.value_at(0).is_finite() && s.value_at(1).is_finite());
}

#[test]
fn ranks_cover_negative_zero_and_positive_samples() {
    let s = sketch([-10.0, -1.0, 0.0, 0.0, 1.0, 100.0], 2048);
    assert_eq!(s.count(), 6);
    let a = s.mapping().relative_accuracy();
    let exact = [-10.0, -1.0, 0.0, 0.0, 1.0, 100.0];
    for (rank, &x) in exact.iter().enumerate() {
        let got = s.value_at(rank as u64);
        assert!((got - x).abs() <= a * x.abs(), "rank {rank}: {got} vs {x}");
    }
    let values: Vec<u64> = s.values().map(|(_, c)| c).collect();
    assert_eq!(values, [1, 1, 2, 1, 1]);
}

#[test]
fn collapsing_keeps_the_highest_bins_and_counts() {
    // 1..=1000 spans ~638 bins at scale 6; keep 100.
    let s = sketch((1..=1000).map(f64::from), 100);
    assert_eq!(s.positive().counts().len(), 100);
    assert_eq!(s.count(), 1000);
    assert!(s.collapsed() > 0);
    // The top of the distribution keeps its guarantee.
    let a = s.mapping().relative_accuracy();
    for rank in [989u64, 998, 999] {
        let exact = (rank + 1) as f64;
        assert!((s.value_at(rank) - exact).abs() <= a * exact, "rank {rank}");
    }
}

#[test]
fn merging_parts_gives_the_bins_of_the_whole() {
    let values: Vec<f64> = (0..5000)
        .map(|i| ((i * 7919) % 4999) as f64 * 0.37 - 300.0)
        .collect();
    for max_bins in [2048, 64] {
        let whole = sketch(values.iter().copied(), max_bins);
        let parts = [&values[..1234], &values[1234..4000], &values[4000..]]
            .map(|part| sketch(part.iter().copied(), max_bins));
        let mut forward = parts[0].clone();
        forward.merge(&parts[1]);
        forward.merge(&parts[2]);
        let mut middle = parts[1].clone();
        middle.merge(&parts[0]);
        let mut backward = parts[2].clone();
        backward.merge(&middle);
        for got in [&forward, &backward] {
            assert_eq!(got.positive(), whole.positive(), "max_bins {max_bins}");
            assert_eq!(got.negative(), whole.negative(), "max_bins {max_bins}");
            assert_eq!(got.zero_count(), whole.zero_count());
        }
    }
}
