#!/bin/bash
# t_pager_evil.sh - a malicious pager behind `pager = unix:PATH` (evil_pager.c):
# on each connection it answers the lookup, then sends one bad frame (wrong
# magic, a 2 GiB payload, an unknown id, a kernel's id, a port never given, a
# truncated frame, and a well-framed message whose offset is a lie that only
# the kernel's own check catches). emmd must log each refusal naming the pager
# and the field, cut it off (the evil pager sees the end of its stream),
# reconnect, and stay intact: another filesystem keeps working and verifies
# after every round, and emmd stops cleanly.
. "$(dirname "$0")/lib.sh"
# Its objects follow the dead-pager path (emm/vm/vm_lost.c): a write to an
# object whose pager was cut off ends (EIO past pager.deadline, or done once a
# pager is back) instead of hanging, and emmd's shutdown flush ends too.
need_fuse
need_emm
requires timeout
EVIL=$(helper evil_pager)

modes="magic oversize unknown kernelid dest truncated lie"
declare -A want=([magic]="bad frame magic" [oversize]="bad payload" [unknown]="bad id"
                 [kernelid]="bad id (not the peer's to send)" [dest]="bad dest"
                 [truncated]="truncated" [lie]="malformed data_unavailable (bad offset)")
sock="$WORK/evil.sock"
# shellcheck disable=SC2086 # modes: words
"$EVIL" "$sock" $modes >"$WORK/evil.out" 2>&1 &
EVIL_PID=$!
trap 'kill "$EVIL_PID" 2>/dev/null || true; _cleanup' EXIT

# wait_for WHAT CMD...: polls CMD (tenths of a second, up to 30 s: a liveness bound).
wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < 300; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what: not within 30 s"
}
wait_for "evil pager listening" grep -q listening "$WORK/evil.out"

conf="$WORK/emmd.conf"
write_conf "$conf" <<CONF_EOF
[fs good]
backend = memory

[fs evil]
backend = memory
pager = unix:$sock
pager.deadline = 1s
CONF_EOF
start_emmd "$conf"

gen_src "$WORK/src" 1 7
i=0
for m in $modes; do
    i=$((i + 1))
    # Mapping an object makes emmd look its port up and send init: the bad frame comes back.
    # It ends either way (EIO past the deadline: the pager is cut off again
    # before it is ready); before the dead-pager path it hung (status 124/137).
    rc=0
    timeout -k 5 30 sh -c "echo $m >'$MNT/evil/f$i'" 2>/dev/null || rc=$?
    [ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "a write on the cut-off pager's object hung ($m)"
    wait_for "emmd cut off the evil pager ($m)" grep -q "evil: $m: cut off" "$WORK/evil.out"
    assert_contains "$(cat "$EMMD_LOG")" "pager of fs evil" "the log names the pager"
    assert_contains "$(grep -F "pager of fs evil" "$EMMD_LOG")" "${want[$m]}" "the log names the field ($m)"
    emmd_alive || fail "emmd died after the evil pager's $m"
    cp "$WORK/src" "$MNT/good/g$i"
    sync "$MNT/good/g$i"
    drop_cache "$MNT/good/g$i"
    assert_eq "$(sha "$MNT/good/g$i")" "$(sha "$WORK/src")" "the good filesystem after $m"
    log "$m: refused, cut off, the other filesystem intact"
done
assert_contains "$(ctl info)" "pager_evil.mode" "emmctl info still answers"
wait "$EVIL_PID" || fail "the evil pager failed: $(cat "$WORK/evil.out")"
stop_emmd
