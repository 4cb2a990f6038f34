#!/bin/bash
# t_fio.sh - fio writes 256 MiB through mmap and through pwrite (psync), then
# reads everything back and verifies crc32c checksums, on the memory backend
# with a 64M resident-limit so the pool's bound and the pageout path are exercised
# (each file is 4x the pool). A random-write job checks the same with 4 KiB blocks.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio

write_conf "$WORK/emmd.conf" "resident-limit=64M" <<'CONF_EOF'
[fs fio]
backend = memory
CONF_EOF
start_emmd "$WORK/emmd.conf"
D="$MNT/fio"
limit=$(info_get resident_limit_bytes)
assert_eq "$limit" $((64 << 20)) "resident_limit_bytes"

# run_fio NAME ARGS...: fio writes and verifies a 256M file (lib.sh fio_run).
run_fio() {
    local name=$1
    shift
    fio_run "$name" 120 "$WORK/fio-$name.log" --name="$name" --directory="$D" \
        --filename="$name.dat" --size=256M --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --verify_dump=0 --randseed=12345 --group_reporting "$@"
}

run_fio mmap-seq --ioengine=mmap --rw=write --bs=64k
run_fio psync-seq --ioengine=psync --rw=write --bs=64k
run_fio mmap-rand --ioengine=mmap --rw=randwrite --bs=4k --size=64M
run_fio psync-rand --ioengine=psync --rw=randwrite --bs=4k --size=64M

# the pool stayed within its bound
res=$(info_get resident_pages)
log "resident_pages=$res after fio (limit $((limit / 4096)) pages)"
[ "$res" -le $((limit / 4096)) ] || fail "resident_pages $res exceeds resident-limit ($((limit / 4096)) pages)"
assert_gt "$(info_get data_returns)" 0 "data_returns after 4x the pool in writes (pageout ran)"

# the data fio verified is also what a fresh reader sees after a page cache drop
for f in mmap-seq psync-seq; do
    sz=$(fsize "$D/$f.dat")
    assert_eq "$sz" $((256 << 20)) "size of $f.dat"
done
s1=$(sha "$D/psync-seq.dat")
echo 3 >/proc/sys/vm/drop_caches
assert_eq "$(sha "$D/psync-seq.dat")" "$s1" "psync-seq.dat after dropping the page cache"
stop_emmd
