//! Flush stage: every interval, collect each receiver's table, merge them into one immutable
//! [`Snapshot`] and offer it to every sink.
//!
//! - Flushes happen at wall-clock multiples of the interval (10 s → :00, :10, …); the
//!   snapshot timestamp is that boundary. The final flush at shutdown uses the current time.
//! - Collecting is a message exchange, not a lock: the flusher sends [`Control::Swap`] to
//!   every receiver and waits for one [`Harvest`] each. A receiver answers between datagrams,
//!   so no metric is lost or counted twice.
//! - [`Aggregator`] holds what outlives an interval: gauge values (Etsy gauges persist),
//!   idle series still owed zero reports, and the previous flush's size and duration.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use hashbrown::HashMap;

use crate::admin::{AdminState, FlusherCommand};
use crate::aggregate::timer::Percentile;
use crate::aggregate::{Gauge, SeriesGuard, Table, Value};
use crate::format::time::unix_millis;
use crate::logging::RateLimit;
use crate::metric::{MetricType, SeriesKey};
use crate::receive::{Control, Harvest, Protocol};
use crate::sink::{SinkHandle, SinkTotals};
use crate::snapshot::Snapshot;
use crate::stats::ReceiverStats;

/// How long the flusher waits for receivers to answer a swap before flushing without the
/// missing ones (their data is then reported in the next flush, not lost).
const HARVEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Flush behaviour, from [`crate::config::Config`].
#[derive(Debug, Clone)]
pub struct FlushSettings {
    pub interval: Duration,
    pub percentiles: Arc<[Percentile]>,
    /// Tags added to every series that lacks the key.
    pub global_tags: Vec<(String, String)>,
    pub delete_idle_gauges: bool,
    pub idle_zero_flushes: u32,
    /// Internal statistics prefix; `None` disables them.
    pub stats_prefix: Option<String>,
    /// Samples kept per timer series when merging the receivers' tables.
    pub max_timer_samples: usize,
    /// Gauges remembered across intervals.
    pub max_gauges: usize,
    /// Every configured limit as (config key, value), reported as `limit` gauges so
    /// operators can see what applies without reading the config.
    pub limits: Vec<(&'static str, u64)>,
    /// The receivers' cardinality guard (pruned after each flush, reported in the stats).
    pub guard: Option<Arc<SeriesGuard>>,
}

/// Sink counters as last reported, to emit per-interval deltas.
#[derive(Debug, Clone, Default)]
pub struct SinkReport {
    pub name: String,
    pub last: SinkTotals,
}

/// Merges harvests into snapshots and keeps the state that spans intervals.
#[derive(Debug)]
pub struct Aggregator {
    settings: FlushSettings,
    /// Gauge value and the flush generation that last updated it.
    gauges: HashMap<SeriesKey, (f64, u64)>,
    /// Zero reports still owed to idle series, and the generation that last saw them.
    idle: HashMap<SeriesKey, (u32, u64)>,
    generation: u64,
    last_series: usize,
    last_duration: Duration,
    /// (listener, effective receive buffer bytes), reported as gauges.
    listeners: Vec<(Protocol, usize)>,
    /// New gauges not remembered in the last flush because `max_gauges` was reached.
    gauges_not_kept: u64,
    /// The last flush's internal statistics (unprefixed), for the admin plane.
    last_internal: Vec<(SeriesKey, Value)>,
    /// Inodes of the receivers' sockets, to find their kernel drop counters.
    socket_inodes: Vec<(Protocol, u64)>,
    gauge_log: RateLimit,
}

impl Aggregator {
    pub fn new(settings: FlushSettings, listeners: Vec<(Protocol, usize)>) -> Aggregator {
        Aggregator {
            settings,
            gauges: HashMap::new(),
            idle: HashMap::new(),
            generation: 0,
            last_series: 0,
            last_duration: Duration::ZERO,
            listeners,
            gauges_not_kept: 0,
            last_internal: Vec::new(),
            socket_inodes: Vec::new(),
            gauge_log: RateLimit::new(Duration::from_secs(60)),
        }
    }

    /// Reports the kernel's drop counters of these sockets (`socket_drops`).
    pub fn with_socket_inodes(mut self, inodes: Vec<(Protocol, u64)>) -> Aggregator {
        self.socket_inodes = inodes;
        self
    }

    /// The last flush's internal statistics, named without the prefix.
    pub fn last_internal(&self) -> &[(SeriesKey, Value)] {
        &self.last_internal
    }

