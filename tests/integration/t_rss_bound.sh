#!/bin/bash
# t_rss_bound.sh - resident-limit bounds the whole daemon (issue 10). emmd runs
# with resident-limit = 16M, a swap file, a temporary filesystem `t`
# (backend none), an lmdb filesystem `s` whose pager stalls its writes while
# $WORK/stall exists, and a memory filesystem `m`. rsswatch samples emmd's
# VmRSS (/proc/PID/status: heap, stacks, every thread) every 50 ms while,
# one after the other:
#   A. emmio writes 256 MiB through a MAP_SHARED mapping of t/mm and msyncs;
#   B. four `dd bs=1M` write 64 MiB each to t/dd1..4 at the same time;
#   C. fio randwrite (psync, 64k, two jobs of 64 MiB) on t with crc32c verify
#      (skipped when fio is missing);
#   D. with the pager of `s` stalled, dd writes 64 MiB to s/obj while two dd
#      write 32 MiB each to t: pageouts of s go to swap (double paging);
#      then the stall ends;
# each followed by a check of every byte after dropping the page cache
# (page-in storms from swap and from lmdb). The peak must not exceed the bound docs/config.md
# states: resident-limit + 12 MiB + (fuse-threads + pager-threads + 4) MiB per
# filesystem (8 MiB each with the defaults).
# Then the memory backend: two 64 MiB objects written at once raise RSS by
# their size; deleting one must give back most of its 64 MiB, deleting both
# must bring RSS back under the same bound (freed memory goes
# back to the system).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires dd cmp sync timeout python3
EMMIO=$(helper emmio)
RSSWATCH=$(helper rsswatch)

STALL="$WORK/stall"
WATCH=""
# stop the watcher (our child, by pid) and remove the stall trigger before
# lib.sh's cleanup stops emmd (its final flush would wait for a stalled pager).
_rss_cleanup() {
    local rc=$?
    trap - ERR
    set +e
    rm -f "$STALL"
    if [ -n "$WATCH" ]; then
        kill -TERM "$WATCH" 2>/dev/null
        wait "$WATCH" 2>/dev/null
    fi
    (exit $rc)
    _cleanup
}
trap _rss_cleanup EXIT

MIB=$((1 << 20))
LIMIT_MB=16
NFS=3
# The documented bound (docs/config.md, "The resident-set bound"), with the
# default fuse-threads = 2 and pager-threads = 2.
BOUND_KIB=$(((LIMIT_MB + 12 + (2 + 2 + 4) * NFS) * 1024))
STEP_LIMIT=240

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=${LIMIT_MB}M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 768M
deadline = 500ms

[fs t]
backend = none

[fs s]
backend = error:lmdb
error.ops = write
error.action = stall
error.file = $STALL
lmdb.map-size = 512M
pager.deadline = 300ms

[fs m]
backend = memory
CONF_EOF

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$EMMD_PID/status"; }

