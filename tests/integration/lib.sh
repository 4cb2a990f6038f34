# lib.sh - shared helpers for the integration scripts (tests/integration/t_*.sh).
#
# Source it first thing:   . "$(dirname "$0")/lib.sh"
#
# It creates a private work directory ($WORK, from mktemp -d), installs an EXIT
# trap that stops the emmd this test started (by pid, SIGTERM, bounded wait),
# unmounts every mountpoint the test registered with fusermount3 -u and removes
# $WORK. Everything a test mounts lives under $WORK. Nothing is ever killed by
# name.
#
# Environment (set by ctest; defaults point at build/ in the source tree):
#   EMM_BIN      directory holding emmd and emmctl
#   EMM_TESTBIN  directory holding the helper programs built from tests/integration/*.c
#   EMM_SRC      the source tree
#   EMM_KEEP=1   keep $WORK (logs, configs) after the test, for debugging
#   EMM_VERBOSE=1  print emmd's log at the end even when the test passed
#
# Exit codes: 0 pass, 1 fail, 77 skip (something the test needs is missing).

set -Eeuo pipefail

T_NAME=$(basename "${0%.sh}")
_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EMM_SRC=${EMM_SRC:-$(cd "$_LIBDIR/../.." && pwd)}
EMM_BIN=${EMM_BIN:-$EMM_SRC/build/bin}
EMM_TESTBIN=${EMM_TESTBIN:-$EMM_SRC/build/tests}
EMMD="$EMM_BIN/emmd"
EMMCTL="$EMM_BIN/emmctl"

# Bounded waits, in tenths of a second.
EMM_START_WAIT=${EMM_START_WAIT:-200}   # mounts must appear within 20 s
EMM_STOP_WAIT=${EMM_STOP_WAIT:-300}     # SIGTERM must finish within 30 s

EMMD_PID=""        # pid of the emmd we started (foreground child or detached daemon)
EMMD_CHILD=0       # 1 if EMMD_PID is our child (so wait gives its exit status)
EMMD_LOG=""        # its log (foreground: stderr)
EMMD_CONF=""       # the config it runs with
MOUNTS=()          # every mountpoint this test may have created
_FAILED=0

log() { printf '# %s\n' "$*" >&2; }

# fail MSG...: report and exit 1 (the EXIT trap cleans up).
fail() {
    printf 'FAIL: %s: %s\n' "$T_NAME" "$*" >&2
    _FAILED=1
    exit 1
}

# skip MSG...: exit 77 with a reason.
skip() {
    printf 'SKIP: %s: %s\n' "$T_NAME" "$*" >&2
    exit 77
}

# assert_eq ACTUAL EXPECTED [WHAT]
assert_eq() {
    if [ "$1" != "$2" ]; then
        fail "${3:-value}: got '$1', expected '$2'"
    fi
}

# assert_ne ACTUAL UNEXPECTED [WHAT]
assert_ne() {
    if [ "$1" = "$2" ]; then
        fail "${3:-value}: got '$1', which it must not be"
    fi
}

# assert_ge A B [WHAT]: integers, A >= B
assert_ge() {
    if ! [ "$1" -ge "$2" ] 2>/dev/null; then
        fail "${3:-value}: got '$1', expected >= '$2'"
    fi
}

# assert_gt A B [WHAT]: integers, A > B
assert_gt() {
    if ! [ "$1" -gt "$2" ] 2>/dev/null; then
        fail "${3:-value}: got '$1', expected > '$2'"
    fi
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    case "$1" in
    *"$2"*) ;;
    *) fail "${3:-output} does not contain '$2': $1" ;;
    esac
}

# requires CMD...: skip unless every command is on PATH.
requires() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "requires '$c', not found on PATH"
    done
}

# need_fuse: skip unless we can mount FUSE filesystems here (root, /dev/fuse, fusermount3).
need_fuse() {
    [ "$(id -u)" = 0 ] || skip "needs root to mount FUSE filesystems"
    [ -c /dev/fuse ] || skip "/dev/fuse is missing"
    command -v fusermount3 >/dev/null 2>&1 || skip "fusermount3 is missing"
}

