#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time (default 60 s each), starting from the
# checked-in seeds (fuzz/corpus_seeds/). cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP
# lets the stable toolchain provide them. Crashes land in fuzz/artifacts/<target>/.
#
# No sanitizer by default: the crate has no `unsafe`, so AddressSanitizer would only slow
# the build (minutes in a clean clone) and every run; panics, overflows (debug assertions
# are on) and timeouts are caught without it. FUZZ_SANITIZER=address turns it back on.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
per_target="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    cp -n "corpus_seeds/$target/"* "corpus/$target/" 2>/dev/null || true
    echo "==> fuzzing $target for ${per_target}s"
    cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" "$target" "corpus/$target" -- \
        -max_total_time="$per_target" -timeout=5
done
