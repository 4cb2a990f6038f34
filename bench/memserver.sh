#!/bin/bash
# bench/memserver.sh BUILD_DIR - issue 12's benchmark rows in one run (not a
# test: nothing passes or fails): one emm-memserver (backend = memory, TLS
# 1.3 PSK) and two emmd hosts on 127.0.0.1, started with the integration
# tests' helpers (tests/integration/memsrv_lib.sh). Host A has two
# filesystems: `s` (pager = tcp: the server) and `i` (the same backend
# inline), so the first two rows compare the same backend both ways.
#
#   rand fault   MS_SIZE object written, `emmctl flush` (out of the pool and
#                the page cache), then faultbench rand: MS_RAND random 4 KiB
#                read faults, MADV_RANDOM (mean µs), remote and inline
#   cold read    flush again, faultbench seq: sequential cold mmap read (GB/s)
#   inval write  lockctr invalwrite: B reads page 0 (a read copy), then A
#                pwrites it (4 KiB) and must revoke B's copy first: mean µs,
#                against A's pwrite when nobody else holds the page
#   lock ping-pong  one process on each host, MS_LOCKS rounds each of
#                F_SETLKW / read / increment / write / unlock on one 8-byte
#                range of one page: locks granted per second, both together
#
# Knobs: MS_SIZE (64M), MS_RAND (4000), MS_WRITES (300), MS_LOCKS (300).
# Needs root, /dev/fuse, fusermount3, python3 (the helpers' free port).
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/memserver.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${MS_SIZE:-64M}
RAND=${MS_RAND:-4000}
WRITES=${MS_WRITES:-300}
LOCKS=${MS_LOCKS:-300}
FB="$BUILD/bench/faultbench"
cmake --build "$BUILD" --target faultbench lockctr >/dev/null || { echo "bench: build failed" >&2; exit 1; }

export EMM_BIN="$BUILD/bin" EMM_TESTBIN="$BUILD/tests" EMM_SRC="$SRC" MS_LOG_LEVEL=info
# The tests' helpers: $WORK, the EXIT trap that stops everything by pid and
# unmounts; a bench runs with their bounded waits.
set -- # lib.sh looks at nothing else
. "$SRC/tests/integration/lib.sh"
need_fuse
need_emm
. "$SRC/tests/integration/memsrv_lib.sh"
LC=$(helper lockctr)
get() { printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }

ms_start_server
ms_start_host a "$MS_PSK" "[fs i]" "backend = memory" || fail "host a did not start"
ms_start_host b || fail "host b did not start"
A=$(ms_mnt a) B=$(ms_mnt b) I="$WORK/hosts/a/mnt/i"
MOUNTS+=("$I")
for ((n = 0; n < 100; n++)); do is_mounted "$I" && break; sleep 0.1; done
is_mounted "$I" || fail "host a did not mount fs i"
actl() { "$EMMCTL" -s "$WORK/hosts/a/emmd.sock" "$@"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Hosts match objects by catalog id (docs/memserver.md): every shared file
# is made on both hosts, in the same order.
ms_share obj "$SIZE"
ms_share w 64K
ms_share p 64K
declare -A rnd seq
for fs in s i; do
    m="$WORK/hosts/a/mnt/$fs"
    "$FB" populate "$m/obj" "$SIZE" >/dev/null
    actl flush "$fs" obj >/dev/null
    echo 3 >/proc/sys/vm/drop_caches
    rnd[$fs]=$(get rand_mean_us "$("$FB" rand "$m/obj" "$RAND" 1)")
    actl flush "$fs" obj >/dev/null
    echo 3 >/proc/sys/vm/drop_caches
    seq[$fs]=$(get seq_gbps "$("$FB" seq "$m/obj")")
done
L1=$(load)

read -r _ inval _ plain < <("$LC" invalwrite "$A/w" "$B/w" "$WRITES")

t0=$(date +%s.%N)
"$LC" pingpong "$A/p" "$LOCKS" &
p1=$!
"$LC" pingpong "$B/p" "$LOCKS" &
p2=$!
wait $p1 && wait $p2 || fail "a ping-pong process failed"
t1=$(date +%s.%N)
count=$("$LC" read "$A/p" 0)
[ "$count" = $((2 * LOCKS)) ] || fail "ping-pong counter $count, want $((2 * LOCKS))"
L2=$(load)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }'; }
echo
echo "## emm-memserver over loopback: bench/memserver.sh ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo
echo "$(nproc) CPUs, $(uname -r); load average $L1 (faults), $L2 (writes, locks)."
echo "Object $SIZE, backend memory on both sides, TLS 1.3 PSK."
echo
echo "| case | inline | memserver | ratio | issue 12 target |"
echo "|---|---|---|---|---|"
echo "| random 4 KiB fault, mean | ${rnd[i]} µs | ${rnd[s]} µs | $(ratio "${rnd[s]}" "${rnd[i]}") | ≤ 2x |"
echo "| sequential cold read | ${seq[i]} GB/s | ${seq[s]} GB/s | $(ratio "${seq[s]}" "${seq[i]}") | ≥ 0.5x |"
echo "| 4 KiB pwrite on A, page held by nobody else / read copy on B revoked first | $plain µs | $inval µs | $(ratio "$inval" "$plain") | (cost) |"
awk -v n=$((2 * LOCKS)) -v a="$t0" -v b="$t1" 'BEGIN {
    printf "| lock ping-pong, 2 hosts, F_SETLKW + 8-byte read/increment/write + unlock | | %.0f locks/s | | (cost) |\n", n / (b - a) }'
