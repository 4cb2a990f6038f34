#!/bin/bash
# t_seek_swap.sh - SEEK_DATA/SEEK_HOLE and st_blocks know about swap (issue 8,
# item 2). coreutils cp uses SEEK_DATA/SEEK_HOLE on files whose st_blocks say
# they are sparse; with pages only in swap it copied zeros or never ended.
#
# resident-limit 16M, a 256M swap file:
#   tmp    backend = none: a 40 MiB object lives mostly in swap
#   slow   backend = error:lmdb stalled on writes: pageouts go to swap
# For each: the object's st_blocks is > 0 and du agrees, SEEK_HOLE(0) is past
# the data, SEEK_DATA(0) is 0, and cp (under a liveness bound) makes an equal
# copy on local disk.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires cp cmp dd du stat timeout
IO=$(helper emmio)

STALL="$WORK/stall"
trap '_rc=$?; trap - ERR; set +e; rm -f "$STALL"; (exit $_rc); _cleanup' EXIT

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M
deadline = 500ms

[fs tmp]
backend = none

[fs slow]
backend = error:lmdb
error.ops = write
error.action = stall
error.file = $STALL
pager.deadline = 300ms
CONF_EOF
touch "$STALL"
start_emmd "$CONF"

MB=$((1 << 20))
dd if=/dev/urandom of="$WORK/src" bs=1M count=40 status=none

check_copy() {
    local fs=$1 f="$MNT/$1/obj" blocks hole data
    timeout -k 5 120 dd if="$WORK/src" of="$f" bs=1M status=none ||
        fail "$fs: writing 40 MiB did not finish"
    data=$("$IO" seek "$f" 0 data)
    hole=$("$IO" seek "$f" 0 hole)
    assert_eq "$data" 0 "$fs: SEEK_DATA(0)"
    assert_eq "$hole" $((40 * MB)) "$fs: SEEK_HOLE(0)"
    rm -f "$WORK/copy"
    timeout -k 5 120 cp --sparse=always "$f" "$WORK/copy" ||
        fail "$fs: cp did not finish (SEEK_DATA/SEEK_HOLE loop?)"
    cmp "$WORK/src" "$WORK/copy" || fail "$fs: cp made a different copy"
    blocks=$(stat -c %b "$f")
    assert_gt "$blocks" $((30 * MB / 512)) "$fs: st_blocks of a 40 MiB object mostly in swap"
    assert_gt "$(du -k "$f" | cut -f1)" $((30 * 1024)) "$fs: du -k"
}

check_copy tmp
in_swap=$(info_get swap_used_pages)
assert_gt "$in_swap" 0 "swap_used_pages after writing the temporary object"
check_copy slow
assert_gt "$(info_get double_paged)" 0 "double_paged (the stalled pager's pages went to swap)"

rm -f "$STALL"
stop_emmd
echo "PASS: $T_NAME"
