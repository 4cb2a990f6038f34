#!/bin/bash
# t_top.sh - `emmctl top` in a real terminal: run under tmux (its own server
# socket in the work dir) against an emmd with two filesystems while a reader
# faults pages in; the captured pane shows the daemon line, the column header
# and one row per filesystem, and after a few refreshes the reading
# filesystem's FAULTS/s is a number above 0 with a p99 latency; `q` quits it
# with status 0. Without a terminal, `top INTERVAL COUNT` prints COUNT frames
# and exits; bad arguments exit 2.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires tmux
IO=$(helper emmio)

TMUX_SOCK="$WORK/tmux.sock"
_top_cleanup() {
    tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
    _cleanup
}
trap _top_cleanup EXIT

CONF="$WORK/emmd.conf"
write_conf "$CONF" <<'EOF'
[fs hot]
backend = memory

[fs idle]
backend = file
EOF
start_emmd "$CONF"
"$IO" fill -y "$MNT/hot/obj" 0 $((8 << 20)) 3

# a reader that keeps faulting pages in (page cache dropped each round), bounded
(
    for ((i = 0; i < 600; i++)); do
        [ -e "$WORK/stop-reader" ] && break
        drop_cache "$MNT/hot/obj"
        cat "$MNT/hot/obj" >/dev/null
        sleep 0.05
    done
) &
reader=$!

tmux -S "$TMUX_SOCK" new-session -d -s top -x 160 -y 30 \
    "'$EMMCTL' -s '$SOCK' top 0.5; echo \$? >'$WORK/top.rc'; sleep 30"
# wait (bounded) until a frame shows hot's FAULTS/s as a number > 0
shown=""
for ((i = 0; i < 150; i++)); do
    pane=$(tmux -S "$TMUX_SOCK" capture-pane -p -t top 2>/dev/null || true)
    row=$(awk '$1 == "hot" { print }' <<<"$pane")
    rate=$(awk '{ print $2 }' <<<"$row")
    if [[ "$rate" =~ ^[0-9]+$ ]] && [ "$rate" -gt 0 ]; then shown=$pane; break; fi
    sleep 0.1
done
touch "$WORK/stop-reader"
wait $reader || true
[ -n "$shown" ] || fail "emmctl top never showed faults for fs hot; last pane:
$pane"
log "pane:"; sed 's/^/#   /' <<<"$shown" >&2
assert_contains "$shown" "emmd $(info_get version)  up " "the daemon line"
assert_contains "$shown" "pool " "the daemon line"
assert_contains "$shown" "rss " "the daemon line"
for h in FS FAULTS/s "READ MB/s" "WRITE MB/s" PGOUT/s SWPIN/s SWPOUT/s RESIDENT DIRTY DBLPAGED "P99 us"; do
    assert_contains "$shown" "$h" "the header"
done
idle=$(awk '$1 == "idle" { print }' <<<"$shown")
[ -n "$idle" ] || fail "no row for fs idle"
assert_eq "$(awk '{ print $2 }' <<<"$idle")" 0 "FAULTS/s of the idle filesystem"
p99=$(awk '$1 == "hot" { print $NF }' <<<"$shown")
[[ "$p99" =~ ^[0-9]+\.[0-9]$ ]] || fail "p99 of fs hot is '$p99', not a latency"
resident=$(awk '$1 == "hot" { print $8 }' <<<"$shown")
assert_ge "$resident" 1 "RESIDENT of fs hot"

# q quits, status 0
tmux -S "$TMUX_SOCK" send-keys -t top q
for ((i = 0; i < 100; i++)); do [ -s "$WORK/top.rc" ] && break; sleep 0.1; done
[ -s "$WORK/top.rc" ] || fail "emmctl top did not quit on q"
assert_eq "$(cat "$WORK/top.rc")" 0 "emmctl top's status after q"
tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true

# without a terminal: COUNT frames, then exit 0
out=$(timeout 20 "$EMMCTL" -s "$SOCK" top 0.2 3 </dev/null) || fail "emmctl top 0.2 3 failed"
assert_eq "$(grep -c '^FS ' <<<"$out")" 3 "frames printed by top 0.2 3"
rc=0
"$EMMCTL" -s "$SOCK" top 0 2>"$WORK/err" || rc=$?
assert_eq "$rc" 2 "top 0"
assert_contains "$(cat "$WORK/err")" "bad interval '0'"
rc=0
"$EMMCTL" -s "$SOCK" top 1 x 2>"$WORK/err" || rc=$?
assert_eq "$rc" 2 "top 1 x"
stop_emmd
# the daemon gone: exit 1
rc=0
timeout 20 "$EMMCTL" -s "$SOCK" top 0.2 2 >/dev/null 2>"$WORK/err" </dev/null || rc=$?
assert_eq "$rc" 1 "top without a daemon"
log "ok"
