#!/bin/bash
# t_pressure.sh - working sets much larger than a 16M pool, on (a) a temporary
# filesystem (backend = none: pages live only in the pool and a 512M swap
# file) and (b) an lmdb filesystem. On each:
#   - fio writes a 256 MiB file (16 times the pool) with crc32c verify headers
#     through psync (randwrite, 64 KiB blocks); the page cache is dropped and a
#     second fio run (--verify_only) reads every block back through emmd and
#     checks it;
#   - the same with fio's mmap engine on a 128 MiB file;
#   - a python3 script maps a 128 MiB file MAP_SHARED, writes a pattern that
#     names each page, msyncs, checks every page in the same mapping, unmaps,
#     drops the page cache and checks every page again through a fresh
#     mapping (each page faults through emmd).
# The mmap writers use half the size because mmap writeback under pressure
# costs emmd far more than write(2) (see PSYNC_MB/MMAP_MB below).
# While each filesystem's workload runs, `emmctl info memory` is sampled every
# 0.2 s in the background: every sample succeeded, and in every one
# resident_pages <= pool_pages = resident-limit / 4096. After each
# filesystem: pageout happened (evictions + reclaimed_clean grew, and
# pageouts_FS grew); for the temporary filesystem pages went to swap and came
# back (swap_pages_out and swap_faults grew, paging_t swap_faults > 0, swap
# holds what of the last object is not resident). No object was killed, no
# swap error.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio python3

SAMPLER=""
# stop the sampler (our child, by pid) before lib.sh's cleanup stops emmd.
# errexit and the ERR trap are off first: "(exit $rc)" must hand the status to
# _cleanup, not end the shell inside the EXIT trap.
_pressure_cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if [ -n "$SAMPLER" ]; then
        kill "$SAMPLER" 2>/dev/null
        wait "$SAMPLER" 2>/dev/null
    fi
    (exit $rc)
    _cleanup
}
trap _pressure_cleanup EXIT

LIMIT=$((16 << 20))
POOL=$((LIMIT / 4096))
# The working set is 256 MiB (16x the pool) for every writer: fio psync, fio's
# mmap engine and the python script. mmap writeback under pressure is the slow
# part (1 MiB FUSE writes each need 256 free frames at once).
PSYNC_MB=256
MMAP_MB=256
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 512M

[fs t]
backend = none

[fs l]
backend = lmdb
lmdb.map-size = 1G
CONF_EOF
start_emmd "$CONF"
assert_eq "$(info_get resident_limit_bytes)" "$LIMIT" "resident_limit_bytes"
assert_eq "$(info_get pool_pages)" "$POOL" "pool_pages"
assert_eq "$(info_get swap_areas)" 1 "swap_areas"

# start_sampler FILE: every 0.2 s, append "RESIDENT POOL" from `emmctl info
# memory` to FILE (a failed emmctl appends "ERR ..."), until $WORK/sampler.stop exists.
start_sampler() {
    rm -f "$WORK/sampler.stop"
    : >"$1"
    (
        trap - ERR
        set +e
        while [ ! -e "$WORK/sampler.stop" ]; do
            if out=$("$EMMCTL" -s "$SOCK" info memory 2>&1); then
                printf '%s\n' "$out" | awk -F: '
                    $1 == "resident_pages" { r = $2 } $1 == "pool_pages" { p = $2 }
                    END { if (r == "" || p == "") print "ERR no resident_pages/pool_pages"; else print r, p }'
            else
                printf 'ERR %s\n' "$(printf '%s' "$out" | head -n 1)"
            fi
            sleep 0.2
        done
    ) >>"$1" 2>&1 </dev/null &
    SAMPLER=$!
}

