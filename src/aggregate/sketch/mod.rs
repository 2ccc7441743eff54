//! DDSketch: the relative-error quantile sketch timer-like series switch to beyond
//! `limits.max_timer_samples` (Masson, Rim, Lee: "DDSketch: a fast and fully-mergeable
//! quantile sketch with relative-error guarantees", VLDB 2019).
//!
//! **Mapping.** Logarithmic, with γ = 2^(2^−scale): bin `i` holds the magnitudes in
//! (γ^i, γ^(i+1)], exactly the buckets of an OpenTelemetry exponential histogram (and a
//! Prometheus native histogram) of that scale, so the same bins can be exported to either
//! without loss. The scale is the smallest whose relative accuracy α = (γ−1)/(γ+1) meets the
//! configured `aggregation.sketch_relative_accuracy`: 0.01 gives scale 6, α ≈ 0.54 %. Every
//! value a bin reports, 2γ^(i+1)/(1+γ), is within α of every value the bin holds.
//!
//! **Stores.** Positive and negative magnitudes have a dense store each; zero has a count.
//! A store holds at most `limits.max_sketch_bins` bins: beyond, the lowest bins collapse into
//! the lowest kept one (the paper's collapsing-lowest store; counted), so the high quantiles,
//! where the tail is, keep their guarantee. For negative values "lowest" means the smallest
//! magnitudes, the ones closest to zero.
//!
//! **Merging** adds bins, and a merged store collapses to the same boundary as a store fed
//! every value directly (the boundary only depends on the highest bin), so merging sketches
//! of parts gives the bins of the sketch of the whole, bit for bit.

/// Bin indices are within ±MAX_INDEX, so index arithmetic never overflows an `i32`.
pub const MAX_INDEX: i32 = 1 << 29;

/// The logarithmic mapping of one scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mapping {
    scale: i32,
    /// 2^scale: bins per doubling.
    per_doubling: f64,
    gamma: f64,
}

impl Mapping {
    /// Scales tried, finest last: 2^(2^-10) is ~0.03 % accuracy, far below any use.
    const MAX_SCALE: i32 = 10;

    /// Scale 6: γ = 2^(1/64), α ≈ 0.54 % (what a 1 % accuracy setting selects).
    pub const SCALE_6: Mapping = Mapping {
        scale: 6,
        per_doubling: 64.0,
        gamma: 1.010_889_286_051_700_5,
    };

    /// The coarsest mapping whose relative accuracy is at most `alpha` (in (0, 1)).
    pub fn for_accuracy(alpha: f64) -> Mapping {
        (0..=Mapping::MAX_SCALE)
            .map(Mapping::with_scale)
            .find(|m| m.relative_accuracy() <= alpha)
            .unwrap_or(Mapping::with_scale(Mapping::MAX_SCALE))
    }

    pub fn with_scale(scale: i32) -> Mapping {
        let per_doubling = f64::powi(2.0, scale);
        Mapping {
            scale,
            per_doubling,
            gamma: f64::powf(2.0, 1.0 / per_doubling),
        }
    }

    /// The OpenTelemetry / Prometheus scale.
    pub fn scale(&self) -> i32 {
        self.scale
    }

    /// γ, the ratio of consecutive bin bounds.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// α = (γ−1)/(γ+1): the largest relative error of a reported value.
    pub fn relative_accuracy(&self) -> f64 {
        (self.gamma - 1.0) / (self.gamma + 1.0)
    }

    /// The bin of a positive magnitude: ⌈log_γ v⌉ − 1.
    #[inline]
    pub fn index(&self, magnitude: f64) -> i32 {
        // Scales up to 6 need no logarithm: the scale-6 bin comes from the exponent and a
        // comparison of mantissa bits, and a coarser bin is a shift of it (OpenTelemetry's
        // buckets nest). Subnormals take the general path.
        if self.scale <= 6 && magnitude.is_normal() {
            return scale6_index(magnitude) >> (6 - self.scale);
        }
        self.index_by_log(magnitude)
    }

    /// [`Mapping::index`] through the logarithm (any scale).
    pub fn index_by_log(&self, magnitude: f64) -> i32 {
        let i = (magnitude.log2() * self.per_doubling).ceil() - 1.0;
        // Every finite magnitude is within ±2^21 at scale 10; the clamp keeps `as` defined.
        i.clamp(-f64::from(MAX_INDEX), f64::from(MAX_INDEX)) as i32
    }

    /// The value reported for bin `i`: 2γ^(i+1)/(1+γ), within α of all it holds.
    pub fn value(&self, index: i32) -> f64 {
        let exponent = f64::from(index + 1) / self.per_doubling;
        let value = 2.0 * f64::powf(2.0, exponent) / (1.0 + self.gamma);
        if value.is_finite() {
            return value;
        }
        // The top bins of the f64 range: 2γ^(i+1) (or γ^(i+1) itself, for the last bin)
        // overflows though the value reported, below γ^(i+1) by the factor 2/(1+γ), may not.
        // Only these bins take this path, so every other value stays bit for bit what the
        // readers of our sketches compute.
        (f64::powf(2.0, exponent - 1.0) * (2.0 / (1.0 + self.gamma)) * 2.0).min(f64::MAX)
    }