    /// Forgets the persisted state (remembered gauges, zero reports owed to idle series) of
    /// series of `types` whose name matches `pattern` (see [`crate::admin::matches`]).
    /// Returns the names forgotten.
    pub fn delete(&mut self, types: &[MetricType], pattern: &str) -> Vec<String> {
        let mut deleted = Vec::new();
        let mut forget = |key: &SeriesKey| {
            let hit =
                types.contains(&key.metric_type()) && crate::admin::matches(pattern, key.name());
            if hit {
                deleted.push(key.name().to_string());
            }
            !hit
        };
        self.gauges.retain(|key, _| forget(key));
        self.idle.retain(|key, _| forget(key));
        deleted
    }

    /// Builds the snapshot for one interval from the receivers' harvests and the sinks'
    /// cumulative counters (`sinks` is updated to the reported values).
    pub fn build(
        &mut self,
        harvests: Vec<Harvest>,
        sinks: &mut [SinkReport],
        sink_totals: &[SinkTotals],
        timestamp_ms: u64,
    ) -> Snapshot {
        let started = Instant::now();
        self.generation += 1;
        let generation = self.generation;

        let mut merged = Table::with_capacity(0, self.settings.max_timer_samples);
        let mut stats: Vec<(Protocol, ReceiverStats)> = Vec::new();
        for harvest in harvests {
            match stats.iter_mut().find(|(p, _)| *p == harvest.protocol) {
                Some((_, s)) => s.add(&harvest.stats),
                None => stats.push((harvest.protocol, harvest.stats)),
            }
            merged.merge(harvest.table);
        }
        let mut internal = Table::new();
        self.internal_stats(&stats, sinks, sink_totals, &mut internal);
        self.last_internal.clear();
        self.last_internal.extend(internal.drain());
        if let Some(prefix) = &self.settings.stats_prefix {
            for (key, value) in &self.last_internal {
                let name = format!("{prefix}{}", key.name());
                merged.merge_value(
                    SeriesKey::new(name, key.metric_type(), key.tags()),
                    value.clone(),
                );
            }
        }
        if !self.settings.global_tags.is_empty() {
            let mut tagged = Table::with_capacity(merged.len(), self.settings.max_timer_samples);
            for (key, value) in merged.drain() {
                tagged.merge_value(key.with_default_tags(&self.settings.global_tags), value);
            }
            merged = tagged;
        }

        let track_idle = self.settings.idle_zero_flushes > 0;
        let max_gauges = self.settings.max_gauges;
        let mut gauges_not_kept = 0;
        let mut series = Vec::with_capacity(merged.len() + self.gauges.len());
        for (key, value) in merged.drain() {
            let value = match value {
                Value::Gauge(g) => {
                    let resolved = match self.gauges.get_mut(&key) {
                        Some(known) => {
                            *known = (g.resolve(Some(known.0)), generation);
                            known.0
                        }
                        None => {
                            let resolved = g.resolve(None);
                            if self.gauges.len() < max_gauges {
                                self.gauges.insert(key.clone(), (resolved, generation));
                            } else {
                                gauges_not_kept += 1;
                            }
                            resolved
                        }
                    };
                    Value::Gauge(Gauge {
                        value: resolved,
                        absolute: true,
                        ..g
                    })
                }
                mut other => {
                    if let Some(s) = other.samples_mut() {
                        s.values.sort_unstable_by(f64::total_cmp);
                    }
                    other
                }
            };
            if track_idle && key.metric_type() != MetricType::Gauge {
                self.idle
                    .insert(key.clone(), (self.settings.idle_zero_flushes, generation));
            }
            series.push((key, value));
        }

        let delete_idle_gauges = self.settings.delete_idle_gauges;
        self.gauges.retain(|key, (value, seen)| {
            if *seen == generation {
                return true;
            }
            if delete_idle_gauges {
                return false;
            }
            series.push((
                key.clone(),
                Value::Gauge(Gauge {
                    value: *value,
                    absolute: true,
                    stamp: 0,
                }),
            ));
            true
        });
        self.idle.retain(|key, (remaining, seen)| {
            if *seen == generation {
                return true;
            }
            if *remaining == 0 {
                return false;
            }
            *remaining -= 1;
            series.push((key.clone(), Value::empty(key.metric_type())));
            true
        });

        if gauges_not_kept > 0
            && let Some(suppressed) = self.gauge_log.allow()
        {
            log::warn!(
                "{gauges_not_kept} new gauges reported but not remembered for later \
                 intervals: limits.max_gauges ({max_gauges}) reached ({suppressed} more \
                 reports suppressed)"
            );
        }
        self.gauges_not_kept = gauges_not_kept;
        if let Some(guard) = &self.settings.guard {
            guard.prune(generation as u32);
        }
        self.last_series = series.len();
        self.last_duration = started.elapsed();
        Snapshot {
            timestamp_ms,
            interval: self.settings.interval,
            percentiles: Arc::clone(&self.settings.percentiles),
            series,
        }
    }

