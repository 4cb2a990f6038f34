#!/bin/bash
# t_ctl_clients.sh - the control socket serves its clients at once (issue 15,
# item 6). 50 connections that send nothing (or half a request) are held open
# while `emmctl ping` is answered (under `timeout 5`, a hang guard: the old
# one-at-a-time server took 2 s per silent client); then each silent one gets
# the timeout error from the server and EOF. A client that sends a line far over
# the request limit gets "request too long" (the server stops reading it), and
# emmd goes on serving. Clean SIGTERM with the clients gone.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3

CONF="$WORK/emmd.conf"
write_conf "$CONF" <<'CONF_EOF'
[fs c]
backend = memory
CONF_EOF
start_emmd "$CONF"

python3 - "$SOCK" "$EMMCTL" <<'PY' || fail "control-socket clients (see above)"
import socket, subprocess, sys

sock_path, emmctl = sys.argv[1], sys.argv[2]

def bad(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    return s

def read_all(s, limit=60):
    """Everything until EOF; the timeout is a hang guard, not a measure."""
    s.settimeout(limit)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:   # the server closed without reading all we sent
            if data:
                return data
            raise
        except socket.timeout:
            bad("no EOF within %d s (got %r)" % (limit, data))
        if not chunk:
            return data
        data += chunk

def ping(what):
    r = subprocess.run(["timeout", "5", emmctl, "-s", sock_path, "ping"],
                       capture_output=True, text=True)
    if r.returncode != 0 or r.stdout != "pong\n":
        bad("%s: emmctl ping exited %d (124: still waiting after 5 s), stdout %r, stderr %r"
            % (what, r.returncode, r.stdout, r.stderr))

# 50 silent clients, every other one with half a request
silent = []
for i in range(50):
    s = connect()
    if i % 2:
        s.sendall(b"pi")
    silent.append(s)
ping("with 50 silent clients connected")
print("# ping answered with 50 silent clients connected", file=sys.stderr)

# the server closes each of them after its deadline: the error line, then EOF
want = b"error: request not complete within 2000 ms\n"
for i, s in enumerate(silent):
    got = read_all(s)
    if got != want:
        bad("silent client %d got %r, expected %r then EOF" % (i, got, want))
    s.close()
print("# all 50 silent clients got the timeout error and EOF", file=sys.stderr)

# a huge request line: refused once over the limit, not read to the end
s = connect()
s.setblocking(False)
big = b"x" * (8 << 20) + b"\n"
sent = 0
import select
while sent < len(big):
    try:
        sent += s.send(big[sent:sent + 65536])
    except BlockingIOError:
        if not select.select([], [s], [], 30)[1]:
            bad("the server stopped reading a huge request without answering")
    except (BrokenPipeError, ConnectionResetError):
        break
s.setblocking(True)
got = read_all(s)
s.close()
if not got.startswith(b"error: request too long (limit "):
    bad("huge request: got %r" % got[:200])
if sent >= len(big):
    bad("the server read all %d bytes of a huge request" % len(big))
print("# huge request: %r after %d bytes sent" % (got, sent), file=sys.stderr)
ping("after a huge request")
PY

emmd_alive || fail "emmd died"
assert_eq "$(ctl ping)" pong "ping at the end"
stop_emmd
