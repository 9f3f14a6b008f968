#!/usr/bin/env bash
# The demo: a real 3-monitor mmm-rs cluster managing four real MariaDB hosts in network namespaces,
# showing a failover. Needs root and Linux network namespaces; installs the Debian packages it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
if [ "$(id -u)" -ne 0 ]; then
    echo "demo: must run as root (it creates network namespaces, a bridge, VIPs and nftables rules)" >&2
    exit 1
fi
missing=()
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
service mariadb stop >/dev/null 2>&1 || true
mkdir -p /run/mmm-lab
cargo build --workspace --bins
./target/debug/mmm-lab cleanup
RUST_LOG="${RUST_LOG:-warn,mysql_async=off}" exec ./target/debug/mmm-lab demo
