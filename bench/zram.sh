#!/bin/bash
# bench/zram.sh BUILD_DIR - emm's zstd filter against the kernel's zram and
# whole-file zstd, on the same sample data (not a test).
#
# Samples:
#   binary  the biggest libLLVM*.so (else the biggest .so under /usr/lib)
#   heap    a heap-like dump: a python3 process builds dicts, lists, strings
#           and ints (~BENCH_HEAP_MB MiB), then its anonymous rw-p regions are
#           read through /proc/PID/maps + /proc/PID/mem into a file
# For each sample:
#   emm zstd:memory (zstd.cluster 64K, level 1): dd the sample in (1 MiB
#       writes, fsync), ratio = sample bytes / zstd.stored_bytes (the pages the
#       filter used below, padding and headers included); then flush the
#       object out of emmd's pool, drop the page cache and read it back with
#       faultbench seq (cold mmap read, GB/s) and dd (read(2), 1 MiB)
#   zram with lzo-rle and lz4 (a device of our own from hot_add): dd the
#       sample in (O_DIRECT), read mm_stat: ratio = sample bytes /
#       compr_data_size and sample bytes / mem_used_total; read it back with
#       O_DIRECT dd. Skipped (and said so) when zram is not available.
#   zstd -1 on the whole file (one stream), and zstd -b1 -B64K (independent
#       64 KiB blocks: the filter's bound without page padding).
# Knobs: BENCH_HEAP_MB (200), BENCH_ZRAM_ALGS ("lzo-rle lz4"), BENCH_CLUSTER (64K).
# Needs root, /dev/fuse, fusermount3, zstd, python3.
set -euo pipefail

