#!/bin/bash
# t_sparse.sh - a memory object is a sparse, resizable array of pages: a 1 TiB
# object costs nothing, st_blocks counts only the pages that exist, holes read
# zero, SEEK_DATA/SEEK_HOLE find the pages, PUNCH_HOLE discards them, and
# truncate, unlink, rename and statfs behave like a regular filesystem.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)

write_conf "$WORK/emmd.conf" <<'CONF_EOF'
[fs sp]
backend = memory
CONF_EOF
start_emmd "$WORK/emmd.conf"
D="$MNT/sp"
F="$D/big"
TIB=$((1 << 40))
G=$((1 << 30))

# 1 TiB, nothing stored
"$IO" truncate "$F" 1T
assert_eq "$("$IO" stat "$F")" "$TIB 0" "size and st_blocks of a fresh 1 TiB object"
assert_eq "$(stat -c %s "$F")" $TIB "stat(1) size"

# two data pages: page 0 and two pages at 512 GiB + 12 KiB
A=0
B=$((512 * G + 12288))
"$IO" fill -y "$F" $A 4096 11
"$IO" fill -y "$F" $B 8192 12
assert_eq "$("$IO" stat "$F")" "$TIB 24" "size and st_blocks after writing 3 pages (fsynced)"

# SEEK_DATA / SEEK_HOLE (before anything reads the file)
assert_eq "$("$IO" seek "$F" 0 data)" 0 "SEEK_DATA from 0"
assert_eq "$("$IO" seek "$F" 0 hole)" 4096 "SEEK_HOLE from 0"
assert_eq "$("$IO" seek "$F" 100 hole)" 4096 "SEEK_HOLE from 100"
assert_eq "$("$IO" seek "$F" 4096 data)" $B "SEEK_DATA from 4096"
assert_eq "$("$IO" seek "$F" $((B + 100)) data)" $((B + 100)) "SEEK_DATA inside data"
assert_eq "$("$IO" seek "$F" $B hole)" $((B + 8192)) "SEEK_HOLE from the data at 512 GiB"
assert_eq "$("$IO" seek "$F" $((B + 8192)) data)" ENXIO "SEEK_DATA after the last page"
assert_eq "$("$IO" seek "$F" $((B + 8192)) hole)" $((B + 8192)) "SEEK_HOLE in a hole"
assert_eq "$("$IO" seek "$F" $((TIB + 1)) data)" ENXIO "SEEK_DATA past EOF"

# PUNCH_HOLE the first of the two pages at B
"$IO" punch "$F" $B 4096
assert_eq "$("$IO" stat "$F")" "$TIB 16" "size and st_blocks after punching one page"
assert_eq "$("$IO" seek "$F" 4096 data)" $((B + 4096)) "SEEK_DATA after the punch"

# contents: data, the punched page, and holes read zero (around the data, in the
# middle, at the very end)
"$IO" check "$F" $A 4096 11 || fail "page 0 content"
"$IO" zero "$F" $B 4096 || fail "punched page is not zero"
"$IO" zero -m "$F" $B 4096 || fail "punched page is not zero via mmap"
"$IO" check "$F" $((B + 4096)) 4096 12 || fail "page next to the punched one"
"$IO" check -m "$F" $((B + 4096)) 4096 12 || fail "page next to the punched one via mmap"
"$IO" zero "$F" 4096 $((1 << 20)) || fail "hole after page 0 is not zero"
"$IO" zero "$F" $((B - 12288)) 12288 || fail "hole before the data at 512 GiB is not zero"
"$IO" zero "$F" $((B + 8192)) 65536 || fail "hole after the data at 512 GiB is not zero"
"$IO" zero -m "$F" $((300 * G)) $((1 << 20)) || fail "hole at 300 GiB is not zero via mmap"
"$IO" zero "$F" $((TIB - (1 << 20))) $((1 << 20)) || fail "last MiB is not zero"
assert_eq "$(dd if="$F" bs=4096 skip=$((TIB / 4096)) count=1 status=none | wc -c)" 0 "bytes read at EOF"
# reading holes (and the readahead around the data) must not create pages
assert_eq "$("$IO" stat "$F")" "$TIB 16" "size and st_blocks after reading holes"
assert_eq "$("$IO" seek "$F" 0 hole)" 4096 "SEEK_HOLE from 0 after reading holes"
assert_eq "$("$IO" seek "$F" 4096 data)" $((B + 4096)) "SEEK_DATA from 4096 after reading holes"

