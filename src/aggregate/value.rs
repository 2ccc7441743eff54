//! The aggregate of one series, and how two aggregates merge.

use super::Bounds;
use super::samples::Samples;
use super::set::SetValue;
use crate::metric::{MetricType, Sample};

/// The aggregate of one series over (part of) a flush interval: one variant per
/// [`MetricType`], so a series' type and its aggregate cannot disagree and a new type does not
/// compile until every stage (update, merge, finalize, every sink, the admin views) handles it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// The sum of `value / sample_rate`.
    Counter(f64),
    /// pystatsd trace: the number of events (datagrams) seen.
    Trace(f64),
    /// An absolute value or an accumulated delta.
    Gauge(Gauge),
    /// Timer samples. Boxed, like sets, so that the common counters and gauges keep a table
    /// entry small (24 bytes of value instead of 48).
    Timer(Box<Samples>),
    /// DogStatsD histogram: aggregated like a timer.
    Histogram(Box<Samples>),
    /// DogStatsD distribution: aggregated like a timer.
    Distribution(Box<Samples>),
    /// The distinct members, or their HyperLogLog.
    Set(Box<SetValue>),
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

impl Value {
    /// A new aggregate holding one sample.
    #[inline]
    pub fn new(mtype: MetricType, sample: &Sample<'_>, rate: f64, stamp: u64) -> Value {
        let mut v = Value::empty(mtype);
        v.update(sample, rate, stamp, &Bounds::EXACT);
        v
    }

    /// The aggregate of a series that saw nothing this interval (what an idle counter, timer
    /// or set reports: zero count). An empty gauge is a zero delta.
    pub fn empty(mtype: MetricType) -> Value {
        match mtype {
            MetricType::Counter => Value::Counter(0.0),
            MetricType::Trace => Value::Trace(0.0),
            MetricType::Gauge => Value::Gauge(Gauge {
                value: 0.0,
                absolute: false,
                stamp: 0,
            }),
            MetricType::Timer => Value::Timer(Box::default()),
            MetricType::Histogram => Value::Histogram(Box::default()),
            MetricType::Distribution => Value::Distribution(Box::default()),
            MetricType::Set => Value::Set(Box::default()),
        }
    }

    /// The type this aggregate belongs to.
    pub fn metric_type(&self) -> MetricType {
        match self {
            Value::Counter(_) => MetricType::Counter,
            Value::Trace(_) => MetricType::Trace,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Timer(_) => MetricType::Timer,
            Value::Histogram(_) => MetricType::Histogram,
            Value::Distribution(_) => MetricType::Distribution,
            Value::Set(_) => MetricType::Set,
        }
    }

    /// Applies one parsed sample. The parsers only produce the samples a type takes (a
    /// number, a gauge delta, a set member); any other pairing is ignored. Returns false when
    /// the sample went into an approximation (a timer's sketch, a set's HyperLogLog) because
    /// the series is beyond its `bounds`.
    #[inline]
    pub fn update(&mut self, sample: &Sample<'_>, rate: f64, stamp: u64, bounds: &Bounds) -> bool {
        match self {
            Value::Counter(sum) | Value::Trace(sum) => match sample {
                Sample::Value(v) => *sum += v / rate,
                Sample::Delta(_) | Sample::Member(_) => {}
            },
            Value::Gauge(g) => match sample {
                Sample::Value(v) => {
                    *g = Gauge {
                        value: *v,
                        absolute: true,
                        stamp,
                    }
                }
                Sample::Delta(d) => g.value += d,
                Sample::Member(_) => {}
            },
            Value::Timer(s) | Value::Histogram(s) | Value::Distribution(s) => match sample {
                Sample::Value(v) => {
                    s.count += 1.0 / rate;
                    return s.push(*v, bounds);
                }
                Sample::Delta(_) | Sample::Member(_) => {}
            },
            Value::Set(set) => match sample {
                Sample::Member(m) => return set.insert(m, bounds),
                Sample::Value(_) | Sample::Delta(_) => {}
            },
        }
        true
    }

    /// Folds `other` (the same series, from another table) into `self`, within `bounds`.
    /// Series keys include the type, so both sides are always of the same variant.
    pub fn merge(&mut self, other: Value, bounds: &Bounds) {
        match self {
            Value::Counter(a) => {
                if let Value::Counter(b) = other {
                    *a += b;
                }
            }
            Value::Trace(a) => {
                if let Value::Trace(b) = other {
                    *a += b;
                }
            }
            Value::Gauge(a) => {
                if let Value::Gauge(b) = other {
                    *a = a.merge(b);
                }
            }
            Value::Timer(a) => {
                if let Value::Timer(b) = other {
                    a.merge(*b, bounds);
                }
            }
            Value::Histogram(a) => {
                if let Value::Histogram(b) = other {
                    a.merge(*b, bounds);
                }
            }
            Value::Distribution(a) => {
                if let Value::Distribution(b) = other {
                    a.merge(*b, bounds);
                }
            }
            Value::Set(a) => {
                if let Value::Set(b) = other {
                    a.merge(*b, bounds);
                }
            }
        }
    }

    /// The samples of a timer-like series.
    pub fn samples_mut(&mut self) -> Option<&mut Samples> {
        match self {
            Value::Timer(s) | Value::Histogram(s) | Value::Distribution(s) => Some(s),
            Value::Counter(_) | Value::Trace(_) | Value::Gauge(_) | Value::Set(_) => None,
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
        v.update(&Sample::Value(2.0), 1.0, 0, &Bounds::EXACT);
        assert_eq!(v, Value::Counter(12.0));
    }

    #[test]
    fn gauge_set_then_deltas_in_order() {
        let mut v = Value::new(MetricType::Gauge, &Sample::Delta(5.0), 1.0, 1);
        v.update(&Sample::Value(10.0), 1.0, 2, &Bounds::EXACT);
        v.update(&Sample::Delta(-3.0), 1.0, 3, &Bounds::EXACT);
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
        a.merge(
            Value::new(MetricType::Timer, &Sample::Value(2.0), 1.0, 0),
            &Bounds::EXACT,
        );
        let Value::Timer(s) = &a else { panic!() };
        assert_eq!((s.values.as_slice(), s.count), (&[1.0, 2.0][..], 3.0));

        let mut a = Value::new(MetricType::Set, &Sample::Member("x".into()), 1.0, 0);
        a.update(&Sample::Member("x".into()), 1.0, 0, &Bounds::EXACT);
        let mut b = Value::new(MetricType::Set, &Sample::Member("y".into()), 1.0, 0);
        b.update(&Sample::Member("x".into()), 1.0, 0, &Bounds::EXACT);
        a.merge(b, &Bounds::EXACT);
        let Value::Set(set) = a else { panic!() };
        assert_eq!(set.cardinality(), 2.0);
    }
}
