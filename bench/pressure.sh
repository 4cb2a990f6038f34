#!/bin/bash
# bench/pressure.sh BUILD_DIR - the pageout policies under memory pressure (issue 4;
# not a test, not part of `make bench`: ~35 min with the defaults).
#
# What it measures: fio throughput (IOPS, MB/s) and emmd's own hit ratio on one
# file 4x larger than emmd's resident pool (PRESSURE_SIZE 256M against
# resident-limit PRESSURE_RESIDENT 64M), for each pageout.policy side by side
# (second-chance, fifo, s3-fifo, and lru, exact LRU, the reference). Each
# (store, policy) gets a fresh emmd with one filesystem (readahead = 0, so every
# FUSE READ is one 4 KiB page):
#   lmdb  backend = lmdb: a page evicted clean is read again from LMDB, a dirty
#         one is laundered to LMDB first;
#   swap  backend = none (a temporary fs) with [default-pager] swap = 1G file:
#         pages live only in the pool and in swap.
# The file is written once (random data, dd bs=1M conv=fsync), then every
# workload runs for PRESSURE_RUNTIME s after a warm-up of PRESSURE_WARMUP s
# (the zipf reader, an independent sample: see fio_run; the pool starts in a
# steady state) and a drop_caches. The whole set of cases is run PRESSURE_REPS
# times, one after the other (so a burst of load on the machine hits one
# repetition of several cases, not every repetition of one case); each column
# is the median of the repetitions and ±% is the spread of IOPS,
# (max - min) / median.
# Workloads (bs 4k, fio, fixed seeds):
#   zipf       one random reader, random_distribution=zipf:PRESSURE_ZIPF:0.5
#              (1.1; 0.5 fixes the hot set's centre), psync, direct=1
#   scan-mix   that reader plus a sequential reader of the same file (psync,
#              direct=1), both free-running: a hot set mixed with a scan larger
#              than the pool. The mix follows their speeds (scan% column).
#              (fio's flow= would fix the ratio, but its waiting loop costs
#              10x the throughput even on tmpfs.)
#   zipf-mmap  the zipf reader through mmap (ioengine=mmap)
#   zipf-rw    zipf randrw 70% reads / 30% writes, psync, direct=1 (dirty pages
#              are laundered: lmdb writes, or swap writes)
# How the reads reach emmd: FUSE honours O_DIRECT on emm's mounts (they do not
# set FOPEN_DIRECT_IO, and the kernel sends a direct read straight as a FUSE
# READ), so the psync workloads bypass the Linux page cache: every fio read is
# a READ to emmd (reach% ~100). mmap cannot bypass it, so zipf-mmap runs fio
# in a memory cgroup (v1 memory.limit_in_bytes, or v2 memory.max) of
# PRESSURE_CGROUP_MEM (16M): the Linux page cache in front of emmd is capped at
# that, and emmd sees only what falls out of it (reach% < 100; the hottest
# pages never reach emmd, so its hit ratio there is lower).
# Columns: IOPS and MB/s (reads + writes, all jobs); scan% = the scan job's
# share of the reads (scan-mix); reach% = emmd READs / fio reads;
# hit% = 100 * (1 - pages_requested / read_ops) over the run from
# `emmctl info faults` (each READ is one page: the pages emmd had to ask its
# pager, LMDB or swap, for); evicted = pages that left the pool
# (reclaimed_clean + evictions), dirty-ev = evictions (laundered first),
# 2nd-ch = second_chances (second-chance and s3-fifo only), swap-out and
# swap-in = swap_pages_out and swap_faults (the swap store), all deltas over
# the measured run. After the read-only workloads the file is compared with
# the data written (verify ok/FAILED).
# Floors (PRESSURE_FLOORS): the same workloads on a tmpfs file (no emmd, no
# pressure), and emmd lmdb second-chance with resident-limit
# PRESSURE_BIG_RESIDENT (512M, larger than the file: no pageout).
#
# Knobs (environment): PRESSURE_SIZE (256M), PRESSURE_RESIDENT (64M),
# PRESSURE_BIG_RESIDENT (512M), PRESSURE_RUNTIME (10), PRESSURE_WARMUP (5),
# PRESSURE_REPS (3), PRESSURE_POLICIES ("second-chance fifo s3-fifo lru"),
# PRESSURE_STORES ("lmdb swap"), PRESSURE_WORKLOADS ("zipf scan-mix zipf-mmap
# zipf-rw"),
# PRESSURE_FLOORS ("tmpfs nopressure"), PRESSURE_ZIPF (1.1),
# PRESSURE_CGROUP_MEM (16M).
# Needs root, /dev/fuse, fusermount3, fio, jq, memory cgroups (v1 or v2).
set -euo pipefail

