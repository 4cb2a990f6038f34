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

# run_fio NAME ARGS...: fio must exit 0 and report no errors.
run_fio() {
    local name=$1 out rc=0 flog="$WORK/fio-$1.log"
    shift
    # output to a file, not a pipe: a fio worker stuck in the kernel on a wedged
    # mount must not keep this shell waiting on a pipe
    timeout -k 10 120 fio --name="$name" --directory="$D" --filename="$name.dat" \
        --size=256M --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --verify_dump=0 --randseed=12345 --group_reporting "$@" >"$flog" 2>&1 </dev/null || rc=$?
    out=$(cat "$flog")
    printf '%s\n' "$out" | grep -E 'err=|READ:|WRITE:|verify' | sed 's/^/#   /' >&2 || true
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        printf '%s\n' "$out" >&2
        ctl info memory >&2 || true
        fail "fio $name did not finish within 120 s (emmd stuck?)"
    fi
    [ $rc = 0 ] || { printf '%s\n' "$out" >&2; fail "fio $name exited $rc"; }
    grep -q 'err= 0' <<<"$out" || { printf '%s\n' "$out" >&2; fail "fio $name reported errors"; }
    if printf '%s\n' "$out" | grep -qi 'verify.*bad\|bad magic\|crc32c: verify failed'; then
        printf '%s\n' "$out" >&2
        fail "fio $name: verify failures"
    fi
    emmd_alive || fail "emmd died during fio $name"
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
