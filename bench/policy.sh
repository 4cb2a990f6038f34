#!/bin/bash
# bench/policy.sh BUILD_DIR - the pageout policy simulator (not a test).
#
# Builds bench/policysim.c (linked with emm-vm: the daemon's own
# policy code) into BUILD_DIR/bench/policysim (CMake target policysim) and replays fixed-seed
# synthetic traces (Zipf 0.8 and 1.0; a Zipf hot set mixed with sequential scans
# larger than the cache) at caches of 1%, 5% and 10% of the footprint. Prints
# one table of hit ratios: second-chance, fifo, s3-fifo, lru, and second-chance
# with a 1/3 inactive target for comparison with Mach's 2/3.
#
# Knobs (environment): POLICY_REQUESTS (1000000), POLICY_PAGES (100000),
# POLICY_SEED (42), POLICY_CACHES (cache sizes in % of the footprint, "1,5,10"),
# POLICY_ZIPF (Zipf exponents, "0.8,1.0"), CC (cc). No root, no FUSE.
set -euo pipefail

BUILD=${1:?usage: bench/policy.sh BUILD_DIR}
mkdir -p "$BUILD/bench"
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN="$BUILD/bench/policysim"
cmake --build "$BUILD" --target policysim >/dev/null || { echo "policy.sh: cannot build policysim" >&2; exit 1; }

echo "emm pageout policy simulator  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)"
"$BIN" -n "${POLICY_REQUESTS:-1000000}" -p "${POLICY_PAGES:-100000}" -s "${POLICY_SEED:-42}" \
    -c "${POLICY_CACHES:-1,5,10}" -z "${POLICY_ZIPF:-0.8,1.0}"
