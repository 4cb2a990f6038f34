#!/bin/bash
# t_pager_mount.sh - the example external pager mounted through emmd: a
# staged install's emmd serves `[fs ro] pager = unix:SOCKET` from
# examples/unlock-pager (built out of tree with pkg-config alone, as in
# t_pager_example.sh), and real clients move data through the mount: dd writes
# a file and cmp reads it back; after emmd restarts (the pages come back from
# the pager, read-only), dd writes into three pages in part and one whole page,
# and python's mmap writes one more page. The pager's store, its grant
# counters and emmctl agree: a grant for every page written in part, none
# refused.
#
# Environment (set by ctest): EMM_BUILD, EMM_CMAKE, EMM_SRC.
# Exit 77 without cc, make, pkg-config, cmp, objdump, python3 or FUSE, or when this
# tree's emmd has no external pagers yet (services/emmd/pager_conn.c).
. "$(dirname "$0")/../integration/lib.sh"
requires cc make pkg-config cmp python3 objdump
[ -n "${EMM_BUILD:-}" ] || fail "EMM_BUILD (the build tree) is not set"
[ -f "$EMM_SRC/services/emmd/pager_conn.c" ] ||
    skip "emmd in this tree cannot use pager = unix:PATH yet (no services/emmd/pager_conn.c)"
need_fuse

. "$(dirname "$0")/pager_stage.sh"
# emmd first (it holds the pager's connection), then the pager.
trap '_rc=$?; _stop_emmd_quiet; [ -z "$PAGER_PID" ] || { kill -TERM "$PAGER_PID"; wait "$PAGER_PID"; }; (exit $_rc); _cleanup' EXIT

# ---- stage, build the example ----
stage_install PC LIB EX EMMD EMMCTL
EMMD=$S_EMMD
EMMCTL=$S_EMMCTL
build_unlock_pager

# ---- the pager ----
STORE="$WORK/store"
mkdir "$STORE"
start_unlock_pager "$STORE"

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[fs ro]
backend = null
pager = unix:$SOCKP
CONF_EOF

stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$STORE/unlock-pager.stats"; }
SIZE=262144
head -c $SIZE /dev/urandom >"$WORK/seed"

# 1. A new file: written by dd, read back by cmp, and in the pager's store.
start_emmd "$CONF"
bounded "dd into the mount" dd if="$WORK/seed" of="$MNT/ro/f" bs=64K conv=fsync status=none
cmp "$WORK/seed" "$MNT/ro/f" || fail "the file does not read back"
stop_emmd
store=$(find "$STORE" -type f ! -name 'unlock-pager.stats*' -size ${SIZE}c -print -quit)
[ -n "$store" ] || { ls -l "$STORE" >&2; fail "no $SIZE-byte object in the pager's store"; }
cmp "$WORK/seed" "$store" || fail "the pager's store does not hold the file"
assert_eq "$(stat_of refused)" 0 "refused data_returns after the first mount"
g0=$(stat_of grants)

# 2. emmd again: the pages come from the pager read-only; writes need grants.
start_emmd "$CONF"
cp "$WORK/seed" "$WORK/expect"
head -c 300 /dev/urandom >"$WORK/p1"
head -c 8192 /dev/urandom >"$WORK/p2"
for f in "$WORK/expect" "$MNT/ro/f"; do
    bounded "dd 300 bytes at 5000" dd if="$WORK/p1" of="$f" bs=1 seek=5000 conv=notrunc status=none
    bounded "dd 8192 bytes at 20000" \
        dd if="$WORK/p2" of="$f" bs=1 seek=20000 conv=notrunc,fsync status=none
done
bounded "python mmap write" python3 -c '
import mmap, os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDWR)
    m = mmap.mmap(fd, 0)
    m[40000:40100] = b"\x5a" * 100          # page 9, in part
    m.flush()
    m.close()
    os.fsync(fd)
    os.close(fd)
' "$MNT/ro/f" "$WORK/expect"
cmp "$WORK/expect" "$MNT/ro/f" || fail "the writes do not read back through the mount"
stop_emmd
cmp "$WORK/expect" "$store" || fail "the pager's store does not hold the writes"
grants=$(( $(stat_of grants) - g0 ))
log "grants: $grants; $(tr '\n' ' ' <"$STORE/unlock-pager.stats")"
# pages 1, 4, 6 (dd, in part) and 9 (mmap); page 5 is written whole
assert_ge "$grants" 4 "write grants in the second mount"
assert_eq "$(stat_of refused)" 0 "refused data_returns"
assert_eq "$(stat_of lock_completed)" "$(stat_of grants)" "lock_completed answers"
for pg in 1 4 6 9; do
    grep -q "page $pg granted write" "$WORK/pager.log" || fail "no grant for page $pg in the pager's log"
done
stop_pager
