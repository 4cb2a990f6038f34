#!/bin/bash
# t_pager_process_all.sh - conformance with every backend behind
# `pager = process` (issue 11, Tests): memory, lmdb, zstd:lmdb and the file
# plug-in, each served by an emm-pager process. On each: emmfsx (every op kind,
# every read checked against its model), then fio writes with crc32c verify
# through psync and through mmap, 4x the 4M pool, so pages go to the pager
# (data_return) and come back (data_request) all the time. Page data crosses
# in the connection's shared region (docs/protocol.md, EMM_STREAM_F_SHM):
# emmctl info shows its slots and the messages that used them, and at the end
# no slot is still lent. A last round runs lmdb with EMM_STREAM_SHM=0 (emmd
# and its emm-pager offer no region, as an older peer): data goes inline in
# the socket, and verifies the same. emmd stops cleanly each time and its
# emm-pager exits with it.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
requires fio
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

# run_fio NAME ARGS...: fio writes and verifies a 16M file.
run_fio() {
    local name=$1
    shift
    fio_run "$name" 120 "$WORK/fio-$name.log" --name="$name" --directory="$MNT/t" \
        --filename="$name.dat" --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 \
        --verify_dump=0 --randseed=4242 --group_reporting "$@"
}

# round LABEL BACKEND SHM: one emmd, one filesystem behind pager = process.
round() {
    local label=$1 backend=$2 shm=$3 ppid
    local conf="$WORK/emmd-$label.conf"
    write_conf "$conf" "resident-limit=4M" "fuse-threads=4" <<CONF_EOF
[fs t]
backend = $backend
readahead = 1M
pager = process
$([ "$backend" = file ] && echo "file.dir = $WORK/files-$label")
CONF_EOF
    [ "$backend" != file ] || mkdir -p "$WORK/files-$label"
    FSX_COUNTS="$WORK/fsx-counts-$label"
    start_emmd "$conf"
    assert_eq "$(info_get pager_t.state)" up "$label: pager_t.state"
    fsx_run "$label" "$MNT/t" 1 1500 "7"
    fsx_check_counts "$label: fsx behind pager = process"
    run_fio "$label-psync-rand" --ioengine=psync --rw=randwrite --bs=4k
    run_fio "$label-psync-seq" --ioengine=psync --rw=write --bs=64k
    run_fio "$label-mmap-seq" --ioengine=mmap --rw=write --bs=64k
    run_fio "$label-mmap-rand" --ioengine=mmap --rw=randwrite --bs=4k
    assert_gt "$(info_get data_returns)" 0 "$label: data_returns to the pager"
    assert_gt "$(info_get data_requests)" 0 "$label: data_requests to the pager"
    local slots msgs lent
    slots=$(info_get pager_t.shm_slots)
    msgs=$(info_get pager_t.shm_messages)
    lent=$(info_get pager_t.shm_slots_lent)
    log "$label: shm_slots=$slots shm_messages=$msgs shm_slots_lent=$lent shm_waits=$(info_get pager_t.shm_waits)"
    if [ "$shm" = 1 ]; then
        assert_eq "$slots" 1024 "$label: the connection's shared region (pages)"
        assert_gt "$msgs" 0 "$label: messages whose data crossed in the region"
        # idle now: every run emmd lent the pager came back
        local t=0
        while [ "$(info_get pager_t.shm_slots_lent)" != 0 ] && [ $t -lt 100 ]; do
            sleep 0.1
            t=$((t + 1))
        done
        assert_eq "$(info_get pager_t.shm_slots_lent)" 0 "$label: region slots still lent to the pager when idle"
    else
        assert_eq "$slots" 0 "$label: no shared region with EMM_STREAM_SHM=0"
        assert_eq "$msgs" 0 "$label: no message used a region"
    fi
    ppid=$(info_get pager_t.pid)
    stop_emmd
    ! kill -0 "$ppid" 2>/dev/null || fail "$label: emm-pager (pid $ppid) outlived emmd"
    rm -rf "$STATE"
}

for backend in memory lmdb zstd:lmdb file; do
    round "${backend//:/_}" "$backend" 1
done
export EMM_STREAM_SHM=0
round lmdb-inline lmdb 0
unset EMM_STREAM_SHM
