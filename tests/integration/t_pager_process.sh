#!/bin/bash
# t_pager_process.sh - the memory-object protocol on the wire: emmfsx (every op
# kind, every read checked against its model) on lmdb and on zstd:lmdb with
# `pager = process`, so every data_request, data_supply, data_return and
# synchronize crosses a socket to an emm-pager process (docs/protocol.md, the
# stream transport). A 1M pool keeps pages going to the pager and back.
# emmctl info shows the pager up, in a process other than emmd, with messages
# both ways; emmd stops cleanly and its emm-pager exits with it.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

for backend in lmdb zstd:lmdb; do
    conf="$WORK/emmd-${backend//:/_}.conf"
    write_conf "$conf" "resident-limit=1M" "fuse-threads=4" <<CONF_EOF
[fs t]
backend = $backend
readahead = 1M
pager = process
CONF_EOF
    FSX_COUNTS="$WORK/fsx-counts-${backend//:/_}"
    start_emmd "$conf"
    fsx_run "${backend//:/_}" "$MNT/t" 1 2000 "1 2 3"
    fsx_check_counts "fsx on $backend behind pager = process"
    assert_eq "$(info_get pager_t.mode)" process "pager_t.mode"
    assert_eq "$(info_get pager_t.state)" up "pager_t.state"
    ppid=$(info_get pager_t.pid)
    assert_ne "$ppid" "$EMMD_PID" "the pager's pid is not emmd's"
    assert_contains "$(tr '\0' ' ' <"/proc/$ppid/cmdline")" "emm-pager" "pid $ppid is emm-pager"
    assert_gt "$(info_get pager_t.messages_sent)" 0 "messages sent to the pager"
    assert_gt "$(info_get pager_t.messages_received)" 0 "messages from the pager"
    assert_gt "$(info_get data_requests)" 0 "data_requests to the pager"
    assert_gt "$(info_get data_returns)" 0 "data_returns to the pager"
    assert_eq "$(info_get pager_t.restarts)" 0 "pager_t.restarts"
    stop_emmd
    ! kill -0 "$ppid" 2>/dev/null || fail "emm-pager (pid $ppid) outlived emmd"
    rm -rf "$STATE"
done
