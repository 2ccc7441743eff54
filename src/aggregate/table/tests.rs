use super::*;
use crate::metric::{MetricType, Sample, SeriesRef, TagRef};

fn metric<'r>(name: &'r str, tags: &'r [TagRef<'r>], v: f64) -> Metric<'r, 'r> {
    Metric {
        series: SeriesRef {
            name,
            mtype: MetricType::Counter,
            tags,
        },
        sample: Sample::Value(v),
        sample_rate: 1.0,
    }
}

#[test]
fn an_entry_is_56_bytes() {
    // What the bytes-per-series figures in the README (and `cargo bench --bench
    // aggregate`) rest on.
    assert_eq!(std::mem::size_of::<Entry>(), 56);
}

#[test]
fn applying_where_a_series_was_located_checks_the_name_and_falls_back() {
    let mut t = Table::new();
    t.apply(&metric("a", &[], 1.0), 0);
    t.apply(&metric("b", &[], 1.0), 0);
    let hash = |name| Table::plain_hash(name, MetricType::Counter);
    assert_eq!(t.locate(hash("b")), Some(1));
    assert_eq!(t.locate(hash("c")), None);
    let ok = |_: &SeriesRef<'_, '_>| Ok::<(), Infallible>(());
    // Told (wrongly) that "b" is entry 0, or an entry that does not exist: the names
    // are compared and the lookup finds "b" itself.
    t.apply_located(Some(0), hash("b"), &metric("b", &[], 10.0), 0, ok)
        .unwrap();
    t.apply_located(Some(7), hash("b"), &metric("b", &[], 100.0), 0, ok)
        .unwrap();
    t.apply_located(Some(1), hash("b"), &metric("b", &[], 1000.0), 0, ok)
        .unwrap();
    // Not located: a new series, admitted or refused as by `apply_admitted`.
    t.apply_located(None, hash("c"), &metric("c", &[], 5.0), 0, ok)
        .unwrap();
    assert_eq!(
        t.apply_located(None, hash("d"), &metric("d", &[], 5.0), 0, |_| Err("full")),
        Err("full")
    );
    let value = |name| {
        t.get(&SeriesKey::new(
            name,
            MetricType::Counter,
            Vec::<(&str, &str)>::new(),
        ))
        .cloned()
    };
    assert_eq!(value("a"), Some(Value::Counter(1.0)));
    assert_eq!(value("b"), Some(Value::Counter(1111.0)));
    assert_eq!(value("c"), Some(Value::Counter(5.0)));
    assert_eq!(value("d"), None);
    assert_eq!(t.len(), 3);
}

#[test]
fn apply_and_merge() {
    let tags: Vec<TagRef> = vec![("env", "x".into())];
    let mut a = Table::new();
    a.apply(&metric("c", &tags, 1.0), 0);
    a.apply(&metric("c", &tags, 2.0), 0);
    a.apply(&metric("c", &[], 5.0), 0);
    assert_eq!(a.len(), 2);
    let mut b = Table::new();
    b.apply(&metric("c", &tags, 10.0), 0);
    b.merge(a);
    let key = SeriesKey::new("c", MetricType::Counter, [("env", "x")]);
    assert_eq!(b.get(&key), Some(&Value::Counter(13.0)));
    let plain = SeriesKey::new("c", MetricType::Counter, Vec::<(&str, &str)>::new());
    assert_eq!(b.get(&plain), Some(&Value::Counter(5.0)));
}

#[test]
fn refused_series_are_not_inserted_but_known_ones_update() {
    let mut t = Table::new();
    t.apply(&metric("known", &[], 1.0), 0);
    let refuse = |_: &SeriesRef<'_, '_>| Err("full");
    assert_eq!(
        t.apply_admitted(&metric("new", &[], 1.0), 0, refuse),
        Err("full")
    );
    assert_eq!(
        t.apply_admitted(&metric("known", &[], 2.0), 0, refuse),
        Ok(())
    );
    assert_eq!(t.len(), 1);
    let key = SeriesKey::new("known", MetricType::Counter, Vec::<(&str, &str)>::new());
    assert_eq!(t.get(&key), Some(&Value::Counter(3.0)));
}

#[test]
fn logged_timer_samples_settle_to_what_one_by_one_updates_give() {
    // Three timer-like series and a counter, interleaved, with sample rates; more
    // samples than the log holds (so it settles on its own mid-way), and one series
    // past the sample cap (so it switches to its sketch while settling).
    let bounds = Bounds {
        max_timer_samples: 2000,
        ..Bounds::default()
    };
    let names = ["t", "h", "d", "c"];
    let types = [
        MetricType::Timer,
        MetricType::Histogram,
        MetricType::Distribution,
        MetricType::Counter,
    ];
    let mut table = Table::with_capacity(0, bounds);
    let mut direct: Vec<Option<Value>> = vec![None; 4];
    let mut sketched_direct = 0;
    for i in 0..(LOG * 2 + 123) {
        // "t" gets 3 of every 6 samples (more than the cap), the others 1 each.
        let which = [0, 1, 0, 2, 0, 3][i % 6];
        let v = (i * 7919 % 1000) as f64 / 8.0;
        let rate = if i % 5 == 0 { 0.25 } else { 1.0 };
        let m = Metric {
            series: SeriesRef {
                name: names[which],
                mtype: types[which],
                tags: &[],
            },
            sample: Sample::Value(v),
            sample_rate: rate,
        };
        table.apply(&m, 0);
        match &mut direct[which] {
            Some(value) => {
                if !value.update(&m.sample, rate, 0, &bounds) {
                    sketched_direct += 1;
                }
            }
            empty => *empty = Some(Value::new(types[which], &m.sample, rate, 0)),
        }
    }
    assert!(!table.log.is_empty(), "some samples are still logged");
    assert_eq!(table.sketched(), sketched_direct);
    assert!(table.log.is_empty());
    // 4,158 samples of "t" (1,386 of "h" and of "d", within the cap).
    assert_eq!(sketched_direct, 4158 - 2000);
    for (which, want) in direct.iter().enumerate() {
        let key = SeriesKey::new(names[which], types[which], Vec::<(&str, &str)>::new());
        assert_eq!(table.get(&key), want.as_ref(), "{}", names[which]);
    }
    let Some(Value::Timer(t)) = &direct[0] else {
        panic!("t is a timer")
    };
    assert!(t.sketched.is_some());
    let Some(Value::Histogram(h)) = &direct[1] else {
        panic!("h is a histogram")
    };
    assert_eq!((h.values.len(), h.sketched.is_none()), (1386, true));
}
