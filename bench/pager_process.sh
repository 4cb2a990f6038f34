#!/bin/bash
# bench/pager_process.sh BUILD_DIR - issue 11's rows: each backend with its
# pager inline (threads in emmd) against `pager = process` (an emm-pager over
# a socket, page data in the connection's shared region), in one run (not a
# test: nothing passes or fails). A third column, "process, inline data",
# runs the pager process with EMM_STREAM_SHM=0 (page data through the socket,
# as before the shared region), so one run shows before and after.
#
# For each backend (memory, lmdb, zstd:lmdb, file) and each mode, one emmd
# with one [fs b], a PP_RESIDENT pool (64M) and one object of PP_SIZE (256M):
#   write-back  faultbench write: fill every page through a MAP_SHARED mapping,
#               then msync: 4x the pool, so pages go to the pager (data_return)
#               while it writes (GB/s)
#   cold read   emmctl flush b obj (every page back to the pager, out of the
#               pool), then faultbench seq: sequential cold mmap read (GB/s)
#   rand fault  flush again, faultbench rand: PP_RAND_PAGES random 4 KiB
#               faults, MADV_RANDOM (mean µs)
# Each cell is the median of PP_REPS runs. Ratios: process / inline (for the
# random fault a time: lower is better; targets ≤1.3x, cold read ≥0.8x,
# write-back ≥0.8x). The load average is printed with each backend's rows
# (the machine may be shared).
#
# Knobs: PP_SIZE (256M), PP_RESIDENT (64M), PP_RAND_PAGES (5000), PP_REPS (3),
# PP_BACKENDS (subset of: memory lmdb zstd:lmdb file), PP_MODES (subset of:
# inline process noshm; the columns and ratios follow the modes run).
# Needs root, /dev/fuse, fusermount3.
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/pager_process.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
bench_require
[ -x "$BUILD/bin/emm-pager" ] || die "no emm-pager in $BUILD/bin (make build)"
SIZE=${PP_SIZE:-256M}
RESIDENT=${PP_RESIDENT:-64M}
RAND=${PP_RAND_PAGES:-5000}
REPS=${PP_REPS:-3}
BACKENDS=${PP_BACKENDS:-memory lmdb zstd:lmdb file}
MODES=${PP_MODES:-inline process noshm}
bench_workdir pager_process

flush() { ctl flush b obj >/dev/null || die "emmctl flush b obj failed"; }
want_mode() { case " $MODES " in *" $1 "*) return 0 ;; esac; return 1; }

# run_mode BACKEND MODE: sets WB SEQ RND (medians) for one emmd
run_mode() {
    local backend=$1 mode=$2 r wb="" seq="" rnd="" kv=()
    case $mode in
    inline) ;;
    process | noshm) kv=("pager=process") ;;
    esac
    if [ "$mode" = noshm ]; then export EMM_STREAM_SHM=0; else unset EMM_STREAM_SHM; fi
    start_emmd b "$backend" "${kv[@]}"
    for ((r = 0; r < REPS; r++)); do
        rm -f "$MP/obj"
        "$FB" sparse "$MP/obj" "$SIZE" >/dev/null
        wb+="$(get write_gbps "$("$FB" write "$MP/obj")") "
        flush
        seq+="$(get seq_gbps "$("$FB" seq "$MP/obj")") "
        flush
        rnd+="$(get rand_mean_us "$("$FB" rand "$MP/obj" "$RAND" $((r + 1)))") "
    done
    if [ "$mode" != inline ]; then
        SHM="$(ctl info pagers | awk -F: '$1 == "pager_b.shm_messages" { print $2 }')"
    fi
    stop_emmd
    unset EMM_STREAM_SHM
    WB=$(tr ' ' '\n' <<<"$wb" | grep . | median)
    SEQ=$(tr ' ' '\n' <<<"$seq" | grep . | median)
    RND=$(tr ' ' '\n' <<<"$rnd" | grep . | median)
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "-") printf "%.2fx", a / b; else printf "-" }'; }

# cols: the modes run, in this order; ratios: each against inline
cols=()
for mode in inline process noshm; do want_mode "$mode" && cols+=("$mode"); done
row() { # BACKEND LABEL ARRAY-NAME [LOAD]
    local -n v=$3
    local line m
    line=$(printf '%-11s %-16s' "$1" "$2")
    for m in "${cols[@]}"; do line+=$(printf ' %9s' "${v[$m]}"); done
    line+="  "
    for m in "${cols[@]}"; do
        [ "$m" = inline ] || line+=$(printf ' %-7s' "$(ratio "${v[$m]}" "${v[inline]:--}")")
    done
    [ -z "${4:-}" ] || line+="  load $4"
    echo "$line"
}
rows=()
for backend in $BACKENDS; do
    declare -A wb=() seq=() rnd=()
    for mode in "${cols[@]}"; do
        SHM=""
        run_mode "$backend" "$mode"
        wb[$mode]=$WB seq[$mode]=$SEQ rnd[$mode]=$RND
        [ "$mode" != process ] || [ "${SHM:-0}" -gt 0 ] ||
            echo "bench: warning: $backend: no message used the shared region" >&2
    done
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    rows+=("$(row "$backend" "rand fault µs" rnd "$load")")
    rows+=("$(row "$backend" "cold read GB/s" seq)")
    rows+=("$(row "$backend" "write-back GB/s" wb)")
done

echo "emm pager = process against inline (issue 11)  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
echo "emm: $(git -C "$SRC" describe --always --dirty 2>/dev/null || echo '?'); object $SIZE, pool $RESIDENT, $RAND random faults, median of $REPS"
hdr=$(printf '%-11s %-16s' backend row)
for m in "${cols[@]}"; do hdr+=$(printf ' %9s' "$m"); done
hdr+="  "
for m in "${cols[@]}"; do [ "$m" = inline ] || hdr+=$(printf ' %-7s' "$m/in"); done
echo "$hdr"
for r in "${rows[@]}"; do echo "$r"; done
