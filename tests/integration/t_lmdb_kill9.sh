#!/bin/bash
# t_lmdb_kill9.sh - what was fsync'd to an lmdb-backed filesystem survives
# `kill -9` of emmd. One emmd serves two filesystems on LMDB: `l` (lmdb) and
# `z` (zstd:lmdb, the compressed clusters stored in LMDB). On each:
#   - objects written through mmap + msync(MS_SYNC), through pwrite + fsync,
#     one extended with ftruncate then fsync'd, one larger than resident-limit,
#     one empty, and one sparse (two islands);
#   - objects written and NOT fsync'd, plus a writer that has written 4x the
#     pool (so LMDB holds much of it) and still has its files open when emmd dies;
# then SIGKILL emmd (by pid), unmount the dead mounts, start emmd again on the
# same state dir and check: every fsync'd object is there with its name, size
# and sha256 (and the generator's pattern); the unsynced objects do not break
# anything: the store opens, and each of their pages reads without error as
# either what was written or zeros, never anything else, and extending one
# with ftruncate reads zeros past the size it came back with (no stale pages
# resurface). The store then still
# takes writes, and a clean restart keeps everything.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3
IO=$(helper emmio)
WRITER=""
# stop the in-flight writer (our child, by pid) before lib.sh's cleanup unmounts
trap '_rc=$?; trap - ERR; set +e; [ -z "$WRITER" ] || kill "$WRITER" 2>/dev/null; (exit $_rc); _cleanup' EXIT

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=32M" <<'CONF_EOF'
[fs l]
backend = lmdb
lmdb.map-size = 64M

[fs z]
backend = zstd:lmdb
zstd.cluster = 64K
CONF_EOF

# kill9_emmd: SIGKILL the emmd we started (by pid), reap it, unmount its dead
# mounts (the FUSE connection is gone: fusermount3 -u works, -z as a fallback).
kill9_emmd() {
    local pid=$EMMD_PID mp
    [ -n "$pid" ] || fail "kill9_emmd: no emmd running"
    EMMD_PID=""
    log "kill -9 emmd (pid $pid)"
    _kill_wedged "$pid"    # lib.sh: SIGKILL by pid, bounded, aborts a wedged FUSE connection
    [ ! -e "/proc/$pid" ] || fail "emmd (pid $pid) still exists after SIGKILL"
    for mp in "${MOUNTS[@]}"; do
        if is_mounted "$mp"; then
            fusermount3 -u "$mp" 2>/dev/null || fusermount3 -u -z "$mp" ||
                fail "cannot unmount the dead mount $mp"
        fi
        ! is_mounted "$mp" || fail "$mp still mounted after fusermount3 -u"
    done
}

