//! Types that cross stages: metric types, tags and the series identity.
//!
//! A *series* is identified by its name, its [`MetricType`] and its tag set (sorted by key, one
//! value per key). Both protocols produce the same identity, so a pystatsd JSON counter and a
//! DogStatsD counter with the same name and tags aggregate into one series.
//!
//! Parsers produce borrowed [`SeriesRef`]s that point into the datagram; the aggregation tables
//! store owned [`SeriesKey`]s. The two hash identically and compare through
//! [`hashbrown::Equivalent`], so looking up a known series allocates nothing.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};

/// The kind of aggregation a series gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    /// `c`, pystatsd `counter`: sum of `value / sample_rate`.
    Counter,
    /// `g`, pystatsd `guage`/`gauge`: last value, `+`/`-` deltas.
    Gauge,
    /// `ms`, pystatsd `timer`: samples with Etsy timer statistics.
    Timer,
    /// DogStatsD `h`, pystatsd `histogram`: aggregated like a timer.
    Histogram,
    /// DogStatsD `d`: aggregated like a timer.
    Distribution,
    /// `s`, pystatsd `set`: number of distinct members.
    Set,
    /// pystatsd `trace`: number of datagrams seen.
    Trace,
}

impl MetricType {
    /// Every type, in a fixed order (used for stable output and tests).
    pub const ALL: [MetricType; 7] = [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Timer,
        MetricType::Histogram,
        MetricType::Distribution,
        MetricType::Set,
        MetricType::Trace,
    ];

    /// The name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Timer => "timer",
            MetricType::Histogram => "histogram",
            MetricType::Distribution => "distribution",
            MetricType::Set => "set",
            MetricType::Trace => "trace",
        }
    }

    /// True for the types that keep samples and produce timer statistics.
    pub fn has_samples(self) -> bool {
        matches!(
            self,
            MetricType::Timer | MetricType::Histogram | MetricType::Distribution
        )
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A borrowed tag: key and value. Values are borrowed from the datagram except where the
/// protocol forces a conversion (a JSON number or bool becomes its decimal text).
pub type TagRef<'a> = (&'a str, Cow<'a, str>);

/// Sorts tags by key and keeps the *last* value given for a repeated key, so a tag set is
/// a map. Stable sort keeps input order within a key, which makes "last wins" well defined.
pub fn normalize_tags(tags: &mut Vec<TagRef<'_>>) {
    sort_keep_last(tags, |t| t.0);
}

/// The tag-set rule for any tag representation: stable sort by key, then keep the last
/// entry of each run of equal keys.
fn sort_keep_last<T>(tags: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    if tags.len() > 1 {
        tags.sort_by(|a, b| key(a).cmp(key(b)));
        let mut write = 0;
        for read in 0..tags.len() {
            if read + 1 < tags.len() && key(&tags[read + 1]) == key(&tags[read]) {
                continue;
            }
            tags.swap(write, read);
            write += 1;
        }
        tags.truncate(write);
    }
}

/// An owned tag set: sorted by key, keys unique.
pub type Tags = Box<[(Box<str>, Box<str>)]>;

/// Owned series identity, stored in snapshots (aggregation tables store its parts).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    name: Box<str>,
    mtype: MetricType,
    tags: Tags,
}

impl SeriesKey {
    /// Builds a key; `tags` are normalized (sorted by key, last value wins).
    pub fn new<N, K, V>(name: N, mtype: MetricType, tags: impl IntoIterator<Item = (K, V)>) -> Self
    where
        N: Into<Box<str>>,
        K: Into<Box<str>>,
        V: Into<Box<str>>,
    {
        let mut tags: Vec<(Box<str>, Box<str>)> = tags
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        sort_keep_last(&mut tags, |t| &*t.0);
        SeriesKey {
            name: name.into(),
            mtype,
            tags: tags.into_boxed_slice(),
        }
    }

    /// A key from parts that are already normalized (`tags` sorted by key, keys unique).
    pub(crate) fn from_parts(name: Box<str>, mtype: MetricType, tags: Tags) -> SeriesKey {
        SeriesKey { name, mtype, tags }
    }

