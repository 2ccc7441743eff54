//! The aggregate of one series, and how two aggregates merge.

use hashbrown::HashSet;

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
    /// entry small (32 bytes of value instead of 48).
    Timer(Box<Samples>),
    /// DogStatsD histogram: aggregated like a timer.
    Histogram(Box<Samples>),
    /// DogStatsD distribution: aggregated like a timer.
    Distribution(Box<Samples>),
    /// The distinct members.
    Set(Box<Members>),
}

/// The members of a set.
pub type Members = HashSet<Box<str>>;

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
///
/// Up to the configured cap (`limits.max_timer_samples`) every sample is kept and the
/// statistics are Etsy's, exactly. Beyond it `values` becomes a uniform random reservoir of
/// `cap` samples (Vitter's algorithm R) and [`Totals`] keeps the exact count, sum, sum of
/// squares, minimum and maximum: see [`crate::aggregate::timer`] for which statistics are
/// then estimated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Sample values (all of them, or the reservoir); sorted ascending once the flusher has
    /// prepared a snapshot.
    pub values: Vec<f64>,
    /// Σ 1/sample_rate: the number of events the samples stand for (Etsy `count`).
    pub count: f64,
    /// Exact totals, present once `values` is a reservoir.
    pub totals: Option<Box<Totals>>,
}

/// Exact totals of every sample of a series whose `values` are a reservoir.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Totals {
    /// Samples seen (unweighted by sample rate); more than the reservoir holds.
    pub seen: u64,
    pub sum: f64,
    pub sum_squares: f64,
    pub min: f64,
    pub max: f64,
}

impl Totals {
    fn of(values: &[f64]) -> Totals {
        let mut t = Totals {
            seen: 0,
            sum: 0.0,
            sum_squares: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        };
        for &v in values {
            t.add(v);
        }
        t
    }

    fn add(&mut self, v: f64) {
        self.seen += 1;
        self.sum += v;
        self.sum_squares += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Totals) {
        self.seen += other.seen;
        self.sum += other.sum;
        self.sum_squares += other.sum_squares;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

impl Samples {
    /// Number of samples seen (not weighted by sample rate).
    pub fn seen(&self) -> u64 {
        self.totals
            .as_ref()
            .map_or(self.values.len() as u64, |t| t.seen)
    }

    /// Adds one sample, keeping at most `cap` values. Returns false when the sample went
    /// through the reservoir instead of being kept outright.
    #[inline]
    fn push(&mut self, v: f64, cap: usize) -> bool {
        if self.totals.is_none() && self.values.len() < cap {
            self.values.push(v);
            return true;
        }
        let totals = self
            .totals
            .get_or_insert_with(|| Box::new(Totals::of(&self.values)));
        totals.add(v);
        // Algorithm R: the n-th sample replaces a random slot with probability cap/n.
        let slot = (mix(totals.seen) % totals.seen) as usize;
        if let Some(kept) = self.values.get_mut(slot) {
            *kept = v;
        }
        false
    }

    /// Folds `other` in, keeping at most `cap` values: a weighted random selection in which
    /// each kept value stands for `seen / values.len()` samples of its side, so the result is
    /// again a uniform sample of the union.
    fn merge(&mut self, mut other: Samples, cap: usize) {
        self.count += other.count;
        if self.totals.is_none()
            && other.totals.is_none()
            && self.values.len() + other.values.len() <= cap
        {
            self.values.append(&mut other.values);
            return;
        }
        let mut totals = self
            .totals
            .take()
            .map_or_else(|| Totals::of(&self.values), |t| *t);
        let other_totals = other
            .totals
            .take()
            .map_or_else(|| Totals::of(&other.values), |t| *t);
        let weight = |t: &Totals, len: usize| t.seen as f64 / len.max(1) as f64;
        let (wa, wb) = (
            weight(&totals, self.values.len()),
            weight(&other_totals, other.values.len()),
        );
        totals.merge(&other_totals);
        // Efraimidis–Spirakis: keep the `cap` values with the smallest -ln(u)/weight.
        let salt = totals.seen;
        let mut keyed: Vec<(f64, f64)> = self
            .values
            .iter()
            .map(|&v| (v, wa))
            .chain(other.values.iter().map(|&v| (v, wb)))
            .enumerate()
            .map(|(i, (v, w))| {
                let u = (mix(salt ^ (i as u64).rotate_left(32)) >> 11) as f64 / (1u64 << 53) as f64;
                (-(1.0 - u).ln() / w, v)
            })
            .collect();
        if keyed.len() > cap {
            keyed.select_nth_unstable_by(cap, |a, b| a.0.total_cmp(&b.0));
            keyed.truncate(cap);
        }
        self.values = keyed.into_iter().map(|(_, v)| v).collect();
        self.totals = Some(Box::new(totals));
    }

    /// Arithmetic mean of every sample seen (0 with none).
    pub fn mean(&self) -> f64 {
        match &self.totals {
            Some(t) => t.sum / t.seen as f64,
            None => crate::aggregate::timer::mean(&self.values),
        }
    }
}

/// SplitMix64's output function: a cheap, stateless, well-mixed pseudo-random number derived
/// from a counter. Reservoir slots need uniformity, not unpredictability.
#[inline]
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Value {
    /// A new aggregate holding one sample.
    #[inline]
    pub fn new(mtype: MetricType, sample: &Sample<'_>, rate: f64, stamp: u64) -> Value {
        let mut v = Value::empty(mtype);
        v.update(sample, rate, stamp, usize::MAX);
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
    /// number, a gauge delta, a set member); any other pairing is ignored. A timer keeps at
    /// most `max_samples` values; returns false when this sample went to the reservoir
    /// instead (see [`Samples`]).
    #[inline]
    pub fn update(
        &mut self,
        sample: &Sample<'_>,
        rate: f64,
        stamp: u64,
        max_samples: usize,
    ) -> bool {
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
                    return s.push(*v, max_samples);
                }
                Sample::Delta(_) | Sample::Member(_) => {}
            },
            Value::Set(set) => match sample {
                // Checked first so that a known member costs no allocation.
                Sample::Member(m) => {
                    if !set.contains(&**m) {
                        set.insert(Box::from(&**m));
                    }
                }
                Sample::Value(_) | Sample::Delta(_) => {}
            },
        }
        true
    }

