#!/bin/bash
# t_pager_process_sigterm.sh - emmd's stop with its pager in another process
# (pager = process, lmdb, swap configured).
#
# 1. SIGTERM to emm-pager and at once to emmd (what Ctrl-C, a kill of the
#    process group or a service manager's stop do): the pager outlives the
#    signal, emmd's stop flushes through it, emmd exits 0 and unmounts, nothing
#    is restarted, and the unsynced file reads back whole after a restart.
# 2. The pager is stopped (SIGSTOP) and killed (SIGKILL) during emmd's stop:
#    emmd does not restart it (it once did: "RESTARTING the pager" after
#    "flushing and unmounting", a new emm-pager during the stop), it exits 0
#    and unmounts, and the data the dead pager never stored comes back from
#    swap after a restart.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
[ -x "$EMM_BIN/emm-pager" ] || skip "no emm-pager next to emmd in $EMM_BIN"

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=32M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 128M
deadline = 2s

[fs p]
backend = lmdb
pager = process
CONF_EOF
D="$MNT/p"
gen_src "$WORK/src1" 8 11
gen_src "$WORK/src2" 8 22

pager_pid() {
    local pid
    pid=$(ctl info pagers | awk -F: '$1 == "pager_p.pid" { print $2 }')
    [ -n "$pid" ] && [ "$pid" != 0 ] || fail "no pager pid in emmctl info pagers"
    echo "$pid"
}

# wait_gone PID WHAT: the process PID (not our child) ends within 30 s
wait_gone() {
    local i
    for ((i = 0; i < 300; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    fail "$2 (pid $1) still runs 30 s after emmd's stop"
}

check_stop_log() {
    local round=$1 from=$2
    if tail -n +"$from" "$EMMD_LOG" | grep -q "RESTARTING"; then
        show_log
        fail "round $round: emmd restarted its pager during its own stop"
    fi
    assert_contains "$(tail -n +"$from" "$EMMD_LOG")" "stopped" "round $round: emmd's log"
}

# ---- 1: one signal for both -------------------------------------------------
start_emmd "$CONF"
bounded "write f1" cp "$WORK/src1" "$D/f1"   # no fsync: the stop must flush it
PPID1=$(pager_pid)
from=$(($(wc -l <"$EMMD_LOG") + 1))
kill -TERM "$PPID1"
stop_emmd   # SIGTERM to emmd at once; fails unless it exits 0 and unmounts
check_stop_log 1 "$from"
wait_gone "$PPID1" "emm-pager"

start_emmd "$CONF"
drop_cache "$D/f1"
assert_eq "$(sha "$D/f1")" "$(sha "$WORK/src1")" "f1 after a stop signalled to emmd and its pager"

# ---- 2: the pager dies during the stop ------------------------------------
bounded "write f2" cp "$WORK/src2" "$D/f2"
PPID2=$(pager_pid)
kill -STOP "$PPID2"
from=$(($(wc -l <"$EMMD_LOG") + 1))
kill -TERM "$EMMD_PID"
for ((i = 0; i < 300; i++)); do
    tail -n +"$from" "$EMMD_LOG" | grep -q "flushing and unmounting" && break
    sleep 0.1
done
tail -n +"$from" "$EMMD_LOG" | grep -q "flushing and unmounting" || fail "emmd did not begin its stop"
sleep 1 # the stop waits for the stopped pager now
kill -KILL "$PPID2"
stop_emmd
check_stop_log 2 "$from"

start_emmd "$CONF"
drop_cache "$D/f2"
assert_eq "$(sha "$D/f2")" "$(sha "$WORK/src2")" "f2 after its pager was killed during the stop (from swap)"
assert_eq "$(sha "$D/f1")" "$(sha "$WORK/src1")" "f1 after the second restart"
rm -f "$D/f1" "$D/f2"
stop_emmd
log "ok"
