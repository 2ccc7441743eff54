#!/usr/bin/env bash
# Shared by build_deb.sh and build_rpm.sh: the release binaries without debug information
# (target/package/) and the gzipped man page (target/man/rstatsd.8.gz).
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "==> cargo build --release" >&2
cargo build --release --locked --workspace --bins
mkdir -p target/package target/man
for bin in rstatsd rstatsd-loadgen; do
    strip --strip-debug -o "target/package/$bin" "target/release/$bin"
done
cargo run --quiet --locked --example gen_man -- target/man/rstatsd.8 >/dev/null
gzip -9nf target/man/rstatsd.8
