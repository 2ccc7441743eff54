//! The members of a set: exact while they weigh no more than a HyperLogLog would (and number
//! at most `limits.set_exact_members`), then an [`Hll`] of `aggregation.set_precision`.

use hashbrown::HashSet;

use super::Bounds;
use super::hll::Hll;

/// What one exact member costs: its text, the box that points to it, and a table slot.
const MEMBER_OVERHEAD: usize = 24;

/// A set's state (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum SetValue {
    Exact(ExactSet),
    Estimated(Box<Hll>),
}

/// Exact members and what they weigh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactSet {
    members: HashSet<Box<str>>,
    bytes: usize,
}

impl ExactSet {
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| &**m)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue::Exact(ExactSet::default())
    }
}

impl SetValue {
    /// Distinct members: exact, or the HyperLogLog estimate rounded.
    pub fn cardinality(&self) -> f64 {
        match self {
            SetValue::Exact(e) => e.len() as f64,
            SetValue::Estimated(h) => h.estimate().round(),
        }
    }

    /// Adds a member. Returns false when the set is (now) an estimate.
    #[inline]
    pub(super) fn insert(&mut self, member: &str, bounds: &Bounds) -> bool {
        match self {
            SetValue::Estimated(h) => {
                h.add(member.as_bytes());
                false
            }
            // Checked first so that a known member costs no allocation.
            SetValue::Exact(exact) if exact.members.contains(member) => true,
            SetValue::Exact(exact) => {
                exact.bytes += member.len() + MEMBER_OVERHEAD;
                exact.members.insert(Box::from(member));
                self.check_bounds(bounds)
            }
        }
    }

    /// [`SetValue::insert`] of a member already allocated (merging moves them).
    fn insert_owned(&mut self, member: Box<str>, bounds: &Bounds) {
        match self {
            SetValue::Estimated(h) => h.add(member.as_bytes()),
            SetValue::Exact(exact) => {
                let bytes = member.len() + MEMBER_OVERHEAD;
                if exact.members.insert(member) {
                    exact.bytes += bytes;
                    self.check_bounds(bounds);
                }
            }
        }
    }

    /// Switches an exact set that outgrew its bounds; false when the set is an estimate.
    fn check_bounds(&mut self, bounds: &Bounds) -> bool {
        match self {
            SetValue::Exact(e)
                if e.len() <= bounds.set_exact_members && e.bytes <= 1 << bounds.set_lg_k =>
            {
                true
            }
            SetValue::Exact(_) | SetValue::Estimated(_) => {
                self.estimate(bounds);
                false
            }
        }
    }

    /// Turns exact members into a HyperLogLog (once).
    fn estimate(&mut self, bounds: &Bounds) -> &mut Hll {
        if let SetValue::Exact(exact) = self {
            let mut hll = Hll::new(bounds.set_lg_k);
            for m in exact.members() {
                hll.add(m.as_bytes());
            }
            *self = SetValue::Estimated(Box::new(hll));
        }
        match self {
            SetValue::Estimated(h) => h,
            SetValue::Exact(_) => unreachable!("just estimated"),
        }
    }

    /// Folds `other` in: exact + exact stays exact within the bounds; anything with a
    /// HyperLogLog is one (register maximum).
    pub(super) fn merge(&mut self, other: SetValue, bounds: &Bounds) {
        match other {
            SetValue::Estimated(theirs) => self.estimate(bounds).merge(&theirs),
            SetValue::Exact(mut theirs) => {
                // The smaller side goes into the larger one.
                if let SetValue::Exact(mine) = self
                    && mine.len() < theirs.len()
                {
                    std::mem::swap(mine, &mut theirs);
                }
                for m in theirs.members {
                    self.insert_owned(m, bounds);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(exact: usize) -> Bounds {
        Bounds {
            set_exact_members: exact,
            ..Bounds::default()
        }
    }

    fn set(members: std::ops::Range<u32>, exact: usize) -> SetValue {
        let mut s = SetValue::default();
        for i in members {
            s.insert(&format!("user-{i}"), &bounds(exact));
        }
        s
    }

    #[test]
    fn exact_until_the_bound_then_an_estimate() {
        let s = set(0..100, 100);
        assert!(matches!(&s, SetValue::Exact(e) if e.len() == 100));
        let s = set(0..101, 100);
        assert!(matches!(&s, SetValue::Estimated(_)));
        // Within three standard errors (0.81 % each at precision 14).
        assert!((s.cardinality() - 101.0).abs() <= 3.0 * 0.0081 * 101.0);
        // Bytes bound too: 16 KiB of members at precision 14.
        let long = "x".repeat(1000);
        let mut s = SetValue::default();
        for i in 0..20 {
            s.insert(&format!("{long}{i}"), &bounds(1000));
        }
        assert!(matches!(s, SetValue::Estimated(_)), "20 kB of members");
    }

    #[test]
    fn merging_exact_stays_exact_and_an_estimate_wins() {
        let mut a = set(0..60, 100);
        a.merge(set(40..90, 100), &bounds(100));
        assert!(matches!(&a, SetValue::Exact(e) if e.len() == 90));
        a.merge(set(0..200, 100), &bounds(100));
        let SetValue::Estimated(h) = &a else {
            panic!("an estimate")
        };
        let SetValue::Estimated(whole) = set(0..200, 100) else {
            panic!()
        };
        assert_eq!(**h, *whole);
        // Exact into an estimate, and the other way round: the same registers.
        let mut b = set(0..200, 100);
        b.merge(set(0..90, 100), &bounds(100));
        let mut c = set(0..90, 100);
        c.merge(set(0..200, 100), &bounds(100));
        assert_eq!(b, c);
    }
}
