#!/bin/bash
# t_pager_kill9.sh - isolation (issue 11 §3): `kill -9` of the emm-pager
# process in the middle of an fio mmap write with verify. One emmd, a 16M pool,
# a 256M swap file, an lmdb filesystem behind `pager = process` with
# pager.deadline = 20s (longer than the supervisor's 1 s back-off, so a pager
# restarted in time serves the faults that waited for it).
#
# 1. 24 MiB of pseudo-random data is written to `kept` with dd and fsync'd.
# 2. fio writes 64 MiB through mmap with crc32c verify (and an fsync every
#    256 writes) to `fio.0.0`; while it writes, the emm-pager pid that
#    `emmctl info pagers` shows is killed with SIGKILL.
# Asserted: emmd survives; the pager is restarted (restarts >= 1, a new pid, up
# again); every object that was open on it is re-initialised on the new one
# (pager_t.reinits >= 1); fio completes and verifies its whole file (its
# faults waited for the new pager: it came back within the deadline, so no
# EIO is allowed here); `kept` (fsync'd before the kill) reads back equal;
# after a clean stop and a restart both `kept` and fio's file verify again
# (fio --verify_only), so nothing the kill caught in flight was lost.
# Without the dead-pager path the faults on the killed pager's objects never
# end: fio hits its liveness bound.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio timeout python3
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

conf="$WORK/emmd.conf"
write_conf "$conf" "resident-limit=16M" "fuse-threads=4" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M

[fs t]
backend = lmdb
pager = process
pager.deadline = 20s
CONF_EOF
start_emmd "$conf"
D="$MNT/t"

gen_src "$WORK/src" 24 11
dd if="$WORK/src" of="$D/kept" bs=1M conv=fsync status=none || fail "dd to kept"
want=$(sha "$WORK/src")

pid1=$(info_get pager_t.pid)
assert_gt "$pid1" 0 "the pager's pid"
assert_ne "$pid1" "$EMMD_PID" "the pager is not emmd"

fio_args=(--name=fio --directory="$D" --ioengine=mmap --rw=write --bs=64k --size=64M
          --verify=crc32c --do_verify=1 --fsync=256 --numjobs=1 --group_reporting)
flog="$WORK/fio.log"
timeout -k 10 120 fio "${fio_args[@]}" >"$flog" 2>&1 </dev/null &
FIO=$!
# Kill the pager once fio's file has pages in the pool (writes are under way).
for ((i = 0; i < 600; i++)); do
    [ -e "$D/fio.0.0" ] && [ "$(stat -c %s "$D/fio.0.0" 2>/dev/null || echo 0)" -gt 0 ] &&
        [ "$(info_get pager_t.messages_received)" -gt 200 ] && break
    kill -0 "$FIO" 2>/dev/null || break
    sleep 0.05
done
kill -0 "$FIO" 2>/dev/null || { cat "$flog" >&2; fail "fio ended before the pager could be killed"; }
kill -9 "$pid1"
log "killed emm-pager pid $pid1 while fio writes"
rc=0
wait "$FIO" || rc=$?
out=$(cat "$flog")
printf '%s\n' "$out" | grep -E 'err=|WRITE:|READ:|verify' | sed 's|^|#   fio: |' >&2 || true
emmd_alive || { show_log; fail "emmd died after the pager was killed"; }
[ "$rc" != 124 ] && [ "$rc" != 137 ] || { show_log; fail "fio did not end within 120 s: faults on the killed pager's objects hang"; }
[ "$rc" = 0 ] || { printf '%s\n' "$out" >&2; show_log; fail "fio exited $rc after the pager was killed"; }
grep -q 'err= 0' <<<"$out" || { printf '%s\n' "$out" >&2; fail "fio reported errors"; }
! grep -qi 'verify.*bad\|bad magic\|crc32c: verify failed\|bad header' <<<"$out" ||
    fail "fio: verify failures after the pager was killed"

assert_contains "$(cat "$EMMD_LOG")" "PAGER LOST" "the log says the pager was lost"
for ((i = 0; i < 300; i++)); do
    [ "$(info_get pager_t.state)" = up ] && break
    sleep 0.1
done
assert_eq "$(info_get pager_t.state)" up "the pager is up again"
assert_ge "$(info_get pager_t.restarts)" 1 "pager_t.restarts"
pid2=$(info_get pager_t.pid)
assert_ne "$pid2" "$pid1" "a new emm-pager process"
assert_ge "$(info_get pager_t.reinits)" 1 "objects re-initialised on the new pager"
assert_ge "$(info_get pager_t.objects_lost)" 1 "objects learned their pager died"
assert_eq "$(info_get pager_t.objects_waiting)" 0 "no object still waits for a pager"

drop_cache "$D/kept"
assert_eq "$(sha "$D/kept")" "$want" "kept (fsync'd before the kill) reads back equal"
sync "$D/fio.0.0" || fail "fsync of fio's file after the restart"

# A clean stop and a start: what the new pager was given is in LMDB.
stop_emmd
start_emmd "$conf"
assert_eq "$(sha "$D/kept")" "$want" "kept after a restart of emmd"
fio_run verify-only 240 "$WORK/fio-verify.log" "${fio_args[@]}" --verify_only=1
stop_emmd
