use std::time::Duration;

use super::*;
use crate::aggregate::Bounds;
use crate::flush::merge;
use crate::metric::{Metric, Sample, SeriesRef, TagRef};
use crate::parse::Protocol;
use crate::receive::Harvest;
use crate::stats::{Level, ReceiverStats};

fn settings() -> FinalizeSettings {
    FinalizeSettings {
        percentiles: vec![Percentile::new(90.0).unwrap()].into(),
        global_tags: Vec::new(),
        stats: None,
        carry: CarrySettings {
            delete_idle_gauges: false,
            idle_zero_flushes: 0,
            max_gauges: usize::MAX,
        },
    }
}

fn with_carry(f: impl FnOnce(&mut CarrySettings)) -> FinalizeSettings {
    let mut s = settings();
    f(&mut s.carry);
    s
}

fn harvest(items: &[(&str, MetricType, Sample<'_>)], tags: &[TagRef<'_>]) -> Harvest {
    let mut table = Table::new();
    for (name, mtype, sample) in items {
        table.apply(
            &Metric {
                series: SeriesRef {
                    name,
                    mtype: *mtype,
                    tags,
                },
                sample: sample.clone(),
                sample_rate: 1.0,
            },
            1,
        );
    }
    Harvest {
        protocol: Protocol::Statsd,
        table,
        stats: ReceiverStats::default(),
    }
}

fn build(a: &mut Finalizer, harvests: Vec<Harvest>) -> Vec<(SeriesKey, Value)> {
    let state = merge(harvests, 0, Duration::from_secs(10), Bounds::EXACT).state;
    let mut s = a.finalize(state, &[]).series;
    s.sort_by(|x, y| x.0.cmp(&y.0));
    s
}

fn key(name: &str, t: MetricType) -> SeriesKey {
    SeriesKey::new(name, t, Vec::<(&str, &str)>::new())
}

fn gauge(v: f64) -> Value {
    Value::Gauge(Gauge {
        value: v,
        absolute: true,
        stamp: 0,
    })
}

#[test]
fn merges_threads_and_sorts_samples() {
    let mut a = Finalizer::new(settings());
    let out = build(
        &mut a,
        vec![
            harvest(
                &[
                    ("c", MetricType::Counter, Sample::Value(2.0)),
                    ("t", MetricType::Timer, Sample::Value(3.0)),
                ],
                &[],
            ),
            harvest(
                &[
                    ("c", MetricType::Counter, Sample::Value(5.0)),
                    ("t", MetricType::Timer, Sample::Value(1.0)),
                ],
                &[],
            ),
        ],
    );
    assert_eq!(out[0], (key("c", MetricType::Counter), Value::Counter(7.0)));
    let Value::Timer(s) = &out[1].1 else { panic!() };
    assert_eq!(s.values, vec![1.0, 3.0]);
}

#[test]
fn gauges_persist_and_deltas_apply_to_the_previous_value() {
    let mut a = Finalizer::new(settings());
    let g = MetricType::Gauge;
    build(&mut a, vec![harvest(&[("g", g, Sample::Value(10.0))], &[])]);
    let out = build(&mut a, vec![]);
    assert_eq!(out, vec![(key("g", g), gauge(10.0))]);
    let out = build(&mut a, vec![harvest(&[("g", g, Sample::Delta(-4.0))], &[])]);
    let Value::Gauge(v) = out[0].1 else { panic!() };
    assert_eq!(v.value, 6.0);
}

#[test]
fn gauges_beyond_max_gauges_are_reported_but_not_remembered() {
    let mut a = Finalizer::new(with_carry(|c| c.max_gauges = 1));
    let g = MetricType::Gauge;
    let set = |name| harvest(&[(name, g, Sample::Value(5.0))], &[]);
    let out = build(&mut a, vec![set("a"), set("b")]);
    assert_eq!(out.len(), 2);
    assert_eq!(a.carry().gauges_not_kept(), 1);
    // The next interval repeats only the remembered one; an update of it still works.
    let out = build(&mut a, vec![]);
    assert_eq!(out.len(), 1);
    let out = build(
        &mut a,
        vec![harvest(&[(out[0].0.name(), g, Sample::Delta(1.0))], &[])],
    );
    assert_eq!(out[0].1, gauge(6.0));
    assert_eq!(a.carry().gauges_not_kept(), 0);
}

#[test]
fn delete_idle_gauges() {
    let mut a = Finalizer::new(with_carry(|c| c.delete_idle_gauges = true));
    build(
        &mut a,
        vec![harvest(
            &[("g", MetricType::Gauge, Sample::Value(1.0))],
            &[],
        )],
    );
    assert!(build(&mut a, vec![]).is_empty());
    // Deleted means forgotten: a delta now starts from zero.
    let out = build(
        &mut a,
        vec![harvest(
            &[("g", MetricType::Gauge, Sample::Delta(2.0))],
            &[],
        )],
    );
    let Value::Gauge(v) = out[0].1 else { panic!() };
    assert_eq!(v.value, 2.0);
}

#[test]
fn idle_series_report_zero_for_n_flushes() {
    let mut a = Finalizer::new(with_carry(|c| c.idle_zero_flushes = 2));
    build(
        &mut a,
        vec![harvest(
            &[
                ("c", MetricType::Counter, Sample::Value(1.0)),
                ("s", MetricType::Set, Sample::Member("x".into())),
                ("t", MetricType::Timer, Sample::Value(1.0)),
            ],
            &[],
        )],
    );
    for _ in 0..2 {
        let out = build(&mut a, vec![]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].1, Value::Counter(0.0));
        assert_eq!(out[1].1, Value::empty(MetricType::Set));
        assert_eq!(out[2].1, Value::empty(MetricType::Timer));
    }
    assert!(build(&mut a, vec![]).is_empty());
}