    /// Folds `other` (the same series, from another table) into `self`; a timer keeps at
    /// most `max_samples` values. Series keys include the type, so both sides are always of
    /// the same variant.
    pub fn merge(&mut self, other: Value, max_samples: usize) {
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
                    a.merge(*b, max_samples);
                }
            }
            Value::Histogram(a) => {
                if let Value::Histogram(b) = other {
                    a.merge(*b, max_samples);
                }
            }
            Value::Distribution(a) => {
                if let Value::Distribution(b) = other {
                    a.merge(*b, max_samples);
                }
            }
            Value::Set(a) => {
                if let Value::Set(b) = other {
                    if a.len() < b.len() {
                        let small = std::mem::replace(a, b);
                        a.extend(*small);
                    } else {
                        a.extend(*b);
                    }
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
        v.update(&Sample::Value(2.0), 1.0, 0, usize::MAX);
        assert_eq!(v, Value::Counter(12.0));
    }

    #[test]
    fn gauge_set_then_deltas_in_order() {
        let mut v = Value::new(MetricType::Gauge, &Sample::Delta(5.0), 1.0, 1);
        v.update(&Sample::Value(10.0), 1.0, 2, usize::MAX);
        v.update(&Sample::Delta(-3.0), 1.0, 3, usize::MAX);
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
            usize::MAX,
        );
        let Value::Timer(s) = &a else { panic!() };
        assert_eq!((s.values.as_slice(), s.count), (&[1.0, 2.0][..], 3.0));

        let mut a = Value::new(MetricType::Set, &Sample::Member("x".into()), 1.0, 0);
        a.update(&Sample::Member("x".into()), 1.0, 0, usize::MAX);
        let mut b = Value::new(MetricType::Set, &Sample::Member("y".into()), 1.0, 0);
        b.update(&Sample::Member("x".into()), 1.0, 0, usize::MAX);
        a.merge(b, usize::MAX);
        let Value::Set(set) = a else { panic!() };
        assert_eq!(set.len(), 2);
    }

    fn timer(values: impl IntoIterator<Item = f64>, cap: usize) -> Samples {
        let mut v = Value::empty(MetricType::Timer);
        for x in values {
            v.update(&Sample::Value(x), 1.0, 0, cap);
        }
        let Value::Timer(s) = v else { panic!() };
        *s
    }

    #[test]
    fn samples_beyond_the_cap_go_to_a_reservoir_with_exact_totals() {
        let under = timer((1..=4).map(f64::from), 4);
        assert_eq!((under.values.len(), under.totals), (4, None));

        let s = timer((1..=1000).map(f64::from), 100);
        assert_eq!(s.values.len(), 100);
        assert_eq!(s.count, 1000.0);
        let t = s.totals.as_deref().unwrap();
        assert_eq!(
            (t.seen, t.sum, t.min, t.max),
            (1000, 500_500.0, 1.0, 1000.0)
        );
        assert_eq!(
            t.sum_squares,
            (1..=1000u64).map(|x| (x * x) as f64).sum::<f64>()
        );
        assert_eq!(s.mean(), 500.5);
        // Every kept value is a sample, and the reservoir is spread over the whole range
        // (a reservoir that kept only the first or last samples would fail this).
        assert!(s.values.iter().all(|v| (1.0..=1000.0).contains(v)));
        let low = s.values.iter().filter(|&&v| v <= 500.0).count();
        assert!(
            (30..=70).contains(&low),
            "{low} of 100 kept values in the lower half"
        );
    }

    #[test]
    fn merging_reservoirs_weights_each_side_by_what_it_stands_for() {
        // 9,000 samples of 1.0 on one thread, 1,000 of 2.0 on another: the merged reservoir
        // must hold about 90 % ones, not 50 %.
        let mut a = timer(std::iter::repeat_n(1.0, 9000), 200);
        let b = timer(std::iter::repeat_n(2.0, 1000), 200);
        a.merge(b, 200);
        assert_eq!(a.values.len(), 200);
        let t = a.totals.as_deref().unwrap();
        assert_eq!((t.seen, t.sum, t.min, t.max), (10_000, 11_000.0, 1.0, 2.0));
        assert_eq!(a.count, 10_000.0);
        let ones = a.values.iter().filter(|&&v| v == 1.0).count();
        assert!((160..=195).contains(&ones), "{ones} of 200 are ones");

        // Small sides that fit stay exact.
        let mut small = timer([1.0, 2.0], 4);
        small.merge(timer([3.0], 4), 4);
        assert_eq!((small.values, small.totals), (vec![1.0, 2.0, 3.0], None));
    }
}
