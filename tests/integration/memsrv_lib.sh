# memsrv_lib.sh - helpers for the emm-memserver tests (t_memsrv_*.sh), sourced
# after lib.sh: one emm-memserver and several emmd hosts, each with its own
# state dir, control socket and mount under $WORK/hosts/NAME, on 127.0.0.1.
# Everything is stopped by pid with SIGTERM from the EXIT trap (then lib.sh's
# cleanup unmounts and removes $WORK); a process that does not exit cleanly
# fails the test.
#
#   ms_psk FILE [IDENTITY]        write a fresh IDENTITY:HEXKEY file (0600)
#   ms_start_server [KEY=VALUE...] start emm-memserver (TLS PSK $MS_PSK unless tls=off)
#   ms_start_host NAME [PSKFILE]  start an emmd whose [fs s] is pager = tcp:...
#   ms_mnt NAME                   the host's mount of fs s
#   ms_share FILE SIZE            create FILE with SIZE on every host, in order
#   ms_stop_host NAME / ms_stop_server
#
# Until the namespace is the server's (docs/memserver.md), hosts match objects
# by catalog id: every host creates the shared files in the same order, and
# each host's size is its own, so ms_share sets it on all of them.

[ -x "$EMM_BIN/emm-memserver" ] || skip "emm-memserver is not built ($EMM_BIN/emm-memserver)"
requires python3

MS_PID=""
MS_LOG="$WORK/memserver.log"
MS_PSK="$WORK/psk"
MS_PORT=""
# A test in network namespaces sets these: the server's address, and the
# netns (an `ip netns` name) the server and the hosts run in (nsenter --net:
# the mount namespace stays the test's, so the hosts' mounts are seen).
MS_ADDR=${MS_ADDR:-127.0.0.1}
MS_SERVER_NETNS=${MS_SERVER_NETNS:-}
MS_HOST_NETNS=${MS_HOST_NETNS:-}
_ms_in() { if [ -n "$1" ]; then echo nsenter "--net=/run/netns/$1"; fi; }
declare -A MS_HOST_PID=()
MS_HOSTS=()

ms_psk() {
    local f=$1 id=${2:-emmtest}
    (umask 077 && printf '%s:%s\n' "$id" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$f")
}

_ms_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ms_start_server() {
    local kv conf="$WORK/memserver.conf" i tls=on
    [ -n "$MS_PORT" ] || MS_PORT=$(_ms_free_port)
    [ -s "$MS_PSK" ] || ms_psk "$MS_PSK"
    for kv in "$@"; do [ "$kv" != tls=off ] || tls=off; done
    {
        echo "[memserver]"
        echo "listen = $MS_ADDR:$MS_PORT"
        [ $tls = off ] || echo "tls-psk-file = $MS_PSK"
        echo "state-dir = $WORK/msstate"
        echo "log-level = ${MS_LOG_LEVEL:-debug}"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
    } >"$conf"
    mkdir -p "$WORK/msstate"
    local seen
    seen=$(grep -c "listening on $MS_ADDR:$MS_PORT" "$MS_LOG" 2>/dev/null || true)
    echo "=== $(date +%T) emm-memserver -c $conf" >>"$MS_LOG"
    $(_ms_in "$MS_SERVER_NETNS") "$EMM_BIN/emm-memserver" -c "$conf" </dev/null >>"$MS_LOG" 2>&1 &
    MS_PID=$!
    for ((i = 0; i < EMM_START_WAIT; i++)); do
        [ "$(grep -c "listening on $MS_ADDR:$MS_PORT" "$MS_LOG")" -gt "${seen:-0}" ] && return 0
        kill -0 "$MS_PID" 2>/dev/null || { cat "$MS_LOG" >&2; fail "emm-memserver exited at start"; }
        sleep 0.1
    done
    fail "emm-memserver did not listen within $((EMM_START_WAIT / 10)) s"
}

ms_mnt() { echo "$WORK/hosts/$1/mnt/s"; }

# ms_start_host NAME [PSKFILE] [EXTRA [fs s] LINES...]
ms_start_host() {
    local name=$1 psk=${2:-$MS_PSK} d="$WORK/hosts/$1" i
    shift
    [ $# -gt 0 ] && shift
    mkdir -p "$d/state" "$d/mnt"
    {
        echo "[emmd]"
        echo "state-dir = $d/state"
        echo "mount-root = $d/mnt"
        echo "control-socket = $d/emmd.sock"
        echo "pid-file = $d/emmd.pid"
        echo "log-level = ${MS_LOG_LEVEL:-debug}"
        echo
        echo "[fs s]"
        echo "backend = memory"
        echo "pager = tcp:$MS_ADDR:$MS_PORT"
        [ "$psk" = off ] && echo "pager.tls = off" || echo "pager.tls-psk-file = $psk"
        for l in "$@"; do echo "$l"; done
    } >"$d/emmd.conf"
    MOUNTS+=("$d/mnt/s")
    $(_ms_in "$MS_HOST_NETNS") "$EMMD" -f -c "$d/emmd.conf" </dev/null >>"$d/emmd.log" 2>&1 &
    MS_HOST_PID[$name]=$!
    MS_HOSTS+=("$name")
    for ((i = 0; i < EMM_START_WAIT; i++)); do
        is_mounted "$d/mnt/s" && return 0
        kill -0 "${MS_HOST_PID[$name]}" 2>/dev/null || return 1
        sleep 0.1
    done
    fail "host $name did not mount within $((EMM_START_WAIT / 10)) s"
}

# ms_share FILE SIZE: the same file (same catalog id) and size on every host.
ms_share() {
    local h
    for h in "${MS_HOSTS[@]}"; do
        [ -n "${MS_HOST_PID[$h]:-}" ] || continue
        touch "$(ms_mnt "$h")/$1"
        truncate -s "$2" "$(ms_mnt "$h")/$1"
    done
}

# _ms_stop PID WHAT: SIGTERM, bounded wait; sets _MS_ERR to a reason when it
# went wrong (never in a subshell: wait needs the child in this shell).
_MS_ERR=""
_ms_stop() {
    local pid=$1 what=$2 i rc=0
    _MS_ERR=""
    if ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        wait "$pid" 2>/dev/null || rc=$?
        _MS_ERR="$what (pid $pid) had exited (status $rc) before SIGTERM"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < EMM_STOP_WAIT; i++)); do
        if [ ! -e "/proc/$pid" ] || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ "$i" -ge "$EMM_STOP_WAIT" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        _MS_ERR="$what (pid $pid) did not exit within $((EMM_STOP_WAIT / 10)) s of SIGTERM"
        return 0
    fi
    wait "$pid" 2>/dev/null || rc=$?
    [ $rc = 0 ] || _MS_ERR="$what (pid $pid) exited with status $rc after SIGTERM"
}

