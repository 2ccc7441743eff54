#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test. CI runs exactly this (.ci/run).
#
# Installs what it needs, idempotently: a C toolchain and the libraries the bundled
# librdkafka links (OpenSSL, zlib), the Python readers of rstatsd's sketch formats, and the
# tansu broker the Kafka round-trip test runs.
# Rust itself (rustup, with rustfmt and clippy) is the one prerequisite (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

# A run from a clean clone writes about 6 GiB (target/, the fuzz and package builds). A disk
# that fills up midway fails deep inside librdkafka's C build ("No space left on device"),
# which once cost a whole CI run: check first and say so.
min_free_gib=${TEST_MIN_FREE_GIB:-8}
free_gib=$(($(df --output=avail -k . | tail -1) >> 20))
if ((free_gib < min_free_gib)); then
    echo "tools/test.sh: only ${free_gib} GiB free on the disk of $PWD; a full run needs about" \
        "${min_free_gib} GiB (set TEST_MIN_FREE_GIB to change the check)" >&2
    exit 1
fi

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
for pkg in pkg-config libssl-dev zlib1g-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if ((${#need_apt[@]})); then
    echo "==> installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

# The third-party readers of what rstatsd writes (tests/it/readers.rs): DataDog's ddsketch with
# its protobuf reader, Apache DataSketches, crc32c for tools/spool_dump.py, and grpcio-tools
# (protoc) to compile src/aggregate/partial.proto for Python.
if ! python3 -c 'import ddsketch.pb.proto, datasketches, crc32c, grpc_tools' 2>/dev/null; then
    echo "==> installing the Python readers (ddsketch, datasketches, crc32c, grpcio-tools)"
    readers=("ddsketch[serialization]==3.0.1" "datasketches==5.2.0" "crc32c==2.7.1"
        "grpcio-tools==1.85.1")
    pip=(python3 -m pip install --quiet --disable-pip-version-check)
    # Debian's own python3 is "externally managed" (PEP 668): install for the user there.
    "${pip[@]}" "${readers[@]}" 2>/dev/null ||
        "${pip[@]}" --user --break-system-packages "${readers[@]}"
fi

if ! tansu --version 2>/dev/null | grep -qx 'tansu 0.6.0'; then
    echo "==> installing tansu 0.6.0 (a Kafka-compatible broker for the tests; ~10 min once)"
    cargo install tansu --version 0.6.0 --locked --features dynostore
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The build without the Kafka sink (used by the fuzz targets) must keep compiling.
cargo clippy --workspace --all-targets --locked --no-default-features -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> fuzzing (${FUZZ_SECONDS:-60} s per target; crashes fail the run)"
bash tools/fuzz.sh "${FUZZ_SECONDS:-60}"
echo "==> packages"
bash tools/test-packages.sh
