#!/bin/bash
# t_rados_kill9.sh - a filesystem on a RADOS pool (throwaway cluster,
# ceph_cluster.sh) belongs to one emmd at a time, and what was fsync'd survives
# kill -9 of emmd:
#   - a second emmd (its own state dir, socket and mount root) on the same
#     filesystem is refused with a message naming the holder, and mounts nothing;
#   - objects written with pwrite + fsync, mmap + msync(MS_SYNC), a sparse one and
#     one in a directory; then SIGKILL emmd (by pid);
#   - emmd restarts on the same filesystem at once (the dead emmd's lock on this
#     host is broken: its pid is gone) with an EMPTY state directory: names,
#     sizes and data come from the pool;
#   - after a clean stop, the second emmd now mounts it and sees the same objects.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
IO=$(helper emmio)

mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[fs k]
backend = rados
rados.conf = $CEPH_CONF
rados.pool = $CEPH_POOL
rados.object-size = 1M
# write-behind runs wait an hour for more pages: only fsync (or a full 1M
# stripe) sends them, so what survives the kill -9 is what fsync made durable
rados.write-window = 3600000ms
CONF_EOF
# the second emmd: the same [fs k], everything else its own
mkdir -p "$WORK/s2" "$WORK/m2"
CONF2="$WORK/emmd2.conf"
cat >"$CONF2" <<CONF_EOF
[emmd]
state-dir = $WORK/s2
mount-root = $WORK/m2
control-socket = $WORK/s2.sock
pid-file = $WORK/s2.pid
resident-limit = 16M

[fs k]
backend = rados
rados.conf = $CEPH_CONF
rados.pool = $CEPH_POOL
rados.object-size = 1M
CONF_EOF

start_emmd "$CONF"
D="$MNT/k"
"$IO" fill -y "$D/written" 0 $((6 << 20)) 11
"$IO" truncate "$D/mapped" $((3 << 20))
"$IO" fill -m -y "$D/mapped" 0 $((3 << 20)) 12
"$IO" truncate "$D/sparse" $((64 << 30))
"$IO" fill -y "$D/sparse" $((40 << 30)) 8192 13
mkdir "$D/dir"
"$IO" fill -y "$D/dir/inner" 0 12345 14

# a second emmd on the same filesystem is refused
rc=0
timeout 60 "$EMMD" -f -c "$CONF2" >"$WORK/second.log" 2>&1 || rc=$?
cat "$WORK/second.log" | sed 's/^/#   second: /' >&2
assert_ne "$rc" 0 "exit status of the second emmd"
assert_ne "$rc" 124 "the second emmd must give up, not hang"
assert_contains "$(cat "$WORK/second.log")" "filesystem k in pool $CEPH_POOL of cluster" "the second emmd's message"
assert_contains "$(cat "$WORK/second.log")" "is in use by another emmd" "the second emmd's message"
assert_contains "$(cat "$WORK/second.log")" ":$EMMD_PID:" "the holder's pid in the message"
is_mounted "$WORK/m2/k" && fail "the refused emmd left a mount"
"$IO" check "$D/written" 0 $((6 << 20)) 11 || fail "the first emmd still serves k after the refusal"

snap() { (cd "$1" && find . -printf '%p %s\n' | sort); }
before=$(snap "$D")
log "kill -9 emmd (pid $EMMD_PID)"
pid=$EMMD_PID
EMMD_PID=""
_kill_wedged "$pid"
fusermount3 -u "$D" 2>/dev/null || fusermount3 -u -z "$D"

rm -rf "$STATE"
start_emmd "$CONF"
assert_contains "$(cat "$EMMD_LOG")" "breaking the lock of a dead emmd on this host" "emmd log after kill -9"
assert_eq "$(snap "$D")" "$before" "names and sizes after kill -9 and a restart on an empty state dir"
"$IO" check "$D/written" 0 $((6 << 20)) 11 || fail "written after kill -9"
"$IO" check "$D/mapped" 0 $((3 << 20)) 12 || fail "mapped after kill -9"
"$IO" check "$D/sparse" $((40 << 30)) 8192 13 || fail "sparse island after kill -9"
"$IO" zero "$D/sparse" $((20 << 30)) $((1 << 20)) || fail "sparse hole after kill -9"
"$IO" check "$D/dir/inner" 0 12345 14 || fail "dir/inner after kill -9"
"$IO" fill -y "$D/after" 0 $((1 << 20)) 15
stop_emmd

# now the second emmd may have it, and sees the same namespace
start_emmd "$CONF2"
assert_eq "$(snap "$WORK/m2/k" | grep -v '^./after ')" "$before" "names and sizes seen by the second emmd"
"$IO" check "$WORK/m2/k/after" 0 $((1 << 20)) 15 || fail "after, seen by the second emmd"
"$IO" check "$WORK/m2/k/written" 0 $((6 << 20)) 11 || fail "written, seen by the second emmd"
SOCK="$WORK/s2.sock"
stop_emmd