BUILD=${1:?usage: bench/pressure.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${PRESSURE_SIZE:-256M}
SMALL=${PRESSURE_RESIDENT:-64M}
BIG=${PRESSURE_BIG_RESIDENT:-512M}
RUNTIME=${PRESSURE_RUNTIME:-10}
WARMUP=${PRESSURE_WARMUP:-5}
REPS=${PRESSURE_REPS:-3}
POLICIES=${PRESSURE_POLICIES:-second-chance fifo s3-fifo lru}
STORES=${PRESSURE_STORES:-lmdb swap}
WORKLOADS=${PRESSURE_WORKLOADS:-zipf scan-mix zipf-mmap zipf-rw}
FLOORS=${PRESSURE_FLOORS-tmpfs nopressure}
ZIPF=${PRESSURE_ZIPF:-1.1}
CGMEM=${PRESSURE_CGROUP_MEM:-16M}

. "$SRC/bench/lib.sh"
bench_require fio jq numfmt cmp
bench_workdir pressure
SIZE_B=$(numfmt --from=iec "$SIZE")
CG=""

bench_cleanup_extra() {
    [ -z "$CG" ] || rmdir "$CG" 2>/dev/null || true
}

# cg_setup: a memory cgroup capped at $CGMEM for the mmap workload
cg_setup() {
    local bytes
    bytes=$(numfmt --from=iec "$CGMEM")
    if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
        CG=/sys/fs/cgroup/memory/emm-bench-pressure.$$
        mkdir "$CG"
        echo "$bytes" >"$CG/memory.limit_in_bytes"
    elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        grep -qw memory /sys/fs/cgroup/cgroup.subtree_control ||
            echo +memory >/sys/fs/cgroup/cgroup.subtree_control
        CG=/sys/fs/cgroup/emm-bench-pressure.$$
        mkdir "$CG"
        echo "$bytes" >"$CG/memory.max"
    else
        die "no memory cgroup (v1 /sys/fs/cgroup/memory or v2 memory controller)"
    fi
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# fio_run WORKLOAD FILE SECONDS SEED: runs fio, JSON to $WORK/fio.json. SEED
# "random" (the warm-up): a fresh sample of the same distribution. Otherwise
# fio's default: with randrepeat, fio seeds its Zipf generator from a hash of
# the file name, not from randseed, so every run on one path draws the same
# sequence. The warm-up must not replay that sequence: the measured run would
# then begin with exactly the pages the warm-up left in the pool, and the hit
# ratio would depend on how far each got (exact LRU read 94 % instead of 90 %
# when the CPUs were busy). The ":0.5" fixes the centre of the hot set
# (default: random from the seed), so both samples have the same hot pages.
fio_run() {
    local w=$1 f=$2 secs=$3 seed=$4 incg=0
    local -a a=(--output-format=json --output="$WORK/fio.json" --filename="$f" --size="$SIZE"
        --bs=4k --time_based --runtime="$secs" --ioengine=psync --direct=1)
    if [ "$seed" = random ]; then
        a+=(--randrepeat=0)
    else
        a+=(--randseed="$seed")
    fi
    local -a hot=(--name=hot --rw=randread --random_distribution=zipf:"$ZIPF":0.5)
    case $w in
    zipf) a+=("${hot[@]}") ;;
    scan-mix) a+=("${hot[@]}" --name=scan --rw=read) ;;
    zipf-mmap) a+=(--ioengine=mmap --direct=0 "${hot[@]}"); incg=1 ;;
    zipf-rw) a+=(--name=hot --rw=randrw --rwmixread=70 --random_distribution=zipf:"$ZIPF":0.5) ;;
    *) die "unknown workload $w" ;;
    esac
    if [ "$incg" = 1 ]; then
        sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" fio "${a[@]}" >/dev/null
    else
        fio "${a[@]}" >/dev/null
    fi || die "fio failed ($w on $f)"
}

# snap: emmd's counters as "key value" lines
snap() {
    if [ -n "${EMMD_PID:-}" ]; then
        { ctl info memory; ctl info faults; } | awk -F: 'NF == 2 && $2 ~ /^[0-9]+$/ { print $1, $2 }'
    fi
}

# d KEY: the counter's change between $WORK/s0 and $WORK/s1
d() {
    awk -v k="$1" 'FNR == NR { if ($1 == k) a = $2; next } $1 == k { b = $2 } END { print b - a }' \
        "$WORK/s0" "$WORK/s1"
}

