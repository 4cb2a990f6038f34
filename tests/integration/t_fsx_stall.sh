#!/bin/bash
# t_fsx_stall.sh - the model-checking file tester (emmfsx) on lmdb with a
# stalled pager, so that pages live in swap: backend error:lmdb whose writes
# stall while $WORK/stall exists (pager.deadline = 300ms), a 16M pool and a
# 256M swap file. Phase 1, stall on: four seeds at once, each on its own file
# of up to 6 MiB, with fsync and msync disabled (-x sync: they would wait for
# the stalled pager, as they must); every page pushed out of the pool is
# double paged to swap and faulted back from there. Then double_paged,
# swap_pages_out and swap_faults are > 0 and LMDB holds nothing. Phase 2,
# stall off: sync(1) of the files waits for the replay, and two more seeds run
# with every op kind. A clean SIGTERM then keeps everything. See
# docs/testing.md "emmfsx".
#
# Issue 8 found here: a fault stuck behind a data_return the pager sits on
# (reads, the partial page of a write or punch, another file's request behind
# the shared pager threads, a truncated page's return, a page swap no longer
# holds) and a stale swap copy of a truncated page; the unit tests in
# tests/unit/test_vm_object.c (*_not_stalled_*, *_copy_goes_to_swap,
# *_not_held_*) pin each one down.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout sync

STALL="$WORK/stall"
# never leave the trigger behind for the cleanup's SIGTERM: emmd's final flush
# would wait for the stalled pager
trap '_rc=$?; trap - ERR; set +e; rm -f "$STALL"; (exit $_rc); _cleanup' EXIT

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" "fuse-threads=4" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M
deadline = 500ms

[fs s]
backend = error:lmdb
error.ops = write
error.action = stall
error.file = $STALL
pager.deadline = 300ms
lmdb.map-size = 1G
CONF_EOF
start_emmd "$CONF"

log "phase 1: the pager stalls every write"
touch "$STALL"
# the liveness bound: a run that waits for the stalled pager never ends
FSX_LIMIT=120
fsx_run stall "$MNT/s" 4 800 "201 202 203 204" -l 6M -o 256K -x sync
[ -e "$STALL" ] || fail "the stall file vanished"
ctl info memory | grep -E '^(double_paged|swap_pages_out|swap_faults|swap_used_pages|overdue_returns|objects_killed):' |
    tr '\n' ' ' | sed 's/^/# memory: /' >&2
echo >&2
assert_gt "$(info_get double_paged)" 0 "double_paged while the pager is stalled"
assert_gt "$(info_get swap_pages_out)" 0 "swap_pages_out while the pager is stalled"
assert_gt "$(info_get swap_faults)" 0 "swap_faults (pages served from swap) while the pager is stalled"
assert_eq "$(info_get objects_killed)" 0 "objects_killed"
for s in 201 202 203 204; do
    assert_eq "$(ls_col s "fsx-stall-$s" STORED)" 0 "s/fsx-stall-$s pages in LMDB while every write is stalled"
done

log "phase 2: the pager answers again"
rm -f "$STALL"
bounded "sync of the fsx files during the replay" sync "$MNT"/s/fsx-stall-*
fsx_run after "$MNT/s" 2 1000 "205 206" -l 6M -o 256K
fsx_check_counts "fsx on a stalled lmdb"
stop_emmd
