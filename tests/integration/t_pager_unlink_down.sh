#!/bin/bash
# t_pager_unlink_down.sh - a file unlinked while its pager is gone loses its
# pages from the pager's store once the pager is back (issue 11 §3).
#
# fs a: lmdb in an emm-pager the test starts (`pager = unix:SOCK`,
# pager.deadline = 30s). Two 1 MiB files are written and fsync'd (512 pages
# in the pager's lmdb, counted with mdb_stat). The pager is killed (SIGKILL)
# and once emmd has seen it go, a/gone is unlinked and a/keep stays. The
# pager is started again on the same socket; emmd reconnects, re-inits a/keep
# and sends a/gone's kept discard. The store then holds a/keep's 256 pages
# only, and a/keep reads back equal. Unfixed, the discard of a/gone was posted
# to the dead connection and lost: its 256 pages stayed for ever (512).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout mdb_stat cmp
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

sock="$WORK/pager.sock"
PST="$WORK/pstate"
mkdir -p "$PST"
PPID_=""
trap '[ -z "$PPID_" ] || { kill "$PPID_" 2>/dev/null; wait "$PPID_" 2>/dev/null; }; _cleanup' EXIT
start_pager() {
    rm -f "$sock"
    "$EMM_BIN/emm-pager" --fs a --backend lmdb --state-dir "$PST" --listen "$sock" \
        >>"$WORK/pager.log" 2>&1 &
    PPID_=$!
    local i
    for ((i = 0; i < 300; i++)); do
        [ -S "$sock" ] && return 0
        sleep 0.1
    done
    fail "emm-pager did not listen on $sock: $(cat "$WORK/pager.log")"
}
wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < 600; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what: not within 60 s"
}
pager_state_is() {
    ctl info 2>/dev/null | awk -F: -v want="$1" '$1 == "pager_a.state" { gsub(/[ \t]/, "", $2); ok = $2 == want } END { exit !ok }'
}
store_is() { [ "$(stored)" = "$1" ]; }
# Entries of the pager's lmdb page databases, summed.
stored() {
    local env
    env=$(dirname "$(find "$PST" -name data.mdb | head -1)")
    [ -n "$env" ] || fail "no lmdb environment under $PST"
    mdb_stat -a "$env" | awk '/^Status of/ { db = $3 } /Entries:/ { if (db ~ /page/) n += $2 } END { print n + 0 }'
}

start_pager
conf="$WORK/emmd.conf"
write_conf "$conf" <<CONF_EOF
[fs a]
backend = lmdb
pager = unix:$sock
pager.deadline = 30s
CONF_EOF
start_emmd "$conf"

gen_src "$WORK/src" 1 41
dd if="$WORK/src" of="$MNT/a/keep" bs=1M conv=fsync status=none || fail "dd to a/keep"
dd if="$WORK/src" of="$MNT/a/gone" bs=1M conv=fsync status=none || fail "dd to a/gone"
before=$(stored)
log "the pager's store holds $before pages"
assert_ge "$before" 512 "pages stored before"

kill -KILL "$PPID_"
wait "$PPID_" 2>/dev/null || true
PPID_=""
wait_for "emmd sees its pager gone" pager_state_is down
rm "$MNT/a/gone" || fail "unlink a/gone while the pager is gone"
log "a/gone unlinked while the pager is gone"
emmd_alive || fail "emmd died"

start_pager
wait_for "emmd reconnects" pager_state_is up
drop_cache "$MNT/a/keep"
timeout 60 cmp "$WORK/src" "$MNT/a/keep" || fail "a/keep does not read back equal"
wait_for "a/gone's pages leave the store ($(stored) stored)" store_is $((before - 256))
log "the store holds $(stored) pages: a/gone's discard reached the pager once it was back"
assert_contains "$(cat "$EMMD_LOG")" "discarded when the pager is back" "the log says the discard waits"
stop_emmd
kill "$PPID_"
rc=0
wait "$PPID_" || rc=$?
PPID_=""
# --listen mode keeps no state to flush (lmdb commits each write): it takes
# SIGTERM's default action (143) or exits 0.
[ "$rc" = 0 ] || [ "$rc" = 143 ] || fail "emm-pager did not end on SIGTERM (status $rc)"