# stop_sampler FILE WHAT: stop the sampler and check its samples.
stop_sampler() {
    local f=$1 what=$2 n bad
    touch "$WORK/sampler.stop"
    wait "$SAMPLER" || true
    SAMPLER=""
    n=$(wc -l <"$f")
    log "$what: $n samples of info memory, max resident_pages $(awk 'BEGIN { m = 0 } $1 + 0 > m { m = $1 + 0 } END { print m }' "$f") (pool $POOL)"
    assert_gt "$n" 0 "$what: samples of info memory taken while the workload ran"
    bad=$(grep -v '^[0-9][0-9]* [0-9][0-9]*$' "$f" | head -n 3 || true)
    [ -z "$bad" ] || fail "$what: a sample of emmctl info memory failed: $bad"
    bad=$(awk -v pool="$POOL" '$2 != pool { print "pool_pages " $2 " (expected " pool ")"; exit }
                               $1 > $2 { print "resident_pages " $1 " > pool_pages " $2; exit }' "$f")
    [ -z "$bad" ] || fail "$what: in a sample taken during the workload, $bad"
}

# run_fio FS NAME MiB ARGS...: fio randwrite with crc32c verify (lib.sh fio_run).
run_fio() {
    local fs=$1 name=$2 mb=$3
    shift 3
    fio_run "$fs/$name $*" 240 "$WORK/fio-$fs-$name.log" --name="$name" --directory="$MNT/$fs" \
        --filename="$name.dat" --size="${mb}M" --fallocate=truncate --bs=64k --rw=randwrite \
        --verify=crc32c --verify_fatal=1 --verify_dump=0 --randseed=4242 --group_reporting "$@"
    log "$fs: fio $name $* done (${SECONDS}s)"
}

# fio_write_verify FS ENGINE MiB: write MiB with ENGINE, drop the page cache,
# verify with ENGINE (every block read back through emmd: pool, swap or the backend).
fio_write_verify() {
    local fs=$1 eng=$2 mb=$3
    run_fio "$fs" "$eng" "$mb" --ioengine="$eng" --do_verify=0
    assert_eq "$(fsize "$MNT/$fs/$eng.dat")" $((mb << 20)) "size of $fs/$eng.dat"
    echo 3 >/proc/sys/vm/drop_caches
    run_fio "$fs" "$eng" "$mb" --ioengine="$eng" --verify_only
    # the verify pass must really have read the data (not an empty run)
    grep -q 'READ: bw=' "$WORK/fio-$fs-$eng.log" || fail "fio $fs/$eng --verify_only read nothing"
}

# pymmap PATH TAG MiB: map PATH (MiB long) shared, write a pattern naming each page,
# msync, check every page; unmap, drop the page cache, map again and check every
# page. Prints nothing on success; names the first bad page otherwise (exit 1).
pymmap() {
    timeout -k 10 240 python3 - "$@" <<'PY'
import mmap, os, sys
path, tag = sys.argv[1], sys.argv[2]
SIZE, PG = int(sys.argv[3]) << 20, 4096
def page(i):
    rec = b"%s:%08d|" % (tag.encode(), i)
    return (rec * (PG // len(rec) + 1))[:PG]
def check(m, when):
    for i in range(SIZE // PG):
        got = m[i * PG:(i + 1) * PG]
        if got != page(i):
            print("%s: page %d wrong %s: %r" % (path, i, when, got[:40]))
            sys.exit(1)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, SIZE)
m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(SIZE // PG):
    m[i * PG:(i + 1) * PG] = page(i)
m.flush()                                   # msync(MS_SYNC)
check(m, "in the mapping that wrote it")
m.close()
os.close(fd)
with open("/proc/sys/vm/drop_caches", "w") as f:
    f.write("3\n")
fd = os.open(path, os.O_RDONLY)
if os.fstat(fd).st_size != SIZE:
    print("%s: size %d after msync" % (path, os.fstat(fd).st_size))
    sys.exit(1)
m = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
check(m, "after dropping the page cache")
m.close()
os.close(fd)
PY
}

# drop FS NAME: remove FS/NAME.dat once checked. On the temporary fs (whose
# 512M swap is for one working set at a time) the removed object's slots must
# come back: swap_used_pages returns to 0 (freed asynchronously: bounded wait).
drop() {
    local i
    rm "$MNT/$1/$2.dat"
    [ "$1" = t ] || return 0
    for ((i = 0; i < 200; i++)); do
        [ "$(mem swap_used_pages)" = 0 ] && return 0
        sleep 0.1
    done
    fail "swap_used_pages is $(mem swap_used_pages), not 0, 20 s after removing the only temporary object"
}

for fs in t l; do
    case $fs in t) what="temporary fs (backend none)" ;; l) what="lmdb fs" ;; esac
    ev0=$(mem evictions); rc0=$(mem reclaimed_clean); po0=$(mem "pageouts_$fs")
    so0=$(mem swap_pages_out); sf0=$(mem swap_faults)
    start_sampler "$WORK/samples-$fs"
    fio_write_verify "$fs" psync $PSYNC_MB
    drop "$fs" psync
    fio_write_verify "$fs" mmap $MMAP_MB
    drop "$fs" mmap
    out=$(pymmap "$MNT/$fs/py.dat" "P$fs" $MMAP_MB) || fail "python mmap on the $what: ${out:-killed (SIGBUS?) or timed out}"
    assert_eq "$(fsize "$MNT/$fs/py.dat")" $((MMAP_MB << 20)) "size of $fs/py.dat"
    log "$fs: python mmap done (${SECONDS}s)"
    stop_sampler "$WORK/samples-$fs" "$what"
    ev=$(mem evictions); rc=$(mem reclaimed_clean); po=$(mem "pageouts_$fs")
    so=$(mem swap_pages_out); sf=$(mem swap_faults)
    log "$what: evictions +$((ev - ev0)), reclaimed_clean +$((rc - rc0)), pageouts_$fs +$((po - po0)), swap_pages_out +$((so - so0)), swap_faults +$((sf - sf0))"
    assert_gt $(((ev - ev0) + (rc - rc0))) 0 "$what: evictions + reclaimed_clean with working sets of 8-16 times a 16M pool"
    assert_gt $((po - po0)) 0 "$what: pageouts_$fs"
    if [ $fs = t ]; then
        assert_gt $((so - so0)) 0 "$what: swap_pages_out"
        assert_gt $((sf - sf0)) 0 "$what: swap_faults"
        assert_gt "$(pager_field t swap_faults)" 0 "paging_t swap_faults"
        # py.dat is a temporary object 8 times the pool: every page is
        # somewhere, so what is not resident is in swap
        assert_ge "$(mem swap_used_pages)" $(((MMAP_MB << 20) / 4096 - POOL)) "swap_used_pages with py.dat ($MMAP_MB MiB) in the temporary fs"
    fi
    rm "$MNT/$fs/py.dat"
done
assert_eq "$(mem objects_killed)" 0 "objects_killed"
assert_eq "$(mem swap_full_errors)" 0 "swap_full_errors"
assert_eq "$(mem swap_io_errors)" 0 "swap_io_errors"
res=$(mem resident_pages)
[ "$res" -le "$POOL" ] || fail "resident_pages $res exceeds pool_pages $POOL at the end"
stop_emmd
