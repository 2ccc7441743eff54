//! The pystatsd JSON parser on any bytes.
//! The harness is `rstatsd::fuzzing::json_parser`, shared with `tests/it/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rstatsd::fuzzing::json_parser(data));
