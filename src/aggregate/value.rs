//! The aggregate of one series, and how two aggregates merge.

use hashbrown::HashSet;

use crate::metric::{MetricType, Sample};

/// The aggregate of one series over (part of) a flush interval.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Counter and trace: the sum of `value / sample_rate`.
    Counter(f64),
    /// Gauge: an absolute value or an accumulated delta.
    Gauge(Gauge),
    /// Timer, histogram, distribution: every sample.
    Samples(Samples),
    /// Set: the distinct members.
    Set(HashSet<Box<str>>),
}

/// Gauge state. Within one table updates apply in arrival order. Across tables, the most
/// recent absolute set wins (by `stamp`), and deltas from tables that saw no absolute set
/// are added to it: their order relative to that set is unknowable. A client's socket always
/// lands on the same receiver, so one client's own updates are never reordered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gauge {
    /// The value: absolute when `absolute`, else the sum of deltas.
    pub value: f64,
    /// True once an absolute value was set in this interval.
    pub absolute: bool,
    /// Monotonic nanoseconds of the last absolute set (for merging).
    pub stamp: u64,
}

/// Samples of a timer-like series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Sample values; sorted ascending once the flusher has prepared a snapshot.
    pub values: Vec<f64>,
    /// Σ 1/sample_rate: the number of events the samples stand for (Etsy `count`).
    pub count: f64,
}

impl Value {
    /// A new aggregate holding one sample.
    #[inline]
    pub fn new(mtype: MetricType, sample: &Sample<'_>, rate: f64, stamp: u64) -> Value {
        let mut v = Value::empty(mtype);
        v.update(sample, rate, stamp);
        v
    }

    /// The aggregate of a series that saw nothing this interval (what an idle counter, timer
    /// or set reports: zero count). An empty gauge is a zero delta.
    pub fn empty(mtype: MetricType) -> Value {
        match mtype {
            MetricType::Counter | MetricType::Trace => Value::Counter(0.0),
            MetricType::Gauge => Value::Gauge(Gauge {
                value: 0.0,
                absolute: false,
                stamp: 0,
            }),
            MetricType::Timer | MetricType::Histogram | MetricType::Distribution => {
                Value::Samples(Samples::default())
            }
            MetricType::Set => Value::Set(HashSet::new()),
        }
    }

    /// Applies one parsed sample (the parser guarantees the sample fits the type).
    #[inline]
    pub fn update(&mut self, sample: &Sample<'_>, rate: f64, stamp: u64) {
        match (self, sample) {
            (Value::Counter(sum), Sample::Value(v)) => *sum += v / rate,
            (Value::Gauge(g), Sample::Value(v)) => {
                *g = Gauge {
                    value: *v,
                    absolute: true,
                    stamp,
                }
            }
            (Value::Gauge(g), Sample::Delta(d)) => g.value += d,
            (Value::Samples(s), Sample::Value(v)) => {
                s.values.push(*v);
                s.count += 1.0 / rate;
            }
            // Checked first so that a known member costs no allocation.
            (Value::Set(set), Sample::Member(m)) if !set.contains(&**m) => {
                set.insert(Box::from(&**m));
            }
            // A known set member; or a type mismatch, which parser output never has
            // (ignoring keeps a future parser bug harmless).
            _ => {}
        }
    }

    /// Folds `other` (the same series, from another table) into `self`.
    pub fn merge(&mut self, other: Value) {
        match (self, other) {
            (Value::Counter(a), Value::Counter(b)) => *a += b,
            (Value::Gauge(a), Value::Gauge(b)) => *a = a.merge(b),
            (Value::Samples(a), Value::Samples(b)) => {
                a.values.extend_from_slice(&b.values);
                a.count += b.count;
            }
            (Value::Set(a), Value::Set(b)) => {
                if a.len() < b.len() {
                    let small = std::mem::replace(a, b);
                    a.extend(small);
                } else {
                    a.extend(b);
                }
            }
            // Keys include the metric type, so mismatched values never share a key.
            _ => {}
        }
    }
}

impl Gauge {
    /// Merges two gauge states of one interval (see the type docs for the rule).
    pub fn merge(self, other: Gauge) -> Gauge {
        match (self.absolute, other.absolute) {
            (true, true) if other.stamp >= self.stamp => other,
            (true, true) => self,
            (false, true) => Gauge {
                value: other.value + self.value,
                ..other
            },
            _ => Gauge {
                value: self.value + other.value,
                ..self
            },
        }
    }

    /// The gauge's value after this interval, given the value it had before (if any).
    pub fn resolve(self, previous: Option<f64>) -> f64 {
        if self.absolute {
            self.value
        } else {
            previous.unwrap_or(0.0) + self.value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_weights_by_sample_rate() {
        let mut v = Value::new(MetricType::Counter, &Sample::Value(1.0), 0.1, 0);
        v.update(&Sample::Value(2.0), 1.0, 0);
        assert_eq!(v, Value::Counter(12.0));
    }

    #[test]
    fn gauge_set_then_deltas_in_order() {
        let mut v = Value::new(MetricType::Gauge, &Sample::Delta(5.0), 1.0, 1);
        v.update(&Sample::Value(10.0), 1.0, 2);
        v.update(&Sample::Delta(-3.0), 1.0, 3);
        let Value::Gauge(g) = v else { panic!() };
        assert_eq!((g.value, g.absolute, g.stamp), (7.0, true, 2));
        assert_eq!(g.resolve(Some(100.0)), 7.0);
    }

    #[test]
    fn gauge_merge_latest_set_wins_and_free_deltas_add() {
        let set_early = Gauge {
            value: 1.0,
            absolute: true,
            stamp: 10,
        };
        let set_late = Gauge {
            value: 2.0,
            absolute: true,
            stamp: 20,
        };
        let delta = Gauge {
            value: 5.0,
            absolute: false,
            stamp: 0,
        };
        assert_eq!(set_early.merge(set_late).value, 2.0);
        assert_eq!(set_late.merge(set_early).value, 2.0);
        assert_eq!(set_late.merge(delta).value, 7.0);
        assert_eq!(delta.merge(set_late).value, 7.0);
        let both = delta.merge(delta);
        assert_eq!((both.value, both.absolute), (10.0, false));
        assert_eq!(both.resolve(Some(1.0)), 11.0);
        assert_eq!(both.resolve(None), 10.0);
    }

    #[test]
    fn samples_and_sets_merge() {
        let mut a = Value::new(MetricType::Timer, &Sample::Value(1.0), 0.5, 0);
        a.merge(Value::new(MetricType::Timer, &Sample::Value(2.0), 1.0, 0));
        let Value::Samples(s) = &a else { panic!() };
        assert_eq!((s.values.as_slice(), s.count), (&[1.0, 2.0][..], 3.0));

        let mut a = Value::new(MetricType::Set, &Sample::Member("x".into()), 1.0, 0);
        a.update(&Sample::Member("x".into()), 1.0, 0);
        let mut b = Value::new(MetricType::Set, &Sample::Member("y".into()), 1.0, 0);
        b.update(&Sample::Member("x".into()), 1.0, 0);
        a.merge(b);
        let Value::Set(set) = a else { panic!() };
        assert_eq!(set.len(), 2);
    }
}