# measure WORKLOAD FILE STORE LABEL: one run; appends its numbers to $WORK/raw
measure() {
    local w=$1 f=$2 store=$3 label=$4 tag iops mbs rios scan reach hit ev dev sc so si rd rq
    tag="$store-$label-$w-$REP"
    if [ "$WARMUP" -gt 0 ]; then
        drop_caches
        fio_run zipf "$f" "$WARMUP" random
    fi
    drop_caches
    snap >"$WORK/s0"
    fio_run "$w" "$f" "$RUNTIME" 42
    snap >"$WORK/s1"
    cp "$WORK/fio.json" "$WORK/fio-$tag.json"
    cp "$WORK/s0" "$WORK/s0-$tag.txt"
    cp "$WORK/s1" "$WORK/s1-$tag.txt"
    iops=$(jq '[.jobs[] | .read.iops + .write.iops] | add | floor' "$WORK/fio.json")
    mbs=$(jq '[.jobs[] | .read.bw_bytes + .write.bw_bytes] | add / 1e6 * 10 | floor / 10' "$WORK/fio.json")
    rios=$(jq '[.jobs[] | .read.total_ios] | add' "$WORK/fio.json")
    scan=$(jq '[.jobs[] | select(.jobname == "scan") | .read.total_ios] | add // 0' "$WORK/fio.json")
    scan=$(awk -v s="$scan" -v n="$rios" 'BEGIN { printf "%.1f", n ? 100 * s / n : 0 }')
    [ "$w" = scan-mix ] || scan=-
    if [ -n "${EMMD_PID:-}" ]; then
        rd=$(d read_ops)
        rq=$(d pages_requested)
        reach=$(awk -v r="$rd" -v n="$rios" 'BEGIN { printf "%.1f", n ? 100 * r / n : 0 }')
        hit=$(awk -v r="$rd" -v q="$rq" 'BEGIN { printf "%.2f", r ? 100 * (1 - q / r) : 0 }')
        ev=$(($(d reclaimed_clean) + $(d evictions)))
        dev=$(d evictions)
        sc=$(d second_chances)
        so=$(d swap_pages_out)
        si=$(d swap_faults)
    else
        reach=- hit=- ev=- dev=- sc=- so=- si=-
    fi
    echo "$w $store $label $iops $mbs $scan $reach $hit $ev $dev $sc $so $si" >>"$WORK/raw"
}

VERIFY=()
VERIFY_OK=0
# run_all FILE STORE POLICY: every workload, the read-only ones first, then
# the comparison with the data written, then the writing ones
run_all() {
    local f=$1 store=$2 pol=$3 w verified=0
    for w in $WORKLOADS; do
        if [ "$w" = zipf-rw ] && [ "$verified" = 0 ]; then
            verify "$f" "$store" "$pol"
            verified=1
        fi
        echo "  [rep $REP/$REPS] $store $pol $w ..." >&2
        measure "$w" "$f" "$store" "$pol"
    done
    [ "$verified" = 1 ] || verify "$f" "$store" "$pol"
}

verify() {
    drop_caches
    if cmp -s "$WORK/data" "$1"; then
        VERIFY_OK=$((VERIFY_OK + 1))
    else
        VERIFY+=("$2 $3 (rep $REP): FAILED ($(cmp "$WORK/data" "$1" 2>&1 | head -1))")
        echo "bench: $2 $3: the file differs from the data written" >&2
    fi
}

# emm_case STORE POLICY RESIDENT [LABEL]: LABEL (default POLICY) names the row
emm_case() {
    local store=$1 pol=$2 backend=lmdb swap="" label=${4:-$2}
    if [ "$store" = swap ]; then
        backend=none
        rm -f "$WORK/swap.img"
        swap="$WORK/swap.img 1G"
    fi
    RESIDENT=$3 POLICY=$pol SWAP=$swap start_emmd b "$backend" readahead=0
    echo "  $store $pol: writing $SIZE ..." >&2
    dd if="$WORK/data" of="$MP/obj" bs=1M conv=fsync status=none || die "dd into $MP/obj failed"
    run_all "$MP/obj" "$store" "$label"
    ctl info all >"$WORK/info-$store-$label-$REP.txt" 2>&1 || true
    stop_emmd
    cp "$WORK/emmd.log" "$WORK/emmd-$store-$label-$REP.log"
    : >"$WORK/emmd.log"
}

cg_setup
head -c "$SIZE_B" /dev/urandom >"$WORK/data"