# truncate down drops pages beyond the new size; extending again reads zero
"$IO" truncate "$F" $((B + 2048 + 4096))
assert_eq "$(stat -c %s "$F")" $((B + 6144)) "size after truncating down"
"$IO" check "$F" $((B + 4096)) 2048 12 || fail "kept half page after truncate"
"$IO" truncate "$F" 1T
"$IO" zero "$F" $((B + 6144)) 2048 || fail "bytes past the old EOF are not zero after extending"
assert_eq "$("$IO" stat "$F")" "$TIB 16" "st_blocks after truncate down and up"

# a second object with a non page-aligned tail written by write(2)
"$IO" fill -y "$D/small" 0 5000 13
assert_eq "$("$IO" stat "$D/small")" "5000 16" "size and st_blocks of a 5000-byte object"
"$IO" check "$D/small" 0 5000 13 || fail "small object content"

# rename: content follows the name; rename over an existing name replaces it
mv "$D/small" "$D/renamed"
[ ! -e "$D/small" ] || fail "old name still exists after rename"
"$IO" check "$D/renamed" 0 5000 13 || fail "content after rename"
"$IO" fill -y "$D/other" 0 8192 14
assert_eq "$("$IO" rename "$D/other" "$D/renamed")" OK "rename over an existing object"
"$IO" check "$D/renamed" 0 8192 14 || fail "content after rename over an existing object"
assert_eq "$(fsize "$D/renamed")" 8192 "size after rename over an existing object"
assert_eq "$(ls "$D" | sort | tr '\n' ' ')" "big renamed " "names after the renames"

# unlink
rm "$D/renamed"
[ ! -e "$D/renamed" ] || fail "unlinked object still exists"
assert_eq "$("$IO" readerr "$D/renamed" 0 1)" ENOENT "open after unlink"
# an unlinked object stays usable through an open descriptor (POSIX semantics)
python3 - "$D/open-unlinked" <<'PY' || fail "an open, unlinked object lost its data"
import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
data = bytes(range(256)) * 64
os.pwrite(fd, data, 0)
os.unlink(p)
assert not os.path.exists(p), "name still there"
assert os.pread(fd, len(data), 0) == data, "content changed"
os.close(fd)
PY

# statfs answers and makes sense
read -r bsize blocks bfree bavail files <<<"$(stat -f -c '%S %b %f %a %c' "$D")"
assert_gt "$bsize" 0 "statfs f_bsize"
assert_gt "$blocks" 0 "statfs f_blocks"
[ "$bfree" -le "$blocks" ] || fail "statfs f_bfree ($bfree) > f_blocks ($blocks)"
[ "$bavail" -le "$bfree" ] || fail "statfs f_bavail ($bavail) > f_bfree ($bfree)"
df "$D" >/dev/null || fail "df on the mount"
log "statfs: bsize=$bsize blocks=$blocks bfree=$bfree bavail=$bavail files=$files"

# open(O_TRUNC) truncates: a shorter rewrite leaves no tail of the old content
printf 'hello world\n' >"$D/otrunc"
printf 'hi\n' >"$D/otrunc"
assert_eq "$(stat -c %s "$D/otrunc")" 3 "size after a rewrite with O_TRUNC"
assert_eq "$(cat "$D/otrunc")" "hi" "content after a rewrite with O_TRUNC"
rm "$D/otrunc"

# a punch that starts on a page boundary and ends inside that page zeroes it
P="$D/punchhead"
"$IO" fill "$P" 0 8192 7
"$IO" punch "$P" 0 100
drop_cache "$P"
"$IO" zero "$P" 0 100 || fail "punch [0,100) left old data"
"$IO" check "$P" 100 8092 7 || fail "punch [0,100) touched data after 100"
rm "$P"

rm "$F"
assert_eq "$(ls "$D" | wc -l)" 0 "objects left after removing all"
stop_emmd