ms_stop_host() {
    local pid=${MS_HOST_PID[$1]:-}
    [ -n "$pid" ] || return 0
    MS_HOST_PID[$1]=""
    _ms_stop "$pid" "emmd host $1"
    [ -z "$_MS_ERR" ] || { ms_show_logs; fail "$_MS_ERR"; }
}

ms_stop_server() {
    local pid=$MS_PID
    [ -n "$pid" ] || return 0
    MS_PID=""
    _ms_stop "$pid" "emm-memserver"
    [ -z "$_MS_ERR" ] || { ms_show_logs; fail "$_MS_ERR"; }
}

ms_show_logs() {
    local h
    for h in "${MS_HOSTS[@]+"${MS_HOSTS[@]}"}"; do
        echo "----- host $h log (last 40 lines)" >&2
        tail -n 40 "$WORK/hosts/$h/emmd.log" >&2 2>/dev/null || true
    done
    echo "----- memserver log (last 60 lines)" >&2
    tail -n 60 "$MS_LOG" >&2 2>/dev/null || true
}

# The EXIT trap: hosts first (they return their pages), then the server,
# then lib.sh's cleanup (unmounts, removes $WORK) with the test's status.
_ms_exit() {
    local rc=$? h bad=""
    set +e
    [ $rc = 0 ] || [ $rc = 77 ] || ms_show_logs
    for h in "${MS_HOSTS[@]+"${MS_HOSTS[@]}"}"; do
        [ -n "${MS_HOST_PID[$h]:-}" ] || continue
        _ms_stop "${MS_HOST_PID[$h]}" "emmd host $h"
        MS_HOST_PID[$h]=""
        [ -z "$_MS_ERR" ] || bad="$bad; $_MS_ERR"
    done
    if [ -n "$MS_PID" ]; then
        _ms_stop "$MS_PID" "emm-memserver"
        MS_PID=""
        [ -z "$_MS_ERR" ] || bad="$bad; $_MS_ERR"
    fi
    if [ -n "$bad" ]; then
        printf 'FAIL: %s: cleanup%s\n' "$T_NAME" "$bad" >&2
        [ $rc = 0 ] && rc=1
    fi
    (exit $rc)
    _cleanup
}
trap _ms_exit EXIT
