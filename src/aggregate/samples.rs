//! The samples of a timer-like series: every sample up to `limits.max_timer_samples` in an
//! interval (Etsy's statistics, exactly), then a [`Sketch`] with exact totals.

use super::Bounds;
use super::sketch::Sketch;

/// Samples of a timer-like series (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Every sample while there are at most `max_timer_samples`; sorted ascending once the
    /// flusher has finalized the snapshot. Empty once sketched.
    pub values: Vec<f64>,
    /// Σ 1/sample_rate: the number of events the samples stand for (Etsy `count`).
    pub count: f64,
    /// The sketch, once the series saw more samples than the cap.
    pub sketched: Option<Box<Sketched>>,
}

/// A sketched series: the sketch, and what stays exact.
#[derive(Clone, Debug, PartialEq)]
pub struct Sketched {
    pub sketch: Sketch,
    pub totals: Totals,
}

/// Exact totals of every sample of a sketched series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Totals {
    /// Samples seen (unweighted by sample rate).
    pub seen: u64,
    pub sum: f64,
    pub sum_squares: f64,
    pub min: f64,
    pub max: f64,
}

impl Totals {
    const EMPTY: Totals = Totals {
        seen: 0,
        sum: 0.0,
        sum_squares: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    #[inline]
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

impl Sketched {
    fn new(bounds: &Bounds) -> Sketched {
        Sketched {
            sketch: Sketch::new(bounds.sketch, bounds.max_sketch_bins),
            totals: Totals::EMPTY,
        }
    }

    #[inline]
    fn add(&mut self, v: f64) {
        self.sketch.add(v);
        self.totals.add(v);
    }
}

impl Samples {
    /// Number of samples seen (not weighted by sample rate).
    pub fn seen(&self) -> u64 {
        self.sketched
            .as_ref()
            .map_or(self.values.len() as u64, |s| s.totals.seen)
    }

    /// Adds one sample. Returns false when it went into the sketch.
    #[inline]
    pub(super) fn push(&mut self, v: f64, bounds: &Bounds) -> bool {
        if let Some(s) = &mut self.sketched {
            s.add(v);
            return false;
        }
        if self.values.len() < bounds.max_timer_samples {
            self.values.push(v);
            return true;
        }
        self.sketch(bounds).add(v);
        false
    }

    /// Moves the raw samples into a sketch (once).
    fn sketch(&mut self, bounds: &Bounds) -> &mut Sketched {
        self.sketched.get_or_insert_with(|| {
            let mut s = Box::new(Sketched::new(bounds));
            for v in self.values.drain(..) {
                s.add(v);
            }
            self.values = Vec::new();
            s
        })
    }

    /// Folds `other` in: raw + raw stays raw within the cap; anything else is a sketch.
    pub(super) fn merge(&mut self, mut other: Samples, bounds: &Bounds) {
        self.count += other.count;
        let fits = self.values.len() + other.values.len() <= bounds.max_timer_samples;
        if self.sketched.is_none() && other.sketched.is_none() && fits {
            self.values.append(&mut other.values);
            return;
        }
        let mine = self.sketch(bounds);
        match other.sketched {
            Some(theirs) => {
                mine.sketch.merge(&theirs.sketch);
                mine.totals.merge(&theirs.totals);
            }
            None => {
                for v in other.values {
                    mine.add(v);
                }
            }
        }
    }

    /// Arithmetic mean of every sample seen (0 with none).
    pub fn mean(&self) -> f64 {
        match &self.sketched {
            Some(s) => s.totals.sum / s.totals.seen as f64,
            None => crate::aggregate::timer::mean(&self.values),
        }
    }

    /// Every sample (count 1) or sketch bin (its reported value and count), ascending once
    /// finalized.
    pub fn weighted(&self) -> Box<dyn Iterator<Item = (f64, u64)> + '_> {
        match &self.sketched {
            Some(s) => Box::new(s.sketch.values()),
            None => Box::new(self.values.iter().map(|&v| (v, 1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(cap: usize) -> Bounds {
        Bounds {
            max_timer_samples: cap,
            ..Bounds::default()
        }
    }

    fn samples(values: impl IntoIterator<Item = f64>, cap: usize) -> Samples {
        let mut s = Samples::default();
        for v in values {
            s.count += 1.0;
            s.push(v, &bounds(cap));
        }
        s
    }

    #[test]
    fn beyond_the_cap_a_sketch_with_exact_totals() {
        let under = samples((1..=4).map(f64::from), 4);
        assert_eq!((under.values.len(), under.sketched.is_none()), (4, true));

        let s = samples((1..=1000).map(f64::from), 100);
        assert!(s.values.is_empty());
        let t = s.sketched.as_ref().unwrap().totals;
        assert_eq!(
            (t.seen, t.sum, t.min, t.max),
            (1000, 500_500.0, 1.0, 1000.0)
        );
        assert_eq!(
            t.sum_squares,
            (1..=1000u64).map(|x| (x * x) as f64).sum::<f64>()
        );
        assert_eq!((s.seen(), s.mean(), s.count), (1000, 500.5, 1000.0));
    }

    #[test]
    fn raw_stays_raw_within_the_cap_and_merges_into_the_same_sketch_beyond_it() {
        let mut small = samples([1.0, 2.0], 4);
        small.merge(samples([3.0], 4), &bounds(4));
        assert_eq!((small.values, small.sketched), (vec![1.0, 2.0, 3.0], None));

        let all: Vec<f64> = (1..=300).map(|i| f64::from(i) * 1.5).collect();
        let whole = samples(all.iter().copied(), 100);
        let mut a = samples(all[..80].iter().copied(), 100);
        a.merge(samples(all[80..150].iter().copied(), 100), &bounds(100));
        a.merge(samples(all[150..].iter().copied(), 100), &bounds(100));
        let (got, want) = (a.sketched.unwrap(), whole.sketched.unwrap());
        assert_eq!(got.sketch.positive(), want.sketch.positive());
        assert_eq!(got.totals.seen, want.totals.seen);
        assert_eq!((got.totals.min, got.totals.max), (1.5, 450.0));
    }
}
