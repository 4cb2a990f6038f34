#!/bin/bash
# t_memsrv_restart.sh - emm-memserver with an lmdb backend killed (-9) and
# started again loses nothing a host had fsync'd (docs/memserver.md,
# "Faults"): the host reconnects with back-off, its open object is
# re-initialised on the new connection, its flushed pages are read back from
# the restarted server byte for byte, it writes on, and a new host with an
# empty state reads both writes from the server.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
. "$(dirname "$0")/memsrv_lib.sh"

ms_start_server backend=lmdb
ms_start_host a || fail "host a did not start"
A=$(ms_mnt a)
ms_share f 2M
head -c 1M /dev/urandom >"$WORK/data"
dd if="$WORK/data" of="$A/f" bs=256k conv=notrunc,fsync status=none

log "kill -9 of the memserver, then a new one on the same port and store"
kill -KILL "$MS_PID"
wait "$MS_PID" 2>/dev/null || true
MS_PID=""
ms_start_server backend=lmdb
for ((i = 0; i < 200; i++)); do
    grep -q "re-initialised on the new pager connection" "$WORK/hosts/a/emmd.log" && break
    sleep 0.1
done
grep -q "re-initialised on the new pager connection" "$WORK/hosts/a/emmd.log" ||
    fail "host a did not re-initialise its object on the new server"

log "host a drops its pages and reads them back from the restarted server"
"$EMMCTL" -c "$WORK/hosts/a/emmd.conf" flush s f >/dev/null || fail "emmctl flush"
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
timeout -s KILL 60 cmp "$WORK/data" <(head -c 1M "$A/f") || fail "fsync'd data lost across the server's restart"
head -c 8192 /dev/urandom >"$WORK/more"
timeout -s KILL 60 dd if="$WORK/more" of="$A/f" bs=8192 seek=160 conv=notrunc,fsync status=none ||
    fail "host a cannot write after the server's restart"
ms_stop_host a

log "a new host reads both from the server"
ms_start_host b || fail "host b did not start"
B=$(ms_mnt b)
assert_eq "$(stat -c %s "$B/f")" 2097152 "size of f on a new host (the server's namespace)"
timeout -s KILL 60 cmp "$WORK/data" <(head -c 1M "$B/f") || fail "host b does not read the first write"
timeout -s KILL 60 cmp "$WORK/more" <(dd if="$B/f" bs=8192 skip=160 count=1 status=none) ||
    fail "host b does not read the write made after the restart"
ms_stop_host b
ms_stop_server
