#!/bin/bash
# t_pager_unopened.sh - files nobody opened since emmd started, behind a pager
# in its own process (pager = process, lmdb, pager.deadline = 60s):
#
# 1. A stat never waits for the pager: with the emm-pager stopped (SIGSTOP),
#    `stat` of files never opened (their count unknown: a port lookup would
#    be a round trip to the stopped pager) and of one opened (its count
#    query unanswered) returns, under `timeout 20`, well below the deadline;
#    st_blocks is the size's pages then. After SIGCONT a later stat has the
#    pager's count (the answer is kept; no attribute caching meanwhile).
#    Unfixed, GETATTR looked the port up in the FUSE thread: timeout's 124.
# 2. Unlinking never-opened files while the pager is up sends their discard
#    through the protocol at once: the pager's store (mdb_stat) loses their
#    pages, and emmd does not log them as "unlinked while the pager was
#    gone" (unfixed, every such unlink was queued as if the pager were
#    down, then flushed with that log line).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout mdb_stat stat
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

APID=""
trap '[ -z "$APID" ] || kill -CONT "$APID" 2>/dev/null || true; _cleanup' EXIT

stored() { # entries of the lmdb page databases under the state dir, summed
    local env n=0 e
    while IFS= read -r env; do
        e=$(mdb_stat -a "$(dirname "$env")" | awk '/^Status of/ { db = $3 } /Entries:/ { if (db ~ /page/) n += $2 } END { print n + 0 }')
        n=$((n + e))
    done < <(find "$STATE" -name data.mdb)
    echo "$n"
}
wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < 600; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what: not within 60 s"
}
store_is() { [ "$(stored)" = "$1" ]; }

conf="$WORK/emmd.conf"
write_conf "$conf" <<CONF_EOF
[fs a]
backend = lmdb
pager = process
pager.deadline = 60s
CONF_EOF
start_emmd "$conf"
# Eight files of 100 pages (sparse: 200 pages of size, 100 stored each).
for i in 1 2 3 4 5 6 7 8; do
    dd if=/dev/urandom of="$MNT/a/f$i" bs=4096 count=100 seek=100 conv=fsync status=none ||
        fail "dd to a/f$i"
done
wait_for "800 pages in the pager's store ($(stored))" store_is 800
stop_emmd
start_emmd "$conf" # now nobody has opened them

# 1. stat with the pager stopped
dd if=/dev/urandom of="$MNT/a/open" bs=4096 count=4 conv=fsync status=none || fail "dd to a/open"
APID=$(info_get pager_a.pid)
assert_gt "$APID" 0 "a's pager pid"
kill -STOP "$APID"
log "stopped a's emm-pager (pid $APID)"
for f in f1 f2 open; do
    out=$(timeout 20 stat -c '%s %b' "$MNT/a/$f") ||
        fail "stat a/$f with the pager stopped did not return (status $?)"
    log "stat a/$f with the pager stopped: size and blocks $out"
done
assert_eq "$(timeout 20 stat -c %b "$MNT/a/f1")" 1600 "a/f1's st_blocks unknown: the size's pages"
emmd_alive || fail "emmd died"
kill -CONT "$APID"
APID=""
log "continued a's emm-pager"
# The count asked in the background comes in: a later stat has it.
f1_blocks() { [ "$(timeout 60 stat -c %b "$MNT/a/f1")" = 800 ]; }
wait_for "a/f1's st_blocks from the pager's count (800; $(stat -c %b "$MNT/a/f1"))" f1_blocks

# 2. unlink of never-opened files with the pager up
for i in 3 4 5 6 7 8; do
    timeout 60 rm "$MNT/a/f$i" || fail "unlink a/f$i"
done
wait_for "the unlinked files' pages leave the store ($(stored) stored)" store_is $((200 + 4))
log "the store holds $(stored) pages: the unlinked files' discards went through at once"
stop_emmd
if grep -q "unlinked while the pager was gone\|unlinked while its pager is gone" "$EMMD_LOG"; then
    grep "unlinked while" "$EMMD_LOG" >&2
    fail "files unlinked with the pager up were taken for files unlinked while it was gone"
fi
