#!/bin/bash
# t_zstd_fio.sh - fio writes 256 MiB through mmap and through pwrite (psync) and
# verifies crc32c checksums on the zstd filter: zstd:lmdb and zstd:memory, with
# a 64M resident-limit so most pages are laundered through the filter (cluster
# compression, read-modify-write of partial clusters) and faulted back through
# it (decompression) during the verify pass. One job of each pair writes
# fio's default random buffers (incompressible: raw clusters), the other
# buffers that are 60% compressible (compressed clusters). Then `emmctl info
# pagers` must show the filter's lines for each filesystem: a ratio above 1 on
# the compressible data, raw and compressed clusters, and no corrupt cluster.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio

write_conf "$WORK/emmd.conf" "resident-limit=64M" <<'CONF_EOF'
[fs zl]
backend = zstd:lmdb

[fs zm]
backend = zstd:memory
CONF_EOF
start_emmd "$WORK/emmd.conf"
assert_eq "$(info_get resident_limit_bytes)" $((64 << 20)) "resident_limit_bytes"

# run_fio FS NAME ARGS...: fio writes and verifies a 256M file (lib.sh fio_run).
run_fio() {
    local fs=$1 name=$2
    shift 2
    fio_run "$fs/$name" 300 "$WORK/fio-$fs-$name.log" --name="$name" --directory="$MNT/$fs" \
        --filename="$name.dat" --size=256M --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --verify_dump=0 --randseed=12345 --group_reporting "$@"
}

# pg FS KEY: a filter line of FS from `emmctl info pagers` ("FS.zstd.KEY:VALUE")
pg() {
    local v
    v=$(ctl info pagers | awk -F: -v k="$1.zstd.$2" '$1 == k { print $2; exit }')
    [ -n "$v" ] || fail "emmctl info pagers has no line $1.zstd.$2"
    printf '%s\n' "$v"
}

COMP=(--buffer_compress_percentage=60 --buffer_compress_chunk=4k --refill_buffers)
for fs in zl zm; do
    returns0=$(info_get data_returns)
    run_fio "$fs" mmap-seq --ioengine=mmap --rw=write --bs=64k
    run_fio "$fs" psync-seq --ioengine=psync --rw=write --bs=64k "${COMP[@]}"
    run_fio "$fs" mmap-comp --ioengine=mmap --rw=write --bs=64k --size=128M "${COMP[@]}"
    run_fio "$fs" psync-rand --ioengine=psync --rw=randwrite --bs=4k --size=64M
    returns=$(info_get data_returns)
    log "$fs: data_returns $returns0 -> $returns"
    assert_gt $((returns - returns0)) $(((256 << 20) / 4096)) "$fs: pages laundered through the filter (data_returns)"
    for f in mmap-seq psync-seq; do
        assert_eq "$(fsize "$MNT/$fs/$f.dat")" $((256 << 20)) "size of $fs/$f.dat"
    done
done

# the data fio verified is also what a fresh reader sees after the page cache
# drop and a flush out of emmd's pool (every page comes back through zstd)
for fs in zl zm; do
    s1=$(sha "$MNT/$fs/psync-seq.dat")
    ctl flush "$fs" psync-seq.dat >/dev/null || fail "emmctl flush $fs psync-seq.dat"
    echo 3 >/proc/sys/vm/drop_caches
    assert_eq "$(sha "$MNT/$fs/psync-seq.dat")" "$s1" "$fs/psync-seq.dat after a flush and dropping the page cache"
done
res=$(info_get resident_pages)
[ "$res" -le $(((64 << 20) / 4096)) ] || fail "resident_pages $res exceeds resident-limit"

# the filter's own account, per filesystem
for fs in zl zm; do
    ctl info pagers | grep "^$fs\.zstd\." | sed 's/^/#   /' >&2
    ratio=$(pg "$fs" ratio)
    logical=$(pg "$fs" logical_bytes)
    stored=$(pg "$fs" stored_bytes)
    case "$ratio" in
    [0-9]*.[0-9][0-9]) ;;
    *) fail "$fs.zstd.ratio: '$ratio' is not a ratio" ;;
    esac
    assert_gt "$logical" 0 "$fs.zstd.logical_bytes"
    assert_gt "$stored" 0 "$fs.zstd.stored_bytes"
    # ratio is logical / stored (two decimals)
    want=$(awk -v l="$logical" -v s="$stored" 'BEGIN { printf "%.2f", l / s }')
    assert_eq "$ratio" "$want" "$fs.zstd.ratio against logical_bytes / stored_bytes"
    awk -v r="$ratio" 'BEGIN { exit !(r > 1.05) }' || fail "$fs.zstd.ratio $ratio: no compression on 60%-compressible data"
    assert_gt "$(pg "$fs" raw_clusters)" 0 "$fs.zstd.raw_clusters (fio's random buffers)"
    assert_gt "$(pg "$fs" compressed_clusters)" 0 "$fs.zstd.compressed_clusters"
    assert_eq "$(pg "$fs" corrupt_clusters)" 0 "$fs.zstd.corrupt_clusters"
done
stop_emmd
