#!/bin/bash
# bench/rados.sh BUILD_DIR - the rados backend against its floor (not a test).
#
# Starts a throwaway one-mon one-osd memstore cluster
# (tests/integration/ceph_cluster.sh; the OSD keeps objects in RAM) and, on it
# and on this machine's disk, for one object of BENCH_SIZE bytes:
#   write    dd of the object into emmd, then fsync: end to end (MB/s); the
#            dd part is emm's own FUSE write path into the page pool
#   back     the fsync alone: write-back throughput, every dirty page through
#            the pager to the store and acknowledged (MB/s)
#   seq      sequential cold mmap read (faultbench seq) after `emmctl flush`, GB/s
#   rand     BENCH_RAND_PAGES random 4 KiB mmap faults after a flush, mean µs
# for rows lmdb (on local disk), rados (rados.object-size 4M, write-behind
# on: returns coalesced into runs of up to 4 MiB, many in flight), rados with
# rados.write-behind = 0 (one RADOS write per stripe of each data_return,
# waited for in the call), and the store's own floor from `rados bench` on
# the same pool: writes of 4 MiB objects with 16 in flight (compare with
# `back`), then their sequential reads (compare with `seq`), and 4 KiB
# objects read at random one at a time (compare with `rand`: one synchronous
# RADOS round trip). After the table: per rados row, the write_pages calls,
# the RADOS writes they became and their mean size.
# Knobs: BENCH_SIZE (256M), BENCH_RAND_PAGES (5000), BENCH_RESIDENT (256M),
# BENCH_SECONDS (rados bench run length, 10).
# Needs root, /dev/fuse, ceph-mon/ceph-osd/ceph-common (scripts/install-deps.sh).
set -euo pipefail

