#!/bin/bash
# t_rados_fsx.sh - emmd on a throwaway Ceph cluster (ceph_cluster.sh: one mon,
# one osd, memstore) with two filesystems: `r` (backend rados, 64K RADOS
# objects so a file spans many of them) and `z` (zstd:rados). On each:
#   - emmfsx, the model-checking file tester, with a 1M pool so pages go to the
#     pager and come back all the time (every op kind, SEEK_DATA/SEEK_HOLE too);
#     the rest runs on a 16M pool:
#   - fio through mmap and through pwrite (psync), 32 MiB each, with crc32c verify;
#   - a 1 TiB sparse object: three pages, SEEK_DATA/SEEK_HOLE from the store's
#     extents, holes read zero, and the pool holds RADOS objects only for the
#     stripes written (holes cost nothing);
# then a clean restart of emmd on an EMPTY state directory: the namespace (names,
# sizes, directories) comes back from the pool, and the data with it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires fio timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
IO=$(helper emmio)

mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=1M" "fuse-threads=4" <<CONF_EOF
[fs r]
backend = rados
readahead = 1M
rados.conf = $CEPH_CONF
rados.pool = $CEPH_POOL
rados.object-size = 64K

[fs z]
backend = zstd:rados
readahead = 1M
zstd.cluster = 16K
rados.conf = $CEPH_CONF
rados.pool = $CEPH_POOL
rados.namespace = zz
CONF_EOF
start_emmd "$CONF"

for fs in r z; do
    fsx_run "$fs" "$MNT/$fs" 2 2000 "31 32 33 34"
done
fsx_check_counts "fsx on rados and zstd:rados"
assert_gt "$(info_get data_requests)" 0 "data_requests to the rados pager"
assert_eq "$(ctl info pagers | awk -F: '$1 == "r.rados.errors" { print $2 }')" 0 "r.rados.errors"
stop_emmd

# the rest with a 16M pool: a 1M pool under 1M FUSE reads thrashes (every
# read's pages push each other out before the read is answered)
sed -i 's/^resident-limit = 1M$/resident-limit = 16M/' "$CONF"
start_emmd "$CONF"

for fs in r z; do
    for eng in mmap psync; do
        fio_run "$fs/$eng" 300 "$WORK/fio-$fs-$eng.log" --name="$eng" --directory="$MNT/$fs" \
            --filename="$eng.dat" --size=32M --ioengine=$eng --rw=randwrite --bs=16k \
            --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 --randseed=7
    done
done
ctl flush >/dev/null 2>&1 || true

# 1 TiB sparse object on r (64K RADOS objects: 2^24 stripes, three written)
F="$MNT/r/tib"
TIB=$((1 << 40))
B=$((512 << 30))
"$IO" truncate "$F" 1T
"$IO" fill -y "$F" 0 4096 41
"$IO" fill -y "$F" $((B + 12288)) 8192 42
"$IO" fill -y "$F" $((TIB - 4096)) 4096 43
assert_eq "$("$IO" stat "$F")" "$TIB 32" "size and st_blocks of the 1 TiB object"
assert_eq "$("$IO" seek "$F" 0 hole)" 4096 "SEEK_HOLE from 0"
assert_eq "$("$IO" seek "$F" 4096 data)" $((B + 12288)) "SEEK_DATA from 4096"
assert_eq "$("$IO" seek "$F" $((B + 12288)) hole)" $((B + 20480)) "SEEK_HOLE at 512 GiB"
assert_eq "$("$IO" seek "$F" $((B + 20480)) data)" $((TIB - 4096)) "SEEK_DATA to the last page"
"$IO" check "$F" $((B + 12288)) 8192 42 || fail "data at 512 GiB"
"$IO" zero "$F" $((B - (1 << 20))) $((1 << 20)) || fail "hole before 512 GiB"
"$IO" zero "$F" $((300 << 30)) $((1 << 20)) || fail "hole at 300 GiB"
id=$(ctl ls | awk '$1 == "r" && $2 == "tib" { print $0 }')
log "tib: $id"
n=$(rados -p "$CEPH_POOL" ls | grep -c '^emm_data\.r\.' || true)
tibid=""
for h in $(rados -p "$CEPH_POOL" ls | grep '^emm_hdr\.r\.'); do
    # the one whose extents hold the last 64K stripe below 1 TiB
    if rados -p "$CEPH_POOL" listomapkeys "$h" | grep -qx 0000000000ffffff; then tibid=$h; fi
done
[ -n "$tibid" ] || fail "no extents object holds the stripe of the last page of the 1 TiB object"
assert_eq "$(rados -p "$CEPH_POOL" listomapkeys "$tibid" | tr '\n' ' ')" "0000000000000000 0000000000800000 0000000000ffffff " "the 1 TiB object's stripes in its extents"
tibid=${tibid#emm_hdr.r.}
assert_eq "$(rados -p "$CEPH_POOL" ls | grep -c "^emm_data\.r\.$tibid\.")" 3 "RADOS data objects of the 1 TiB object (3 stripes written)"
log "pool: $n data objects of r in all; the 1 TiB object is emm object $tibid"

sha_r=$(sha "$MNT/r/psync.dat")
sha_z=$(sha "$MNT/z/mmap.dat")
ls_before=$(cd "$MNT" && find r z -printf '%p %s\n' | sort)
stop_emmd

# the namespace is in the pool: an empty state directory shows the same tree
rm -rf "$STATE"
start_emmd "$CONF"
ls_after=$(cd "$MNT" && find r z -printf '%p %s\n' | sort)
assert_eq "$ls_after" "$ls_before" "names and sizes after a restart on an empty state dir"
assert_eq "$(sha "$MNT/r/psync.dat")" "$sha_r" "r/psync.dat after the restart"
assert_eq "$(sha "$MNT/z/mmap.dat")" "$sha_z" "z/mmap.dat after the restart"
assert_eq "$("$IO" seek "$F" 4096 data)" $((B + 12288)) "SEEK_DATA on the 1 TiB object after the restart"
"$IO" check "$F" $((TIB - 4096)) 4096 43 || fail "last page of the 1 TiB object after the restart"
rm "$F"
# the pager discards the object's pages after unlink returns: wait (bounded)
for ((i = 0; i < 300; i++)); do
    [ "$(rados -p "$CEPH_POOL" ls | grep -c "^emm_data\.r\.$tibid\." || true)" = 0 ] && break
    sleep 0.1
done
assert_eq "$(rados -p "$CEPH_POOL" ls | grep -c "^emm_data\.r\.$tibid\." || true)" 0 "RADOS data objects left after unlinking the 1 TiB object"
stop_emmd