    /// The interval's internal statistics, named without the prefix.
    fn internal_stats(
        &self,
        stats: &[(Protocol, ReceiverStats)],
        sinks: &mut [SinkReport],
        sink_totals: &[SinkTotals],
        table: &mut Table,
    ) {
        let counter = |table: &mut Table, name: &str, tags: &[(&str, &str)], v: u64| {
            let key = SeriesKey::new(name, MetricType::Counter, tags.iter().copied());
            table.merge_value(key, Value::Counter(v as f64));
        };
        let gauge = |table: &mut Table, name: &str, tags: &[(&str, &str)], v: f64| {
            let key = SeriesKey::new(name, MetricType::Gauge, tags.iter().copied());
            table.merge_value(
                key,
                Value::Gauge(Gauge {
                    value: v,
                    absolute: true,
                    stamp: 0,
                }),
            );
        };
        for (protocol, s) in stats {
            let listener = [("listener", protocol.name())];
            for (name, v) in s.counters() {
                counter(table, name, &listener, v);
            }
            for reason in crate::parse::Reject::ALL {
                let v = s.bad_lines[reason.index()];
                if v > 0 {
                    let tags = [("listener", protocol.name()), ("reason", reason.as_str())];
                    counter(table, "bad_lines", &tags, v);
                }
            }
        }
        if !self.socket_inodes.is_empty() {
            for (protocol, drops) in socket_drops(&self.socket_inodes) {
                gauge(
                    table,
                    "socket_drops",
                    &[("listener", protocol.name())],
                    drops as f64,
                );
            }
        }
        for (protocol, bytes) in &self.listeners {
            gauge(
                table,
                "receive_buffer_bytes",
                &[("listener", protocol.name())],
                *bytes as f64,
            );
        }
        gauge(table, "series", &[], self.last_series as f64);
        gauge(table, "gauges_kept", &[], self.gauges.len() as f64);
        // Reported one flush late, like `series`: counted while building the last snapshot.
        counter(table, "gauges_not_kept", &[], self.gauges_not_kept);
        if let Some(guard) = &self.settings.guard {
            gauge(
                table,
                "guard_tracked_names",
                &[],
                guard.tracked_names() as f64,
            );
        }
        for (name, value) in &self.settings.limits {
            gauge(table, "limit", &[("limit", name)], *value as f64);
        }
        gauge(
            table,
            "flush_duration_ms",
            &[],
            self.last_duration.as_secs_f64() * 1000.0,
        );
        for (report, now) in sinks.iter_mut().zip(sink_totals) {
            let tags = [("sink", report.name.as_str())];
            let last = report.last;
            for (name, now, last) in [
                ("snapshot_drops", now.drops, last.drops),
                ("sink_errors", now.errors, last.errors),
                ("sink_delivered", now.delivered, last.delivered),
                ("sink_retried", now.retried, last.retried),
                ("sink_failed", now.failed, last.failed),
                ("sink_dropped", now.dropped, last.dropped),
            ] {
                counter(table, name, &tags, now.saturating_sub(last));
            }
            gauge(
                table,
                "sink_buffered_bytes",
                &tags,
                now.buffered_bytes as f64,
            );
            report.last = *now;
        }
    }
}

/// The kernel's cumulative drop counters of our sockets, per listener, from
/// `/proc/net/udp` and `/proc/net/udp6` (the last column; matched by socket inode). Empty
/// where /proc is not available.
fn socket_drops(inodes: &[(Protocol, u64)]) -> Vec<(Protocol, u64)> {
    let mut out: Vec<(Protocol, u64)> = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(inode), Some(drops)) = (
                fields.get(9).and_then(|f| f.parse::<u64>().ok()),
                fields.last().and_then(|f| f.parse::<u64>().ok()),
            ) else {
                continue;
            };
            if let Some((protocol, _)) = inodes.iter().find(|(_, i)| *i == inode) {
                match out.iter_mut().find(|(p, _)| p == protocol) {
                    Some((_, total)) => *total += drops,
                    None => out.push((*protocol, drops)),
                }
            }
        }
    }
    out
}

