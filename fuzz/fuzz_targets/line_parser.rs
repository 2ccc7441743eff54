//! The line parser on any bytes, with and without name sanitizing.
//! The harness is `rstatsd::fuzzing::line_parser`, shared with `tests/it/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rstatsd::fuzzing::line_parser(data));
