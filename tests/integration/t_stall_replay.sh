#!/bin/bash
# t_stall_replay.sh - double paging: a pager that stalls or fails its writes
# does not hold up the workload; its pages go to swap, are served from swap,
# and are replayed to the pager once it answers again.
#
# One emmd (resident-limit 16M, a 256M swap file created by emmd) with two
# error:lmdb filesystems (threaded pagers):
#   slow   error.action = stall on writes while $WORK/stall exists,
#          pager.deadline = 300ms
#   flaky  error.action = fail (EIO) on writes while $WORK/fail exists
#
# Phase 1 (stall): with the stall file present, 64 MiB of pseudo-random data
# (fixed seed) is written with dd (no fsync) and read back with cmp (its page
# cache dropped first, so the reads reach emmd) -- both must finish while the
# pager is still stalled. Then: double_paged, overdue_returns,
# swap_used_pages, the object's SWAP column are > 0, swap served faults, and
# LMDB holds none of the object's pages.
# Phase 2: the stall file goes; sync(1) right away waits for the replay and
# succeeds (the object's SWAP column is 0 when it returns, replayed > 0, swap
# is empty); os.fsync succeeds; after a SIGTERM and a restart the object is in LMDB and compares
# equal.
# Phase 3 (errors): with the fail trigger present, 32 MiB written to `flaky`
# is double paged (double_paged_flaky > 0), reads back equal, and fsync
# reports EIO; once the trigger is gone the pages are replayed, fsync
# succeeds, and after a restart the object compares equal.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3 cmp dd sync timeout

STALL="$WORK/stall"
FAILT="$WORK/fail"
# Never leave a trigger behind for the cleanup's SIGTERM: emmd's final flush
# would wait for the stalled pager.
# (ERR off and no errexit first: "(exit 1)" would end the shell before _cleanup)
trap '_rc=$?; trap - ERR; set +e; rm -f "$STALL" "$FAILT"; (exit $_rc); _cleanup' EXIT

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M
deadline = 500ms

[fs slow]
backend = error:lmdb
error.ops = write
error.action = stall
error.file = $STALL
pager.deadline = 300ms

[fs flaky]
backend = error:lmdb
error.ops = write
error.action = fail
error.errno = EIO
error.file = $FAILT
CONF_EOF

MB=$((1 << 20))
# liveness bound for each workload step: a step that waits for a stalled
# pager never finishes; this only turns such a hang into a failure
STEP_LIMIT=180

# fsync_result FILE: "OK" or the errno name of os.fsync on FILE
fsync_result() {
    python3 -c 'import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    os.fsync(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
os.close(fd)' "$1"
}

# wait_replayed FS NAME: poll (60 s) until FS's replayed > 0 and NAME's SWAP is 0
wait_replayed() {
    local i r=0 s=x
    for ((i = 0; i < 600; i++)); do
        r=$(pager_field "$1" replayed)
        s=$(ls_col "$1" "$2" SWAP)
        [ "$r" -gt 0 ] && [ "$s" = 0 ] && break
        sleep 0.1
    done
    log "$1/$2: replayed=$r SWAP=$s after $((i / 10)) s"
    assert_gt "$r" 0 "$1: pages replayed to the pager after the trigger went away"
    assert_eq "$s" 0 "$1/$2: SWAP column 60 s after the trigger went away"
}

dump_state() {
    ctl info memory | grep -E '^(resident_pages|pool_pages|swap_used_pages|swap_pages_out|swap_faults|double_paged|overdue_returns|replayed|objects_killed)' |
        tr '\n' ' ' | sed 's/^/# memory: /' >&2
    echo >&2
    ctl info pagers | grep '^paging_' | sed 's/^/# /' >&2
    ctl ls | sed 's/^/# /' >&2
}

SRC="$WORK/src"
gen_src "$SRC" 64 1
SRC32="$WORK/src32"
gen_src "$SRC32" 32 2

start_emmd "$CONF"
S="$MNT/slow"
F="$MNT/flaky"
assert_ne "$(info_get swap_total_pages)" 0 "swap_total_pages (the swap file emmd created)"
assert_eq "$(pager_field slow deadline_ms)" 300 "slow: pager.deadline"
assert_eq "$(ctl info pagers | awk -F: '$1 == "pager_slow.mode" { print $2 }')" threaded "slow: pager_slow.mode"

