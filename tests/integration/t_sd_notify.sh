#!/bin/bash
# t_sd_notify.sh - emmd under a service manager: started with NOTIFY_SOCKET
# pointing at a datagram socket this test reads (as systemd would for
# Type=notify), emmd sends READY=1 only once every filesystem is mounted and
# the control socket exists (checked at the moment each message arrives), with
# a STATUS= line naming the filesystems and MAINPID= its pid; a SIGHUP reload
# sends RELOADING=1 and then READY=1; on SIGTERM it sends STOPPING=1 before it
# unmounts. Without NOTIFY_SOCKET nothing is sent
# and nothing breaks (every other test).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3

mkdir -p "$WORK/explicit"
CONF="$WORK/emmd.conf"
write_conf "$CONF" <<EOF
[fs one]
backend = memory

[fs two]
backend = file
mountpoint = $WORK/explicit
EOF
NS="$WORK/notify.sock"
# The listener: one line per datagram, "MOUNTED=<n of 2> SOCK=<0|1> <message
# with newlines as |>", the mounts read from mountinfo when the datagram is
# received; ends after STOPPING=1 or 60 s.
python3 - "$NS" "$MNT/one" "$WORK/explicit" "$SOCK" >"$WORK/notify.log" 2>"$WORK/notify.err" <<'PY' &
import os, socket, sys, time
path, mps, ctl = sys.argv[1], sys.argv[2:4], sys.argv[4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(1.0)
open(path + ".up", "w").close()
end = time.time() + 60
while time.time() < end:
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        continue
    with open("/proc/self/mountinfo") as f:
        points = [l.split()[4] for l in f]
    n = sum(1 for m in mps if m in points)
    print("MOUNTED=%d SOCK=%d %s" % (n, os.path.exists(ctl), msg.replace("\n", "|")), flush=True)
    if "STOPPING=1" in msg:
        break
PY
listener=$!
for ((i = 0; i < 100; i++)); do [ -e "$NS.up" ] && break; sleep 0.1; done
[ -e "$NS.up" ] || fail "the notify listener did not start: $(cat "$WORK/notify.err")"

NOTIFY_SOCKET="$NS" start_emmd "$CONF"
# READY=1 comes right after the mounts and the socket: wait for it (bounded)
for ((i = 0; i < 100; i++)); do grep -q 'READY=1' "$WORK/notify.log" && break; sleep 0.1; done
ready=$(grep 'READY=1' "$WORK/notify.log" || true)
[ -n "$ready" ] || fail "no READY=1 from emmd: $(cat "$WORK/notify.log")"
log "ready: $ready"
assert_eq "$(grep -c 'READY=1' "$WORK/notify.log")" 1 "READY=1 messages before any reload"
assert_contains "$ready" "MOUNTED=2 SOCK=1 " "filesystems mounted and control socket present when READY=1 arrived"
assert_contains "$ready" "STATUS=serving 2 filesystems: one at $MNT/one, two at $WORK/explicit" "STATUS"
assert_contains "$ready" "MAINPID=$EMMD_PID" "MAINPID"
# nothing claimed readiness before it
first=$(head -1 "$WORK/notify.log")
assert_contains "$first" "READY=1" "the first message"

# a reload (SIGHUP, the same file): RELOADING=1, then READY=1 again
kill -HUP "$EMMD_PID"
for ((i = 0; i < 100; i++)); do [ "$(grep -c 'READY=1' "$WORK/notify.log")" -ge 2 ] && break; sleep 0.1; done
assert_eq "$(grep -c 'READY=1' "$WORK/notify.log")" 2 "READY=1 messages after a reload"
assert_eq "$(grep -n . "$WORK/notify.log" | sed -n 2p | grep -c 'RELOADING=1')" 1 "the message after the first READY=1 is RELOADING=1"

echo data >"$MNT/one/f"
stop_emmd
wait $listener || fail "the notify listener failed: $(cat "$WORK/notify.err")"
stopping=$(grep 'STOPPING=1' "$WORK/notify.log" || true)
[ -n "$stopping" ] || fail "no STOPPING=1 at SIGTERM: $(cat "$WORK/notify.log")"
assert_contains "$stopping" "MOUNTED=2 " "filesystems still mounted when STOPPING=1 arrived"
log "ok"
