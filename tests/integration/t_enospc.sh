#!/bin/bash
# t_enospc.sh - a pager that refuses pages for good, with nowhere else to put
# them, ends in an error the writer sees, never in an unkillable wait (issue 15,
# item 1).
#
# resident-limit 4M, no swap; fs lim: backend memory with memory.limit 1M; fs
# other: backend memory without a limit. An 8 MiB pwrite + fsync to lim must
# return (under a liveness bound) with ENOSPC or EIO: the object is killed
# (objects_killed 1), the service goes on: other files on both filesystems
# are written and read back, lim takes a small file once the big one is
# removed, and emmd exits cleanly on SIGTERM.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
IO=$(helper emmio)

write_conf "$WORK/emmd.conf" "resident-limit=4M" <<'CONF_EOF'
[fs lim]
backend = memory
memory.limit = 1M

[fs other]
backend = memory
CONF_EOF
start_emmd "$WORK/emmd.conf"

# In the background: a writer stuck in D state cannot be killed, not even by
# timeout; the cleanup (SIGTERM, then aborting the FUSE connection) frees it.
"$IO" writeerr -y "$MNT/lim/big" 0 8M >"$WORK/writer.out" 2>&1 &
WRITER=$!
for ((i = 0; i < 600; i++)); do
    kill -0 $WRITER 2>/dev/null || break
    sleep 0.1
done
if kill -0 $WRITER 2>/dev/null; then
    ctl info faults >&2 || true
    fail "an 8 MiB pwrite past memory.limit did not return within 60 s (writer stuck)"
fi
wait $WRITER || fail "emmio writeerr exited with status $?"
out=$(cat "$WORK/writer.out")
case "$out" in
ENOSPC | EIO) log "8 MiB pwrite + fsync past memory.limit: $out" ;;
*) show_log; fail "8 MiB pwrite + fsync past memory.limit: got '$out', expected ENOSPC or EIO" ;;
esac
assert_eq "$(info_get objects_killed)" 1 "objects_killed"

# The service goes on.
"$IO" fill -y "$MNT/other/f" 0 6M 5 || fail "writing 6 MiB to another filesystem"
"$IO" check "$MNT/other/f" 0 6M 5 || fail "reading it back"
rm -f "$MNT/lim/big"
"$IO" fill -y "$MNT/lim/small" 0 256K 7 || fail "a small file on lim after removing the big one"
"$IO" check "$MNT/lim/small" 0 256K 7 || fail "reading the small file back"

emmd_alive || fail "emmd died"
stop_emmd
echo "PASS: $T_NAME"
