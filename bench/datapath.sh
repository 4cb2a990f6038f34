#!/bin/bash
# bench/datapath.sh BUILD_DIR - issue 10's rows, each beside its floor or
# device measured in the same run (not a test: nothing passes or fails).
#
#   rss        emmd's VmRSS growth (rsswatch, 50 ms) with resident-limit 16M,
#              a swap file and a temporary fs, while emmio writes 256 MiB
#              through mmap + msync and then four dd bs=1M write 64 MiB each;
#              reference: the limit
#   seqread    sequential cold mmap read (faultbench seq) of a 512 MiB object,
#              256 MiB pool, memory backend; floor: bench/bareloop serving
#              generated pages
#   mmapwrite  fio mmap sequential write 64k of 512 MiB with end_fsync; the
#              same on bareloop (drops writes)
#   swapwrite  512 MiB dd bs=1M conv=fsync to a temporary object through a
#              16 MiB pool; device: dd oflag=direct to a file on the swap
#              area's filesystem
#   swapread   reading it back (dd bs=1M) after drop_caches; device: dd
#              iflag=direct
#   swapmsync  256 MiB written through mmap + msync (emmio fill -m -y) to a
#              temporary object through a 16 MiB pool (write-back under
#              pressure, issue 10 point 6); device: the swapwrite row's
#   swapceil   the swapwrite/swapread/swapmsync runs again with the swap file
#              on tmpfs (/dev/shm): swap I/O costs a memcpy, so these are the
#              ceilings the rest of the path (FUSE, pool, pageout) allows
#
# Knobs: DP_SIZE (512M), DP_REPS (1), DP_CASES (subset of the rows above).
# Needs root, /dev/fuse, fusermount3, fio; mounts under a mktemp -d directory.
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/datapath.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
bench_require fio dd
cmake --build "$BUILD" --target bareloop emmio rsswatch >/dev/null 2>&1 ||
    cmake --build "$BUILD" --target bareloop >/dev/null || die "cannot build bareloop"
BL="$BUILD/bench/bareloop"
EMMIO="$BUILD/tests/emmio"
RSSW="$BUILD/tests/rsswatch"
SIZE=${DP_SIZE:-512M}
REPS=${DP_REPS:-1}
CASES=${DP_CASES:-"rss seqread mmapwrite swapwrite swapread swapmsync swapceil"}
bench_workdir datapath
BLPID=""
SHM=""
bench_cleanup_extra() {
    if [ -n "$SHM" ]; then stop_emmd; rm -rf "$SHM"; SHM=""; fi
    if [ -n "$BLPID" ]; then
        fusermount3 -u "$WORK/bl" 2>/dev/null
        wait "$BLPID" 2>/dev/null
        BLPID=""
    fi
}
size_bytes() { numfmt --from=iec "$1"; }
BYTES=$(size_bytes "$SIZE")
want() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# dd_mbs ARGS...: run dd, print its rate in MB/s
dd_mbs() {
    LC_ALL=C dd "$@" 2>&1 | awk '/copied/ { r = $(NF - 1); u = $NF
        if (u == "GB/s") r *= 1000; else if (u == "kB/s") r /= 1000; printf "%.0f\n", r }'
}
# fio_mibs FILE: fio mmap sequential write 64k of $SIZE, end_fsync; MiB/s
fio_mibs() {
    fio --name=w --filename="$1" --size="$SIZE" --bs=64k --rw=write --ioengine=mmap \
        --end_fsync=1 --output-format=json 2>/dev/null |
        jq '.jobs[0].write.bw_bytes / 1048576 | floor'
}
start_bareloop() {
    mkdir -p "$WORK/bl"
    MOUNTS+=("$WORK/bl")
    "$BL" "$WORK/bl" "$BYTES" 2>>"$WORK/bareloop.log" &
    BLPID=$!
    for ((i = 0; i < 100; i++)); do is_mounted "$WORK/bl" && break; sleep 0.1; done
    is_mounted "$WORK/bl" || die "bareloop did not mount"
    # the bdi tuning emmd does for its own mounts (fz_loop.c tune_bdi)
    local dev
    dev=$(mountpoint -d "$WORK/bl")
    echo 1024 >"/sys/class/bdi/$dev/read_ahead_kb" 2>/dev/null || true
    echo 0 >"/sys/class/bdi/$dev/strict_limit" 2>/dev/null || true
    echo 50 >"/sys/class/bdi/$dev/max_ratio" 2>/dev/null || true
}
rows=()
row() { rows+=("$(printf '%-10s %-44s %12s   %-34s %12s  %s' "$@")"); }

if want rss; then
    RESIDENT=16M SWAP="$WORK/swap.img 1G" start_emmd t none
    idle=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$EMMD_PID/status")
    "$RSSW" "$EMMD_PID" 50 >"$WORK/rss.out" &
    W=$!
    "$EMMIO" fill -m -y "$MP/mm" 0 256M 7
    rm "$MP/mm"
    pids=()
    for i in 1 2 3 4; do
        dd if=/dev/urandom of="$MP/dd$i" bs=1M count=64 status=none &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    kill -TERM "$W"; wait "$W" || true
    read -r peak _ <"$WORK/rss.out"
    row rss "VmRSS growth, 16M limit, mmap 256M + 4x64M dd" "$(((peak - idle) / 1024)) MiB" \
        "resident-limit" "16 MiB" "idle $((idle / 1024)) MiB, peak $((peak / 1024)) MiB"
    stop_emmd
