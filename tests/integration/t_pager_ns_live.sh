#!/bin/bash
# t_pager_ns_live.sh - isolation (issue 11 §3): while a filesystem's pager is
# stopped (SIGSTOP of its emm-pager), the first open of one of its files
# waits for the pager to give the object's port (up to pager.deadline, 60s
# here) -- and the rest of the filesystem's namespace stays live meanwhile:
# `ls` of its directories and `stat` of its other files answer. (A stat of a
# file emmd has an object for asks the pager for st_blocks -- a query the
# stopped pager does not answer -- so the files stat'd here have none.)
#
# a/z is written, then emmd restarted, so emmd has no memory object for it
# yet; `cat a/z` during the stop asks the stopped pager for its port. Unfixed, emmd_node_vm held the filesystem's lock across that
# wait, so `ls` and `stat` of other files blocked with it (timeout's status
# 124 within 10 s, well under the 60 s deadline). After SIGCONT the pager
# answers, the cat ends, and emmd stops cleanly. No timing is asserted:
# `timeout 10` is a liveness bound far from both the deadline and an ls's cost.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

APID=""
trap '[ -z "$APID" ] || kill -CONT "$APID" 2>/dev/null || true; _cleanup' EXIT

conf="$WORK/emmd.conf"
write_conf "$conf" "resident-limit=64M" "fuse-threads=4" <<CONF_EOF
[fs a]
backend = lmdb
pager = process
pager.deadline = 60s
CONF_EOF
start_emmd "$conf"

gen_src "$WORK/src" 1 31
dd if="$WORK/src" of="$MNT/a/x" bs=1M conv=fsync status=none || fail "dd to a/x"
dd if="$WORK/src" of="$MNT/a/z" bs=1M conv=fsync status=none || fail "dd to a/z"
: >"$MNT/a/y" || fail "create a/y"
mkdir "$MNT/a/d" || fail "mkdir a/d"
# A restart: emmd has no memory object for any file until it is used.
stop_emmd
start_emmd "$conf"

APID=$(info_get pager_a.pid)
assert_gt "$APID" 0 "a's pager pid"
kill -STOP "$APID"
log "stopped a's emm-pager (pid $APID)"

# The first open of a/z: waits for the stopped pager to give its port.
timeout -k 5 120 cat "$MNT/a/z" >"$WORK/z.out" 2>"$WORK/z.err" &
CAT=$!
sleep 1 # let it reach emmd first (an ordering, not a timing assertion)

for r in 1 2 3; do
    rc=0
    out=$(timeout -k 5 10 ls "$MNT/a") || rc=$?
    [ "$rc" = 0 ] || fail "ls of a while a's first open waits for the stopped pager (status $rc)"
    assert_contains "$out" "x" "ls of a"
    rc=0
    timeout -k 5 10 stat "$MNT/a/y" "$MNT/a/d" >/dev/null || rc=$?
    [ "$rc" = 0 ] || fail "stat of a/y and a/d while a/z's open waits for the stopped pager (status $rc)"
    rc=0
    timeout -k 5 10 ls "$MNT/a/d" >/dev/null || rc=$?
    [ "$rc" = 0 ] || fail "ls of a/d while a/z's open waits for the stopped pager (status $rc)"
    log "round $r: ls and stat on a answer while its pager is stopped"
done
emmd_alive || fail "emmd died while a's pager was stopped"

kill -CONT "$APID"
log "continued a's emm-pager"
rc=0
wait "$CAT" || rc=$?
[ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "cat of a/z did not end after SIGCONT (status $rc)"
[ "$rc" = 0 ] || fail "cat of a/z failed after SIGCONT (status $rc: $(cat "$WORK/z.err"))"
cmp "$WORK/src" "$WORK/z.out" || fail "a/z does not read back equal"
timeout 60 cmp "$WORK/src" "$MNT/a/x" || fail "a/x does not read back equal"
APID=""
stop_emmd
