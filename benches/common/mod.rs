//! Inputs shared by the benches.

#![allow(dead_code)]

use std::time::Duration;

use rstatsd::aggregate::timer::Percentile;
use rstatsd::aggregate::{Bounds, Gauge, Samples, Value};
use rstatsd::metric::{MetricType, Sample, SeriesKey};
use rstatsd::snapshot::Snapshot;

/// A snapshot of `n` series, realistic mix: 60 % counters, 20 % gauges, 15 % timers with
/// 10 samples, 5 % sets; three tags each.
pub fn snapshot(n: usize) -> Snapshot {
    let series = (0..n)
        .map(|i| {
            let (mtype, value) = match i % 20 {
                0..=11 => (MetricType::Counter, Value::Counter(i as f64)),
                12..=15 => (
                    MetricType::Gauge,
                    Value::Gauge(Gauge {
                        value: 42.5,
                        absolute: true,
                        stamp: 0,
                    }),
                ),
                16..=18 => (
                    MetricType::Timer,
                    Value::Timer(Box::new(Samples {
                        values: (1..=10).map(f64::from).collect(),
                        count: 10.0,
                        sketched: None,
                    })),
                ),
                _ => {
                    let mut set = Value::new(MetricType::Set, &Sample::Member("a".into()), 1.0, 0);
                    set.update(&Sample::Member("b".into()), 1.0, 0, &Bounds::default());
                    (MetricType::Set, set)
                }
            };
            let key = SeriesKey::new(
                format!("app.service.metric{}", i % 1000),
                mtype,
                [
                    ("env", "production".to_string()),
                    ("host", format!("web{}", i / 1000)),
                    ("region", "eu-west-1".to_string()),
                ],
            );
            (key, value)
        })
        .collect();
    Snapshot {
        timestamp_ms: 1_795_323_600_000,
        interval: Duration::from_secs(10),
        percentiles: vec![Percentile::new(90.0).unwrap()].into(),
        series,
    }
}