/// The flusher thread's state.
pub struct Flusher {
    aggregator: Aggregator,
    receivers: Vec<Sender<Control>>,
    harvests: Receiver<Harvest>,
    sinks: Vec<SinkHandle>,
    reports: Vec<SinkReport>,
    /// The admin plane's view, published after each flush, and its requests.
    admin: Option<(Arc<AdminState>, Receiver<FlusherCommand>)>,
}

impl Flusher {
    pub fn new(
        aggregator: Aggregator,
        receivers: Vec<Sender<Control>>,
        harvests: Receiver<Harvest>,
        sinks: Vec<SinkHandle>,
    ) -> Flusher {
        let reports = sinks
            .iter()
            .map(|s| SinkReport {
                name: s.name().to_string(),
                ..SinkReport::default()
            })
            .collect();
        Flusher {
            aggregator,
            receivers,
            harvests,
            sinks,
            reports,
            admin: None,
        }
    }

    /// Publishes every snapshot to `state` and answers its requests between flushes.
    pub fn with_admin(mut self, state: Arc<AdminState>) -> Flusher {
        let (tx, rx) = crossbeam_channel::bounded(16);
        state.set_commands(tx);
        self.admin = Some((state, rx));
        self
    }

    /// Runs until `shutdown` fires (or its sender is dropped), then performs the final
    /// flush and waits for every sink to deliver it. The thread returns each sink's final
    /// counters.
    pub fn spawn(
        self,
        shutdown: Receiver<()>,
    ) -> std::io::Result<JoinHandle<Vec<(String, SinkTotals)>>> {
        thread::Builder::new()
            .name("flusher".into())
            .spawn(move || self.run(&shutdown))
    }

    fn run(mut self, shutdown: &Receiver<()>) -> Vec<(String, SinkTotals)> {
        let interval_ms = self.aggregator.settings.interval.as_millis() as u64;
        loop {
            let now = unix_millis(SystemTime::now());
            let boundary = (now / interval_ms + 1) * interval_ms;
            let commands = match &self.admin {
                Some((_, rx)) => rx.clone(),
                None => crossbeam_channel::never(),
            };
            let last = crossbeam_channel::select! {
                recv(shutdown) -> _ => true,
                recv(commands) -> command => {
                    if let Ok(command) = command {
                        self.answer(command);
                    }
                    continue;
                }
                default(Duration::from_millis(boundary - now)) => false,
            };
            let timestamp = if last {
                unix_millis(SystemTime::now())
            } else {
                boundary
            };
            self.flush(last, timestamp);
            if last {
                break;
            }
        }
        self.sinks
            .into_iter()
            .map(|sink| (sink.name().to_string(), sink.finish()))
            .collect()
    }

    fn answer(&mut self, command: FlusherCommand) {
        match command {
            FlusherCommand::Delete {
                types,
                pattern,
                reply,
            } => {
                let _ = reply.send(self.aggregator.delete(types, &pattern));
            }
        }
    }

