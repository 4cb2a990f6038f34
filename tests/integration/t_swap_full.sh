#!/bin/bash
# t_swap_full.sh - a temporary filesystem (backend = none) whose swap is too
# small: an 8M swap file (2031 slots) behind a 16M pool. Object B (1 MiB) is
# written, fsync'd (so its pages are in swap before the pressure starts) and
# read back. Then object A (64 MiB: the pool plus the swap are 24M) is
# written: swap fills up, and the object whose page could not be paged out,
# A, is killed. Checked:
#   - reading A fails with EIO (pread in python: OSError EIO), after the page
#     cache is dropped too, and an mmap read of A gets SIGBUS;
#   - `emmctl ls` shows A in state error and B not;
#   - B still reads back byte-identical (read(2) with the page cache dropped,
#     and through mmap);
#   - emmd's log has a line with KILLED; info memory objects_killed >= 1,
#     swap_full_errors >= 1; info pagers paging_t killed >= 1;
#   - emmd still answers ping; after A is removed its slots come back and a new
#     object goes to swap and reads back; emmd stops cleanly on SIGTERM.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3
PROBE=$(helper sigbus_probe)

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 8M

[fs t]
backend = none
CONF_EOF
start_emmd "$CONF"
D="$MNT/t"
assert_eq "$(info_get resident_limit_bytes)" $((16 << 20)) "resident_limit_bytes"
assert_eq "$(info_get swap_areas)" 1 "swap_areas"
total=$(info_get swap_total_pages)
log "swap: $total slots"
# the area is 8M: at most 2048 slots, and A (16384 pages) cannot fit with the pool
assert_gt "$total" 0 "swap_total_pages"
assert_ge 2048 "$total" "swap_total_pages of an 8M area"

# readerr PATH: read all of PATH with pread after dropping the page cache;
# prints OK, or the errno name of the first failing read
readerr() {
    echo 3 >/proc/sys/vm/drop_caches
    timeout -k 5 120 python3 - "$1" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size, off = os.fstat(fd).st_size, 0
try:
    while off < size:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        off += len(b)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}

# --- B: 1 MiB, fsync'd into swap, read back -----------------------------------
head -c $((1 << 20)) /dev/urandom >"$WORK/B.ref"
python3 - "$WORK/B.ref" "$D/B" <<'PY'
import os, sys
data = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
os.fsync(fd)     # a temporary object's dirty pages go to the default pager
os.close(fd)
PY
assert_eq "$(ls_col t B SWAP)" 256 "B's pages in swap after fsync (ls SWAP)"
assert_eq "$(mem swap_used_pages)" 256 "swap_used_pages after B"
echo 3 >/proc/sys/vm/drop_caches
cmp "$WORK/B.ref" "$D/B" || fail "B does not read back before the pressure"
assert_eq "$(readerr "$D/B")" OK "reading B before the pressure"
assert_eq "$(mem objects_killed)" 0 "objects_killed before A"
assert_eq "$(mem swap_full_errors)" 0 "swap_full_errors before A"

# --- A: 64 MiB, more than the pool and the swap together ----------------------
rc=0
timeout -k 5 120 dd if=/dev/urandom of="$D/A" bs=1M count=64 status=none 2>"$WORK/dd-A.err" || rc=$?
[ $rc != 124 ] && [ $rc != 137 ] || fail "writing A did not finish within 120 s (emmd stuck?)"
log "writing A: dd status $rc $(head -n 1 "$WORK/dd-A.err")"
emmd_alive || fail "emmd died while A was written"

# A was killed: its reads fail with EIO, its mapping with SIGBUS
out=$(readerr "$D/A")
assert_eq "$out" EIO "reading A after swap filled up"
assert_eq "$(readerr "$D/A")" EIO "reading A again"
assert_eq "$("$PROBE" "$D/A" 0)" SIGBUS "mmap read of A's first page"
assert_eq "$("$PROBE" "$D/A" $((8 << 20)))" SIGBUS "mmap read of A at 8 MiB"
rc=0
cat "$D/A" >/dev/null 2>"$WORK/cat-A.err" || rc=$?
assert_ne "$rc" 0 "cat A's exit status"
assert_contains "$(cat "$WORK/cat-A.err")" "Input/output error" "cat A's error"

ctl ls | sed 's/^/#   /' >&2
assert_eq "$(ls_col t A STATE)" error "A's state in emmctl ls"
state_b=$(ls_col t B STATE)
[ -n "$state_b" ] || fail "B is missing from emmctl ls"
assert_ne "$state_b" error "B's state in emmctl ls"

# B is intact, through read(2) (page cache dropped: from pool or swap) and mmap
echo 3 >/proc/sys/vm/drop_caches
cmp "$WORK/B.ref" "$D/B" || fail "B changed after A was killed"
assert_eq "$(readerr "$D/B")" OK "reading B after A was killed"
want=$(od -An -tx1 -j 4096 -N 1 "$WORK/B.ref" | tr -d ' ')
assert_eq "$("$PROBE" "$D/B" 4096)" "OK:0x$want" "mmap read of B after A was killed"
assert_eq "$(sha "$D/B")" "$(sha "$WORK/B.ref")" "sha256 of B after A was killed"

# the accounts
grep -q KILLED "$EMMD_LOG" || fail "emmd's log has no KILLED line"
grep KILLED "$EMMD_LOG" | head -n 3 | sed 's/^/#   /' >&2
assert_ge "$(mem objects_killed)" 1 "objects_killed"
assert_ge "$(mem swap_full_errors)" 1 "swap_full_errors"
assert_ge "$(pager_field t killed)" 1 "paging_t.killed"
assert_ge "$(info_get objects_in_error)" 1 "objects_in_error"
assert_eq "$(mem swap_io_errors)" 0 "swap_io_errors"
assert_eq "$(ctl ping)" pong "emmctl ping after A was killed"

# removing A gives its slots back (asynchronously: wait, bounded); then a new
# object can go to swap and read back
rm "$D/A"
for ((i = 0; i < 200; i++)); do
    [ "$(mem swap_used_pages)" -le 256 ] && break
    sleep 0.1
done
assert_eq "$(mem swap_used_pages)" 256 "swap_used_pages after removing A (B's pages only)"
head -c $((4 << 20)) /dev/urandom >"$WORK/C.ref"
python3 - "$WORK/C.ref" "$D/C" <<'PY'
import os, sys
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, open(sys.argv[1], "rb").read())
os.fsync(fd)
os.close(fd)
PY
assert_eq "$(ls_col t C SWAP)" 1024 "C's pages in swap after fsync"
echo 3 >/proc/sys/vm/drop_caches
cmp "$WORK/C.ref" "$D/C" || fail "C (written after A was removed) does not read back"
cmp "$WORK/B.ref" "$D/B" || fail "B at the end"
assert_ne "$(ls_col t C STATE)" error "C's state"
stop_emmd
