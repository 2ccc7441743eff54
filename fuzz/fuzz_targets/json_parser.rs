//! Any bytes through the pystatsd JSON parser (in place) into a table: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rstatsd::aggregate::Table;
use rstatsd::metric::Metric;
use rstatsd::parse::json::JsonParser;
use rstatsd::parse::{Handler, Reject, Skip};

struct Sink(Table);

impl Handler for Sink {
    fn metric(&mut self, metric: &Metric<'_, '_>) {
        assert!(!metric.series.name.is_empty());
        self.0.apply(metric, 0);
    }
    fn reject(&mut self, _reason: Reject, _input: &[u8]) {}
    fn skip(&mut self, _kind: Skip) {}
}

fuzz_target!(|data: &[u8]| {
    let mut parser = JsonParser::new(true);
    let mut sink = Sink(Table::new());
    let mut buf = data.to_vec();
    parser.parse_datagram(&mut buf, &mut sink);
});
