#!/bin/bash
# bench/backends.sh BUILD_DIR - the storage backends side by side (not a test).
#
# One emmd per case with one [fs b] over the backend, one object of BENCH_SIZE
# bytes written with dd + fsync, then, for each of BENCH_REPS runs:
#   emmctl flush b obj   (dirty pages go to the backend and every page leaves
#                         emmd's resident pool, so the next faults miss it)
#   faultbench seq       sequential cold mmap read, GB/s (page cache dropped)
#   emmctl flush b obj
#   faultbench rand      BENCH_RAND_PAGES random 4 KiB faults, mean and p99 µs
# and `emmctl info faults` before/after each phase: the pages the kernel
# requested from the pager (pages_requested) must cover the pages touched,
# which proves the data came from the backend, not from emmd's pool. The
# table shows the medians and the smallest coverage seen ("pager%").
# Cases (rows): tmpfs (the ceiling), null (the floor of the FUSE + pager path,
# no storage), memory, lmdb, zstd:memory, zstd:lmdb, file.
#
# Data: BENCH_DATA=sample (default) repeats a large binary (the biggest
# libLLVM*.so, else the biggest .so under /usr/lib) to BENCH_SIZE, so the zstd
# rows read compressed clusters as a real workload would; BENCH_DATA=random
# uses faultbench's incompressible data (zstd stores it raw). Every row reads
# the same bytes (null generates its own).
#
# Knobs: BENCH_SIZE (512M), BENCH_RAND_PAGES (20000), BENCH_REPS (3),
# BENCH_RESIDENT (256M), BENCH_CASES (subset of: tmpfs null memory lmdb
# zstd-memory zstd-lmdb file), BENCH_DATA (sample|random), BENCH_LMDBREAD (1: also
# run bench/lmdbread.c, built by CMake (target lmdbread); 0: skip).
# Needs root, /dev/fuse and fusermount3; mounts under a mktemp -d directory.
set -euo pipefail

