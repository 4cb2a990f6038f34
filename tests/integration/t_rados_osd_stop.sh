#!/bin/bash
# t_rados_osd_stop.sh - the OSD of a rados filesystem stops answering (SIGSTOP)
# while a writer pushes 48 MiB through a 16M pool, then comes back (SIGCONT).
# While it is stopped, data_returns to the rados pager do not finish within
# pager.deadline (1s), so dirty pages are double paged to the swap file and
# the writer goes on; nothing is lost or corrupted. After
# SIGCONT the replay reaches the pool: fsync succeeds, the data checks, and it
# still checks after a restart of emmd on an empty state dir (so from the pool).
# The OSD stays stopped longer than the pager deadline but shorter than
# rados.op-timeout, so librados waits for it rather than failing. Meanwhile a
# create on the rados filesystem fails after rados.meta-timeout (ETIMEDOUT,
# logged), and a memory filesystem of the same emmd creates, renames and
# unlinks as usual.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
IO=$(helper emmio)
WRITER=""
# a value of `emmctl info memory` (the sections that ask no pager: the OSD is stopped)
mem_get() { ctl info memory | awk -F: -v k="$1" '$1 == k { print $2; exit }'; }
trap '_rc=$?; trap - ERR; set +e; [ -z "$CEPH_OSD_PID" ] || kill -CONT "$CEPH_OSD_PID" 2>/dev/null; [ -z "$WRITER" ] || kill "$WRITER" 2>/dev/null; (exit $_rc); _cleanup' EXIT

mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M
deadline = 500ms

[fs s]
backend = rados
pager.deadline = 1s
rados.conf = $CEPH_CONF
rados.pool = $CEPH_POOL
rados.op-timeout = 120
# a small write-behind budget: the writer fills it at once, and then its
# data_returns wait (for the budget) past pager.deadline
rados.write-behind = 4M
rados.meta-timeout = 3

[fs m]
backend = memory
CONF_EOF
start_emmd "$CONF"
D="$MNT/s"
"$IO" fill -y "$D/before" 0 $((8 << 20)) 21
# the object exists and has its size before the OSD stops: creating a name or
# changing a size is a namespace update in the pool, which waits for the OSD
"$IO" truncate "$D/during" $((48 << 20))
assert_eq "$("$IO" fsync "$D/during")" OK "fsync of the new object"

log "SIGSTOP ceph-osd (pid $CEPH_OSD_PID)"
kill -STOP "$CEPH_OSD_PID"
"$IO" fill "$D/during" 0 $((48 << 20)) 22 &
WRITER=$!
# wait (bounded) until pages went to swap because the pager stalls
for ((i = 0; i < 600; i++)); do
    [ "$(mem_get double_paged)" -gt 0 ] && break
    sleep 0.1
done
dp=$(mem_get double_paged)
log "double_paged while the OSD is stopped: $dp"
assert_gt "$dp" 0 "pages double paged to swap while the OSD is stopped"
# namespace changes while the OSD is stopped: a create on the rados
# filesystem waits for the pool, at most rados.meta-timeout (3 s), then fails
# with a clear error in the log instead of hanging its caller ...
rc=0
timeout 60 touch "$D/new" 2>"$WORK/touch.err" &
TOUCH=$!
# ... while another filesystem of this emmd goes on meanwhile (its create,
# rename and unlink do not wait for the pool)
timeout 20 touch "$MNT/m/other" || fail "a create on fs m waited for the stopped OSD of fs s"
timeout 20 mv "$MNT/m/other" "$MNT/m/other2" || fail "a rename on fs m waited for the stopped OSD"
timeout 20 rm "$MNT/m/other2" || fail "an unlink on fs m waited for the stopped OSD"
kill -0 "$TOUCH" 2>/dev/null && log "fs m went on while the create on fs s was waiting"
wait "$TOUCH" || rc=$?
log "create on fs s with the OSD stopped: status $rc, $(cat "$WORK/touch.err")"
assert_ne "$rc" 124 "a create on fs s must fail within rados.meta-timeout, not hang"
assert_ne "$rc" 0 "a create on fs s with the OSD stopped"
assert_contains "$(cat "$WORK/touch.err")" "timed out" "the create's error"
assert_contains "$(cat "$EMMD_LOG")" "namespace update in emm_dir.s" "emmd log"
assert_contains "$(cat "$EMMD_LOG")" "not acknowledged within 3 s" "emmd log"
log "SIGCONT ceph-osd"
kill -CONT "$CEPH_OSD_PID"
wait "$WRITER" || fail "the writer failed across the OSD's stop"
WRITER=""
assert_eq "$("$IO" fsync "$D/during")" OK "fsync after the OSD is back"
"$IO" check "$D/during" 0 $((48 << 20)) 22 || fail "during: after the OSD is back"
ctl info memory | grep -E '^(double_paged|swap_pages_out|swap_faults|overdue_returns|objects_killed|replayed)' | sed 's/^/# /' >&2 || true
assert_eq "$(mem_get objects_killed)" 0 "objects_killed"
stop_emmd
rm -rf "$STATE" "$WORK/swap.img"
start_emmd "$CONF"
"$IO" check "$D/during" 0 $((48 << 20)) 22 || fail "during: from the pool after a restart"
"$IO" check "$D/before" 0 $((8 << 20)) 21 || fail "before: from the pool after a restart"
stop_emmd
