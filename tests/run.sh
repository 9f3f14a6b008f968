#!/usr/bin/env bash
# The project's test command (README and CI share it): build everything, remove what crashed labs left
# behind, run every test. The lab tests need root and Debian's mariadb-server, iproute2 and nftables.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
cargo build --workspace --all-targets
if [ "$(id -u)" -eq 0 ]; then
    ./target/debug/mmm-lab cleanup
fi
cargo test --workspace --no-fail-fast "$@"
