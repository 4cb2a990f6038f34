#!/bin/bash
# t_memsrv_share.sh - one object shared by three emmd hosts through one
# emm-memserver over TLS 1.3 (PSK) on 127.0.0.1 (docs/memserver.md):
# - a write(2) on A is read at once, byte for byte, on B and C (whole pages
#   and partial ones), and the other way round, many times on one page;
# - mmap stores on A are seen by B and C after msync, and B's after its msync
#   by A;
# - fio writes with verify through each host, and each host verifies what
#   another host wrote;
# - the server counted revocations (coherence did the work) and refused
#   nothing.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio
. "$(dirname "$0")/memsrv_lib.sh"

ms_start_server
ms_start_host a || fail "host a did not start"
ms_start_host b || fail "host b did not start"
ms_start_host c || fail "host c did not start"
A=$(ms_mnt a) B=$(ms_mnt b) C=$(ms_mnt c)
ms_share f 4M
ms_share fa 8M
ms_share fb 8M
ms_share fc 8M

log "a write on A is read at once on B and C"
head -c 4M /dev/urandom >"$WORK/data"
dd if="$WORK/data" of="$A/f" bs=256k conv=notrunc status=none
cmp "$WORK/data" "$B/f" || fail "B does not read what A wrote"
cmp "$WORK/data" "$C/f" || fail "C does not read what A wrote"

log "partial pages written on B and C, read on the others"
printf 'written on B' | dd of="$B/f" bs=1 seek=5000 conv=notrunc status=none
printf 'written on C' | dd of="$C/f" bs=1 seek=5012 conv=notrunc status=none
printf 'written on Bwritten on C' | dd of="$WORK/data" bs=1 seek=5000 conv=notrunc status=none
for h in "$A" "$B" "$C"; do
    cmp "$WORK/data" "$h/f" || fail "$h/f differs after partial writes on B and C"
done

log "one page written in turn by A, B and C; each write read at once by the others"
for i in $(seq 1 30); do
    for w in a b c; do
        v=$(printf '%s%05d' "$w" "$i")
        printf '%s' "$v" | dd of="$(ms_mnt $w)/f" bs=1 seek=8192 conv=notrunc status=none
        for r in a b c; do
            got=$(dd if="$(ms_mnt $r)/f" bs=1 skip=8192 count=6 status=none)
            [ "$got" = "$v" ] || fail "round $i: $w wrote '$v', $r reads '$got'"
        done
    done
done

log "mmap stores on A, seen on B and C after msync; B's seen on A after B's msync"
python3 - "$A/f" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 4 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(0, 4 << 20, 65536):
    m[i:i + 16] = b'mmap-on-A-%06d' % (i // 65536)
m.flush()  # msync(MS_SYNC)
m.close()
os.close(fd)
PY
for h in "$B" "$C"; do
    python3 - "$h/f" <<'PY' || fail "$h does not see A's msync'd mmap stores"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 4 << 20, mmap.MAP_SHARED, mmap.PROT_READ)
for i in range(0, 4 << 20, 65536):
    want = b'mmap-on-A-%06d' % (i // 65536)
    if m[i:i + 16] != want:
        sys.exit("offset %d: %r, want %r" % (i, m[i:i + 16], want))
PY
done
python3 - "$B/f" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 4 << 20, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[12345:12345 + 9] = b'mmap-on-B'
m.flush()
PY
got=$(dd if="$A/f" bs=1 skip=12345 count=9 status=none)
assert_eq "$got" "mmap-on-B" "A reads B's msync'd mmap store"

log "fio write + verify through each host, then verified on another host"
fio_job() { # HOST FILE EXTRA...
    local h=$1 f=$2
    shift 2
    fio --name=ms --filename="$(ms_mnt $h)/$f" --rw=randwrite --bs=4k --size=8M \
        --ioengine=psync --verify=crc32c --do_verify=1 --randseed=42 --verify_fatal=1 \
        "$@" --output="$WORK/fio-$h-$f.out" || { cat "$WORK/fio-$h-$f.out" >&2; fail "fio on $h/$f"; }
}
fio_job a fa
fio_job b fb
fio_job c fc
fio_job b fa --verify_only
fio_job c fb --verify_only
fio_job a fc --verify_only

grep -q "refused" "$MS_LOG" && fail "the memserver refused something: $(grep refused "$MS_LOG" | head -3)"
for h in a b c; do
    grep -q "TLS 1.3 with the pager" "$WORK/hosts/$h/emmd.log" || fail "host $h: no TLS 1.3 line"
done
ms_stop_host a
ms_stop_host b
ms_stop_host c
ms_stop_server
grep -q "revoked" "$MS_LOG" || fail "the memserver's stop line has no revocation count"
revokes=$(sed -n "s/.* \([0-9][0-9]*\) revoked.*/\1/p" "$MS_LOG" | tail -1)
assert_gt "$revokes" 0 "pages the memserver revoked"
