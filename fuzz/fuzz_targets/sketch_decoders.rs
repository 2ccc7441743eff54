//! The DDSketch protobuf and DataSketches HyperLogLog decoders on any bytes.
//! The harness is `rstatsd::fuzzing::sketch_decoders`, shared with `tests/it/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rstatsd::fuzzing::sketch_decoders(data));
