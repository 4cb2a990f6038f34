#!/bin/bash
# t_sigterm_dirty.sh - SIGTERM right after a burst of writes that nobody synced
# (through mmap without msync, and write(2) without fsync) loses nothing: emmd
# flushes the kernel's dirty pages and its own dirty pool to the pager before it
# unmounts. Checked page by page after a restart with the file backend. The
# object is larger than resident-limit so the pageout path runs as well.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=64M" <<'CONF_EOF'
[fs keep]
backend = file
CONF_EOF
D="$MNT/keep"
MAPPED=$((96 << 20))
WRITTEN=$((24 << 20))

for round in 1 2; do
    start_emmd "$CONF"
    seed=$((70 + round))
    "$IO" fill -m "$D/mapped" 0 $MAPPED $seed || fail "round $round: mmap write"
    "$IO" fill "$D/written" 0 $WRITTEN $((seed + 10)) || fail "round $round: write(2)"
    # a small object whose only page is still dirty when the signal comes
    "$IO" fill -m "$D/tiny" 100 10 $((seed + 20)) || fail "round $round: tiny mmap write"
    stop_emmd    # SIGTERM at once: no msync, no fsync, no sync(1)

    start_emmd "$CONF"
    assert_eq "$(fsize "$D/mapped")" $MAPPED "round $round: size of mapped after restart"
    assert_eq "$(fsize "$D/written")" $WRITTEN "round $round: size of written after restart"
    assert_eq "$(fsize "$D/tiny")" 110 "round $round: size of tiny after restart"
    "$IO" check "$D/mapped" 0 $MAPPED $seed || fail "round $round: mmap-written pages lost at SIGTERM"
    "$IO" check "$D/written" 0 $WRITTEN $((seed + 10)) || fail "round $round: write(2) pages lost at SIGTERM"
    "$IO" check "$D/tiny" 100 10 $((seed + 20)) || fail "round $round: tiny object's dirty page lost at SIGTERM"
    "$IO" zero "$D/tiny" 0 100 || fail "round $round: tiny object's first 100 bytes are not zero"
    stop_emmd
done