BUILD=${1:?usage: bench/rados.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${BENCH_SIZE:-256M}
RAND=${BENCH_RAND_PAGES:-5000}
RESIDENT=${BENCH_RESIDENT:-256M}
SECS=${BENCH_SECONDS:-10}

. "$SRC/bench/lib.sh"
bench_require dd numfmt sync
T_NAME=bench-rados
. "$SRC/tests/integration/ceph_cluster.sh"
ceph_need
[ -e "$BUILD/lib/emm/rados.so" ] || die "no $BUILD/lib/emm/rados.so (librados-dev missing at configure time)"
bench_workdir rados
bench_cleanup_extra() { stop_emmd; ceph_stop; }

info() { ctl info | awk -F: -v k="$1" '$1 == k { sub(/^[^:]*:/, ""); print; exit }'; }
flush() { ctl flush b obj >/dev/null || die "emmctl flush b obj failed"; }
BYTES=$(numfmt --from=iec "$SIZE")
"$FB" populate "$WORK/data" "$SIZE"

mkdir "$WORK/ceph"
CEPH_MEMSTORE_BYTES=$((16 << 30)) ceph_start "$WORK/ceph" >/dev/null 2>&1 ||
    die "the ceph cluster did not start (see $WORK/ceph/log)"

ROWS=()
row() { ROWS+=("$(printf '%-28s %10s %10s %10s %10s' "$@")"); }

run_emm() { # LABEL BACKEND KEYS...
    local label=$1 t0 t1 t2 wr wb seq rand
    shift
    start_emmd b "$@"
    t0=$(date +%s.%N)
    dd if="$WORK/data" of="$MP/obj" bs=1M status=none
    t1=$(date +%s.%N)
    sync "$MP/obj" # fsync: every dirty page written back and acknowledged
    t2=$(date +%s.%N)
    wr=$(awk -v b="$BYTES" -v a="$t0" -v z="$t2" 'BEGIN { printf "%.0f", b / (z - a) / 1e6 }')
    wb=$(awk -v b="$BYTES" -v a="$t1" -v z="$t2" 'BEGIN { printf "%.0f", b / (z - a) / 1e6 }')
    flush
    seq=$(get seq_gbps "$("$FB" seq "$MP/obj")")
    flush
    rand=$(get rand_mean_us "$("$FB" rand "$MP/obj" "$RAND" 1001)")
    ctl info pagers >"$WORK/info-$label.txt" 2>&1 || true
    stop_emmd
    row "$label" "$wr" "$wb" "$seq" "$rand"
}

# rados bench: "Bandwidth (MB/sec):" and "Average Latency(s):" lines
rb() { rados -p "$CEPH_POOL" bench "$@" 2>/dev/null; }
rb_get() { awk -F: -v k="$1" '$1 == k { gsub(/ /, "", $2); print $2; exit }'; }

echo "emm rados benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown), ceph $(ceph --version 2>/dev/null | awk '{ print $3 }')"
echo "cluster: 1 mon + 1 osd (memstore, RAM), pool size 1, 127.0.0.1; object $SIZE of incompressible data; resident-limit $RESIDENT"
echo
# the floor before the emm rows too: on a shared machine the load moves
echo "running rados bench write (before) ..." >&2
w4a=$(rb "$SECS" write -b 4M -t 16 | rb_get "Bandwidth (MB/sec)")
timeout 120 rados -p "$CEPH_POOL" cleanup >/dev/null 2>&1 || true
echo "running lmdb ..." >&2
run_emm "lmdb (local disk)" lmdb
echo "running rados ..." >&2
run_emm "rados (4M objects)" rados rados.conf="$CEPH_CONF" rados.pool="$CEPH_POOL"
echo "running rados, write-behind 0 ..." >&2
run_emm "rados, write-behind 0" rados rados.conf="$CEPH_CONF" rados.pool="$CEPH_POOL" \
    rados.namespace=wb0 rados.write-behind=0
echo "running rados bench ..." >&2
out=$(rb "$SECS" write -b 4M -t 16 --no-cleanup)
w4=$(rb_get "Bandwidth (MB/sec)" <<<"$out")
out=$(rb "$SECS" seq -t 16)
s4=$(rb_get "Bandwidth (MB/sec)" <<<"$out")
rb "$SECS" write -b 4096 -t 16 --no-cleanup >/dev/null
out=$(rb "$SECS" rand -t 1)
r4=$(rb_get "Average Latency(s)" <<<"$out")
row "rados bench (same pool)" "${w4:-?}" "${w4:-?}" \
    "$(awk -v m="${s4:-0}" 'BEGIN { printf "%.2f", m / 1000 }')" \
    "$(awk -v s="${r4:-0}" 'BEGIN { printf "%.0f", s * 1e6 }')"
printf '%-28s %10s %10s %10s %10s\n' "" "write MB/s" "back MB/s" "seq GB/s" "rand µs"
printf '%-28s %10s %10s %10s %10s\n' "" "(dd+fsync)" "(fsync)" "(cold)" "(mean)"
for r in "${ROWS[@]}"; do printf '%s\n' "$r"; done
echo
for f in "$WORK"/info-rados*.txt; do
    # write_pages calls, RADOS writes, and the pages per write-behind run
    awk -F: -v f="${f##*/info-}" '
        $1 ~ /\.rados\.writes$/ { w = $2 } $1 ~ /\.rados\.write_ops$/ { o = $2 }
        $1 ~ /\.rados\.omap_ops$/ { m = $2 }
        $1 ~ /\.rados\.wb_runs$/ { r = $2 } $1 ~ /\.rados\.wb_run_pages$/ { p = $2 }
        END { printf "%-28s write_pages %s, RADOS writes %s, omap ops %s", f, w, o, m
              if (r) printf " (write-behind runs of %.0f KiB on average)", p * 4 / r
              printf "\n" }' "$f"
done
echo "rados bench write, 4 MiB objects, 16 in flight: ${w4a:-?} MB/s before the emm rows, ${w4:-?} MB/s after"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rados bench rows: write = 4 MiB objects, 16 in flight; seq = reading them back, 16 in"
echo "flight; rand = 4 KiB objects read one at a time (one synchronous round trip)."
