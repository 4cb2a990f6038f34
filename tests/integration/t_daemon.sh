#!/bin/bash
# t_daemon.sh - without -f emmd detaches: the launcher returns 0 once the
# filesystems are mounted, the pid file holds the daemon's pid, the daemon has
# its own session and no terminal, and SIGTERM unmounts everything, removes the
# socket and pid file, and keeps what must be kept (state-dir contents,
# explicit mountpoint directories, the config), so a restart finds the data. A
# second emmd on the same config is refused while the first runs. A detached
# start that fails after mounting prints the reason on the launcher's stderr,
# and the launcher returns non-zero only once nothing is left mounted.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)

mkdir -p "$WORK/explicit"
CONF="$WORK/emmd.conf"
write_conf "$CONF" <<CONF_EOF
[fs keep]
backend = file

[fs scratch]
backend = memory
mountpoint = $WORK/explicit
CONF_EOF
conf_sum=$(sha "$CONF")

start_emmd_daemon "$CONF"
pid=$EMMD_PID
[ -d "/proc/$pid" ] || fail "pid $pid from the pid file is not running"
exe=$(readlink "/proc/$pid/exe")
assert_eq "$(basename "$exe")" emmd "executable of the pid in the pid file"
[ "$pid" != "$$" ] || fail "pid file holds the test shell's pid"
# detached: not our child, its own session, stdin not a terminal
ppid=$(awk '{ print $4 }' "/proc/$pid/stat")
[ "$ppid" != "$$" ] || fail "daemon is still a child of the shell that started it"
sid=$(ps -o sid= -p "$pid" | tr -d ' ')
mysid=$(ps -o sid= -p $$ | tr -d ' ')
[ "$sid" != "$mysid" ] || fail "daemon is still in the launcher's session ($sid)"
tty=$(ps -o tty= -p "$pid" | tr -d ' ')
assert_eq "$tty" "?" "daemon's controlling terminal"
fd0=$(readlink "/proc/$pid/fd/0" || echo none)
case "$fd0" in /dev/null | none) ;; *) fail "daemon's stdin is $fd0, expected /dev/null or closed" ;; esac

# it serves
"$IO" fill -y "$MNT/keep/obj" 0 $((2 << 20)) 101
"$IO" fill -y "$WORK/explicit/tmp" 0 65536 102
assert_eq "$(info_get pid)" "$pid" "emmctl info pid"

# a second instance on the same config is refused before it mounts anything
# (a watcher samples mountinfo every 2 ms while it runs; it can miss a very short
# double mount, never invent one), and the first keeps serving
python3 - "$MNT/keep" "$WORK/explicit" "$WORK/watch.stop" >"$WORK/watch.out" <<'PY' &
import os, sys, time
mps, stop = sys.argv[1:3], sys.argv[3]
most = 1
while not os.path.exists(stop):
    with open("/proc/self/mountinfo") as f:
        fields = [l.split()[4] for l in f]
    most = max([most] + [fields.count(m) for m in mps])
    time.sleep(0.002)
print(most)
PY
watcher=$!
sleep 0.2
rc=0
timeout -s TERM 15 "$EMMD" -f -c "$CONF" >"$WORK/second.log" 2>&1 || rc=$?
touch "$WORK/watch.stop"
wait $watcher || fail "mount watcher failed"
assert_eq "$(cat "$WORK/watch.out")" 1 "most mounts seen on one mountpoint while a second emmd started"
[ $rc != 0 ] || fail "a second emmd on the same config exited 0"
[ $rc != 124 ] || fail "a second emmd on the same config kept running (killed by timeout)"
log "second instance refused (status $rc): $(head -c 300 "$WORK/second.log")"
kill -0 "$pid" || fail "the first emmd died when a second one was started"
for mp in "$MNT/keep" "$WORK/explicit"; do
    assert_eq "$(grep -c " $mp " /proc/self/mountinfo)" 1 "mounts on $mp"
done
"$IO" check "$MNT/keep/obj" 0 $((2 << 20)) 101 || fail "first instance after a refused second"
ctl info >/dev/null || fail "control socket of the first instance after a refused second"

stop_emmd
[ ! -e "/proc/$pid" ] || fail "daemon still running after SIGTERM"
is_mounted "$MNT/keep" && fail "$MNT/keep still mounted"
is_mounted "$WORK/explicit" && fail "$WORK/explicit still mounted"
[ -d "$WORK/explicit" ] || fail "emmd removed the explicit mountpoint directory"
[ -d "$STATE" ] || fail "emmd removed its state-dir"
[ -n "$(ls -A "$STATE")" ] || fail "state-dir is empty after stopping a file backend"
assert_eq "$(sha "$CONF")" "$conf_sum" "config file after the daemon ran"
[ ! -e "$SOCK" ] || fail "control socket left behind after a clean stop"
[ ! -e "$PIDFILE" ] || fail "pid file left behind after a clean stop"

# the data comes back under a new daemon
start_emmd_daemon "$CONF"
[ "$EMMD_PID" != "$pid" ] || fail "restarted daemon has the old pid"
"$IO" check "$MNT/keep/obj" 0 $((2 << 20)) 101 || fail "file backend data after a daemon restart"
[ ! -e "$WORK/explicit/tmp" ] || fail "memory backend object survived a restart (it is volatile)"
stop_emmd

# --- a detached start that fails late: the control socket's path holds a
# regular file, found only after both filesystems are mounted. The launcher
# must print why and return non-zero after the child tore everything down.
echo "precious, not a socket" >"$WORK/notasock"
LATE="$WORK/late.conf"
cat >"$LATE" <<E
[emmd]
state-dir = $STATE
mount-root = $MNT
control-socket = $WORK/notasock
pid-file = $WORK/late.pid
log-level = debug
[fs keep]
backend = file
[fs scratch]
backend = memory
mountpoint = $WORK/explicit
E
rc=0
timeout 30 "$EMMD" -c "$LATE" </dev/null >"$WORK/late.out" 2>"$WORK/late.err" || rc=$?
mounted_after=$(mounts_under "$WORK")
log "late failure (status $rc): $(head -c 600 "$WORK/late.err")"
[ $rc != 0 ] || fail "a detached start that failed returned 0"
[ $rc != 124 ] || fail "the launcher of a failed detached start did not return"
[ -z "$mounted_after" ] || fail "the launcher returned while $mounted_after was still mounted"
assert_contains "$(cat "$WORK/late.err")" "$WORK/notasock" "the launcher's stderr"
assert_contains "$(cat "$WORK/late.err")" "not a socket" "the launcher's stderr"
assert_eq "$(cat "$WORK/notasock")" "precious, not a socket" "the file in the socket's place"
[ ! -s "$WORK/late.pid" ] || fail "a failed start left a pid in $WORK/late.pid"