echo "emm pageout policies under pressure  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown), libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo '?'), $(fio --version)"
echo "file: $SIZE random data; resident-limit $SMALL (floor: $BIG); fs readahead = 0; bs 4k; zipf:$ZIPF:0.5"
echo "each run: ${WARMUP} s warm-up (zipf, randrepeat=0), drop_caches, ${RUNTIME} s measured (fixed seeds); zipf-mmap in a memory cgroup of $CGMEM"
echo

for ((REP = 1; REP <= REPS; REP++)); do
    for fl in $FLOORS; do
        case $fl in
        tmpfs)
            mkdir -p "$WORK/tmpfs"
            mount -t tmpfs -o size=$((2 * SIZE_B)) emm-bench "$WORK/tmpfs"
            MOUNTS+=("$WORK/tmpfs")
            cp "$WORK/data" "$WORK/tmpfs/obj"
            EMMD_PID=""
            run_all "$WORK/tmpfs/obj" tmpfs -
            umount "$WORK/tmpfs"
            ;;
        nopressure) emm_case lmdb second-chance "$BIG" no-pageout ;;
        *) die "unknown floor $fl" ;;
        esac
    done
    for store in $STORES; do
        for pol in $POLICIES; do
            emm_case "$store" "$pol" "$SMALL"
        done
    done
done

# one row per (workload, store, label) in the order run: the median of each column
FMT='%-10s %-6s %-14s %8s %5s %7s %6s %6s %7s %9s %9s %9s %9s %9s\n'
for w in $WORKLOADS; do
    printf "$FMT" workload store policy IOPS ±% MB/s scan% reach% hit% evicted dirty-ev 2nd-ch \
        swap-out swap-in
    awk -v w="$w" -v fmt="$FMT" '
        function f(x, spec) { return x == "-" ? "-" : sprintf(spec, x) }
        function med(s,   a, n, i, j, t) {
            n = split(s, a, " ")
            if (a[1] == "-") return "-"
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == w {
            k = $2 " " $3
            if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
            for (c = 4; c <= NF; c++) v[k, c] = v[k, c] " " $c
            if (!((k, "lo") in v) || $4 + 0 < v[k, "lo"]) v[k, "lo"] = $4 + 0
            if (!((k, "hi") in v) || $4 + 0 > v[k, "hi"]) v[k, "hi"] = $4 + 0
        }
        END {
            for (i = 1; i <= nk; i++) {
                k = order[i]
                split(k, kk, " ")
                m = med(v[k, 4])
                sp = m > 0 ? sprintf("%.0f", 100 * (v[k, "hi"] - v[k, "lo"]) / m) : "-"
                printf fmt, w, kk[1], kk[2], f(m, "%.0f"), sp, f(med(v[k, 5]), "%.1f"),
                    f(med(v[k, 6]), "%.1f"), f(med(v[k, 7]), "%.1f"), f(med(v[k, 8]), "%.2f"),
                    f(med(v[k, 9]), "%.0f"), f(med(v[k, 10]), "%.0f"), f(med(v[k, 11]), "%.0f"),
                    f(med(v[k, 12]), "%.0f"), f(med(v[k, 13]), "%.0f")
            }
        }' "$WORK/raw"
    echo
done
if [ "${#VERIFY[@]}" = 0 ]; then
    echo "verify: the file read back equal to the data written in all $VERIFY_OK cases"
else
    echo "verify: $VERIFY_OK ok; ${VERIFY[*]}"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# keep the raw material of the last run: fio JSON, counters, emmd info and logs
KEEP="$BUILD/bench/pressure-last"
rm -rf "$KEEP"
mkdir -p "$KEEP"
cp "$WORK"/raw "$WORK"/fio-*.json "$WORK"/s[01]-*.txt "$KEEP"/ 2>/dev/null || true
cp "$WORK"/info-*.txt "$WORK"/emmd-*.log "$KEEP"/ 2>/dev/null || true
w=$(cat "$WORK"/emmd-*.log 2>/dev/null | wc -l)
echo "emmd log lines at warn or above: $w (logs, fio JSON and counters kept in $KEEP)"
echo
echo "median of $REPS runs per column; ±% = IOPS spread (max - min) / median; scan% = scan job's share of reads"
echo "reach% = emmd READs / fio reads (psync direct=1: ~100; mmap: only what the capped page cache misses)"
echo "hit% = 1 - pages_requested / read_ops in emmd (the reads it answered from its pool)"
echo "evicted = reclaimed_clean + evictions; dirty-ev = evictions (laundered first); deltas over the measured run"
