#!/usr/bin/env bash
# The benchmarks of mmm-rs in one command: builds the release binaries and runs, in order,
#   failover  - unplanned failover (mysqld kill -9, link down), planned switchover, monitor leader loss
#               on the lab (real MariaDB servers, agents and 3 monitors in network namespaces), every run
#               judged by the split-brain oracle (a run with a finding counts as failed);
#   consensus - Raft commit latency with fsync, leader kill -> next commit, log growth and snapshot time;
#   scale     - 3 monitors watching 10, 100 and 1,000 stand-in MySQL endpoints (own network namespace);
#   clusters  - 10 and 50 clusters of 4 stand-in hosts, one monitor process per cluster on each of three
#               monitor "machines", as MMM runs @CLUSTER instances (same namespace);
#   soak      - the seeded random nemesis with overlapping faults, many runs on fresh labs, each judged by
#               the split-brain oracle (faults, writer changes, split brains, lost writes, longest outage).
# Prints markdown tables on stdout (progress on stderr). Needs root and Linux.
#
#   sudo bench/run.sh            # full run (about 20 minutes on 2 cores, after the build)
#   sudo bench/run.sh --quick    # fewer runs of everything (a few minutes)
set -euo pipefail

cd "$(dirname "$0")/.."
quick=()
consensus_args=()
if [[ "${1:-}" == "--quick" ]]; then
    quick=(--quick)
    consensus_args=(--commits 300 --kill-runs 3 --decisions 10000)
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/run.sh needs root (network namespaces, VIPs, nftables, MariaDB inside namespaces)" >&2
    exit 1
fi
missing=()
command -v mariadbd >/dev/null || [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server mariadb-client)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || [[ -x /usr/sbin/nft ]] || missing+=(nftables)
if (( ${#missing[@]} )); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

echo "building release binaries..." >&2
cargo build --release -p mmm-monitor -p mmm-agent -p mmmctl -p mmm-bench --bins >&2
bin=target/release

echo "# mmm-rs benchmarks"
echo
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo

echo "## Failover, switchover, monitor leader loss (lab)" ; echo
"$bin/failover" "${quick[@]}"

echo ; echo "## Consensus (3 nodes on loopback, sled with fsync)" ; echo
"$bin/consensus" "${consensus_args[@]}"

echo ; echo "## Scale" ; echo
ns="mmm-bench-scale-$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" "$bin/scale" "${quick[@]}"

echo ; echo "## Many clusters on one set of monitor machines" ; echo
ip netns exec "$ns" "$bin/clusters" "${quick[@]}"

echo ; echo "## Soak: random overlapping faults judged by the oracle" ; echo
if [[ ${#quick[@]} -gt 0 ]]; then
    "$bin/soak" --runs 2 --steps 8
else
    "$bin/soak" --runs 10 --steps 30
fi
