#!/bin/bash
# t_pager_stop.sh - isolation (issue 11 §3): a pager that stops answering
# (SIGSTOP of its emm-pager process) costs only its own objects.
#
# Two filesystems in one emmd: `a` (lmdb behind `pager = process`,
# pager.deadline = 1s) and `b` (lmdb, the pager inline). An 8 MiB file on `a`
# is written and fsync'd, then dropped from emmd's pool (`emmctl flush`) and
# from the page cache, so reading it needs a's pager. Then a's emm-pager is
# stopped with SIGSTOP, and:
# - b works on: dd writes 32 MiB (fsync) and cmp reads them back, three
#   rounds, each under a generous liveness bound;
# - a's faults end: `cat` of the file and an mmap read (sigbus_probe) end
#   with an error (EIO, SIGBUS) instead of waiting for the stopped pager
#   (faults on a silent pager fail once it and they have waited twice its
#   deadline); no timing is asserted, `timeout 60` only bounds the wait.
# After SIGCONT, a's file reads back equal (the pager's late answers are
# taken), and emmd stops cleanly. Without the silent-pager deadline a's
# reads wait for the stopped pager for ever (timeout's status 124).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout cmp python3
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"
PROBE=$(helper sigbus_probe)

APID=""
trap '[ -z "$APID" ] || kill -CONT "$APID" 2>/dev/null || true; _cleanup' EXIT

conf="$WORK/emmd.conf"
write_conf "$conf" "resident-limit=64M" "fuse-threads=4" <<CONF_EOF
[fs a]
backend = lmdb
pager = process
pager.deadline = 1s

[fs b]
backend = lmdb
CONF_EOF
start_emmd "$conf"

gen_src "$WORK/asrc" 8 21
gen_src "$WORK/bsrc" 32 22
dd if="$WORK/asrc" of="$MNT/a/x" bs=1M conv=fsync status=none || fail "dd to a/x"
ctl flush a x >/dev/null || fail "emmctl flush a x"
drop_cache "$MNT/a/x"

APID=$(info_get pager_a.pid)
assert_gt "$APID" 0 "a's pager pid"
kill -STOP "$APID"
log "stopped a's emm-pager (pid $APID)"

# a's faults, in the background: they must end, with an error.
rc_cat=0
timeout -k 5 60 cat "$MNT/a/x" >"$WORK/a.out" 2>"$WORK/a.err" &
CAT=$!

# b goes on meanwhile.
for r in 1 2 3; do
    bounded "dd to b (round $r)" dd if="$WORK/bsrc" of="$MNT/b/y$r" bs=1M conv=fsync status=none
    drop_cache "$MNT/b/y$r"
    bounded "cmp on b (round $r)" cmp "$WORK/bsrc" "$MNT/b/y$r"
    log "round $r on b: written, fsync'd, read back equal while a's pager is stopped"
done

wait "$CAT" || rc_cat=$?
[ "$rc_cat" != 124 ] && [ "$rc_cat" != 137 ] ||
    fail "a read on the stopped pager's filesystem did not end (status $rc_cat)"
[ "$rc_cat" != 0 ] || fail "a read of a page only the stopped pager has succeeded"
assert_contains "$(cat "$WORK/a.err")" "Input/output error" "cat on a ends with EIO"
# An mmap read of a page further on (not in the page cache): SIGBUS.
res=$(timeout -k 5 60 "$PROBE" "$MNT/a/x" 7M) || fail "sigbus_probe could not run"
assert_eq "$res" SIGBUS "an mmap read of the stopped pager's page"
emmd_alive || fail "emmd died while a's pager was stopped"
assert_gt "$(info_get pager_a.lost_eio)" 0 "pager_a.lost_eio"

kill -CONT "$APID"
log "continued a's emm-pager"
ok=0
for ((i = 0; i < 100; i++)); do
    drop_cache "$MNT/a/x"
    if [ "$(timeout 60 cat "$MNT/a/x" 2>/dev/null | sha256sum | awk '{print $1}')" = "$(sha "$WORK/asrc")" ]; then
        ok=1
        break
    fi
    sleep 0.2
done
[ $ok = 1 ] || fail "a/x does not read back equal after SIGCONT"
assert_eq "$(info_get pager_a.pid)" "$APID" "the same pager serves a (it was only stopped)"
APID=""
stop_emmd