    /// The bins finite magnitudes fall in, from the smallest subnormal to `f64::MAX`: a
    /// decoded bin outside them holds no value a sample could have had.
    pub fn finite_indices(&self) -> std::ops::RangeInclusive<i32> {
        self.index(f64::from_bits(1))..=self.index(f64::MAX)
    }
}

/// Mantissa bits (the 52 below the implicit 1) of 2^(k/64), k = 0..64, and for each of the
/// 128 cells of the top 7 mantissa bits the largest k whose bound is below the cell's start.
/// Bounds are at least 1.08 % apart, a cell is 0.78 % wide: each cell holds at most one.
struct Scale6 {
    bounds: [u64; 64],
    cells: [u8; 128],
}

fn scale6() -> &'static Scale6 {
    static TABLE: std::sync::OnceLock<Scale6> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        const FRACTION: u64 = (1 << 52) - 1;
        let mut bounds = [0u64; 64];
        for (k, b) in bounds.iter_mut().enumerate() {
            *b = f64::powf(2.0, k as f64 / 64.0).to_bits() & FRACTION;
        }
        let mut cells = [0u8; 128];
        for (c, cell) in cells.iter_mut().enumerate() {
            let start = (c as u64) << 45;
            *cell = bounds.iter().rposition(|&b| b < start).unwrap_or(0) as u8;
        }
        Scale6 { bounds, cells }
    })
}

/// The scale-6 bin of a normal positive magnitude: for v = m·2^e with m in (2^(k/64),
/// 2^((k+1)/64)], bin 64e + k; m = 1 exactly is the top of the previous octave.
#[inline]
fn scale6_index(v: f64) -> i32 {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let fraction = bits & ((1 << 52) - 1);
    if fraction == 0 {
        return exponent * 64 - 1;
    }
    let t = scale6();
    let mut k = usize::from(t.cells[(fraction >> 45) as usize]);
    if k + 1 < 64 && t.bounds[k + 1] < fraction {
        k += 1;
    }
    exponent * 64 + k as i32
}

/// Bins of one sign: counts for a contiguous range of indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    /// The index of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
    total: u64,
}

impl Store {
    /// Samples in this store.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The index of the first bin (meaningless when empty).
    pub fn offset(&self) -> i32 {
        self.offset
    }

    /// Counts of the contiguous bins from [`Store::offset`] on.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    fn highest(&self) -> Option<i32> {
        (!self.counts.is_empty()).then(|| self.offset + self.counts.len() as i32 - 1)
    }

    /// Adds `n` samples to bin `index`; returns the bins collapsed to stay within `max_bins`.
    #[inline]
    fn add(&mut self, index: i32, n: u64, max_bins: usize) -> u64 {
        self.total += n;
        // Most samples land in a bin the store already spans.
        if let Some(c) = usize::try_from(index.wrapping_sub(self.offset))
            .ok()
            .and_then(|at| self.counts.get_mut(at))
        {
            *c += n;
            return 0;
        }
        self.add_outside(index, n, max_bins)
    }

    /// [`Store::add`] of a bin outside the current span: grow (or collapse) first.
    #[cold]
    fn add_outside(&mut self, index: i32, n: u64, max_bins: usize) -> u64 {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(n);
            return 0;
        }
        let high = self.highest().expect("not empty").max(index);
        let low = self.offset.min(index).max(high - max_bins as i32 + 1);
        let collapsed = self.reshape(low, high);
        let at = (index.max(low) - self.offset) as usize;
        self.counts[at] += n;
        collapsed
    }

    /// Makes the store cover exactly `low..=high`, folding bins below `low` into it.
    /// Returns the number of non-empty bins folded.
    fn reshape(&mut self, low: i32, high: i32) -> u64 {
        let mut collapsed = 0;
        if low > self.offset {
            let cut = ((low - self.offset) as usize).min(self.counts.len());
            let folded: u64 = self.counts[..cut].iter().sum();
            collapsed = self.counts[..cut].iter().filter(|&&c| c > 0).count() as u64;
            self.counts.drain(..cut);
            self.offset = low;
            if self.counts.is_empty() {
                self.counts.push(0);
            }
            self.counts[0] += folded;
        } else if low < self.offset {
            let grow = (self.offset - low) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = low;
        }
        let len = (high - self.offset + 1) as usize;
        if self.counts.len() < len {
            self.counts.resize(len, 0);
        }
        collapsed
    }

    /// Adds every bin of `other`; returns the bins collapsed.
    fn merge(&mut self, other: &Store, max_bins: usize) -> u64 {
        let Some(other_high) = other.highest() else {
            return 0;
        };
        if self.counts.is_empty() {
            *self = other.clone();
            return self.fit(max_bins);
        }
        self.total += other.total;
        let high = self.highest().expect("not empty").max(other_high);
        let low = self
            .offset
            .min(other.offset)
            .max(high - max_bins as i32 + 1);
        let mut collapsed = self.reshape(low, high);
        for (j, &c) in other.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let index = other.offset + j as i32;
            if index < low {
                collapsed += 1;
            }
            self.counts[(index.max(low) - self.offset) as usize] += c;
        }
        collapsed
    }

    /// Collapses to at most `max_bins` bins (after a clone from a larger store).
    fn fit(&mut self, max_bins: usize) -> u64 {
        match self.highest() {
            Some(high) if self.counts.len() > max_bins => {
                self.reshape(high - max_bins as i32 + 1, high)
            }
            _ => 0,
        }
    }

    /// The index of the bin holding the sample of 0-based `rank` counted from the lowest
    /// index (`rank < total`).
    fn index_at(&self, rank: u64) -> i32 {
        let mut seen = 0;
        for (j, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return self.offset + j as i32;
            }
        }
        self.highest().unwrap_or(0)
    }

    /// (index, count) of every non-empty bin, lowest index first.
    fn bins(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(j, c)| (self.offset + j as i32, *c))
    }
}