BUILD=${1:?usage: bench/zram.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
HEAP_MB=${BENCH_HEAP_MB:-200}
ALGS=${BENCH_ZRAM_ALGS:-lzo-rle lz4}
CLUSTER=${BENCH_CLUSTER:-64K}

. "$SRC/bench/lib.sh"
bench_require zstd python3
bench_workdir zram
ZDEV=""       # /dev/zramN we set up
ZHOT=0        # 1 if we hot_added it (hot_remove at exit)
PYPID=""
zram_release() {
    [ -n "$ZDEV" ] || return 0
    local n=${ZDEV#/dev/zram}
    echo 1 >"/sys/block/zram$n/reset" 2>/dev/null || true
    [ "$ZHOT" = 1 ] && echo "$n" >/sys/class/zram-control/hot_remove 2>/dev/null || true
    ZDEV=""
    ZHOT=0
}
# called by bench/lib.sh's exit trap
bench_cleanup_extra() {
    [ -n "$PYPID" ] && kill "$PYPID" 2>/dev/null
    zram_release
}

pg() { ctl info pagers | awk -F: -v k="$1" '$1 == k { print $2; exit }'; }
now() { date +%s.%N; }
# rate BYTES T0 T1: MB/s
rate() { awk -v b="$1" -v a="$2" -v c="$3" 'BEGIN { printf "%.0f", b / (c - a) / 1e6 }'; }
ratio() { awk -v o="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.2f", o / c; else print "-" }'; }

# ---- samples ----------------------------------------------------------------------
BIN=$(ls -S /usr/lib/x86_64-linux-gnu/libLLVM*.so* /usr/lib/*/libLLVM*.so* 2>/dev/null | head -n 1 || true)
[ -n "$BIN" ] || BIN=$(find /usr/lib -name '*.so*' -type f -printf '%s %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
[ -n "$BIN" ] || die "no .so under /usr/lib"
cp "$BIN" "$WORK/binary"

# the heap: a python3 process with dicts, lists, strings, ints and floats
python3 - "$HEAP_MB" >"$WORK/py.out" 2>&1 <<'PY' &
import os, random, sys, time
random.seed(42)
mb = int(sys.argv[1])
words = ["alpha", "beta", "gamma", "delta", "page", "object", "pager", "kernel", "fault",
         "memory", "cluster", "zstd", "lmdb", "return", "supply", "request", "lock"]
keep = []
while True:
    d = {"id": len(keep), "name": random.choice(words) + "-" + str(random.randrange(10**6)),
         "tags": [random.choice(words) for _ in range(random.randrange(1, 6))],
         "score": random.random() * 1000, "count": random.randrange(1 << 20),
         "children": list(range(random.randrange(0, 20))),
         "text": " ".join(random.choice(words) for _ in range(random.randrange(3, 30)))}
    keep.append(d)
    if len(keep) % 20000 == 0:
        with open("/proc/self/statm") as f:
            if int(f.read().split()[1]) * 4096 >= mb << 20:
                break
print("ready", flush=True)
time.sleep(600)
PY
PYPID=$!
for ((i = 0; i < 1200; i++)); do
    grep -q ready "$WORK/py.out" 2>/dev/null && break
    kill -0 "$PYPID" 2>/dev/null || die "the heap builder died: $(cat "$WORK/py.out")"
    sleep 0.1
done
grep -q ready "$WORK/py.out" || die "the heap builder did not finish within 120 s"
python3 - "$PYPID" "$WORK/heap" >/dev/null <<'PY'
import sys
pid, out = sys.argv[1], sys.argv[2]
total = 0
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem, open(out, "wb") as o:
    for line in maps:
        f = line.split()
        if f[1] != "rw-p" or (len(f) > 5 and f[5] not in ("[heap]",)):
            continue          # anonymous private writable regions (and [heap]) only
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        mem.seek(lo)
        try:
            data = mem.read(hi - lo)
        except OSError:
            continue
        o.write(data)
        total += len(data)
print(total)
PY

kill "$PYPID" 2>/dev/null || true
wait "$PYPID" 2>/dev/null || true
PYPID=""
# page-align the samples (zram and the filter both work in pages)
for s in binary heap; do
    sz=$(stat -c %s "$WORK/$s")
    truncate -s $(((sz + 4095) / 4096 * 4096)) "$WORK/$s"
done

# ---- emm zstd:memory ----------------------------------------------------------------
# emm SAMPLE: sets E_RATIO E_FRATIO E_W E_SEQ E_RD
emm_run() {
    local s=$1 bytes t0 t1 out stored
    bytes=$(stat -c %s "$WORK/$s")
    RESIDENT=64M start_emmd z zstd:memory "zstd.cluster=$CLUSTER" zstd.level=1
    t0=$(now)
    dd if="$WORK/$s" of="$MP/$s" bs=1M conv=fsync status=none
    t1=$(now)
    E_W=$(rate "$bytes" "$t0" "$t1")
    stored=$(pg z.zstd.stored_bytes)
    E_RATIO=$(ratio "$bytes" "$stored")
    E_FRATIO=$(pg z.zstd.ratio)
    ctl flush z "$s" >/dev/null
    out=$("$FB" seq "$MP/$s")
    E_SEQ=$(printf '%s\n' "$out" | tr ' ' '\n' | awk -F= '$1 == "seq_gbps" { printf "%.0f", $2 * 1000 }')
    ctl flush z "$s" >/dev/null
    echo 3 >/proc/sys/vm/drop_caches
    t0=$(now)
    dd if="$MP/$s" of=/dev/null bs=1M status=none
    t1=$(now)
    E_RD=$(rate "$bytes" "$t0" "$t1")
    cmp -s "$WORK/$s" "$MP/$s" || die "emm: $s reads back different"
    stop_emmd
    rm -rf "$WORK/state"
}

# ---- zram -------------------------------------------------------------------------
ZRAM_OK=1
ZRAM_WHY=""
if [ ! -d /sys/class/zram-control ] && [ ! -e /sys/block/zram0 ]; then
    modprobe zram 2>/dev/null || true
fi
if [ -e /sys/class/zram-control/hot_add ]; then :
elif [ -e /sys/block/zram0 ] && [ "$(cat /sys/block/zram0/initstate)" = 0 ]; then :
else
    ZRAM_OK=0
    ZRAM_WHY="no zram (module not loaded and no /sys/class/zram-control)"
fi

zram_get() {
    local n
    if [ -e /sys/class/zram-control/hot_add ] && n=$(cat /sys/class/zram-control/hot_add 2>/dev/null); then
        ZDEV=/dev/zram$n
        ZHOT=1
    elif [ "$(cat /sys/block/zram0/initstate 2>/dev/null)" = 0 ]; then
        ZDEV=/dev/zram0
        ZHOT=0
    else
        return 1
    fi
    for ((i = 0; i < 50; i++)); do [ -b "$ZDEV" ] && return 0; sleep 0.1; done
    return 1
}

# zram_run SAMPLE ALG: sets Z_RATIO Z_MRATIO Z_W Z_RD (or returns 1)
zram_run() {
    local s=$1 alg=$2 bytes sys t0 t1 mm
    bytes=$(stat -c %s "$WORK/$s")
    zram_get || return 1
    sys=/sys/block/${ZDEV#/dev/}
    if ! grep -qw -- "$alg" "$sys/comp_algorithm" || ! echo "$alg" >"$sys/comp_algorithm" 2>/dev/null; then
        zram_release
        return 2
    fi
    echo $((bytes + (16 << 20))) >"$sys/disksize"
    t0=$(now)
    dd if="$WORK/$s" of="$ZDEV" bs=1M oflag=direct status=none
    t1=$(now)
    Z_W=$(rate "$bytes" "$t0" "$t1")
    sync
    mm=$(cat "$sys/mm_stat")
    # orig_data_size compr_data_size mem_used_total mem_limit mem_used_max same_pages ...
    Z_ORIG=$(echo "$mm" | awk '{ print $1 }')
    Z_SAME=$(echo "$mm" | awk '{ print $6 }')
    Z_RATIO=$(ratio "$bytes" "$(echo "$mm" | awk '{ print $2 }')")
    Z_MRATIO=$(ratio "$bytes" "$(echo "$mm" | awk '{ print $3 }')")
    t0=$(now)
    dd if="$ZDEV" of=/dev/null bs=1M count=$((bytes >> 20)) iflag=direct status=none
    t1=$(now)
    Z_RD=$(rate $(((bytes >> 20) << 20)) "$t0" "$t1")
    zram_release
}

# ---- run ----------------------------------------------------------------------------
echo "emm zstd vs zram benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown), zstd.cluster $CLUSTER, level 1, zstd:memory; $(zstd --version | head -n 1)"
echo "binary: $BIN, $(stat -c %s "$WORK/binary") bytes"
echo "heap:   anonymous rw-p memory of a python3 process (dicts/lists/str/int/float, ~$HEAP_MB MiB RSS), $(stat -c %s "$WORK/heap") bytes"
[ $ZRAM_OK = 1 ] || echo "zram: SKIPPED: $ZRAM_WHY"
echo
ROWS=()
row() { ROWS+=("$(printf '%-7s %-26s %8s %9s %8s %8s %9s  %s' "$@")"); }
for s in binary heap; do
    echo "running $s ..." >&2
    bytes=$(stat -c %s "$WORK/$s")
    emm_run "$s"
    row "$s" "emm zstd:memory $CLUSTER" "$E_RATIO" "-" "$E_W" "$E_RD" "$E_SEQ" "filter's own ratio (logical/stored) $E_FRATIO"
    ZBASE=""
    for alg in $ALGS; do
        if [ $ZRAM_OK = 1 ]; then
            rc=0
            zram_run "$s" "$alg" || rc=$?
            if [ $rc = 0 ]; then
                row "$s" "zram $alg" "$Z_RATIO" "$Z_MRATIO" "$Z_W" "$Z_RD" "-" "orig_data_size $Z_ORIG, same_pages $Z_SAME"
                [ -n "$ZBASE" ] || ZBASE=$Z_MRATIO
            elif [ $rc = 2 ]; then
                row "$s" "zram $alg" - - - - - "skipped: not in $(cat /sys/block/zram*/comp_algorithm 2>/dev/null | head -n 1)"
            else
                row "$s" "zram $alg" - - - - - "skipped: no free zram device"
            fi
        fi
    done
    t0=$(now)
    zc=$(zstd -1 -c -T1 "$WORK/$s" | wc -c)
    t1=$(now)
    zw=$(rate "$bytes" "$t0" "$t1")
    zstd -1 -c -T1 "$WORK/$s" >"$WORK/$s.zst"
    t0=$(now)
    zstd -d -c "$WORK/$s.zst" >/dev/null
    t1=$(now)
    row "$s" "zstd -1 whole file" "$(ratio "$bytes" "$zc")" - "$zw" "$(rate "$bytes" "$t0" "$t1")" - "one stream, single thread"
    rm -f "$WORK/$s.zst"
    b=$(zstd -b1 -B64K -i1 "$WORK/$s" 2>&1 | tr '\r' '\n' | grep -E '\(x[0-9.]+\)' | tail -n 1 | sed -E 's/.*\(x([0-9.]+)\).*/\1/' || true)
    row "$s" "zstd -b1 -B64K" "${b:--}" - - - - "independent 64 KiB blocks, no page padding"
    if [ -n "$ZBASE" ]; then
        TARGETS+=("$s: emm/zram(lzo-rle, mem_used_total) = $(awk -v a="$E_RATIO" -v b="$ZBASE" 'BEGIN { printf "%.2f", a / b }')x (target >= 1.3x); emm cold seq read $E_SEQ MB/s mmap, $E_RD MB/s read(2) (target >= 1000)")
    fi
done
printf '%-7s %-26s %8s %9s %8s %8s %9s  %s\n' "sample" "store" "ratio" "ratio" "write" "read" "mmap seq" "notes"
printf '%-7s %-26s %8s %9s %8s %8s %9s  %s\n' "" "" "(data)" "(mem)" "MB/s" "MB/s" "MB/s" ""
for r in "${ROWS[@]}"; do printf '%s\n' "$r"; done
echo
for t in "${TARGETS[@]+"${TARGETS[@]}"}"; do echo "$t"; done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio (data) = sample bytes / compressed bytes (emm: zstd.stored_bytes; zram: compr_data_size);"
echo "ratio (mem) = sample bytes / zram mem_used_total (zsmalloc overhead included)."
echo "emm read = flushed out of emmd's pool and page cache dropped first: every page is decompressed."
