#!/usr/bin/env bash
# Builds the Debian packages (mmm-monitor, mmm-agent, mmmctl) with cargo-deb and installs them into an
# empty Debian root with `dpkg --root`, then checks what they installed: binaries that run, systemd units
# that parse, and sample configurations that pass `--check-config`.
#
# By default the packages hold the debug binaries CI has just built (fast: no release build); set
# MMM_DEB_PROFILE=release for packages to ship (cargo-deb then builds with the release profile).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin"
profile="${MMM_DEB_PROFILE:-dev}"

if ! cargo deb --version >/dev/null 2>&1; then
    echo "test-packages: installing cargo-deb" >&2
    cargo install cargo-deb --locked
fi
if ! command -v dpkg >/dev/null 2>&1; then
    echo "test-packages: dpkg not found (Debian or Ubuntu needed)" >&2
    exit 1
fi

out=target/debian
rm -rf "$out" && mkdir -p "$out"
for p in mmm-monitor mmm-agent mmmctl; do
    if [ "$profile" = release ]; then
        cargo deb -p "$p" --output "$out"
    else
        cargo build -p "$p" --bin "$p"
        cargo deb -p "$p" --no-build --no-strip --fast --profile "$profile" --output "$out"
    fi
done
ls -l "$out"

root="$(mktemp -d /tmp/mmm-debroot.XXXXXX)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# The empty root has no libc6 package: dependencies are checked by apt on a real install.
dpkg --root="$root" --force-depends --force-not-root -i "$out"/*.deb
dpkg --root="$root" -l | grep -E '^ii +(mmm-monitor|mmm-agent|mmmctl) ' | wc -l | grep -qx 3

fail() { echo "test-packages: FAIL: $*" >&2; exit 1; }
for f in usr/bin/mmm-monitor usr/bin/mmm-agent usr/bin/mmmctl \
         lib/systemd/system/mmm-monitor.service lib/systemd/system/mmm-monitor@.service \
         lib/systemd/system/mmm-agent.service lib/systemd/system/mmm-agent@.service \
         usr/share/doc/mmm-monitor/examples/mmm_common.conf usr/share/doc/mmm-monitor/examples/mmm_mon.conf \
         usr/share/doc/mmm-agent/examples/mmm_agent.conf; do
    [ -e "$root/$f" ] || fail "$f not installed"
done
[ "$(stat -c %a "$root/usr/share/doc/mmm-monitor/examples/mmm_common.conf")" = 640 ] || fail "sample config is readable by all"
grep -q '^ExecStart=/usr/bin/mmm-monitor @%i$' "$root/lib/systemd/system/mmm-monitor@.service" || fail "monitor@ unit"
grep -q '^ExecStart=/usr/bin/mmm-agent @%i$' "$root/lib/systemd/system/mmm-agent@.service" || fail "agent@ unit"

"$root/usr/bin/mmmctl" --help >/dev/null || fail "mmmctl does not run"
"$root/usr/bin/mmm-monitor" --check-config --config "$root/usr/share/doc/mmm-monitor/examples/mmm_mon.conf" >/dev/null \
    || fail "the sample monitor configuration does not pass --check-config"
"$root/usr/bin/mmm-agent" --check-config --config "$root/usr/share/doc/mmm-agent/examples/mmm_agent.conf" >/dev/null \
    || fail "the sample agent configuration does not pass --check-config"
if command -v systemd-analyze >/dev/null 2>&1; then
    for u in mmm-monitor.service mmm-agent.service; do
        systemd-analyze verify --root="$root" "$root/lib/systemd/system/$u" 2>&1 | grep -v 'not executable\|No such file\|sysinit.target' || true
    done
fi
dpkg --root="$root" --force-not-root -r mmm-monitor mmm-agent mmmctl
[ ! -e "$root/usr/bin/mmm-monitor" ] || fail "remove left the binary"
echo "test-packages: OK: 3 packages built, installed into an empty root, checked and removed"
