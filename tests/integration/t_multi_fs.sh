#!/bin/bash
# t_multi_fs.sh - one emmd serves several [fs] sections with different backends
# (memory, file, null); each is its own namespace: same names, different
# contents, unlink and rename stay inside one filesystem, and emmctl ls names
# the filesystem of every object.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3
IO=$(helper emmio)

mkdir -p "$WORK/explicit"
write_conf "$WORK/emmd.conf" <<CONF_EOF
[fs mem]
backend = memory

[fs disk]
backend = file
mountpoint = $WORK/explicit

[fs gen]
backend = null
CONF_EOF
start_emmd "$WORK/emmd.conf"
M="$MNT/mem"
F="$WORK/explicit"
N="$MNT/gen"
for d in "$M" "$F" "$N"; do is_mounted "$d" || fail "$d not mounted"; done
[ ! -e "$MNT/disk" ] || ! is_mounted "$MNT/disk" || fail "disk mounted at mount-root/disk despite an explicit mountpoint"

# same name, different contents and sizes
"$IO" fill -y "$M/obj" 0 $((3 << 20)) 31
"$IO" fill -y "$F/obj" 0 $((5 << 20)) 32
assert_eq "$(fsize "$M/obj")" $((3 << 20)) "size of mem/obj"
assert_eq "$(fsize "$F/obj")" $((5 << 20)) "size of disk/obj"
"$IO" check "$M/obj" 0 $((3 << 20)) 31 || fail "mem/obj content"
"$IO" check "$F/obj" 0 $((5 << 20)) 32 || fail "disk/obj content"
"$IO" check -m "$M/obj" 0 $((3 << 20)) 31 || fail "mem/obj content via mmap"
"$IO" check -m "$F/obj" 0 $((5 << 20)) 32 || fail "disk/obj content via mmap"

# names do not leak between filesystems
"$IO" fill -y "$M/only-mem" 0 4096 33
[ ! -e "$F/only-mem" ] || fail "an object created on mem appeared on disk"
[ ! -e "$N/only-mem" ] || fail "an object created on mem appeared on gen"
assert_eq "$(ls "$M" | sort | tr '\n' ' ')" "obj only-mem " "ls mem"
assert_eq "$(ls "$F" | sort | tr '\n' ' ')" "obj " "ls disk"

# unlink on one leaves the other alone
rm "$M/obj"
[ -e "$F/obj" ] || fail "rm mem/obj removed disk/obj"
"$IO" check "$F/obj" 0 $((5 << 20)) 32 || fail "disk/obj content after rm mem/obj"

# rename across filesystems is EXDEV (rename(2) itself, not mv's copy fallback)
assert_eq "$("$IO" rename "$M/only-mem" "$F/moved")" EXDEV "rename across filesystems"
[ -e "$M/only-mem" ] || fail "source vanished after a failed cross-fs rename"
[ ! -e "$F/moved" ] || fail "target appeared after a failed cross-fs rename"

# the null backend generates every page: a fresh object reads a deterministic,
# non-zero pattern, the same on every read and through read(2) and mmap
"$IO" truncate "$N/gen1" 8M
"$IO" truncate "$N/gen2" 8M
s1=$(sha "$N/gen1")
python3 - "$N/gen1" "$N/gen2" <<'PY' || fail "null backend pages"
import mmap, os, sys
a = sys.argv[1]
fd = os.open(a, os.O_RDONLY)
data = os.pread(fd, 8 << 20, 0)
assert len(data) == 8 << 20, len(data)
assert data.count(0) < len(data) // 2, "null backend pages are mostly zero"
m = mmap.mmap(fd, 8 << 20, mmap.MAP_SHARED, mmap.PROT_READ)
assert m[:] == data, "null backend: mmap and read(2) disagree"
PY
assert_eq "$(sha "$N/gen1")" "$s1" "null backend page contents on a second read"
echo 3 >/proc/sys/vm/drop_caches
assert_eq "$(sha "$N/gen1")" "$s1" "null backend page contents after dropping the page cache"

# emmctl ls names the filesystem of each object
out=$(ctl ls) || fail "emmctl ls"
log "emmctl ls:"; printf '%s\n' "$out" | sed 's/^/#   /' >&2
has_row() { printf '%s\n' "$out" | awk -v fs="$1" -v n="$2" 'NR > 1 && $1 == fs && $2 == n { f = 1 } END { exit !f }'; }
has_row mem only-mem || fail "emmctl ls has no row 'mem only-mem'"
has_row disk obj || fail "emmctl ls has no row 'disk obj'"
has_row gen gen1 || fail "emmctl ls has no row 'gen gen1'"
if has_row mem obj; then fail "emmctl ls still lists mem/obj after rm"; fi
if has_row disk only-mem; then fail "emmctl ls lists only-mem on disk"; fi
assert_eq "$(info_get filesystems)" 3 "emmctl info filesystems"

stop_emmd
