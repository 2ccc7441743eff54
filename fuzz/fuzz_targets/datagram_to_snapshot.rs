//! One fuzzed datagram through parse, aggregate, two flushes, statistics and rendering.
//! The harness is `rstatsd::fuzzing::datagram_to_snapshot`, shared with `tests/it/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rstatsd::fuzzing::datagram_to_snapshot(data));
