//! The parser's [`Handler`] of a receiver: applies each parsed metric to the receiver's own
//! table (through a [`Round`] for untagged ones), counts rejections and refusals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ReceiverSettings;

use crate::aggregate::round::Round;
use crate::aggregate::{Refusal, SeriesGuard, Table};
use crate::logging::RateLimit;
use crate::metric::Metric;
use crate::parse::{Handler, Protocol, Reject, Skip};
use crate::stats::ReceiverStats;

/// The part a parser's [`Handler`] writes to.
pub(super) struct State {
    pub(super) table: Table,
    pub(super) stats: ReceiverStats,
    /// Nanoseconds since the server's epoch at the current batch: orders gauge sets across
    /// receivers.
    pub(super) stamp: u64,
    pub(super) epoch: Instant,
    pub(super) protocol: Protocol,
    pub(super) reject_log: RateLimit,
    pub(super) guard: Arc<SeriesGuard>,
    /// Intervals (harvests) so far: the guard's per-name counts restart with each.
    pub(super) generation: u32,
    /// Untagged metrics waiting to be applied together (see the module docs).
    pub(super) round: Round,
    pub(super) refusal_log: RateLimit,
}

impl Handler for State {
    #[inline]
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        if self.round.defer(metric) {
            if self.round.is_full() {
                self.apply_round();
            }
            return;
        }
        self.apply_round();
        let outcome = self
            .table
            .apply_guarded(metric, self.stamp, &self.guard, self.generation);
        State::count(
            &mut self.stats,
            &mut self.refusal_log,
            self.protocol,
            metric,
            outcome,
        );
    }

    fn reject(&mut self, reason: Reject, input: &[u8]) {
        self.stats.bad_lines[reason.index()] += 1;
        if let Some(suppressed) = self.reject_log.allow() {
            let excerpt = String::from_utf8_lossy(&input[..input.len().min(200)]);
            log::warn!(
                "{}: rejected input ({}): {excerpt:?} ({suppressed} more rejected since the last report)",
                self.protocol.name(),
                reason.as_str(),
            );
        }
    }

    fn skip(&mut self, kind: Skip) {
        match kind {
            Skip::Event => self.stats.events_skipped += 1,
            Skip::ServiceCheck => self.stats.service_checks_skipped += 1,
        }
    }
}

impl State {
    pub(super) fn new(settings: &ReceiverSettings) -> State {
        State {
            table: Table::with_capacity(0, settings.bounds),
            stats: ReceiverStats::default(),
            stamp: 0,
            epoch: settings.epoch,
            protocol: settings.protocol,
            reject_log: RateLimit::new(Duration::from_secs(10)),
            guard: Arc::clone(&settings.guard),
            generation: 0,
            round: Round::new(),
            refusal_log: RateLimit::new(Duration::from_secs(10)),
        }
    }

    /// Applies the waiting round, counting what it applied and what the guard refused.
    pub(super) fn apply_round(&mut self) {
        let (guard, generation) = (&self.guard, self.generation);
        let (stats, log, protocol) = (&mut self.stats, &mut self.refusal_log, self.protocol);
        self.round.apply(
            &mut self.table,
            self.stamp,
            |series| guard.admit_series(series, generation),
            |metric, outcome| State::count(stats, log, protocol, metric, outcome),
        );
    }

    /// Counts a metric the table took, or one the cardinality guard refused (and logs
    /// that, rate-limited). Fields rather than `self`: a round's callback borrows them
    /// while the round borrows the table.
    #[inline]
    pub(super) fn count(
        stats: &mut ReceiverStats,
        log: &mut RateLimit,
        protocol: Protocol,
        metric: &Metric<'_, '_>,
        outcome: Result<(), Refusal>,
    ) {
        match outcome {
            Ok(()) => stats.metrics_received += 1,
            Err(refusal) => State::refused(stats, log, protocol, refusal, metric),
        }
    }

    #[cold]
    pub(super) fn refused(
        stats: &mut ReceiverStats,
        log: &mut RateLimit,
        protocol: Protocol,
        refusal: Refusal,
        metric: &Metric<'_, '_>,
    ) {
        let limit = match refusal {
            Refusal::Series => {
                stats.series_rejected += 1;
                "limits.max_series"
            }
            Refusal::TagSets => {
                stats.tag_sets_rejected += 1;
                "limits.max_tag_sets_per_name"
            }
        };
        if let Some(suppressed) = log.allow() {
            log::warn!(
                "{}: new series of {:?} rejected: {limit} reached for this interval; known \
                 series keep updating ({suppressed} more rejected since the last report)",
                protocol.name(),
                metric.series.name,
            );
        }
    }
}
