#!/bin/bash
# t_mmap_shared.sh - read(2), write(2) and MAP_SHARED mappings agree across
# processes; MAP_PRIVATE is copy-on-write and never reaches the file; msync and
# fsync push the dirty pages to the pager (data_returns grows, nothing dirty left).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3
IO=$(helper emmio)
SHARE=$(helper mmap_share)

write_conf "$WORK/emmd.conf" <<'CONF_EOF'
[fs shm]
backend = memory
CONF_EOF
start_emmd "$WORK/emmd.conf"
D="$MNT/shm"

# Two processes, their own mappings, ping-pong over 256 pages (1 MiB).
timeout 120 "$SHARE" "$D/shared" 256 || fail "mmap_share on 256 pages"
# ...and the result is what a third process reads afterwards, through both paths.
python3 - "$D/shared" <<'PY' || fail "a third process disagrees with the final state"
import mmap, os, struct, sys
PG = 4096
def word(w, r, p, i):
    return ((w << 56) ^ (r << 40) ^ (p << 12) ^ i ^ 0x5555000000000000) & (2**64 - 1)
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
assert size == 256 * PG, f"size {size}"
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
for p in (0, 1, 77, 128, 255):
    want = b"".join(struct.pack("<Q", word(ord("S"), 12, p, i)) for i in range(PG // 8))
    assert m[p * PG:(p + 1) * PG] == want, f"page {p} via mmap"
    assert os.pread(fd, PG, p * PG) == want, f"page {p} via pread"
PY

# MAP_PRIVATE in python: COW, nothing leaks into the file
"$IO" fill -y "$D/priv" 0 65536 21
python3 - "$D/priv" <<'PY' || fail "MAP_PRIVATE copy-on-write"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
before = os.pread(fd, 65536, 0)
m = mmap.mmap(fd, 65536, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
assert m[:] == before, "private mapping does not show the file"
m[4096:8192] = b"\xee" * 4096
assert m[4096:8192] == b"\xee" * 4096, "private write not visible to its writer"
s = mmap.mmap(fd, 65536, mmap.MAP_SHARED, mmap.PROT_READ)
assert s[4096:8192] == before[4096:8192], "private write leaked into a shared mapping"
assert os.pread(fd, 65536, 0) == before, "private write leaked into read(2)"
m.close(); s.close(); os.close(fd)
PY
"$IO" check "$D/priv" 0 65536 21 || fail "file changed by a MAP_PRIVATE write (checked by another process)"

# write(2) by one process is seen by an existing mapping of another
python3 - "$D/priv" "$IO" <<'PY' || fail "write(2) not seen by an existing MAP_SHARED mapping"
import mmap, os, subprocess, sys
path, io = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
m = mmap.mmap(fd, 65536, mmap.MAP_SHARED, mmap.PROT_READ)
_ = m[0:65536]                          # fault every page in first
subprocess.run([io, "fill", path, "8192", "16384", "22"], check=True)
fd2 = os.open(path, os.O_RDONLY)
assert m[8192:24576] == os.pread(fd2, 16384, 8192), "mapping and pread disagree"
subprocess.run([io, "check", "-m", path, "8192", "16384", "22"], check=True)
subprocess.run([io, "check", path, "0", "8192", "21"], check=True)
PY

# msync pushes dirty pages to the pager: data_returns grows and no page is left
# dirty in emmd's pool once the sync has returned.
assert_eq "$("$IO" fsync "$D/priv")" OK "fsync of priv"
NPG=512
ret0=$(info_get data_returns)
"$IO" fill -m -y "$D/synced" 0 $((NPG * 4096)) 23 || fail "mmap write + msync"
ret1=$(info_get data_returns)
dirty=$(info_get dirty_pages)
log "data_returns $ret0 -> $ret1, dirty_pages $dirty after msync of $NPG pages"
assert_gt "$ret1" "$ret0" "data_returns after msync of $NPG dirty pages"
assert_eq "$dirty" 0 "dirty_pages right after msync (nothing else is writing)"
"$IO" check "$D/synced" 0 $((NPG * 4096)) 23 || fail "content after msync"
# and fsync after write(2) does the same
ret2=$(info_get data_returns)
"$IO" fill -y "$D/fsynced" 0 $((NPG * 4096)) 24 || fail "write + fsync"
assert_gt "$(info_get data_returns)" "$ret2" "data_returns after fsync of $NPG dirty pages"
assert_eq "$(info_get dirty_pages)" 0 "dirty_pages right after fsync"

# many readers in parallel, each through its own mapping, see the same bytes
"$IO" fill -y "$D/par" 0 $((8 << 20)) 25
pids=()
for i in 1 2 3 4; do
    "$IO" check -m "$D/par" 0 $((8 << 20)) 25 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a parallel mmap reader saw wrong bytes"; done

stop_emmd
