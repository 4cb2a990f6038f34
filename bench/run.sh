#!/bin/bash
# bench/run.sh BUILD_DIR - emm's fault-path benchmark (run by `make bench`; not a test).
#
# Builds bench/faultbench.c into BUILD_DIR/bench/, then measures, on one file of
# BENCH_SIZE bytes, for each case:
#   sequential cold mmap read (GB/s), random 4 KiB mmap read faults (mean and
#   p99, µs), mmap write + msync (GB/s)
# Cases: a tmpfs file; emm with the memory backend; emm with the null backend;
# the emm cases once with busy-poll at its default and once with busy-poll = 0.
# Each number is the median of BENCH_REPS runs. Prints one table.
#
# Knobs (environment): BENCH_SIZE (1G), BENCH_RAND_PAGES (20000), BENCH_REPS (3),
# BENCH_RESIDENT (resident-limit for the emm cases, 2G: the object fits in the
# pool, so reads after the page cache drop are served from emmd's pool),
# BENCH_CASES (space-separated subset of: tmpfs mem mem-nopoll null null-nopoll).
# Needs root, /dev/fuse and fusermount3 (it mounts under a mktemp -d directory).
set -euo pipefail

BUILD=${1:?usage: bench/run.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${BENCH_SIZE:-1G}
RAND=${BENCH_RAND_PAGES:-20000}
REPS=${BENCH_REPS:-3}
RESIDENT=${BENCH_RESIDENT:-2G}
CASES=${BENCH_CASES:-tmpfs mem mem-nopoll null null-nopoll}

. "$SRC/bench/lib.sh"
bench_require numfmt
bench_workdir run

# measure FILE: runs every phase REPS times; sets SEQ RMEAN RP99 WRITE (medians) and CACHED
measure() {
    local f=$1 r out seq="" rm="" rp="" wr="" cached=""
    for ((r = 1; r <= REPS; r++)); do
        out=$("$FB" seq "$f") || die "faultbench seq failed on $f"
        seq+="$(get seq_gbps "$out")"$'\n'
        cached+="$(get cached_pct "$out") "
        out=$("$FB" rand "$f" "$RAND" $((1000 + r))) || die "faultbench rand failed on $f"
        rm+="$(get rand_mean_us "$out")"$'\n'
        rp+="$(get rand_p99_us "$out")"$'\n'
        cached+="$(get cached_pct "$out") "
        out=$("$FB" write "$f") || die "faultbench write failed on $f"
        wr+="$(get write_gbps "$out")"$'\n'
        cached+="$(get cached_pct "$out") "
    done
    SEQ=$(printf '%s' "$seq" | median)
    RMEAN=$(printf '%s' "$rm" | median)
    RP99=$(printf '%s' "$rp" | median)
    WRITE=$(printf '%s' "$wr" | median)
    CACHED=$(printf '%s\n' $cached | sort -g | tail -1)
}

ROWS=()
row() { ROWS+=("$(printf '%-28s %10s %10s %10s %12s %8s' "$@")"); }

run_case() {
    local c=$1 label backend poll
    case $c in
    tmpfs)
        mkdir -p "$WORK/tmpfs"
        mount -t tmpfs -o size=$((2 * $(numfmt --from=iec "$SIZE"))) emm-bench "$WORK/tmpfs"
        MOUNTS+=("$WORK/tmpfs")
        "$FB" populate "$WORK/tmpfs/obj" "$SIZE"
        measure "$WORK/tmpfs/obj"
        umount "$WORK/tmpfs"
        row "tmpfs file" "$SEQ" "$RMEAN" "$RP99" "$WRITE" "$CACHED"
        return ;;
    mem) label="emm memory, busy-poll on"; backend=memory; poll="" ;;
    mem-nopoll) label="emm memory, busy-poll off"; backend=memory; poll=0 ;;
    null) label="emm null, busy-poll on"; backend=null; poll="" ;;
    null-nopoll) label="emm null, busy-poll off"; backend=null; poll=0 ;;
    *) die "unknown case $c" ;;
    esac
    BUSY_POLL=$poll start_emmd b "$backend"
    if [ "$backend" = null ]; then
        "$FB" sparse "$MP/obj" "$SIZE"
    else
        "$FB" populate "$MP/obj" "$SIZE"
    fi
    measure "$MP/obj"
    if [ -x "$EMMCTL" ]; then
        "$EMMCTL" -s "$WORK/emmd.sock" info >"$WORK/info-$c.txt" 2>&1 || true
    fi
    stop_emmd
    row "$label" "$SEQ" "$RMEAN" "$RP99" "$WRITE" "$CACHED"
}

echo "emm fault-path benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown), libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo '?')"
echo "object: $SIZE, random faults: $RAND pages, median of $REPS runs, emm resident-limit $RESIDENT"
echo
for c in $CASES; do
    echo "running $c ..." >&2
    run_case "$c"
done
printf '%-28s %10s %10s %10s %12s %8s\n' "case" "seq GB/s" "rand µs" "rand p99" "write+msync" "cached%"
printf '%-28s %10s %10s %10s %12s %8s\n' "" "(cold)" "(mean)" "(µs)" "GB/s" "(max)"
for r in "${ROWS[@]}"; do printf '%s\n' "$r"; done
echo
echo "cached% = largest share of the file still in the page cache after the drop before a phase"
echo "(0 for emm means every measured touch went to emmd; tmpfs is always 100)."
