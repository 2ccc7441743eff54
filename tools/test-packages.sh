#!/usr/bin/env bash
# Package checks, run by tools/test.sh: build the .deb and .rpm, check their contents and
# metadata, install the .deb on this machine, run the installed binary as the rstatsd user
# with the installed config, then purge and check that nothing is left. Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
passed=0
check() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; echo "package checks: $passed passed, 1 failed"; exit 1; }

if dpkg -s rstatsd >/dev/null 2>&1; then
    fail "rstatsd is installed on this machine; this test installs and purges it: remove it first"
fi
if ! command -v rpm >/dev/null; then
    echo "==> installing rpm (to inspect the .rpm)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rpm >/dev/null
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb=$(bash tools/build_deb.sh | tail -n 1)
rpm_file=$(bash tools/build_rpm.sh | tail -n 1)
echo "==> checking $deb and $rpm_file"

files=(/usr/bin/rstatsd /usr/bin/rstatsd-loadgen /etc/rstatsd/rstatsd.toml /usr/lib/systemd/system/rstatsd.service
       /usr/lib/sysctl.d/60-rstatsd.conf /usr/share/man/man8/rstatsd.8.gz
       /usr/share/doc/rstatsd/README.md)
listing=$(dpkg-deb -c "$deb")
for f in "${files[@]}" /usr/share/doc/rstatsd/copyright; do
    grep -q " \.$f\$" <<<"$listing" || fail "$f missing from the .deb"
done
check ".deb contains ${#files[@]}+1 expected files"
info=$(dpkg-deb -I "$deb")
for want in "Package: rstatsd" "Version: $version" "Depends:.*passwd" " postinst" " prerm" " postrm" " conffiles"; do
    grep -q "$want" <<<"$info" || fail ".deb metadata lacks '$want'"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/rstatsd/rstatsd.toml ] ||
    fail "/etc/rstatsd/rstatsd.toml is not a conffile"
check ".deb metadata, maintainer scripts and conffile"

rpm_listing=$(rpm -qlp "$rpm_file" 2>/dev/null)
for f in "${files[@]}"; do
    grep -qx "$f" <<<"$rpm_listing" || fail "$f missing from the .rpm"
done
rpm_info=$(rpm -qip "$rpm_file" 2>/dev/null)
grep -q "^Name *: rstatsd" <<<"$rpm_info" || fail ".rpm name"
grep -q "^Version *: $version" <<<"$rpm_info" || fail ".rpm version"
[ "$(rpm -qp --configfiles "$rpm_file" 2>/dev/null)" = /etc/rstatsd/rstatsd.toml ] ||
    fail ".rpm config file"
rpm -qp --scripts "$rpm_file" 2>/dev/null | grep -q "useradd --system" || fail ".rpm scriptlets"
check ".rpm contents, metadata, config file and scriptlets"

pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    $SUDO dpkg --purge rstatsd >/dev/null 2>&1 || true
}
trap cleanup EXIT

$SUDO dpkg -i "$deb" >/dev/null
getent passwd rstatsd >/dev/null || fail "no rstatsd user after install"
/usr/bin/rstatsd --check-config --config /etc/rstatsd/rstatsd.toml
/usr/bin/rstatsd-loadgen --version | grep -q "^rstatsd-loadgen " || fail "rstatsd-loadgen --version"
man -l /usr/share/man/man8/rstatsd.8.gz 2>/dev/null | grep -q -- "--flush-interval-ms" ||
    zcat /usr/share/man/man8/rstatsd.8.gz | grep -q -- "flush\\\\-interval\\\\-ms" || fail "man page"
if command -v systemd-analyze >/dev/null; then
    verify=$(systemd-analyze verify /usr/lib/systemd/system/rstatsd.service 2>&1) ||
        fail "systemd-analyze verify: $verify"
    [ -z "$verify" ] || fail "systemd-analyze verify: $verify"
fi
check "installed: user, config valid, man page, unit verified"

port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
out=$(mktemp); err=$(mktemp)
chmod 666 "$out" "$err"
# Readiness as systemd sees it: the installed binary's READY=1 names the addresses it bound.
# A notify socket the rstatsd user may write to; the FIFO says when it is bound.
notify=$(mktemp -d)
chmod 755 "$notify"
mkfifo "$notify/bound"
python3 - "$notify" >"$notify/ready" <<'PY' &
import os, socket, sys
path = os.path.join(sys.argv[1], "notify.sock")
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.settimeout(20)
finally:  # the shell waits on the FIFO: it is written even when binding failed
    with open(os.path.join(sys.argv[1], "bound"), "w") as bound:
        bound.write("bound\n")
try:
    print(s.recv(4096).decode())
except socket.timeout:
    pass
PY
notifier=$!
read -r _ <"$notify/bound"
# setpriv execs rstatsd itself (runuser would stay in between and take the signal).
NOTIFY_SOCKET="$notify/notify.sock" setpriv --reuid=rstatsd --regid=rstatsd --clear-groups -- \
    /usr/bin/rstatsd --config /etc/rstatsd/rstatsd.toml \
    --statsd-listen "127.0.0.1:$port" --no-pystatsd --no-admin --http-listen 127.0.0.1:0 \
    --flush-interval-ms 1000 >"$out" 2>"$err" &
pid=$!
wait "$notifier"
grep -qx 'READY=1' "$notify/ready" || fail "installed rstatsd not ready: $(cat "$err")"
http=$(sed -n 's/^STATUS=listening: .*http tcp \([^ ,]*\).*/\1/p' "$notify/ready")
[ -n "$http" ] || fail "no http address in the readiness message: $(cat "$notify/ready")"
# The packaged load generator sends the metric (42 increments in one datagram) and checks
# through /metrics that rstatsd counted all of them.
sent=$(/usr/bin/rstatsd-loadgen send --target "127.0.0.1:$port" --count 42 --per-datagram 42 \
    --keys 1 --quiet --json --verify "$http")
grep -q '"received":42,"loss_percent":0.000' <<<"$sent" || fail "loadgen --verify: $sent"
kill -TERM "$pid"
wait "$pid" || fail "installed rstatsd exited with $? after SIGTERM: $(cat "$err")"
pid=""
grep -q '"name":"loadgen.k0","type":"counter","tags":{},"timestamp":[0-9]*,"values":{"count":42,' "$out" ||
    fail "metric not in the output of the installed rstatsd: $(cat "$out")"
check "installed binary ran as rstatsd, aggregated a metric (loadgen --verify agrees), stopped cleanly on SIGTERM"
rm -rf "$out" "$err" "$notify"

$SUDO dpkg --purge rstatsd >/dev/null
trap - EXIT
left=""
for f in "${files[@]}" /etc/rstatsd /usr/share/doc/rstatsd; do
    [ -e "$f" ] && left="$left $f"
done
getent passwd rstatsd >/dev/null && left="$left user:rstatsd"
getent group rstatsd >/dev/null && left="$left group:rstatsd"
[ -z "$left" ] || fail "left behind after purge:$left"
check "purge removed files, configuration, user and group"
echo "package checks: $passed passed, 0 failed"