#[test]
fn global_tags_merge_colliding_series() {
    let mut a = Finalizer::new(FinalizeSettings {
        global_tags: vec![("env".into(), "prod".into())],
        ..settings()
    });
    let tagged: Vec<TagRef> = vec![("env", "prod".into())];
    let out = build(
        &mut a,
        vec![
            harvest(&[("c", MetricType::Counter, Sample::Value(1.0))], &[]),
            harvest(&[("c", MetricType::Counter, Sample::Value(2.0))], &tagged),
        ],
    );
    assert_eq!(
        out,
        vec![(
            SeriesKey::new("c", MetricType::Counter, [("env", "prod")]),
            Value::Counter(3.0)
        )]
    );
}

#[test]
fn internal_stats_join_the_snapshot_prefixed_and_tagged() {
    let mut a = Finalizer::new(FinalizeSettings {
        global_tags: vec![("env".into(), "prod".into())],
        stats: Some(("rstatsd.".into(), Detail::Basic)),
        ..settings()
    });
    let stat = |name, value, level| Stat {
        name,
        tags: vec![("listener", "statsd".to_string())],
        value,
        level,
    };
    let internal = [
        stat("packets_received", StatValue::Counter(3), Level::Always),
        stat("recv_errors", StatValue::Counter(0), Level::NonZero),
        stat(
            "receive_buffer_bytes",
            StatValue::Gauge(4096.0),
            Level::Always,
        ),
        stat("recv_batches", StatValue::Counter(1), Level::Full),
    ];
    let state = merge(vec![], 0, Duration::from_secs(10), Bounds::EXACT).state;
    let mut got = a.finalize(state, &internal).series;
    got.sort_by(|x, y| x.0.cmp(&y.0));
    let tags = [("env", "prod"), ("listener", "statsd")];
    assert_eq!(
        got,
        vec![
            (
                SeriesKey::new("rstatsd.packets_received", MetricType::Counter, tags),
                Value::Counter(3.0)
            ),
            (
                SeriesKey::new("rstatsd.receive_buffer_bytes", MetricType::Gauge, tags),
                gauge(4096.0)
            ),
        ]
    );
}

#[test]
fn collapsed_sketch_bins_are_counted() {
    let mut a = Finalizer::new(settings());
    let bounds = Bounds {
        max_timer_samples: 2,
        max_sketch_bins: 4,
        ..Bounds::default()
    };
    let mut table = Table::with_capacity(0, bounds);
    for v in [1.0, 10.0, 100.0, 1000.0, 10_000.0] {
        table.apply(
            &Metric {
                series: SeriesRef {
                    name: "t",
                    mtype: MetricType::Timer,
                    tags: &[],
                },
                sample: Sample::Value(v),
                sample_rate: 1.0,
            },
            0,
        );
    }
    let state = IntervalState {
        timestamp_ms: 0,
        interval: Duration::from_secs(10),
        series: table,
    };
    a.finalize(state, &[]);
    // Five samples a factor of ten apart (212 bins at scale 6), four bins kept: each new
    // sample folds every non-empty bin below it, 1 + 2 + 2 + 2 folds.
    assert_eq!(a.sketch_bins_collapsed(), 7);
}
