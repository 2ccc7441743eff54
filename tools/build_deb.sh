#!/usr/bin/env bash
# Builds the release .deb from this checkout: target/debian/rstatsd_<version>-1_<arch>.deb.
# Installs cargo-deb (from the Rust package registry) if missing. The version comes from Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0

if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "==> installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi
bash tools/packaging/prepare.sh
cargo deb --no-build --no-strip --locked --output target/debian/
ls -1 target/debian/rstatsd_*.deb | tail -n 1
