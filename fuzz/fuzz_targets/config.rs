//! Any text as a configuration file: parsing and validation return errors, never panic.
//! The harness is `rstatsd::fuzzing::config`, shared with `tests/it/fuzz_regressions.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rstatsd::fuzzing::config(data));