/// A DDSketch of unweighted samples (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch {
    mapping: Mapping,
    max_bins: usize,
    positive: Store,
    negative: Store,
    zero: u64,
    /// Non-empty bins folded into a lower one so far (reported as an internal statistic).
    collapsed: u64,
}

impl Sketch {
    pub fn new(mapping: Mapping, max_bins: usize) -> Sketch {
        Sketch {
            mapping,
            max_bins: max_bins.max(1),
            positive: Store::default(),
            negative: Store::default(),
            zero: 0,
            collapsed: 0,
        }
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub fn positive(&self) -> &Store {
        &self.positive
    }

    /// Bins of the magnitudes of negative samples.
    pub fn negative(&self) -> &Store {
        &self.negative
    }

    pub fn zero_count(&self) -> u64 {
        self.zero
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.negative.total + self.zero + self.positive.total
    }

    /// Bins collapsed so far.
    pub fn collapsed(&self) -> u64 {
        self.collapsed
    }

    /// Adds one sample (finite; the parsers reject the rest).
    #[inline]
    pub fn add(&mut self, v: f64) {
        // Below the smallest positive normal the logarithm is still fine, but a zero (or a
        // negative zero) has no bin: it has its own count, as in the paper.
        if v > 0.0 {
            let i = self.mapping.index(v);
            self.collapsed += self.positive.add(i, 1, self.max_bins);
        } else if v < 0.0 {
            let i = self.mapping.index(-v);
            self.collapsed += self.negative.add(i, 1, self.max_bins);
        } else {
            self.zero += 1;
        }
    }

    /// Adds `n` samples to bin `index` of the negative store (magnitudes of negative samples)
    /// or the positive one: what decoding a serialized sketch does.
    pub fn add_bin(&mut self, negative: bool, index: i32, n: u64) {
        if n == 0 {
            return;
        }
        let store = if negative {
            &mut self.negative
        } else {
            &mut self.positive
        };
        self.collapsed += store.add(index, n, self.max_bins);
    }

    /// Adds `n` zero samples.
    pub fn add_zeros(&mut self, n: u64) {
        self.zero += n;
    }

    /// Folds `other` (same mapping) into this sketch.
    pub fn merge(&mut self, other: &Sketch) {
        debug_assert_eq!(self.mapping, other.mapping);
        self.zero += other.zero;
        self.collapsed += other.collapsed;
        self.collapsed += self.positive.merge(&other.positive, self.max_bins);
        self.collapsed += self.negative.merge(&other.negative, self.max_bins);
    }

    /// The value of the sample of 0-based `rank` in ascending order (`rank < count`), within
    /// α of the exact one.
    pub fn value_at(&self, rank: u64) -> f64 {
        let negatives = self.negative.total;
        if rank < negatives {
            // Ascending values are descending magnitudes.
            let from_top = negatives - 1 - rank;
            return -self.mapping.value(self.negative.index_at(from_top));
        }
        if rank < negatives + self.zero {
            return 0.0;
        }
        let rank = (rank - negatives - self.zero).min(self.positive.total.saturating_sub(1));
        self.mapping.value(self.positive.index_at(rank))
    }

    /// Every bin as (reported value, count), ascending by value.
    pub fn values(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let m = self.mapping;
        let negative = self
            .negative
            .bins()
            .rev()
            .map(move |(i, c)| (-m.value(i), c));
        let zero = (self.zero > 0).then_some((0.0, self.zero));
        let positive = self.positive.bins().map(move |(i, c)| (m.value(i), c));
        negative.chain(zero).chain(positive)
    }
}

#[cfg(test)]
mod tests;