# bounded WHAT CMD...: run CMD with a liveness bound (a hang is a failure, not a wait)
bounded() {
    local what=$1 rc=0
    shift
    timeout -k 10 "$STEP_LIMIT" "$@" || rc=$?
    [ $rc = 0 ] || { ctl info memory >&2 || true; fail "$what: exit status $rc${rc/#124/ (timed out)}"; }
    emmd_alive || fail "emmd died during: $what"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

SRC="$WORK/src"
gen_src "$SRC" 64 10
start_emmd "$CONF"
T="$MNT/t"
S="$MNT/s"
M="$MNT/m"
assert_eq "$(info_get resident_limit_bytes)" $((LIMIT_MB * MIB)) "resident_limit_bytes"
log "idle: VmRSS $(rss_kib) KiB; bound $BOUND_KIB KiB (resident-limit ${LIMIT_MB}M + 12M + 8M x $NFS filesystems)"

"$RSSWATCH" -l "$WORK/peaks" "$EMMD_PID" 50 >"$WORK/watch.out" &
WATCH=$!

# phase_end NAME: log the peak so far (the watcher's last new peak)
phase_end() { log "after $1: VmRSS $(rss_kib) KiB ($(awk '$1 ~ /^Rss/ { printf "%s %s ", $1, $2 }' "/proc/$EMMD_PID/status")), peak so far $(tail -n 1 "$WORK/peaks" | awk '{ print $2 }') KiB (${SECONDS}s)"; }

# A. mmap + msync of 256 MiB through the 16 MiB pool; read back from swap
bounded "mmap+msync 256M to t/mm" "$EMMIO" fill -m -y "$T/mm" 0 256M 7
drop_caches
bounded "check t/mm" "$EMMIO" check "$T/mm" 0 256M 7
rm "$T/mm"
phase_end "A (mmap+msync 256M, checked)"

# B. four dd bs=1M writers at once
pids=()
for i in 1 2 3 4; do
    timeout -k 10 "$STEP_LIMIT" dd if="$SRC" of="$T/dd$i" bs=1M status=none &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a dd writer to t failed (status $?)"; done
emmd_alive || fail "emmd died during the dd writers"
drop_caches
for i in 1 2 3 4; do bounded "cmp t/dd$i" cmp "$SRC" "$T/dd$i"; done
rm "$T"/dd*
phase_end "B (4 x dd 64M, checked)"

# C. fio randwrite with verify (fio reads every block back)
if command -v fio >/dev/null 2>&1; then
    fio_run "t/randwrite" "$STEP_LIMIT" "$WORK/fio.log" --name=rw --directory="$T" \
        --size=64M --fallocate=truncate --bs=64k --rw=randwrite \
        --ioengine=psync --numjobs=2 --verify=crc32c --verify_fatal=1 --verify_dump=0 \
        --randseed=99 --group_reporting
    rm -f "$T"/rw.*
    phase_end "C (fio randwrite 2 x 64M, verified)"
else
    log "C skipped: fio not installed"
fi

# D. a stalled pager while temporary objects are written
touch "$STALL"
timeout -k 10 "$STEP_LIMIT" dd if="$SRC" of="$S/obj" bs=1M status=none &
ps=$!
pids=()
for i in 5 6; do
    timeout -k 10 "$STEP_LIMIT" dd if="$SRC" of="$T/dd$i" bs=1M count=32 status=none &
    pids+=($!)
done
wait "$ps" || fail "dd to s/obj while its pager is stalled failed (status $?)"
for p in "${pids[@]}"; do wait "$p" || fail "a dd writer to t failed during the stall (status $?)"; done
assert_gt "$(info_get double_paged)" 0 "double_paged while the pager of s is stalled"
echo 3 >/proc/sys/vm/drop_caches
bounded "cmp s/obj while its pager is stalled" cmp "$SRC" "$S/obj"
rm -f "$STALL"
bounded "sync after the stall" sync
drop_caches
bounded "cmp s/obj" cmp "$SRC" "$S/obj"
for i in 5 6; do bounded "cmp t/dd$i" cmp -n $((32 * MIB)) "$SRC" "$T/dd$i"; done
assert_eq "$(fsize "$T/dd5")" $((32 * MIB)) "size of t/dd5"
rm -f "$T"/dd* "$S/obj"
phase_end "D (stalled pager, checked)"

kill -TERM "$WATCH"
wait "$WATCH" || fail "rsswatch failed"
WATCH=""
read -r PEAK NS <"$WORK/watch.out"
log "VmRSS peak $PEAK KiB over $NS samples (bound $BOUND_KIB KiB); last peaks (ms KiB): $(tail -n 3 "$WORK/peaks" | tr "\n" " ")"
ctl info memory | grep -E '^(rss|resident|pool|write|staged|fuse)' | sed 's/^/# /' >&2 || true
assert_gt "$NS" 10 "VmRSS samples"
# (the memory-backend check below still runs: the report names every breach)
BAD=""
[ "$PEAK" -le "$BOUND_KIB" ] ||
    BAD="emmd's VmRSS peaked at $PEAK KiB, above resident-limit + documented overhead = $BOUND_KIB KiB"
assert_eq "$(mem objects_killed)" 0 "objects_killed"

# The memory backend gives back what it frees. Two objects written at the
# same time interleave their pages in the heap: deleting one leaves holes
# between the other's pages, which only a trim gives back.
pids=()
for x in a b; do
    timeout -k 10 "$STEP_LIMIT" dd if="$SRC" of="$M/$x" bs=64k status=none &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a dd writer to m failed (status $?)"; done
bounded "sync m" sync
drop_caches
before=$(rss_kib)
log "memory backend: VmRSS $before KiB holding 2 x 64 MiB"
assert_gt "$before" $((112 * 1024)) "VmRSS while the memory backend holds 128 MiB"
rm "$M/a"
want=$((before - 48 * 1024))
for ((i = 0; i < 100; i++)); do
    [ "$(rss_kib)" -le "$want" ] && break
    sleep 0.1
done
mid=$(rss_kib)
log "memory backend: VmRSS $mid KiB after deleting m/a (64 MiB)"
[ "$mid" -le "$want" ] ||
    BAD="${BAD:+$BAD; }VmRSS $mid KiB 10 s after deleting a 64 MiB object of the memory backend (was $before KiB: less than 48 MiB given back)"
bounded "cmp m/b" cmp "$SRC" "$M/b"
rm "$M/b"
for ((i = 0; i < 100; i++)); do
    [ "$(rss_kib)" -le "$BOUND_KIB" ] && break
    sleep 0.1
done
after=$(rss_kib)
log "memory backend: VmRSS $after KiB after deleting every object"
[ "$after" -le "$BOUND_KIB" ] ||
    BAD="${BAD:+$BAD; }VmRSS $after KiB 10 s after deleting every object of the memory backend (bound $BOUND_KIB KiB)"
[ -z "$BAD" ] || fail "$BAD"
stop_emmd
