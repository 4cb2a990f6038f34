#!/bin/bash
# t_rados_memsrv.sh - a memory server whose backend is rados, shared by two
# emmd hosts (issue 13: sharing between hosts goes through the memory server,
# whose backend may itself be rados). On a throwaway Ceph cluster
# (ceph_cluster.sh), one emm-memserver with `backend = rados` (TLS PSK on
# 127.0.0.1) and two emmd hosts A and B whose [fs s] is `pager = tcp:...`:
#   - a write on A is read at once on B, and the other way round;
#   - fio with crc32c verify on A, verified again on B;
#   - the pages are in the pool (emm_data.memserver.* objects);
#   - the server's write-behind window is an hour, so only fsync can have sent
#     the last, partial write to the pool;
#   - kill -9 of the memserver, a new one on the same port and pool (the dead
#     one's RADOS lock on this host is broken): A reconnects, and what A had
#     fsync'd reads back byte for byte after A dropped its pages; a third host
#     with an empty state reads it from the server too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires fio timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
. "$(dirname "$0")/memsrv_lib.sh"

mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
# write-behind runs wait an hour for more pages: only a sync (or a full 1M
# stripe) sends them, so what survives the kill -9 is what fsync made durable
RADOS=(backend=rados "rados.conf=$CEPH_CONF" "rados.pool=$CEPH_POOL" rados.object-size=1M
    rados.write-window=3600000ms)
ms_start_server "${RADOS[@]}"
grep -q "rados: pool $CEPH_POOL" "$MS_LOG" || fail "the memserver's log does not show the rados backend"
ms_start_host a || fail "host a did not start"
ms_start_host b || fail "host b did not start"
A=$(ms_mnt a) B=$(ms_mnt b)
ms_share f 4M
ms_share fio.dat 8M

log "a write on A is read at once on B, and B's on A"
head -c 4M /dev/urandom >"$WORK/data"
dd if="$WORK/data" of="$A/f" bs=256k conv=notrunc status=none
cmp "$WORK/data" "$B/f" || fail "B does not read what A wrote"
printf 'written on B' | dd of="$B/f" bs=1 seek=70000 conv=notrunc status=none
printf 'written on B' | dd of="$WORK/data" bs=1 seek=70000 conv=notrunc status=none
cmp "$WORK/data" "$A/f" || fail "A does not read what B wrote"

log "fio with verify on A, verified again on B"
fio_job() { # HOST EXTRA...
    local h=$1
    shift
    fio --name=ms --filename="$(ms_mnt "$h")/fio.dat" --rw=randwrite --bs=16k --size=8M \
        --ioengine=psync --verify=crc32c --do_verify=1 --randseed=13 --verify_fatal=1 \
        --verify_dump=0 "$@" --output="$WORK/fio-$h.out" ||
        { cat "$WORK/fio-$h.out" >&2; fail "fio on host $h"; }
}
fio_job a
fio_job b --verify_only

log "fsync on A, then the pages are in the pool"
dd if="$WORK/data" of="$A/f" bs=1M conv=notrunc,fsync status=none
# and a part of a stripe, alone in its write-behind run until the fsync
head -c 100000 /dev/urandom >"$WORK/tail"
for out in "$WORK/data" "$A/f"; do
    dd if="$WORK/tail" of="$out" bs=100000 count=1 seek=$(((2 << 20) + 5000)) oflag=seek_bytes \
        conv=notrunc,fsync status=none
done
cmp "$WORK/data" "$A/f" || fail "A's own view after the fsyncs"
n=$(rados -p "$CEPH_POOL" ls | grep -c '^emm_data\.memserver\.' || true)
log "RADOS data objects of the memserver: $n"
assert_gt "$n" 0 "emm_data.memserver.* objects in the pool"

log "kill -9 of the memserver, then a new one on the same port and pool"
kill -KILL "$MS_PID"
wait "$MS_PID" 2>/dev/null || true
MS_PID=""
ms_start_server "${RADOS[@]}"
assert_contains "$(cat "$MS_LOG")" "breaking the lock of a dead emmd on this host" "memserver log after kill -9"
for ((i = 0; i < 300; i++)); do
    grep -q "re-initialised on the new pager connection" "$WORK/hosts/a/emmd.log" && break
    sleep 0.1
done
grep -q "re-initialised on the new pager connection" "$WORK/hosts/a/emmd.log" ||
    fail "host a did not re-initialise its object on the new server"

log "A drops its pages and reads them back from the restarted server (from the pool)"
"$EMMCTL" -c "$WORK/hosts/a/emmd.conf" flush s f >/dev/null || fail "emmctl flush on host a"
timeout -s KILL 60 cmp "$WORK/data" "$A/f" || fail "fsync'd data lost across kill -9 of the memserver"
ms_stop_host a
ms_stop_host b

log "a new host with an empty state reads it from the server"
ms_start_host c || fail "host c did not start"
C=$(ms_mnt c)
touch "$C/f" && truncate -s 4M "$C/f"
timeout -s KILL 60 cmp "$WORK/data" "$C/f" || fail "host c does not read what A fsync'd"
ms_stop_host c
ms_stop_server