# need_emm: the binaries under test must exist (a missing build is a failure, not a skip).
need_emm() {
    [ -x "$EMMD" ] || fail "emmd not found at $EMMD (set EMM_BIN)"
    [ -x "$EMMCTL" ] || fail "emmctl not found at $EMMCTL (set EMM_BIN)"
}

# helper NAME: path of a helper program built from tests/integration/NAME.c
helper() {
    local p="$EMM_TESTBIN/$1"
    [ -x "$p" ] || fail "helper $1 not found at $p (set EMM_TESTBIN)"
    printf '%s\n' "$p"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/emm-$T_NAME.XXXXXX")
chmod 755 "$WORK"
STATE="$WORK/state"
MNT="$WORK/mnt"
SOCK="$WORK/emmd.sock"
PIDFILE="$WORK/emmd.pid"

# is_mounted DIR: DIR is a mountpoint in our mount namespace (reads mountinfo, never
# stats DIR itself, so a wedged FUSE daemon cannot hang the check).
is_mounted() {
    awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# mounts_under DIR: print every mountpoint at or below DIR.
mounts_under() {
    awk -v d="$1" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo
}

# write_conf FILE [KEY=VALUE...] <<EOF ... EOF
# Writes an emmd config whose [emmd] section points everything at $WORK
# (state-dir, mount-root, control-socket, pid-file, log-level debug), followed by
# any KEY=VALUE given (more [emmd] keys), followed by stdin ([fs NAME] sections).
write_conf() {
    local f=$1
    shift
    mkdir -p "$STATE" "$MNT"
    {
        echo "[emmd]"
        echo "state-dir = $STATE"
        echo "mount-root = $MNT"
        echo "control-socket = $SOCK"
        echo "pid-file = $PIDFILE"
        echo "log-level = debug"
        local kv
        for kv in "$@"; do
            echo "${kv%%=*} = ${kv#*=}"
        done
        echo
        if [ ! -t 0 ]; then cat; fi
    } >"$f"
}

# conf_mountpoints CONF: print the mountpoint of every [fs NAME] section
# (explicit "mountpoint", else mount-root/NAME; mount-root defaults to /run/emm).
conf_mountpoints() {
    awk '
        function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
        function flush() { if (fs != "") print (mp != "" ? mp : root "/" fs) }
        FNR == 1 && NR != 1 { if (root == "") root = "/run/emm"; sec = ""; fs = "" }
        /^[ \t]*[;#]/ { next }
        { sub(/[ \t]+[;#].*$/, "") }
        /^[ \t]*\[/ {
            if (NR != FNR) flush()
            fs = ""; mp = ""; sec = $0
            sub(/^[ \t]*\[[ \t]*/, "", sec); sub(/[ \t]*\].*$/, "", sec)
            if (sec ~ /^fs[ \t]+/) { fs = sec; sub(/^fs[ \t]+/, "", fs) }
            next
        }
        /=/ {
            k = trim(substr($0, 1, index($0, "=") - 1)); v = trim(substr($0, index($0, "=") + 1))
            if (NR == FNR) { if (sec == "emmd" && k == "mount-root") root = v; next }
            if (fs != "" && k == "mountpoint") mp = v
        }
        END { flush() }' "$1" "$1"
}

# conf_socket CONF: the control socket named by CONF (default STATE_DIR/emmd.sock).
conf_socket() {
    awk '
        /^[ \t]*[;#]/ { next }
        { sub(/[ \t]+[;#].*$/, "") }
        /^[ \t]*\[/ { s = $0; gsub(/[][ \t]/, "", s); next }
        s == "emmd" && /=/ {
            k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
            gsub(/^[ \t]+|[ \t\r]+$/, "", k); gsub(/^[ \t]+|[ \t\r]+$/, "", v)
            if (k == "control-socket") c = v; if (k == "state-dir") d = v
        }
        END { if (c == "") c = (d != "" ? d : "/var/lib/emm") "/emmd.sock"; print c }' "$1"
}

_register_mounts() {
    local mp m known
    while IFS= read -r mp; do
        [ -n "$mp" ] || continue
        case "$mp" in
        "$WORK"/*) ;;
        *) fail "config mounts $mp, outside the test's work dir $WORK" ;;
        esac
        known=0
        for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do [ "$m" = "$mp" ] && known=1; done
        [ $known = 1 ] || MOUNTS+=("$mp")
    done < <(conf_mountpoints "$1")
}

# wait_mounted CONF PID: wait (bounded) until every mountpoint of CONF is mounted and
# the control socket exists; fail early if PID dies.
wait_mounted() {
    local conf=$1 pid=$2 i mp all sock
    sock=$(conf_socket "$conf")
    for ((i = 0; i < EMM_START_WAIT; i++)); do
        all=1
        while IFS= read -r mp; do
            is_mounted "$mp" || { all=0; break; }
        done < <(conf_mountpoints "$conf")
        [ -S "$sock" ] || all=0
        [ $all = 1 ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log
            fail "emmd (pid $pid) exited before its filesystems were mounted"
        fi
        sleep 0.1
    done
    show_log
    fail "emmd (pid $pid) did not mount every filesystem within $((EMM_START_WAIT / 10)) s"
}

# start_emmd CONF [EXTRA_ARGS...]: run emmd -f -c CONF in the background (stderr to
# $WORK/emmd.log), wait until every mountpoint is mounted, set EMMD_PID.
start_emmd() {
    local conf=$1
    shift
    [ -z "$EMMD_PID" ] || fail "start_emmd: emmd (pid $EMMD_PID) is already running"
    _register_mounts "$conf"
    EMMD_CONF=$conf
    EMMD_LOG="$WORK/emmd.log"
    echo "=== $(date +%T) emmd -f -c $conf $*" >>"$EMMD_LOG"
    "$EMMD" -f -c "$conf" "$@" </dev/null >>"$EMMD_LOG" 2>&1 &
    EMMD_PID=$!
    EMMD_CHILD=1
    wait_mounted "$conf" "$EMMD_PID"
    log "emmd running, pid $EMMD_PID"
}

# start_emmd_daemon CONF: run emmd without -f (it detaches); wait for the pid file
# and the mounts; set EMMD_PID from the pid file. Fails if the launcher does not
# return 0 within the start wait.
start_emmd_daemon() {
    local conf=$1 rc=0 i pidf
    [ -z "$EMMD_PID" ] || fail "start_emmd_daemon: emmd (pid $EMMD_PID) is already running"
    _register_mounts "$conf"
    EMMD_CONF=$conf
    EMMD_LOG="$WORK/emmd.log"
    pidf=$(awk '/^[ \t]*pid-file[ \t]*=/ { v = substr($0, index($0, "=") + 1); sub(/[ \t]+[;#].*$/, "", v); gsub(/^[ \t]+|[ \t\r]+$/, "", v); print v }' "$conf")
    echo "=== $(date +%T) emmd -c $conf (detached)" >>"$EMMD_LOG"
    timeout $((EMM_START_WAIT / 10)) "$EMMD" -c "$conf" </dev/null >>"$EMMD_LOG" 2>&1 || rc=$?
    if [ $rc != 0 ]; then
        show_log
        fail "emmd -c $conf (detaching) exited with status $rc"
    fi
    for ((i = 0; i < EMM_START_WAIT; i++)); do
        [ -s "$pidf" ] && break
        sleep 0.1
    done
    [ -s "$pidf" ] || fail "pid file $pidf not written within $((EMM_START_WAIT / 10)) s"
    EMMD_PID=$(tr -d ' \n' <"$pidf")
    case "$EMMD_PID" in
    '' | *[!0-9]*) local bad=$EMMD_PID; EMMD_PID=""; fail "pid file $pidf holds '$bad', not a pid" ;;
    esac
    EMMD_CHILD=0
    wait_mounted "$conf" "$EMMD_PID"
    log "emmd detached, pid $EMMD_PID"
}

# stop_emmd: SIGTERM the emmd we started, wait (bounded); fail if it does not exit,
# exits non-zero, or leaves any of its filesystems mounted.
stop_emmd() {
    _stop_emmd_quiet
    [ -z "$_STOP_ERR" ] || { show_log; fail "$_STOP_ERR"; }
}

# _stop_emmd_quiet: does the stopping; sets _STOP_ERR to a reason if it went wrong.
# Never fails and never runs in a subshell (wait needs the child in this shell).
_STOP_ERR=""
_stop_emmd_quiet() {
    local pid=$EMMD_PID i rc=0 mp bad=""
    _STOP_ERR=""
    [ -n "$pid" ] || return 0
    EMMD_PID=""
    if ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        if [ "$EMMD_CHILD" = 1 ]; then wait "$pid" 2>/dev/null || rc=$?; fi
        _STOP_ERR="emmd (pid $pid) had already exited (status $rc) before SIGTERM"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < EMM_STOP_WAIT; i++)); do
        if [ "$EMMD_CHILD" = 1 ]; then
            # a child stays a zombie until waited: check its state, not kill -0
            if [ ! -e "/proc/$pid" ] || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then break; fi
        else
            kill -0 "$pid" 2>/dev/null || break
        fi
        sleep 0.1
    done
    if [ "$i" -ge "$EMM_STOP_WAIT" ]; then
        _STOP_ERR="emmd (pid $pid) did not exit within $((EMM_STOP_WAIT / 10)) s of SIGTERM (killed)"
        _kill_wedged "$pid"
        return 0
    fi
    if [ "$EMMD_CHILD" = 1 ]; then
        wait "$pid" 2>/dev/null || rc=$?
        if [ $rc != 0 ]; then
            _STOP_ERR="emmd (pid $pid) exited with status $rc after SIGTERM"
            return 0
        fi
    fi
    for mp in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
        if is_mounted "$mp"; then bad="$bad $mp"; fi
    done
    [ -z "$bad" ] || _STOP_ERR="still mounted after emmd exited:$bad"
    return 0
}

# _kill_wedged PID: SIGKILL by pid; if the process cannot die (a thread stuck in
# the kernel waiting on its own FUSE mount), abort the FUSE connections of the
# test's mounts through fusectl, then reap it. Bounded.
_kill_wedged() {
    local pid=$1 i mp dev
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
        sleep 0.1
    done
    if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
        echo "emmd (pid $pid) is wedged after SIGKILL; aborting its FUSE connections" >&2
        for mp in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
            dev=$(awk -v d="$mp" '$5 == d { split($3, a, ":"); print a[2] }' /proc/self/mountinfo)
            [ -n "$dev" ] && [ -e "/sys/fs/fuse/connections/$dev/abort" ] &&
                echo 1 >"/sys/fs/fuse/connections/$dev/abort" 2>/dev/null
        done
        for ((i = 0; i < 100; i++)); do
            [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [ "$EMMD_CHILD" = 1 ] && { [ ! -e "/proc/$pid" ] || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; }; then
        wait "$pid" 2>/dev/null || true
    fi
}

# emmd_alive: true while the emmd we started is running.
emmd_alive() {
    [ -n "$EMMD_PID" ] || return 1
    [ -e "/proc/$EMMD_PID" ] || return 1
    ! grep -q '^State:.*Z' "/proc/$EMMD_PID/status" 2>/dev/null
}

show_log() {
    if [ -n "$EMMD_LOG" ] && [ -f "$EMMD_LOG" ]; then
        echo "----- emmd log (last 60 lines of $EMMD_LOG) -----" >&2
        tail -n 60 "$EMMD_LOG" >&2 || true
        echo "-----" >&2
    fi
}

# ctl ARGS...: emmctl against the test's control socket.
ctl() { "$EMMCTL" -s "$SOCK" "$@"; }

# info_get KEY: value of KEY in the output of `emmctl info` (fails if absent).
info_get() {
    local out v
    out=$(ctl info) || fail "emmctl info failed"
    v=$(printf '%s\n' "$out" | awk -F: -v k="$1" '$1 == k { sub(/^[^:]*:/, ""); gsub(/^[ \t]+|[ \t\r]+$/, ""); print; exit }')
    [ -n "$v" ] || fail "emmctl info has no key '$1'"
    printf '%s\n' "$v"
}

# fio_run LABEL LIMIT LOG FIO_ARGS...: runs fio with its output in LOG (a
# file, not a pipe: a fio worker stuck on a wedged mount must not keep this
# shell waiting) under a LIMIT-second liveness bound; fails on a timeout, an
# exit status, an error or a verify failure reported by fio, or a dead emmd.
fio_run() {
    local label=$1 limit=$2 flog=$3 out rc=0
    shift 3
    timeout -k 10 "$limit" fio "$@" >"$flog" 2>&1 </dev/null || rc=$?
    out=$(cat "$flog")
    printf '%s\n' "$out" | grep -E 'err=|READ:|WRITE:|verify' | sed "s|^|#   $label: |" >&2 || true
    if [ $rc = 124 ] || [ $rc = 137 ]; then
        printf '%s\n' "$out" >&2
        ctl info memory >&2 || true
        fail "fio $label did not finish within $limit s (emmd stuck?)"
    fi
    [ $rc = 0 ] || { printf '%s\n' "$out" >&2; fail "fio $label exited $rc"; }
    grep -q 'err= 0' <<<"$out" || { printf '%s\n' "$out" >&2; fail "fio $label reported errors"; }
    if grep -qi 'verify.*bad\|bad magic\|crc32c: verify failed\|bad header' <<<"$out"; then
        printf '%s\n' "$out" >&2
        fail "fio $label: verify failures"
    fi
    emmd_alive || fail "emmd died during fio $label"
}

# ---- helpers of the pageout and default-pager tests ----

STEP_LIMIT=${STEP_LIMIT:-180} # bounded's liveness bound, seconds

# ls_col FS NAME COLUMN: a column of `emmctl ls` (SIZE RESIDENT STORED SWAP)
ls_col() {
    local out v
    out=$(ctl ls) || fail "emmctl ls failed"
    v=$(printf '%s\n' "$out" | awk -v f="$1" -v n="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == f && $2 == n { print $(col[c]); exit }')
    [ -n "$v" ] || fail "emmctl ls has no row for $1/$2 (column $3): $out"
    printf '%s\n' "$v"
}

# pager_field FS KEY: the paging_FS.KEY line of `emmctl info pagers`
pager_field() {
    local out v
    out=$(ctl info pagers) || fail "emmctl info pagers failed"
    v=$(printf '%s\n' "$out" | awk -v k="paging_$1.$2" '
        index($0, k ":") == 1 { print substr($0, length(k) + 2); exit }')
    [ -n "$v" ] || fail "emmctl info pagers: no paging_$1.$2: $out"
    printf '%s\n' "$v"
}

# drop_cache FILE: drop FILE's clean pages from the Linux page cache (only
# this file), so the next read is a FUSE READ that emmd must serve.
drop_cache() {
    python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)' "$1"
}

# gen_src FILE MIB SEED: MIB MiB of pseudo-random bytes, the same for the same SEED
gen_src() {
    python3 -c 'import random, sys
r = random.Random(int(sys.argv[3]))
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(r.randbytes(1 << 20))' "$@"
}

# bounded STEP CMD...: run CMD with the liveness bound; fail naming STEP
bounded() {
    local what=$1 rc=0
    shift
    timeout -k 10 $STEP_LIMIT "$@" || rc=$?
    case $rc in
    0) ;;
    124 | 137) fail "$what did not finish within $STEP_LIMIT s (it waits for the stalled/failing pager)" ;;
    *) fail "$what failed (status $rc)" ;;
    esac
}

# mem KEY: a key of `emmctl info memory` (fails if absent)
mem() { info_get "$1"; }

# fsize PATH / fblocks PATH
fsize() { stat -c %s "$1"; }
fblocks() { stat -c %b "$1"; }

# sha FILE: sha256 of FILE's content
sha() { sha256sum "$1" | awk '{ print $1 }'; }

_cleanup() {
    local rc=$? mp
    trap - EXIT ERR INT TERM
    set +e
    [ $_FAILED = 1 ] && [ $rc = 0 ] && rc=1
    if [ -n "$EMMD_PID" ]; then
        _stop_emmd_quiet
        if [ -n "$_STOP_ERR" ]; then
            printf 'FAIL: %s: cleanup: %s\n' "$T_NAME" "$_STOP_ERR" >&2
            [ $rc = 0 ] && rc=1
        fi
    fi
    # a sourced fixture's daemons (ceph_cluster.sh), stopped after emmd, before $WORK goes
    if declare -F cleanup_hook >/dev/null; then cleanup_hook; fi
    for mp in "${MOUNTS[@]+"${MOUNTS[@]}"}" $(mounts_under "$WORK" | sort -r); do
        if is_mounted "$mp"; then
            fusermount3 -u "$mp" 2>/dev/null || fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null
        fi
    done
    if [ $rc != 0 ] && [ $rc != 77 ] || [ "${EMM_VERBOSE:-0}" = 1 ]; then show_log; fi
    if [ -n "$(mounts_under "$WORK")" ]; then
        echo "cleanup: something is still mounted under $WORK, not removing it" >&2
        [ $rc = 0 ] && rc=1
    elif [ "${EMM_KEEP:-0}" = 1 ]; then
        echo "kept work dir $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    case $rc in
    0) echo "PASS: $T_NAME" >&2 ;;
    77) ;;
    *) echo "FAIL: $T_NAME (status $rc)" >&2 ;;
    esac
    exit $rc
}

_on_err() {
    local rc=$? line=$1 cmd=$2
    printf 'FAIL: %s: line %s: command failed (status %s): %s\n' "$T_NAME" "$line" "$rc" "$cmd" >&2
    _FAILED=1
}

trap _cleanup EXIT
trap '_on_err "$LINENO" "$BASH_COMMAND"' ERR
trap 'exit 1' INT TERM

# ---- the model-checking file tester (emmfsx, tests/integration/emmfsx.c) ----

FSX_LIMIT=${FSX_LIMIT:-180} # liveness bound of one emmfsx run, seconds
FSX_COUNTS=""               # file collecting the "counts:" lines of every run (fsx_run)
FSX_BAD=""                  # seeds that failed in the last fsx_run
FSX_ARGS=${FSX_ARGS:-}      # more emmfsx options for every run (e.g. "-x otrunc"), from the environment

# fsx_run LABEL DIR JOBS NOPS "SEEDS" [EMMFSX_ARGS...]: one emmfsx per seed,
# on its own file DIR/fsx-LABEL-SEED, JOBS at a time (1: one after another),
# each under the FSX_LIMIT liveness bound. Every seed runs, even after a
# failure; each prints a line naming its file and seed. A failing run's report
# (seed, replay line, first bad range, op log) is printed. Fails naming every
# failed seed, on a run that hit the bound, or if emmd died. Op counts are
# appended to FSX_COUNTS (see fsx_check_counts).
fsx_run() {
    local label=$1 dir=$2 jobs=$3 nops=$4 seeds=$5 fsx s
    shift 5
    fsx=$(helper emmfsx)
    [ -n "$FSX_COUNTS" ] || FSX_COUNTS="$WORK/fsx-counts"
    FSX_BAD=""
    local -a batch=()
    local -A _fsx_pid=()
    local hung=""
    # reaps the runs of the batch (dynamic scope: fsx_run's locals)
    _fsx_reap() {
        local s pid rc out
        for s in "${batch[@]}"; do
            pid=${_fsx_pid[$s]}
            rc=0
            wait "$pid" || rc=$?
            out="$WORK/fsx-$label-$s.out"
            case $rc in
            0)
                log "fsx $label: seed $s on $dir/fsx-$label-$s: $(sed -n 's/.*: \([0-9]* ops passed\)/\1/p' "$out")"
                grep '^emmfsx: counts:' "$out" >>"$FSX_COUNTS" || true
                grep '^emmfsx: disabled:' "$out" >>"$FSX_COUNTS" || true
                grep -E 'disabled from op' "$out" | sed 's/^/#   /' >&2 || true
                ;;
            124 | 137)
                hung="$hung $s"
                FSX_BAD="$FSX_BAD $s"
                echo "----- fsx $label: seed $s did not finish within $FSX_LIMIT s (replay it with emmfsx -v to see the op it hangs in); its output:" >&2
                tail -n 20 "$out" >&2
                ;;
            *)
                FSX_BAD="$FSX_BAD $s"
                echo "----- fsx $label: seed $s FAILED (status $rc) on $dir/fsx-$label-$s:" >&2
                sed -n '1,/^LOG:/p' "$out" | head -n 60 >&2
                sed -n '/^LOG:/,$p' "$out" | tail -n 25 >&2
                echo "-----" >&2
                ;;
            esac
        done
        batch=()
    }
    for s in $seeds; do
        # shellcheck disable=SC2086 # FSX_ARGS: words
        timeout -k 10 "$FSX_LIMIT" "$fsx" -S "$s" -N "$nops" $FSX_ARGS "$@" "$dir/fsx-$label-$s" \
            >"$WORK/fsx-$label-$s.out" 2>&1 </dev/null &
        _fsx_pid[$s]=$!
        batch+=("$s")
        [ "${#batch[@]}" -lt "$jobs" ] || _fsx_reap
    done
    [ "${#batch[@]}" = 0 ] || _fsx_reap
    [ -z "$EMMD_PID" ] || emmd_alive || fail "emmd died during fsx $label"
    [ -z "$hung" ] || fail "fsx $label: seeds$hung did not finish within $FSX_LIMIT s (emmd stuck?)"
    [ -z "$FSX_BAD" ] || fail "fsx $label: emmfsx found bad data or a failed call for seeds$FSX_BAD (replay lines above)"
}

# fsx_check_counts WHAT: every op kind ran at least once across the fsx_run
# calls so far, unless it was disabled (by -x or at run time); fails naming the
# kinds that never ran (a tester that exercises nothing would pass vacuously).
fsx_check_counts() {
    [ -s "$FSX_COUNTS" ] || fail "$1: no emmfsx run reported op counts"
    local missing
    missing=$(awk '
        /^emmfsx: counts:/ { for (i = 3; i <= NF; i++) { split($i, kv, "="); n[kv[1]] += kv[2]; seen[kv[1]] = 1 } }
        /^emmfsx: disabled:/ { for (i = 3; i <= NF; i++) off[$i] = 1 }
        END { for (k in seen) if (n[k] == 0 && !(k in off)) printf " %s", k }' "$FSX_COUNTS")
    [ -z "$missing" ] || fail "$1: op kinds never exercised:$missing"
    log "$1: op counts over all runs: $(awk '/^emmfsx: counts:/ { for (i = 3; i <= NF; i++) { split($i, kv, "="); n[kv[1]] += kv[2]; o[kv[1]] = i } }
        END { for (k in n) printf "%s=%d ", k, n[k] }' "$FSX_COUNTS")"
}

# fsx_backend BACKEND NOPS "SEEDS" [FS_KEY=VALUE...]: the body of the
# t_fsx_BACKEND.sh scripts. One emmd with a 1M pool (256 pages: the files of
# the earlier seeds push each other's pages out, so every backend's pager
# serves data_requests and data_returns all the time) and 4 FUSE threads
# (readahead on, 1M) serves one filesystem `t` with BACKEND (and FS_KEYs);
# emmfsx runs every seed, one after another; every op kind must have run;
# emmd must stop cleanly.
fsx_backend() {
    local backend=$1 nops=$2 seeds=$3 kv
    shift 3
    local conf="$WORK/emmd.conf"
    write_conf "$conf" "resident-limit=1M" "fuse-threads=4" <<CONF_EOF
[fs t]
backend = $backend
readahead = 1M
$(for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done)
CONF_EOF
    start_emmd "$conf"
    fsx_run "${backend//:/_}" "$MNT/t" 1 "$nops" "$seeds"
    fsx_check_counts "fsx on $backend"
    local ev rc dr
    ev=$(info_get evictions) rc=$(info_get reclaimed_clean) dr=$(info_get data_requests)
    log "fsx on $backend: evictions=$ev reclaimed_clean=$rc data_requests=$dr"
    assert_gt $((ev + rc)) 0 "fsx on $backend: pages pushed out of the 1M pool (evictions + reclaimed_clean)"
    assert_gt "$dr" 0 "fsx on $backend: data_requests to the pager"
    stop_emmd
}
