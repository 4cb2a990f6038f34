#!/bin/bash
# t_rados_tiny_pool.sh - a 1 MiB page pool over the rados backend (a slow,
# networked store): fio through pwrite (psync) and through mmap, 16 MiB each
# with crc32c verify, must finish (bounded) with the data intact, on `rados`
# and `zstd:rados`. Every fault and every page out then waits for a RADOS
# round trip while the pool can hold 256 pages only: a livelock here (pages
# pushed out before the read that needed them is answered) shows as fio not
# finishing within its bound.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires fio timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"

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
    for eng in psync mmap; do
        fio_run "$fs/$eng" 300 "$WORK/fio-$fs-$eng.log" --name="$eng" --directory="$MNT/$fs" \
            --filename="$eng.dat" --size=16M --ioengine=$eng --rw=randwrite --bs=16k \
            --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 --randseed=9
    done
done
ctl info memory | grep -E '^(pages_out|faults|swap_pages_out|double_paged|overdue_returns)' | sed 's/^/# /' >&2 || true
stop_emmd
