//! The integration tests, in one binary (one link instead of one per file), one module per
//! area. Most run the real `rstatsd` binary as a child process on ephemeral loopback ports
//! (`common`); the rest drive the library directly.
//!
//! - `admin`: the management interface and the HTTP endpoint.
//! - `cli`: configuration errors, `--check-config`, `--help`, start-up failures.
//! - `concurrency`: no loss and no double counting across table swaps under load.
//! - `e2e`: both listeners to console output, signals, systemd readiness.
//! - `fleet`: fleet-wide aggregation (locals, aggregators) around librdkafka's mock cluster.
//! - `fuzz_regressions`: every fuzz seed and past crash under `fuzz/`, replayed.
//! - `graphite`: the Graphite sink against a stand-in carbon.
//! - `kafka`: the Kafka sink against librdkafka's mock cluster.
//! - `limits`: the cardinality guard, the timer sample cap, bounded memory.
//! - `properties`: property tests of merging, Etsy statistics, line-protocol round trips.
//! - `readers`: third-party Python readers of what rstatsd writes (`tools/test.sh` installs them).
//! - `sketches`: DDSketch and HyperLogLog accuracy and merge laws.
//! - `spool`: the disk spool across outages, SIGKILL, damaged files and a full disk.
//! - `tansu`: a round trip through a separate Kafka-compatible broker (tansu 0.6.0).
//!
//! `fleet`, `kafka`, `spool` and `tansu` need the `kafka` feature (a default one).
//!
//! Run one area by its module path, e.g. `cargo test --test it fleet::`, or one test by
//! its name, e.g. `cargo test --test it -- --exact e2e::ipv6_listener`.

mod common;

mod admin;
mod cli;
mod concurrency;
mod e2e;
#[cfg(feature = "kafka")]
mod fleet;
mod fuzz_regressions;
mod graphite;
#[cfg(feature = "kafka")]
mod kafka;
mod limits;
mod properties;
mod readers;
mod sketches;
#[cfg(feature = "kafka")]
mod spool;
#[cfg(feature = "kafka")]
mod tansu;
