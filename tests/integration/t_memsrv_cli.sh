#!/bin/bash
# t_memsrv_cli.sh - emm-memserver's command line and configuration: --help
# and --version exit 0, usage errors exit 2, every bad configuration exits 1
# with "FILE:LINE: reason" naming the faulty line (or FILE: for what is
# missing), and -n accepts a good one (PSK and X.509) without listening.
# Needs no FUSE.
. "$(dirname "$0")/lib.sh"
MS="$EMM_BIN/emm-memserver"
[ -x "$MS" ] || skip "emm-memserver is not built ($MS)"

"$MS" --help | grep -q "usage: emm-memserver" || fail "--help"
"$MS" --version | grep -q "^emm-memserver " || fail "--version"
rc=0; "$MS" >/dev/null 2>&1 || rc=$?
assert_eq $rc 2 "exit status without -c"
rc=0; "$MS" -c x extra >/dev/null 2>&1 || rc=$?
assert_eq $rc 2 "exit status with an extra argument"
rc=0; "$MS" --bogus >/dev/null 2>&1 || rc=$?
assert_eq $rc 2 "exit status with an unknown option"

printf 'host-a:%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff >"$WORK/psk"
chmod 600 "$WORK/psk"

# bad NAME LINE: the config on stdin is refused at LINE (0: the file as a whole)
bad() {
    local name=$1 line=$2 f="$WORK/bad-$1.conf" rc=0 out
    cat >"$f"
    out=$("$MS" -n -c "$f" 2>&1 >/dev/null) || rc=$?
    assert_eq $rc 1 "$name: exit status"
    if [ "$line" = 0 ]; then
        case "$out" in *"$f: "?*) ;; *) fail "$name: stderr does not name '$f': $out" ;; esac
    else
        case "$out" in *"$f:$line: "?*) ;; *) fail "$name: stderr does not name '$f:$line': $out" ;; esac
    fi
}
bad no-section 1 <<'E'
listen = 127.0.0.1:7070
E
bad other-section 1 <<'E'
[emmd]
E
bad unknown-key 3 <<'E'
[memserver]
listen = 127.0.0.1:7070
colour = blue
E
bad duplicate 4 <<'E'
[memserver]
listen = 127.0.0.1:7070
tls = off
tls = on
E
bad listen-port 2 <<'E'
[memserver]
listen = 127.0.0.1:0
E
bad listen-form 2 <<'E'
[memserver]
listen = localhost
E
bad tls-value 3 <<'E'
[memserver]
listen = 127.0.0.1:7070
tls = maybe
E
bad max-hosts 4 <<'E'
[memserver]
listen = 127.0.0.1:7070
tls = off
max-hosts = 65
E
bad log-level 4 <<'E'
[memserver]
listen = 127.0.0.1:7070
tls = off
log-level = loud
E
bad no-credentials 2 <<'E'
[memserver]
listen = 127.0.0.1:7070
E
bad no-listen 0 <<'E'
[memserver]
tls = off
E
bad backend-key 5 <<E
[memserver]
listen = 127.0.0.1:7070
tls-psk-file = $WORK/psk
backend = memory
memory.colour = blue
E
printf '[memserver]\nlisten = 127.0.0.1:7070\ntls-psk-file = bad.psk\n' >"$WORK/badpsk.conf"
printf 'host-a:0011\n' >"$WORK/bad.psk"
out=$("$MS" -n -c "$WORK/badpsk.conf" 2>&1) && fail "a PSK file with a short key was accepted"
assert_contains "$out" "$WORK/bad.psk:1:" "the PSK file's bad line"

good() {
    local f="$WORK/good.conf" out
    cat >"$f"
    out=$("$MS" -n -c "$f" 2>&1) || fail "good config refused: $out"
    assert_contains "$out" "configuration ok" "-n on a good config"
}
good <<E
[memserver]
listen = 127.0.0.1:7070
tls-psk-file = $WORK/psk
backend = memory
memory.limit = 16M
max-hosts = 8
E
good <<E
[memserver]
listen = [::1]:7070
tls-ca = $EMM_SRC/tests/unit/tls/ca.pem
tls-cert = $EMM_SRC/tests/unit/tls/server.pem
tls-key = $EMM_SRC/tests/unit/tls/server.key
E
