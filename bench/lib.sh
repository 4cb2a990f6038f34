# bench/lib.sh - what the benchmark scripts share (sourced, not run): checks,
# a work directory that is always cleaned up, one emmd serving one [fs NAME]
# (started and stopped by pid), emmctl and small number helpers.
# The script sets BUILD and SRC first; it may define bench_cleanup_extra, which
# the exit trap calls before unmounting.

EMMD="$BUILD/bin/emmd"
EMMCTL="$BUILD/bin/emmctl"
FB="$BUILD/bench/faultbench"

die() { echo "bench: $*" >&2; exit 1; }

# bench_require CMD...: root, /dev/fuse, the built binaries and CMDs
bench_require() {
    [ "$(id -u)" = 0 ] || die "needs root (FUSE mounts, tmpfs mount, drop_caches)"
    [ -c /dev/fuse ] || die "/dev/fuse is missing"
    local c
    for c in fusermount3 "$@"; do command -v "$c" >/dev/null || die "$c is missing"; done
    [ -x "$EMMD" ] && [ -x "$EMMCTL" ] || die "no emmd/emmctl in $BUILD/bin (build first: make build)"
    mkdir -p "$BUILD/bench"
    cmake --build "$BUILD" --target faultbench >/dev/null || die "cannot build faultbench"
}

is_mounted() { awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; }

# bench_workdir TAG: WORK=/tmp/emm-bench-TAG.XXXXXX, removed at exit with
# everything mounted under it
bench_workdir() {
    WORK=$(mktemp -d "/tmp/emm-bench-$1.XXXXXX")
    EMMD_PID=""
    MOUNTS=()
    trap bench_cleanup EXIT
    trap 'exit 1' INT TERM
}

bench_cleanup() {
    set +e
    declare -F bench_cleanup_extra >/dev/null && bench_cleanup_extra
    stop_emmd
    local mp
    for mp in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
        if is_mounted "$mp"; then
            fusermount3 -u "$mp" 2>/dev/null || umount "$mp" 2>/dev/null || umount -l "$mp"
        fi
    done
    if [ -n "$(awk -v d="$WORK" 'index($5, d) == 1' /proc/self/mountinfo)" ]; then
        echo "bench: something is still mounted under $WORK; not removing it" >&2
    else
        rm -rf "$WORK"
    fi
}

# start_emmd FS BACKEND [KEY=VALUE...]: a fresh emmd with one [fs FS] over
# BACKEND (the KEY=VALUE lines go to that section); [emmd] takes
# resident-limit from $RESIDENT, busy-poll from $BUSY_POLL and pageout.policy
# from $POLICY when set; $SWAP, when set, is the swap line of a
# [default-pager] section ("PATH SIZE"; needed by BACKEND none).
# Sets MP to the mountpoint; returns once it is mounted and the socket is up.
start_emmd() {
    local fs=$1 backend=$2 kv i
    shift 2
    rm -rf "$WORK/state"
    mkdir -p "$WORK/state" "$WORK/mnt"
    {
        echo "[emmd]"
        echo "state-dir = $WORK/state"
        echo "mount-root = $WORK/mnt"
        echo "control-socket = $WORK/emmd.sock"
        echo "pid-file = $WORK/emmd.pid"
        echo "resident-limit = ${RESIDENT:-256M}"
        echo "log-level = warn"
        [ -z "${BUSY_POLL:-}" ] || echo "busy-poll = $BUSY_POLL"
        [ -z "${POLICY:-}" ] || echo "pageout.policy = $POLICY"
        [ -z "${SWAP:-}" ] || printf '[default-pager]\nswap = %s\n' "$SWAP"
        echo "[fs $fs]"
        echo "backend = $backend"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
    } >"$WORK/emmd.conf"
    MP="$WORK/mnt/$fs"
    MOUNTS+=("$MP")
    "$EMMD" -f -c "$WORK/emmd.conf" </dev/null 2>>"$WORK/emmd.log" &
    EMMD_PID=$!
    for ((i = 0; i < 200; i++)); do
        is_mounted "$MP" && [ -S "$WORK/emmd.sock" ] && return 0
        kill -0 "$EMMD_PID" 2>/dev/null || { tail "$WORK/emmd.log" >&2; die "emmd exited at start"; }
        sleep 0.1
    done
    die "emmd did not mount $MP within 20 s"
}

stop_emmd() {
    [ -n "${EMMD_PID:-}" ] || return 0
    local pid=$EMMD_PID i
    EMMD_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 600; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || echo "bench: warning: emmd exited with status $? (see $WORK/emmd.log)" >&2
}

ctl() { "$EMMCTL" -s "$WORK/emmd.sock" "$@"; }
# get KEY LINE: value of key=value in LINE
get() { printf '%s\n' "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
# median of numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "-") }'; }