BUILD=${1:?usage: bench/backends.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${BENCH_SIZE:-512M}
RAND=${BENCH_RAND_PAGES:-20000}
REPS=${BENCH_REPS:-3}
RESIDENT=${BENCH_RESIDENT:-256M}
CASES=${BENCH_CASES:-tmpfs null memory lmdb zstd-memory zstd-lmdb file}
DATA=${BENCH_DATA:-sample}

. "$SRC/bench/lib.sh"
bench_require
# lmdbread: the lmdb backend's read path against raw LMDB (links emm-backends)
LR="$BUILD/bench/lmdbread"
cmake --build "$BUILD" --target lmdbread >/dev/null || die "cannot build lmdbread"

bench_workdir backends

# info KEY: a value of `emmctl info` (any section)
info() { ctl info | awk -F: -v k="$1" '$1 == k { sub(/^[^:]*:/, ""); print; exit }'; }
minimum() { sort -g | head -n 1; }

# flush: push the object out of emmd's pool; the fs's resident pages must then be ~0
flush() {
    local out res
    out=$(ctl flush b obj) || die "emmctl flush b obj: $out"
    res=$(ctl info objects | awk -F: '$1 == "fs_b.resident" { print $2 }')
    [ "${res:-1}" -le 64 ] || echo "bench: warning: $res pages still resident after flush" >&2
}

# the data every row reads
BYTES=$(numfmt --from=iec "$SIZE")
if [ "$DATA" = sample ]; then
    SAMPLE=$(ls -S /usr/lib/x86_64-linux-gnu/libLLVM*.so* /usr/lib/*/libLLVM*.so* 2>/dev/null | head -n 1 || true)
    [ -n "$SAMPLE" ] || SAMPLE=$(find /usr/lib -name '*.so*' -type f -printf '%s %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
    [ -n "$SAMPLE" ] || die "no sample .so under /usr/lib (use BENCH_DATA=random)"
    while [ "$(stat -c %s "$WORK/data" 2>/dev/null || echo 0)" -lt "$BYTES" ]; do cat "$SAMPLE" >>"$WORK/data"; done
    truncate -s "$BYTES" "$WORK/data"
    DATADESC="$(basename "$SAMPLE") repeated to $SIZE ($(zstd -1 -c "$SAMPLE" 2>/dev/null | wc -c | awk -v o="$(stat -c %s "$SAMPLE")" '$1 > 0 { printf "whole-file zstd -1 %.2fx", o / $1 }'))"
elif [ "$DATA" = random ]; then
    "$FB" populate "$WORK/data" "$SIZE"
    DATADESC="faultbench's pseudo-random data (incompressible), $SIZE"
else
    die "BENCH_DATA must be sample or random"
fi
PAGES=$((BYTES / 4096))

# measure FILE EMM: REPS runs; sets SEQ RMEAN RP99 CACHED SEQCOV RANDCOV
measure() {
    local f=$1 emm=$2 r out seq="" rm="" rp="" cached="" scov="" rcov="" p0 p1 n
    for ((r = 1; r <= REPS; r++)); do
        [ "$emm" = 1 ] && { flush; p0=$(info pages_requested); }
        out=$("$FB" seq "$f") || die "faultbench seq failed on $f"
        seq+="$(get seq_gbps "$out")"$'\n'
        cached+="$(get cached_pct "$out") "
        if [ "$emm" = 1 ]; then
            p1=$(info pages_requested)
            scov+="$(awk -v d=$((p1 - p0)) -v n=$PAGES 'BEGIN { printf "%.1f", 100 * d / n }')"$'\n'
            flush
            p0=$(info pages_requested)
        fi
        out=$("$FB" rand "$f" "$RAND" $((1000 + r))) || die "faultbench rand failed on $f"
        rm+="$(get rand_mean_us "$out")"$'\n'
        rp+="$(get rand_p99_us "$out")"$'\n'
        cached+="$(get cached_pct "$out") "
        if [ "$emm" = 1 ]; then
            p1=$(info pages_requested)
            n=$(get rand_pages "$out")
            rcov+="$(awk -v d=$((p1 - p0)) -v n="$n" 'BEGIN { printf "%.1f", 100 * d / n }')"$'\n'
        fi
    done
    SEQ=$(printf '%s' "$seq" | median)
    RMEAN=$(printf '%s' "$rm" | median)
    RP99=$(printf '%s' "$rp" | median)
    CACHED=$(printf '%s\n' $cached | sort -g | tail -1)
    SEQCOV=$( [ -n "$scov" ] && printf '%s' "$scov" | minimum || echo -)
    RANDCOV=$( [ -n "$rcov" ] && printf '%s' "$rcov" | minimum || echo -)
}

ROWS=()
row() { ROWS+=("$(printf '%-14s %9s %9s %9s %8s %8s %8s %10s %7s' "$@")"); }

run_case() {
    local c=$1 backend stored ratio
    case $c in
    tmpfs)
        mkdir -p "$WORK/tmpfs"
        mount -t tmpfs -o size=$((BYTES + (64 << 20))) emm-bench "$WORK/tmpfs"
        MOUNTS+=("$WORK/tmpfs")
        cp "$WORK/data" "$WORK/tmpfs/obj"
        measure "$WORK/tmpfs/obj" 0
        umount "$WORK/tmpfs"
        row tmpfs "$SEQ" "$RMEAN" "$RP99" - - "$CACHED" - -
        return ;;
    null | memory | lmdb | file) backend=$c ;;
    zstd-memory) backend=zstd:memory ;;
    zstd-lmdb) backend=zstd:lmdb ;;
    *) die "unknown case $c" ;;
    esac
    start_emmd b "$backend"
    if [ "$c" = null ]; then
        "$FB" sparse "$MP/obj" "$SIZE"
    else
        dd if="$WORK/data" of="$MP/obj" bs=1M conv=fsync status=none
    fi
    measure "$MP/obj" 1
    stored=$(ctl ls | awk '$1 == "b" && $2 == "obj" { printf "%.0f", $5 * 4096 / 1048576 }')
    ratio=$(info b.zstd.ratio)
    ctl info >"$WORK/info-$c.txt" 2>&1 || true
    stop_emmd
    row "$backend" "$SEQ" "$RMEAN" "$RP99" "$SEQCOV" "$RANDCOV" "$CACHED" "${stored:--}" "${ratio:--}"
}

echo "emm backends benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown), libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo '?')"
echo "object: $SIZE of $DATADESC"
echo "random faults: $RAND pages, median of $REPS runs, resident-limit $RESIDENT, object flushed out of emmd's pool before every phase"
echo
for c in $CASES; do
    echo "running $c ..." >&2
    run_case "$c"
done
printf '%-14s %9s %9s %9s %8s %8s %8s %10s %7s\n' "backend" "seq GB/s" "rand µs" "rand p99" "pager%" "pager%" "cached%" "stored" "zstd"
printf '%-14s %9s %9s %9s %8s %8s %8s %10s %7s\n' "" "(cold)" "(mean)" "(µs)" "(seq)" "(rand)" "(max)" "MiB" "ratio"
for r in "${ROWS[@]}"; do printf '%s\n' "$r"; done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pager% = pages the kernel requested from the pager during the phase / pages touched"
echo "(smallest of the runs; >= 100 means every touch missed emmd's pool and reached the backend)."
echo "cached% = largest share of the file still in the page cache after the drop (tmpfs: always 100)."
if [ "${BENCH_LMDBREAD:-1}" = 1 ]; then
    echo
    echo "lmdbread: random 4 KiB page reads, emm's lmdb backend vs raw LMDB (hot map, 256 MiB, median of 5)"
    "$LR" "$WORK/lmdbread" 65536 200000 5 | sed 's/^/  /'
fi
