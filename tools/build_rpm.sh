#!/usr/bin/env bash
# Builds the release .rpm from this checkout: target/generate-rpm/rstatsd-<version>-1.<arch>.rpm.
# Installs cargo-generate-rpm (from the Rust package registry) if missing. The version comes from Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_GENERATE_RPM_VERSION=0.21.1

if ! cargo generate-rpm --version 2>/dev/null | grep -q "$CARGO_GENERATE_RPM_VERSION"; then
    echo "==> installing cargo-generate-rpm $CARGO_GENERATE_RPM_VERSION" >&2
    cargo install cargo-generate-rpm --version "$CARGO_GENERATE_RPM_VERSION" --locked
fi
bash tools/packaging/prepare.sh
cargo generate-rpm
ls -1 target/generate-rpm/rstatsd-*.rpm | tail -n 1
