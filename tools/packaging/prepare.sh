#!/usr/bin/env bash
# Shared by build_deb.sh and build_rpm.sh: the release binary without debug information
# (target/package/rstatsd) and the gzipped man page (target/man/rstatsd.8.gz).
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> cargo build --release" >&2
cargo build --release --locked --bin rstatsd
mkdir -p target/package target/man
strip --strip-debug -o target/package/rstatsd target/release/rstatsd
cargo run --quiet --locked --example gen_man -- target/man/rstatsd.8 >/dev/null
gzip -9nf target/man/rstatsd.8