fi

if want seqread || want mmapwrite; then
    start_bareloop
    if want seqread; then
        fl=$( for ((r = 0; r < REPS; r++)); do get seq_gbps "$("$FB" seq "$WORK/bl/data")"; done | median)
    fi
    if want mmapwrite; then
        flw=$( for ((r = 0; r < REPS; r++)); do fio_mibs "$WORK/bl/data"; done | median)
    fi
    bench_cleanup_extra
fi

if want seqread; then
    RESIDENT=256M start_emmd m memory
    "$FB" populate "$MP/obj" "$SIZE" >/dev/null
    v=$( for ((r = 0; r < REPS; r++)); do ctl flush m obj >/dev/null; get seq_gbps "$("$FB" seq "$MP/obj")"; done | median)
    row seqread "cold mmap read $SIZE, 256M pool, memory" "$v GB/s" "bare FUSE loop" "$fl GB/s" \
        "$(awk -v a="$v" -v b="$fl" 'BEGIN { printf "%.2fx", a / b }')"
    stop_emmd
fi

if want mmapwrite; then
    RESIDENT=256M start_emmd m memory
    v=$( for ((r = 0; r < REPS; r++)); do rm -f "$MP/w.dat"; fio_mibs "$MP/w.dat"; done | median)
    row mmapwrite "fio mmap seq write 64k $SIZE, end_fsync" "$v MiB/s" "bare loop, writes dropped" \
        "$flw MiB/s" "$(awk -v a="$v" -v b="$flw" 'BEGIN { printf "%.2fx", a / b }')"
    stop_emmd
fi

if want swapwrite || want swapread || want swapmsync; then
    count=$((BYTES >> 20))
    devw=$(dd_mbs if=/dev/zero of="$WORK/direct.dat" bs=1M count="$count" oflag=direct conv=fsync)
    drop
    devr=$(dd_mbs if="$WORK/direct.dat" of=/dev/null bs=1M iflag=direct)
    rm -f "$WORK/direct.dat"
fi
if want swapwrite || want swapread; then
    RESIDENT=16M SWAP="$WORK/swap.img $((2 * count))M" start_emmd t none
    head -c "$BYTES" /dev/urandom >"$WORK/src.dat"
    drop
    w=$(dd_mbs if="$WORK/src.dat" of="$MP/obj" bs=1M conv=fsync)
    drop
    r=$(dd_mbs if="$MP/obj" of=/dev/null bs=1M)
    cmp -s "$WORK/src.dat" "$MP/obj" || echo "bench: warning: the object read back differs" >&2
    want swapwrite && row swapwrite "dd $SIZE conv=fsync, temp object, 16M pool" "$w MB/s" \
        "dd oflag=direct, swap's filesystem" "$devw MB/s" \
        "$(awk -v a="$w" -v b="$devw" 'BEGIN { printf "%.2fx", a / b }')"
    want swapread && row swapread "read it back after drop_caches" "$r MB/s" "dd iflag=direct" \
        "$devr MB/s" "$(awk -v a="$r" -v b="$devr" 'BEGIN { printf "%.2fx", a / b }')"
    stop_emmd
fi

if want swapmsync; then
    RESIDENT=16M SWAP="$WORK/swap.img 1G" start_emmd t none
    t0=$(date +%s%N)
    "$EMMIO" fill -m -y "$MP/mm" 0 256M 7
    t1=$(date +%s%N)
    "$EMMIO" check "$MP/mm" 0 256M 7 || echo "bench: warning: the mmap+msync object reads back wrong" >&2
    v=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", 268435456 / (ns / 1e3) }')
    row swapmsync "mmap+msync 256M, temp object, 16M pool" "$v MB/s" \
        "dd oflag=direct, swap's filesystem" "$devw MB/s" \
        "$(awk -v a="$v" -v b="$devw" 'BEGIN { printf "%.2fx", a / b }')"
    stop_emmd
fi

if want swapceil; then
    SHM=$(mktemp -d /dev/shm/emm-bench.XXXXXX)
    count=$((BYTES >> 20))
    [ -f "$WORK/src.dat" ] || head -c "$BYTES" /dev/urandom >"$WORK/src.dat"
    RESIDENT=16M SWAP="$SHM/swap.img $((2 * count))M" start_emmd t none
    drop
    w=$(dd_mbs if="$WORK/src.dat" of="$MP/obj" bs=1M conv=fsync)
    drop
    r=$(dd_mbs if="$MP/obj" of=/dev/null bs=1M)
    t0=$(date +%s%N)
    "$EMMIO" fill -m -y "$MP/mm" 0 256M 7
    t1=$(date +%s%N)
    m=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", 268435456 / (ns / 1e3) }')
    stop_emmd
    rm -rf "$SHM"
    SHM=""
    row swapceil "the same 3 with swap on tmpfs: write/read/msync" "$w/$r/$m MB/s" \
        "(ceilings of the path without a device)" "" ""
fi

echo "emm data path (issue 10)  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?'); swap/files on $(df --output=source,fstype "$WORK" | tail -1)"
printf '%-10s %-44s %12s   %-34s %12s  %s\n' row what emm reference value ratio
for r in "${rows[@]}"; do echo "$r"; done
