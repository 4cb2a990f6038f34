#!/bin/bash
# t_backend_stats.sh - the zstd filter's account in `emmctl info pagers` tells
# the truth. Three zstd:memory filesystems in one emmd:
#   zc  compressible data (repeated text lines): ratio > 1.5, and
#       logical_bytes is exactly the pages written;
#   zr  incompressible data (emmio's pseudo-random pattern): ratio ~1.0, i.e.
#       stored_bytes >= 0.95 * logical_bytes (stored raw, never "compressed"
#       to more than a page per page plus the cluster header page);
#   zz  an all-zero 16 MiB object, written with write(2) and fsync'd: costs 0
#       stored bytes (zero clusters are holes below), its pages are absent, and
#       the memory layer below stores nothing more than before.
# Every object is also read back (after a flush out of emmd's pool and a page
# cache drop, so the bytes come back through zstd) and compared by sha256.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3
IO=$(helper emmio)

write_conf "$WORK/emmd.conf" "resident-limit=32M" <<'CONF_EOF'
[fs zc]
backend = zstd:memory

[fs zr]
backend = zstd:memory

[fs zz]
backend = zstd:memory
CONF_EOF
start_emmd "$WORK/emmd.conf"

# pg KEY: one line of `emmctl info pagers`, e.g. pg zc.zstd.ratio
pg() {
    local v
    v=$(ctl info pagers | awk -F: -v k="$1" '$1 == k { print $2; exit }')
    [ -n "$v" ] || fail "emmctl info pagers has no line $1"
    printf '%s\n' "$v"
}
# fgt A B: floating point A > B
fgt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

zz_mem0=$(pg zz.memory.stored_bytes)
for fs in zc zr zz; do
    assert_eq "$(pg "$fs.zstd.logical_bytes")" 0 "$fs.zstd.logical_bytes before any write"
    assert_eq "$(pg "$fs.zstd.ratio")" 0.00 "$fs.zstd.ratio before any write (nothing stored)"
done

# zc: 32 MiB of text lines (repeated, a little varied), write(2) + fsync
python3 - "$MNT/zc/text" <<'PY'
import os, sys
words = b"the quick brown fox jumps over the lazy dog; memory objects are paged by an external manager"
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
buf = bytearray()
i = 0
while len(buf) < 32 << 20:
    buf += b"%08d %s %d\n" % (i, words, i % 97)
    i += 1
os.write(fd, bytes(buf[:32 << 20]))
os.fsync(fd)
os.close(fd)
PY
# zr: 32 MiB of pseudo-random bytes, pwrite + fsync
"$IO" fill -y "$MNT/zr/random" 0 $((32 << 20)) 77
# zz: 16 MiB of zeros, write(2) (not a hole: the pages are really written) + fsync
dd if=/dev/zero of="$MNT/zz/zeros" bs=1M count=16 conv=fsync status=none
assert_eq "$(fsize "$MNT/zz/zeros")" $((16 << 20)) "size of zz/zeros"

for fs in zc zr zz; do ctl info pagers | grep "^$fs\.\(zstd\|memory\)\." | sed 's/^/#   /' >&2; done

# zc: compressible
l=$(pg zc.zstd.logical_bytes); s=$(pg zc.zstd.stored_bytes); r=$(pg zc.zstd.ratio)
assert_eq "$l" $((32 << 20)) "zc.zstd.logical_bytes (every page written is present)"
fgt "$r" 1.5 || fail "zc.zstd.ratio is $r on repeated text, expected > 1.5"
assert_eq "$r" "$(awk -v l="$l" -v s="$s" 'BEGIN { printf "%.2f", l / s }')" "zc.zstd.ratio = logical / stored"
assert_gt "$(pg zc.zstd.compressed_clusters)" 0 "zc.zstd.compressed_clusters"

# zr: incompressible
l=$(pg zr.zstd.logical_bytes); s=$(pg zr.zstd.stored_bytes); r=$(pg zr.zstd.ratio)
assert_eq "$l" $((32 << 20)) "zr.zstd.logical_bytes"
[ $((s * 100)) -ge $((l * 95)) ] || fail "zr: stored_bytes $s < 0.95 * logical_bytes $l on random data (ratio $r)"
fgt "$r" 0.9 && ! fgt "$r" 1.1 || fail "zr.zstd.ratio is $r on random data, expected ~1.0"
assert_gt "$(pg zr.zstd.raw_clusters)" 0 "zr.zstd.raw_clusters (random data is stored raw)"

# zz: zeros cost nothing
assert_eq "$(pg zz.zstd.stored_bytes)" 0 "zz.zstd.stored_bytes after 16 MiB of zeros + fsync"
assert_eq "$(pg zz.zstd.logical_bytes)" 0 "zz.zstd.logical_bytes (zero clusters are absent)"
assert_eq "$(pg zz.zstd.ratio)" 0.00 "zz.zstd.ratio (nothing stored)"
assert_eq "$(pg zz.memory.stored_bytes)" "$zz_mem0" "zz.memory.stored_bytes (the layer below) after the zeros"
assert_ge "$(pg zz.zstd.zero_clusters)" $(((16 << 20) / 65536)) "zz.zstd.zero_clusters"
assert_gt "$(info_get data_returns)" 0 "data_returns (fsync sent the pages to the pagers)"

# the content comes back right through zstd (flushed out of the pool, page cache dropped)
s_text=$(sha "$MNT/zc/text")
s_rand=$(sha "$MNT/zr/random")
for o in zc/text zr/random zz/zeros; do
    out=$(ctl flush "${o%/*}" "${o#*/}") || fail "emmctl flush ${o%/*} ${o#*/}: $out"
done
echo 3 >/proc/sys/vm/drop_caches
assert_eq "$(sha "$MNT/zc/text")" "$s_text" "zc/text read back through zstd"
assert_eq "$(sha "$MNT/zr/random")" "$s_rand" "zr/random read back through zstd"
"$IO" check "$MNT/zr/random" 0 $((32 << 20)) 77 || fail "zr/random against the generator"
"$IO" zero "$MNT/zz/zeros" 0 $((16 << 20)) || fail "zz/zeros does not read back as zeros"
assert_eq "$(pg zz.zstd.stored_bytes)" 0 "zz.zstd.stored_bytes after reading the zeros back"
assert_eq "$(pg zc.zstd.corrupt_clusters)$(pg zr.zstd.corrupt_clusters)$(pg zz.zstd.corrupt_clusters)" 000 "corrupt_clusters"
stop_emmd
