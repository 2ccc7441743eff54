//! Any bytes through the line-protocol parser into a table: no panic, and every line is
//! either aggregated or rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstatsd::aggregate::Table;
use rstatsd::metric::Metric;
use rstatsd::parse::line::LineParser;
use rstatsd::parse::{Handler, Reject, Skip};

struct Sink(Table);

impl Handler for Sink {
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        assert!(metric.sample_rate > 0.0 && metric.sample_rate <= 1.0);
        assert!(!metric.series.name.is_empty());
        self.0.apply(metric, 0);
    }
    fn reject(&mut self, _reason: Reject, _input: &[u8]) {}
    fn skip(&mut self, _kind: Skip) {}
}

fuzz_target!(|data: &[u8]| {
    let mut parser = LineParser::new(true);
    let mut sink = Sink(Table::new());
    parser.parse_datagram(data, &mut sink);
    let mut raw = LineParser::new(false);
    raw.parse_datagram(data, &mut sink);
});