# pagefill PATH NPAGES TAG: write NPAGES pages, page i filled with the 16-byte
# record "TAG:%010d|" (repeated), with write(2) and no fsync; leaves the fd to close.
pagefill() {
    python3 - "$@" <<'PY'
import os, sys
path, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
for i in range(n):
    rec = ("%s:%010d|" % (tag, i)).encode()
    os.pwrite(fd, (rec * (4096 // len(rec) + 1))[:4096], i * 4096)
os.close(fd)
PY
}

# pagecheck PATH TAG: every page is either all zeros or exactly what pagefill
# wrote for it; prints "PAGES GOOD ZERO" or fails (exit 1) naming the first bad page.
pagecheck() {
    python3 - "$@" <<'PY'
import os, sys
path, tag = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
good = zero = 0
for i in range((size + 4095) // 4096):
    got = os.pread(fd, 4096, i * 4096)
    rec = ("%s:%010d|" % (tag, i)).encode()
    want = (rec * (4096 // len(rec) + 1))[:len(got)]
    if got == want:
        good += 1
    elif got == bytes(len(got)):
        zero += 1
    else:
        print("page %d of %s is neither its data nor zeros: %r" % (i, path, got[:32]))
        sys.exit(1)
print(size // 4096, good, zero)
PY
}

# snapshot FS: "name size sha256" for the fsync'd objects of FS (sorted)
SYNCED="big empty extended mmapped odd sparse written"
snapshot() {
    local n
    for n in $SYNCED; do
        printf '%s %s %s\n' "$n" "$(fsize "$MNT/$1/$n")" "$(sha "$MNT/$1/$n")"
    done
}

start_emmd "$CONF"
for fs in l z; do
    D="$MNT/$fs"
    # fsync'd objects
    "$IO" fill -y "$D/written" 0 $((3 << 20)) 11                   # pwrite + fsync
    "$IO" fill -y "$D/odd" 0 12345 12                              # not page aligned
    "$IO" fill -y "$D/big" 0 $((48 << 20)) 13                      # > resident-limit
    "$IO" truncate "$D/mmapped" $((4 << 20))
    "$IO" fill -m -y "$D/mmapped" 0 $((4 << 20)) 14                # mmap + msync(MS_SYNC)
    "$IO" fill -m -y "$D/mmapped" $((1 << 20)) 8192 15             # overwrite 2 pages via mmap
    "$IO" fill -y "$D/extended" 0 $((1 << 20)) 16
    "$IO" truncate "$D/extended" $(((5 << 20) + 100))                # extend, then fsync
    assert_eq "$("$IO" fsync "$D/extended")" OK "fsync of the extended object"
    "$IO" truncate "$D/sparse" $((256 << 20))
    "$IO" fill -y "$D/sparse" $((100 << 20)) 8192 17
    "$IO" fill -y "$D/sparse" $(((256 << 20) - 4096)) 4096 18
    : >"$D/empty"
    assert_eq "$("$IO" fsync "$D/empty")" OK "fsync of the empty object"
    # NOT fsync'd: pages tagged so any garbage is detectable after the crash
    pagefill "$D/unsynced" 2048 "U$fs"                             # 8 MiB, no fsync
    "$IO" truncate "$D/unsynced-mmap" $((2 << 20))
    "$IO" fill -m "$D/unsynced-mmap" 0 $((2 << 20)) 19             # mmap, no msync
done
before_l=$(snapshot l)
before_z=$(snapshot z)
log "before kill -9 (l):"; printf '%s\n' "$before_l" | sed 's/^/#   /' >&2
assert_eq "$(printf '%s\n' "$before_l" | awk '{ print $2 }' | tr '\n' ' ')" \
    "$((48 << 20)) 0 $(((5 << 20) + 100)) $((4 << 20)) 12345 $((256 << 20)) $((3 << 20)) " "sizes before kill -9"
assert_eq "$(printf '%s\n' "$before_z" | awk '{ print $2, $3 }')" \
    "$(printf '%s\n' "$before_l" | awk '{ print $2, $3 }')" "l and z hold the same data before kill -9"

# a writer that has written 64 MiB to each filesystem (pwrite, no fsync: 4x the
# pool, so most of it was laundered into LMDB) and still holds its files open
# when emmd dies
returns0=$(info_get data_returns)
python3 - "$WORK/inflight.progress" "$MNT/l/inflight" "$MNT/z/inflight" >"$WORK/inflight.log" 2>&1 <<'PY' &
import os, sys, time
fds = [os.open(p, os.O_RDWR | os.O_CREAT, 0o644) for p in sys.argv[2:]]
for i in range(16384):
    rec = ("I:%010d|" % i).encode()
    page = (rec * (4096 // len(rec) + 1))[:4096]
    for fd in fds:
        os.pwrite(fd, page, i * 4096)
with open(sys.argv[1], "w") as f:
    f.write("done\n")
time.sleep(120)       # keep the files open; killed by the test
PY
WRITER=$!
for ((i = 0; i < 1200; i++)); do
    [ -s "$WORK/inflight.progress" ] && break
    kill -0 "$WRITER" 2>/dev/null || fail "the in-flight writer died: $(cat "$WORK/inflight.log")"
    sleep 0.1
done
[ -s "$WORK/inflight.progress" ] || fail "the in-flight writer did not finish 2 x 64 MiB within 120 s"
returns=$(info_get data_returns)
log "data_returns before kill -9: $returns ($((returns - returns0)) while the in-flight writer ran)"
assert_gt $((returns - returns0)) $(((64 << 20) / 4096)) "pages laundered to LMDB while the in-flight writer ran"
kill9_emmd
kill "$WRITER" 2>/dev/null || true
wait "$WRITER" 2>/dev/null || true
WRITER=""

# restart on the same state dir
start_emmd "$CONF"
for fs in l z; do
    D="$MNT/$fs"
    names=$(ls "$D" | sort | tr '\n' ' ')
    log "after restart ($fs): $names"
    for n in $SYNCED; do
        [ -e "$D/$n" ] || fail "$fs/$n (fsync'd) is missing after kill -9; objects: $names"
    done
    after=$(snapshot "$fs")
    log "after restart ($fs):"; printf '%s\n' "$after" | sed 's/^/#   /' >&2
    eval "before=\$before_$fs"
    assert_eq "$after" "$before" "$fs: names, sizes and sha256 of the fsync'd objects after kill -9"
    "$IO" check "$D/written" 0 $((3 << 20)) 11 || fail "$fs/written after kill -9"
    "$IO" check "$D/odd" 0 12345 12 || fail "$fs/odd after kill -9"
    "$IO" check "$D/big" 0 $((48 << 20)) 13 || fail "$fs/big after kill -9"
    "$IO" check -m "$D/big" $((40 << 20)) $((8 << 20)) 13 || fail "$fs/big via mmap after kill -9"
    "$IO" check "$D/mmapped" 0 $((1 << 20)) 14 || fail "$fs/mmapped head after kill -9"
    "$IO" check "$D/mmapped" $((1 << 20)) 8192 15 || fail "$fs/mmapped overwrite after kill -9"
    "$IO" check "$D/mmapped" $(((1 << 20) + 8192)) $(((3 << 20) - 8192)) 14 || fail "$fs/mmapped tail after kill -9"
    "$IO" check "$D/extended" 0 $((1 << 20)) 16 || fail "$fs/extended head after kill -9"
    "$IO" zero "$D/extended" $((1 << 20)) $(((4 << 20) + 100)) || fail "$fs/extended: extension not zero after kill -9"
    "$IO" zero "$D/sparse" 0 $((100 << 20)) || fail "$fs/sparse leading hole after kill -9"
    "$IO" check "$D/sparse" $((100 << 20)) 8192 17 || fail "$fs/sparse island after kill -9"
    "$IO" check "$D/sparse" $(((256 << 20) - 4096)) 4096 18 || fail "$fs/sparse last page after kill -9"
    # the unsynced objects: present or not, but never garbage and never an error
    for n in unsynced inflight; do
        if [ -e "$D/$n" ]; then
            tag=U$fs; [ $n = inflight ] && tag=I
            out=$(pagecheck "$D/$n" "$tag") || fail "$fs/$n after kill -9: $out"
            log "$fs/$n: size $(fsize "$D/$n"), pages/with data/zero: $out"
        else
            log "$fs/$n: absent after kill -9 (allowed: never fsync'd)"
        fi
    done
    if [ -e "$D/unsynced-mmap" ]; then
        cat "$D/unsynced-mmap" >/dev/null || fail "$fs/unsynced-mmap unreadable after kill -9"
        log "$fs/unsynced-mmap: size $(fsize "$D/unsynced-mmap")"
    fi
    # Whatever size an unsynced object came back with, nothing past it may
    # resurface: extending it with ftruncate must read zeros there (pages that
    # reached LMDB beyond the recovered size are not the file's data any more).
    for n in unsynced inflight unsynced-mmap; do
        [ -e "$D/$n" ] || continue
        sz=$(fsize "$D/$n")
        log "$fs/$n: size $sz, stored pages $(ctl ls | awk -v f="$fs" -v n="$n" '$1 == f && $2 == n { print $5 }')"
        "$IO" truncate "$D/$n" $((80 << 20))
        "$IO" zero "$D/$n" "$sz" $(((80 << 20) - sz)) ||
            fail "$fs/$n: came back with size $sz after kill -9, and extending it to 80M resurrects stale pages past that size (must read zeros)"
    done
    # the store still takes writes
    "$IO" fill -y "$D/after" 0 $((2 << 20)) 20
    "$IO" fill -y "$D/written" $((1 << 20)) 4096 21
done
assert_eq "$(ctl info pagers | grep -c '^[lz]\.lmdb\.path:')" 2 "both LMDB environments open after kill -9"
stop_emmd

# a clean restart keeps the old and the new data
start_emmd "$CONF"
for fs in l z; do
    D="$MNT/$fs"
    "$IO" check "$D/after" 0 $((2 << 20)) 20 || fail "$fs/after after the clean restart"
    "$IO" check "$D/written" 0 $((1 << 20)) 11 || fail "$fs/written head after the clean restart"
    "$IO" check "$D/written" $((1 << 20)) 4096 21 || fail "$fs/written overwrite after the clean restart"
    "$IO" check "$D/written" $(((1 << 20) + 4096)) $(((2 << 20) - 4096)) 11 || fail "$fs/written tail after the clean restart"
    "$IO" check "$D/big" 0 $((48 << 20)) 13 || fail "$fs/big after the clean restart"
done
stop_emmd
