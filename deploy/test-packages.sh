#!/usr/bin/env bash
# Builds the Debian packages (mmm-monitor, mmm-agent, mmmctl) with cargo-deb and installs them into an
# empty Debian root with `dpkg --root`, then checks what they installed: binaries that run, systemd units
# that parse (Type=notify with a watchdog, MMM's service names as aliases), sample configurations that
# pass `--check-config`, man pages, shell completions, the `mmm_control` link (MMM's exit codes) and
# the Conflicts: with MMM's packages. The man pages, completions and link are generated first by
# `mmm-docgen` into target/assets (cargo-deb gzips the man pages).
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
rm -rf target/assets
cargo run -q -p mmm-docgen -- target/assets
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
         usr/share/doc/mmm-agent/examples/mmm_agent.conf \
         usr/share/man/man1/mmm-monitor.1.gz usr/share/man/man1/mmm-agent.1.gz \
         usr/share/man/man1/mmmctl.1.gz usr/share/man/man1/mmm_control.1.gz \
         usr/share/bash-completion/completions/mmmctl usr/share/bash-completion/completions/mmm-monitor \
         usr/share/bash-completion/completions/mmm-agent usr/share/zsh/vendor-completions/_mmmctl \
         usr/share/fish/vendor_completions.d/mmmctl.fish usr/sbin/mmm_control; do
    [ -e "$root/$f" ] || fail "$f not installed"
done
for m in mmm-monitor mmm-agent mmmctl mmm_control; do
    zcat "$root/usr/share/man/man1/$m.1.gz" | grep -q '^\.TH' || fail "$m.1 is not a man page"
done
grep -q 'move_role' "$root/usr/share/bash-completion/completions/mmmctl" || fail "mmmctl bash completion"
[ "$(readlink "$root/usr/sbin/mmm_control")" = ../bin/mmmctl ] || fail "mmm_control is not a link to mmmctl"
"$root/usr/sbin/mmm_control" --version | grep -q '^mmm_control 2\.2\.1 ' || fail "mmm_control --version"
# MMM's exit code: a monitor that cannot be reached is status 1, a missing command 255.
set +e
MMMCTL_MONITORS=127.0.0.1:1 "$root/usr/sbin/mmm_control" ping >/dev/null; rc=$?
"$root/usr/sbin/mmm_control" 2>/dev/null; rc_usage=$?
set -e
[ "$rc" = 1 ] || fail "mmm_control without a monitor exited $rc, not 1"
[ "$rc_usage" = 255 ] || fail "mmm_control without a command exited $rc_usage, not 255"
for u in mmm-monitor mmm-monitor@ mmm-agent mmm-agent@; do
    unit="$root/lib/systemd/system/$u.service"
    grep -q '^Type=notify$' "$unit" || fail "$u: not Type=notify"
    grep -q '^WatchdogSec=' "$unit" || fail "$u: no WatchdogSec="
    grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || fail "$u: no ExecReload"
done
grep -q '^Alias=mysql-mmm-monitor.service$' "$root/lib/systemd/system/mmm-monitor.service" || fail "monitor alias"
grep -q '^Alias=mysql-mmm-agent.service$' "$root/lib/systemd/system/mmm-agent.service" || fail "agent alias"
for pc in mmm-monitor:mysql-mmm-monitor mmm-agent:mysql-mmm-agent mmmctl:mysql-mmm-monitor; do
    deb=$(ls "$out/${pc%%:*}"_*.deb)
    dpkg-deb -f "$deb" Conflicts | grep -qx "${pc#*:}" || fail "${pc%%:*} does not conflict with ${pc#*:}"
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
[ ! -L "$root/usr/sbin/mmm_control" ] || fail "remove left the mmm_control link"
echo "test-packages: OK: 3 packages built, installed into an empty root, checked and removed"
