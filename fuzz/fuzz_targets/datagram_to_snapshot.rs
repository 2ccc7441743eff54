//! The whole path for one fuzzed datagram: both parsers into per-thread tables, the flush
//! (merge, gauge persistence, global tags, sorting), Etsy statistics and the console
//! rendering of every series. No panic, and every output line is valid JSON text.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use rstatsd::aggregate::Table;
use rstatsd::aggregate::timer::Percentile;
use rstatsd::flush::{Aggregator, FlushSettings};
use rstatsd::metric::Metric;
use rstatsd::parse::json::JsonParser;
use rstatsd::parse::line::LineParser;
use rstatsd::parse::{Handler, Reject, Skip};
use rstatsd::receive::{Harvest, Protocol};
use rstatsd::sink::json::render_nested;
use rstatsd::stats::ReceiverStats;

struct Sink(Table);

impl Handler for Sink {
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        self.0.apply(metric, 1);
    }
    fn reject(&mut self, _reason: Reject, _input: &[u8]) {}
    fn skip(&mut self, _kind: Skip) {}
}

fuzz_target!(|data: &[u8]| {
    let mut line = Sink(Table::new());
    LineParser::new(true).parse_datagram(data, &mut line);
    let mut json = Sink(Table::new());
    JsonParser::new(false).parse_datagram(&mut data.to_vec(), &mut json);
    let percentiles: Vec<Percentile> = [90.0, -10.0, 99.9]
        .into_iter()
        .map(|p| Percentile::new(p).unwrap())
        .collect();
    let mut aggregator = Aggregator::new(
        FlushSettings {
            interval: Duration::from_secs(10),
            percentiles: Arc::from(percentiles),
            global_tags: vec![("host".into(), "fuzz".into())],
            delete_idle_gauges: false,
            idle_zero_flushes: 1,
            stats_prefix: Some("rstatsd.".into()),
        },
        vec![(Protocol::Statsd, 4096)],
    );
    let harvest = |table| Harvest {
        protocol: Protocol::Statsd,
        table,
        stats: ReceiverStats::default(),
    };
    // Two flushes: the second exercises persisted gauges and idle zeros.
    for tables in [vec![harvest(line.0), harvest(json.0)], vec![]] {
        let snapshot = aggregator.build(tables, &mut [], &[], 1_795_323_600_000);
        let mut out = String::new();
        for i in 0..snapshot.series.len() {
            out.clear();
            render_nested(&mut out, &snapshot, i);
            assert!(out.starts_with('{') && out.ends_with('}'));
        }
    }
});
