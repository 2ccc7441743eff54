//! The partials decoder (`rstatsd::aggregate::partial::decode`) on any bytes: no panic, and
//! what decodes re-encodes to the same partial. The harness is
//! `rstatsd::fuzzing::partial_decode`, shared with `tests/it/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rstatsd::fuzzing::partial_decode(data));