# ---- phase 1: the pager stalls every write; the workload must not wait for it
log "phase 1: stall on"
touch "$STALL"
bounded "dd of 64 MiB while the pager is stalled" dd if="$SRC" of="$S/obj" bs=1M status=none
[ -e "$STALL" ] || fail "the stall file vanished"
drop_cache "$S/obj"
bounded "cmp of 64 MiB while the pager is stalled" cmp "$SRC" "$S/obj"
[ -e "$STALL" ] || fail "the stall file vanished"
dump_state
assert_gt "$(info_get double_paged)" 0 "double_paged while the pager is stalled"
assert_gt "$(info_get double_paged_slow)" 0 "double_paged_slow while the pager is stalled"
assert_gt "$(info_get overdue_returns)" 0 "overdue_returns while the pager is stalled"
grep -q 'pager has not taken page [0-9]* back within its deadline' "$EMMD_LOG" ||
    fail "emmd's log does not say the pager went overdue"
assert_gt "$(pager_field slow overdue)" 0 "paging_slow overdue while the pager is stalled"
assert_gt "$(info_get swap_used_pages)" 0 "swap_used_pages while the pager is stalled"
assert_gt "$(info_get swap_faults)" 0 "swap_faults after reading back (page cache dropped) while stalled"
assert_gt "$(ls_col slow obj SWAP)" 0 "slow/obj SWAP column while the pager is stalled"
assert_eq "$(ls_col slow obj STORED)" 0 "slow/obj pages in LMDB while every write is stalled"
assert_eq "$(ls_col slow obj SIZE)" $((64 * MB)) "slow/obj size"
emmd_alive || fail "emmd died during the stall"

# ---- phase 2: the pager recovers; swap's pages are replayed to it
log "phase 2: stall off"
rm -f "$STALL"
# fsync right away: it waits for swap's pages to reach the pager, then syncs
bounded "sync slow/obj during the replay" sync "$S/obj"
assert_eq "$(ls_col slow obj SWAP)" 0 "slow/obj SWAP once the fsync returned"
wait_replayed slow obj
assert_eq "$(fsync_result "$S/obj")" OK "os.fsync of slow/obj after the replay"
dump_state
assert_eq "$(info_get swap_used_pages)" 0 "swap_used_pages after the replay and fsync"
assert_eq "$(ls_col slow obj STORED)" 16384 "slow/obj pages in LMDB after the replay and fsync"
drop_cache "$S/obj"
bounded "cmp after the replay" cmp "$SRC" "$S/obj"
stop_emmd
start_emmd "$CONF"
assert_eq "$(ls_col slow obj STORED)" 16384 "slow/obj pages in LMDB after the restart"
assert_eq "$(fsize "$S/obj")" $((64 * MB)) "slow/obj size after the restart"
bounded "cmp after the restart" cmp "$SRC" "$S/obj"
assert_eq "$(info_get swap_faults)" 0 "swap_faults after the restart (LMDB holds everything)"
assert_eq "$(info_get swap_used_pages)" 0 "swap_used_pages after the restart"
run2=$(awk '/^=== /{ n++ } n == 2' "$EMMD_LOG")
case "$run2" in
*"replaying them to the pager"*) fail "emmd replays pages from swap after a clean restart that followed a complete replay" ;;
esac

# ---- phase 3: the pager fails every write with EIO instead of stalling
log "phase 3: write errors on"
touch "$FAILT"
bounded "dd of 32 MiB while the pager fails writes" dd if="$SRC32" of="$F/obj" bs=1M status=none
drop_cache "$F/obj"
bounded "cmp of 32 MiB while the pager fails writes" cmp "$SRC32" "$F/obj"
assert_eq "$(fsync_result "$F/obj")" EIO "os.fsync of flaky/obj while its writes fail"
dump_state
assert_gt "$(info_get double_paged_flaky)" 0 "double_paged_flaky while the pager fails writes"
assert_gt "$(pager_field flaky double_paged)" 0 "paging_flaky double_paged while the pager fails writes"
assert_gt "$(info_get swap_used_pages)" 0 "swap_used_pages while the pager fails writes"
assert_eq "$(info_get objects_killed)" 0 "objects_killed (swap had room)"
emmd_alive || fail "emmd died on write errors"
log "phase 3: write errors off"
rm -f "$FAILT"
wait_replayed flaky obj
bounded "sync flaky/obj after the replay" sync "$F/obj"
assert_eq "$(fsync_result "$F/obj")" OK "os.fsync of flaky/obj after the replay"
assert_eq "$(ls_col flaky obj STORED)" 8192 "flaky/obj pages in LMDB after the replay and fsync"
dump_state
stop_emmd
start_emmd "$CONF"
assert_eq "$(fsize "$F/obj")" $((32 * MB)) "flaky/obj size after the restart"
bounded "cmp of flaky/obj after the restart" cmp "$SRC32" "$F/obj"
bounded "cmp of slow/obj after the second restart" cmp "$SRC" "$S/obj"
assert_eq "$(info_get swap_used_pages)" 0 "swap_used_pages after the second restart"
stop_emmd
