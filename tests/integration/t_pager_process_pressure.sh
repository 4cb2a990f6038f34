#!/bin/bash
# t_pager_process_pressure.sh - lmdb behind pager = process through a 16M
# pool, under writers that unlink what they wrote: stress-ng --hdd (with
# --verify) twice, then fio random writes with verify on files larger than
# the pool, deleted after. Every run must finish (bounded by timeout) with its
# data verified; afterwards the laundry must drain to 0 (every data_return
# answered, or dropped with its object: none stays in laundry for ever), every
# frame must come back, and emmd must stop cleanly on SIGTERM.
#
# It guards the pager = process wedge: a page whose data_return was written to
# the pager process (its frame lent no more) and whose file was unlinked before
# the answer came stayed in laundry for ever; at laundry_max (1024 pages) the
# pageout daemon stopped and the writers waited for frames in D state. Before
# that the laundry count stayed above 0 after the load (checked here), and the
# freed object was left on the pool's laundry list (ASan: use after free).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires stress-ng
requires fio
[ -x "$EMM_BIN/emm-pager" ] || skip "no emm-pager next to emmd in $EMM_BIN"

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<'CONF_EOF'
[fs p]
backend = lmdb
pager = process
CONF_EOF
start_emmd "$CONF"
D="$MNT/p"
POOL=$(info_get pool_pages)

# stress_hdd RUN: two hdd workers writing, verifying and unlinking 16M files.
stress_hdd() {
    local run=$1 rc=0 out slog="$WORK/stress-hdd-$1.log"
    timeout -k 10 120 stress-ng --hdd 2 --hdd-bytes 16M --timeout 6s --verify \
        --temp-path "$D" --metrics-brief --log-file "$slog" >"$slog.out" 2>&1 </dev/null || rc=$?
    out=$(cat "$slog.out")
    log "stress-ng hdd run $run: status $rc; laundry $(info_get laundry_pages), free $(info_get free_pages)"
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        printf '%s\n' "$out" >&2
        ctl info memory >&2 || true
        ctl info pagers >&2 || true
        fail "stress-ng hdd run $run did not finish within 120 s (writers wedged?)"
    fi
    [ $rc = 0 ] || { printf '%s\n' "$out" >&2; fail "stress-ng hdd run $run exited $rc"; }
    if grep -qiE 'fail:|verif.*(fail|error)|failed: [1-9]|aborted|bad data' <<<"$out"; then
        printf '%s\n' "$out" >&2
        fail "stress-ng hdd run $run reported a failure"
    fi
    grep -q 'successful run completed' <<<"$out" ||
        { printf '%s\n' "$out" >&2; fail "stress-ng hdd run $run: no successful run"; }
    emmd_alive || fail "emmd died during stress-ng hdd run $run"
}

stress_hdd 1
stress_hdd 2

# fio: random 4 KiB writes over 24M files (more than the pool), verified, the
# files unlinked at the end of each job.
for j in 1 2; do
    fio_run "randwrite-$j" 180 "$WORK/fio-$j.log" --name="rw$j" --directory="$D" \
        --filename="rw$j.dat" --size=24M --ioengine=psync --rw=randwrite --bs=4k \
        --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_dump=0 --randseed=$((777 + j)) \
        --numjobs=1 --unlink=1 --group_reporting
done
assert_gt "$(info_get data_returns)" 0 "data_returns (pageout to the pager process ran)"

# A file that stays: written through the small pool, read back after a drop.
gen_src "$WORK/src" 24 4242
bounded "copy into the mount" cp "$WORK/src" "$D/keep"
bounded "fsync" python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$D/keep"
drop_cache "$D/keep"
assert_eq "$(sha "$D/keep")" "$(sha "$WORK/src")" "content of a 24M file read back through the 16M pool"
rm -f "$D/keep"

# Every data_return is answered or gone with its object: the laundry drains.
for ((i = 0; i < 300; i++)); do
    [ "$(info_get laundry_pages)" = 0 ] && break
    sleep 0.1
done
laundry=$(info_get laundry_pages)
if [ "$laundry" != 0 ]; then
    ctl info memory >&2 || true
    ctl info pagers >&2 || true
    fail "laundry_pages is $laundry 30 s after the load ended: data_returns left in laundry for ever"
fi
# ... and every frame of the unlinked files is back.
for ((i = 0; i < 300; i++)); do
    [ "$(info_get free_pages)" = "$POOL" ] && break
    sleep 0.1
done
assert_eq "$(info_get free_pages)" "$POOL" "free_pages once every file is unlinked (frames lost?)"
left=$(find "$D" -mindepth 1 | head -5)
[ -z "$left" ] || fail "entries left behind: $left"
if grep -q "did not give its port" "$EMMD_LOG"; then
    fail "the pager stopped answering lookups: $(grep -m1 'did not give its port' "$EMMD_LOG")"
fi
stop_emmd
if grep -qE "RESTARTING|AddressSanitizer|tcache|corrupt" "$EMMD_LOG"; then
    fail "emmd's stop was not clean: $(grep -m1 -E 'RESTARTING|AddressSanitizer|tcache|corrupt' "$EMMD_LOG")"
fi
log "ok"