    pub(crate) fn into_parts(self) -> (Box<str>, MetricType, Tags) {
        (self.name, self.mtype, self.tags)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn metric_type(&self) -> MetricType {
        self.mtype
    }

    /// Tags sorted by key, keys unique.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
        self.tags.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.tags[i].1)
    }

    /// A copy of this key with `extra` tags added where the series does not already carry
    /// the key (the series' own tags win).
    pub fn with_default_tags(&self, extra: &[(String, String)]) -> SeriesKey {
        let mut tags: Vec<(Box<str>, Box<str>)> = extra
            .iter()
            .filter(|(k, _)| self.tag(k).is_none())
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect();
        if tags.is_empty() {
            return self.clone();
        }
        tags.extend(self.tags.iter().cloned());
        SeriesKey::new(self.name.clone(), self.mtype, tags)
    }
}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(
            state,
            &self.name,
            self.mtype,
            self.tags.iter().map(|(k, v)| (&**k, &**v)),
        );
    }
}

/// Borrowed series identity as produced by the parsers. `tags` must be normalized
/// ([`normalize_tags`]) before the reference is hashed or compared.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'r, 'a> {
    pub name: &'r str,
    pub mtype: MetricType,
    pub tags: &'r [TagRef<'a>],
}

impl SeriesRef<'_, '_> {
    pub fn to_key(&self) -> SeriesKey {
        SeriesKey {
            name: self.name.into(),
            mtype: self.mtype,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (Box::from(*k), Box::from(&**v)))
                .collect(),
        }
    }
}

impl Hash for SeriesRef<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(
            state,
            self.name,
            self.mtype,
            self.tags.iter().map(|(k, v)| (*k, &**v)),
        );
    }
}

impl hashbrown::Equivalent<SeriesKey> for SeriesRef<'_, '_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.mtype == key.mtype
            && self.name == &*key.name
            && self.tags.len() == key.tags.len()
            && self
                .tags
                .iter()
                .zip(key.tags.iter())
                .all(|((k1, v1), (k2, v2))| *k1 == &**k2 && **v1 == **v2)
    }
}

/// The one hashing routine both key forms use, so equal identities hash equally.
/// Lengths are written before strings so that ("ab","c") and ("a","bc") differ.
fn hash_parts<'s, H: Hasher>(
    state: &mut H,
    name: &str,
    mtype: MetricType,
    tags: impl Iterator<Item = (&'s str, &'s str)>,
) {
    state.write_usize(name.len());
    state.write(name.as_bytes());
    state.write_u8(mtype as u8);
    for (k, v) in tags {
        state.write_usize(k.len());
        state.write(k.as_bytes());
        state.write_usize(v.len());
        state.write(v.as_bytes());
    }
}

/// One parsed value of a metric line or JSON object.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample<'a> {
    /// A number: counter increment, gauge value, timer sample.
    Value(f64),
    /// A gauge delta (`+N` / `-N`).
    Delta(f64),
    /// A set member.
    Member(Cow<'a, str>),
}

/// One parsed metric value, ready to aggregate.
#[derive(Clone, Debug)]
pub struct Metric<'r, 'a> {
    pub series: SeriesRef<'r, 'a>,
    pub sample: Sample<'r>,
    /// In `(0, 1]`; counters and timer counts are weighted by `1 / sample_rate`.
    pub sample_rate: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn normalize_sorts_and_keeps_last_value() {
        let mut tags: Vec<TagRef> = vec![
            ("env", "a".into()),
            ("host", "h".into()),
            ("app", "x".into()),
            ("env", "b".into()),
        ];
        normalize_tags(&mut tags);
        let got: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, &**v)).collect();
        assert_eq!(got, vec![("app", "x"), ("env", "b"), ("host", "h")]);
    }

    #[test]
    fn ref_and_key_hash_and_compare_equal() {
        let tags: Vec<TagRef> = vec![("a", "1".into()), ("b", "2".into())];
        let r = SeriesRef {
            name: "m",
            mtype: MetricType::Counter,
            tags: &tags,
        };
        let k = SeriesKey::new("m", MetricType::Counter, [("b", "2"), ("a", "1")]);
        let s = hashbrown::DefaultHashBuilder::default();
        assert_eq!(s.hash_one(r), s.hash_one(&k));
        assert!(hashbrown::Equivalent::equivalent(&r, &k));
        assert_eq!(r.to_key(), k);
        let other = SeriesKey::new("m", MetricType::Gauge, [("a", "1"), ("b", "2")]);
        assert!(!hashbrown::Equivalent::equivalent(&r, &other));
    }

    #[test]
    fn default_tags_do_not_override_series_tags() {
        let k = SeriesKey::new("m", MetricType::Counter, [("env", "prod")]);
        let g = vec![
            ("env".to_string(), "dev".to_string()),
            ("dc".to_string(), "x".to_string()),
        ];
        let out = k.with_default_tags(&g);
        assert_eq!(
            out.tags().collect::<Vec<_>>(),
            vec![("dc", "x"), ("env", "prod")]
        );
    }
}