    fn flush(&mut self, last: bool, timestamp_ms: u64) {
        let request = if last { Control::Final } else { Control::Swap };
        let expected = self
            .receivers
            .iter()
            .filter(|r| r.send(request).is_ok())
            .count();
        let deadline = Instant::now() + HARVEST_TIMEOUT;
        let mut harvests = Vec::with_capacity(expected);
        while harvests.len() < expected {
            match self.harvests.recv_deadline(deadline) {
                Ok(h) => harvests.push(h),
                Err(_) => {
                    log::error!(
                        "flush: {} of {expected} receivers did not answer within {HARVEST_TIMEOUT:?}; \
                         their data will be in a later flush",
                        expected - harvests.len()
                    );
                    break;
                }
            }
        }
        // Only now that every receiver has swapped: released earlier, the slots one receiver
        // gave back could be filled by another still in the old interval.
        if let Some(guard) = &self.aggregator.settings.guard {
            guard.release(harvests.iter().map(|h| h.table.len()).sum());
        }
        let totals: Vec<SinkTotals> = self.sinks.iter().map(|s| s.counters().totals()).collect();
        let snapshot =
            Arc::new(
                self.aggregator
                    .build(harvests, &mut self.reports, &totals, timestamp_ms),
            );
        // Published first, so whoever sees a sink's output can already query it.
        if let Some((admin, _)) = &self.admin {
            admin.publish(Arc::clone(&snapshot), self.aggregator.last_internal());
        }
        for sink in &self.sinks {
            sink.offer(Arc::clone(&snapshot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::{Metric, Sample, SeriesRef, TagRef};

    fn settings() -> FlushSettings {
        FlushSettings {
            interval: Duration::from_secs(10),
            percentiles: vec![Percentile::new(90.0).unwrap()].into(),
            global_tags: Vec::new(),
            delete_idle_gauges: false,
            idle_zero_flushes: 0,
            stats_prefix: None,
            max_timer_samples: usize::MAX,
            max_gauges: usize::MAX,
            limits: Vec::new(),
            guard: None,
        }
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

    fn build(a: &mut Aggregator, harvests: Vec<Harvest>) -> Vec<(SeriesKey, Value)> {
        let mut s = a.build(harvests, &mut [], &[], 0).series;
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
        let mut a = Aggregator::new(settings(), vec![]);
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
        let mut a = Aggregator::new(settings(), vec![]);
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
        let mut a = Aggregator::new(
            FlushSettings {
                max_gauges: 1,
                ..settings()
            },
            vec![],
        );
        let g = MetricType::Gauge;
        let set = |name| harvest(&[(name, g, Sample::Value(5.0))], &[]);
        let out = build(&mut a, vec![set("a"), set("b")]);
        assert_eq!(out.len(), 2);
        assert_eq!(a.gauges_not_kept, 1);
        // The next interval repeats only the remembered one; an update of it still works.
        let out = build(&mut a, vec![]);
        assert_eq!(out.len(), 1);
        let out = build(
            &mut a,
            vec![harvest(&[(out[0].0.name(), g, Sample::Delta(1.0))], &[])],
        );
        assert_eq!(out[0].1, gauge(6.0));
        assert_eq!(a.gauges_not_kept, 0);
    }

    #[test]
    fn delete_idle_gauges() {
        let mut a = Aggregator::new(
            FlushSettings {
                delete_idle_gauges: true,
                ..settings()
            },
            vec![],
        );
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
        let mut a = Aggregator::new(
            FlushSettings {
                idle_zero_flushes: 2,
                ..settings()
            },
            vec![],
        );
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
        let mut a = Aggregator::new(
            FlushSettings {
                global_tags: vec![("env".into(), "prod".into())],
                ..settings()
            },
            vec![],
        );
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
    fn internal_stats_are_series() {
        let mut a = Aggregator::new(
            FlushSettings {
                stats_prefix: Some("rstatsd.".into()),
                ..settings()
            },
            vec![(Protocol::Statsd, 4096)],
        );
        let mut h = harvest(&[], &[]);
        h.stats.packets_received = 3;
        h.stats.bad_lines[crate::parse::Reject::BadValue.index()] = 2;
        let mut reports = vec![SinkReport {
            name: "out".into(),
            last: SinkTotals {
                drops: 1,
                ..SinkTotals::default()
            },
        }];
        let now = SinkTotals {
            drops: 4,
            delivered: 10,
            buffered_bytes: 99,
            ..SinkTotals::default()
        };
        let snap = a.build(vec![h], &mut reports, &[now], 0);
        let find = |name: &str, tags: &[(&str, &str)], t| {
            let k = SeriesKey::new(name, t, tags.iter().copied());
            snap.series
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        };
        let l = ("listener", "statsd");
        assert_eq!(
            find("rstatsd.packets_received", &[l], MetricType::Counter),
            Some(Value::Counter(3.0))
        );
        assert_eq!(
            find(
                "rstatsd.bad_lines",
                &[l, ("reason", "bad_value")],
                MetricType::Counter
            ),
            Some(Value::Counter(2.0))
        );
        assert_eq!(
            find(
                "rstatsd.snapshot_drops",
                &[("sink", "out")],
                MetricType::Counter
            ),
            Some(Value::Counter(3.0))
        );
        assert_eq!(
            find("rstatsd.receive_buffer_bytes", &[l], MetricType::Gauge),
            Some(gauge(4096.0))
        );
        let out = [("sink", "out")];
        assert_eq!(
            find("rstatsd.sink_delivered", &out, MetricType::Counter),
            Some(Value::Counter(10.0))
        );
        assert_eq!(
            find("rstatsd.sink_failed", &out, MetricType::Counter),
            Some(Value::Counter(0.0))
        );
        assert_eq!(
            find("rstatsd.sink_buffered_bytes", &out, MetricType::Gauge),
            Some(gauge(99.0))
        );
        assert_eq!(reports[0].last, now);
    }
}
