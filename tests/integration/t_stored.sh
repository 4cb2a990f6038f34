#!/bin/bash
# t_stored.sh - st_blocks, statfs (df) and `emmctl ls` STORED come from the
# kernel and the protocol (issue 9, "no side doors"), never from the backend:
# with `pager = process` emmd's own backend is a null one that stores nothing.
#
# Objects of 100 pages (400 KiB: st_blocks 800) whose pages are
#   res    resident only (written, not synced: the pager has none)   lmdb inline
#   pgr    in the pager only (fsync, then emmctl flush drops them)    lmdb inline
#   proc   in an emm-pager process (fsync, flush; proc2 fsync only)   lmdb, pager = process
#   tmp    a temporary object's (backend = none)                      resident / swap
#   big    a 40 MiB temporary object through a 16 MiB pool: mostly in swap
# and, after a restart, the persistent ones again while nobody has them open
# (no vm object: the kernel asks the pager with a data_query on the object's
# port). statfs's used blocks grow by what was written; STORED is the pager's
# count in pages.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires stat dd timeout
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 128M

[fs l]
backend = lmdb

[fs p]
backend = lmdb
pager = process

[fs t]
backend = none
CONF_EOF

PAGES=100
BLOCKS=$((PAGES * 8)) # 512-byte blocks

# used FS: statfs's used blocks (f_blocks - f_bfree, in 4 KiB fragments)
used() { stat -f -c '%b %f' "$MNT/$1" | awk '{ print $1 - $2 }'; }

write100() { # write100 FILE [fsync]
    local conv=
    [ "${2:-}" = fsync ] && conv=conv=fsync
    bounded "writing $1" dd if=/dev/urandom of="$1" bs=4096 count=$PAGES $conv status=none
}

start_emmd "$CONF"

for fs in l p t; do
    assert_eq "$(used $fs)" 0 "$fs: statfs used blocks of an empty filesystem"
done

# Resident only: dirty pages the pager has no copy of.
write100 "$MNT/l/res"
assert_eq "$(fblocks "$MNT/l/res")" $BLOCKS "l/res (resident only): st_blocks"
assert_eq "$(ls_col l res STORED)" 0 "l/res (resident only): STORED (the pager has none)"
assert_eq "$(ls_col l res RESIDENT)" $PAGES "l/res: RESIDENT"
assert_eq "$(used l)" $PAGES "l: statfs used blocks with l/res resident only"

# In the pager only.
write100 "$MNT/l/pgr" fsync
ctl flush l pgr >/dev/null || fail "emmctl flush l pgr"
assert_eq "$(ls_col l pgr RESIDENT)" 0 "l/pgr after flush: RESIDENT"
assert_eq "$(fblocks "$MNT/l/pgr")" $BLOCKS "l/pgr (in the pager only): st_blocks"
assert_eq "$(ls_col l pgr STORED)" $PAGES "l/pgr (in the pager only): STORED"
assert_eq "$(used l)" $((2 * PAGES)) "l: statfs used blocks with l/res and l/pgr"

# Behind pager = process: the store is in the emm-pager process.
write100 "$MNT/p/proc" fsync
cp "$MNT/p/proc" "$WORK/proc.copy"
ctl flush p proc >/dev/null || fail "emmctl flush p proc"
assert_eq "$(fblocks "$MNT/p/proc")" $BLOCKS "p/proc (in an emm-pager process): st_blocks"
assert_eq "$(ls_col p proc STORED)" $PAGES "p/proc: STORED"
assert_eq "$(used p)" $PAGES "p: statfs used blocks"
write100 "$MNT/p/proc2" fsync # a second one: two objects asked about after the restart

# Temporary: its pager is the default pager; the kernel knows it all.
write100 "$MNT/t/tmp"
assert_eq "$(fblocks "$MNT/t/tmp")" $BLOCKS "t/tmp (temporary): st_blocks"
assert_eq "$(ls_col t tmp STORED)" 0 "t/tmp: STORED (no pager of its own)"
assert_eq "$(used t)" $PAGES "t: statfs used blocks"

# In swap (mostly): 40 MiB through a 16 MiB pool.
bounded "writing t/big" dd if=/dev/urandom of="$MNT/t/big" bs=1M count=40 status=none
assert_gt "$(ls_col t big SWAP)" 0 "t/big: pages in swap"
assert_eq "$(fblocks "$MNT/t/big")" $((40 * 256 * 8)) "t/big (mostly in swap): st_blocks"
assert_eq "$(used t)" $((PAGES + 40 * 256)) "t: statfs used blocks with t/big"

# After a restart nobody has the objects open: no vm object, the kernel asks
# the pager on the object's port. (Temporary objects are gone.)
sync
stop_emmd
start_emmd "$CONF"
assert_eq "$(ls_col l pgr STORED)" $PAGES "l/pgr after a restart (not mapped): STORED"
assert_eq "$(ls_col p proc STORED)" $PAGES "p/proc after a restart (not mapped): STORED"
assert_eq "$(ls_col p proc STATE)" unmapped "p/proc is not mapped by ls"
assert_eq "$(used p)" $((2 * PAGES)) "p: statfs used blocks after a restart"
assert_eq "$(ls_col p proc2 STORED)" $PAGES "p/proc2 after a restart (not mapped): STORED"
assert_eq "$(info_get pager_p.state)" up "the pager of p is still up after the queries"
assert_eq "$(used l)" $((2 * PAGES)) "l: statfs used blocks after a restart (res was synced at stop)"
assert_eq "$(fblocks "$MNT/p/proc")" $BLOCKS "p/proc after a restart (lookup, not mapped): st_blocks"
assert_eq "$(fblocks "$MNT/l/res")" $BLOCKS "l/res after a restart: st_blocks"
assert_eq "$(used t)" 0 "t: statfs used blocks after a restart (temporary objects are gone)"
# Reading it maps it: the same count through the vm object.
cmp "$WORK/proc.copy" "$MNT/p/proc" || fail "p/proc reads back after a restart"
assert_eq "$(fblocks "$MNT/p/proc")" $BLOCKS "p/proc once mapped: st_blocks"
assert_gt "$(info_get queries)" 0 "queries (data_query sent to pagers)"
stop_emmd
echo "PASS: $T_NAME"
