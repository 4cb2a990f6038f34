#!/bin/bash
# t_hostile_local.sh - a local user against a root emmd (issue 15), and what a
# root emmd keeps of its privileges and memory.
#
#  1. pid file: the user plants a symlink to a victim file as the pid file, in a
#     directory the user owns, and in a sticky world-writable one (like /tmp);
#     also a regular file of its own there. emmd refuses each with a clear
#     message and the victim is unchanged.
#  2. state-dir owned by the user with mode 0777, a state-dir of mode 0777 owned
#     by root, and a control socket directory writable by the user: refused by
#     emmd -n and by a start, naming the directory and the fix.
#  3. a second emmd on a live emm mountpoint is refused (the first's files stay
#     visible); with "mount-over = yes" it is allowed, and when it stops the
#     first's files are back.
#  4. after start, every thread of emmd has only cap_sys_admin and cap_ipc_lock
#     (CapEff, CapPrm, CapBnd), and an idle emmd with resident-limit = 2G has a
#     VmRSS far below it (< 64 MiB).
#  5. a resident-limit above half the RAM is warned about, naming the key and
#     the RAM size.
# The user is created here (emmt$$) and deleted by the trap.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires useradd userdel runuser python3
IO=$(helper emmio)

U="emmt$$"
USER_MADE=0
PID2=""
_hostile_cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if [ -n "$PID2" ] && kill -0 "$PID2" 2>/dev/null; then
        kill -TERM "$PID2"
        wait "$PID2"
    fi
    [ $USER_MADE = 1 ] && userdel "$U" 2>/dev/null
    (exit $rc)
    _cleanup
}
trap _hostile_cleanup EXIT
useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$U" 2>/dev/null ||
    skip "cannot create the test user $U"
USER_MADE=1
as_user() { runuser -u "$U" -- "$@"; }

# refused NAME CONF WORD...: emmd -f on CONF must exit 1 with each WORD in its
# stderr, mount nothing (the mounts are what they were), and leave the victim
# as it was
VICTIM="$WORK/victim"
echo "root's precious file" >"$VICTIM"
victim_sum=$(sha "$VICTIM")
refused() {
    local name=$1 conf=$2 rc=0 out w mounts
    shift 2
    mounts=$(awk -v w="$WORK" 'index($5, w) == 1 { print $1, $5 }' /proc/self/mountinfo)
    out=$(timeout -s TERM 15 "$EMMD" -f -c "$conf" 2>&1 >/dev/null) || rc=$?
    [ "$(awk -v w="$WORK" 'index($5, w) == 1 { print $1, $5 }' /proc/self/mountinfo)" = "$mounts" ] ||
        fail "$name: emmd mounted something: $(mounts_under "$WORK")"
    [ $rc = 1 ] || fail "$name: emmd -f exited $rc, expected 1: $out"
    for w in "$@"; do assert_contains "$out" "$w" "$name: emmd's stderr"; done
    assert_eq "$(sha "$VICTIM")" "$victim_sum" "$name: the victim file"
    log "$name: refused: $(printf '%s\n' "$out" | grep -v 'emmd\[[0-9]*\]: ' | head -2)"
}

# conf FILE KEY=VALUE...: [emmd] keys given (others default into $WORK), one fs
conf() {
    local f=$1 kv
    shift
    mkdir -p "$MNT"
    {
        echo "[emmd]"
        echo "mount-root = $MNT"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
        echo "[fs a]"
        echo "backend = memory"
    } >"$f"
}

# --- 1. the pid file ------------------------------------------------------------
A="$WORK/userdir" # a directory the user owns
mkdir "$A"
chown "$U" "$A"
as_user ln -s "$VICTIM" "$A/emmd.pid"
conf "$WORK/c1.conf" "state-dir=$WORK/st1" "control-socket=$WORK/s1.sock" "pid-file=$A/emmd.pid"
refused "pid file in the user's directory" "$WORK/c1.conf" "$A" "owned by uid"

S="$WORK/sticky" # like /tmp: root's, sticky, writable by all
mkdir "$S"
chmod 1777 "$S"
as_user ln -s "$VICTIM" "$S/emmd.pid"
conf "$WORK/c2.conf" "state-dir=$WORK/st1" "control-socket=$WORK/s1.sock" "pid-file=$S/emmd.pid"
refused "pid file symlink in a sticky directory" "$WORK/c2.conf" "$S/emmd.pid" "symbolic link"
[ -L "$S/emmd.pid" ] || fail "emmd removed or replaced the planted symlink"
as_user sh -c "echo 1 >'$S/mine.pid'"
conf "$WORK/c3.conf" "state-dir=$WORK/st1" "control-socket=$WORK/s1.sock" "pid-file=$S/mine.pid"
refused "pid file owned by the user in a sticky directory" "$WORK/c3.conf" "$S/mine.pid" "owned by uid"
assert_eq "$(cat "$S/mine.pid")" 1 "the user's file in the pid file's place"

# --- 2. state-dir and the control socket's directory ------------------------------
for mode in 0777 0755; do
    D="$WORK/userstate$mode"
    mkdir "$D"
    chown "$U" "$D"
    chmod "$mode" "$D"
    conf "$WORK/c4.conf" "state-dir=$D" "control-socket=$WORK/s1.sock" "pid-file=$WORK/p1.pid"
    rc=0
    out=$(timeout 10 "$EMMD" -n -c "$WORK/c4.conf" 2>&1) || rc=$?
    [ $rc = 1 ] || fail "state-dir $mode of $U: emmd -n exited $rc: $out"
    assert_contains "$out" "$D" "state-dir $mode of $U: emmd -n"
    refused "state-dir $mode owned by $U" "$WORK/c4.conf" "$D" "chown"
    [ -z "$(ls -A "$D")" ] || fail "emmd wrote into the user's state-dir $D: $(ls -A "$D")"
done
D="$WORK/openstate"
mkdir "$D"
chmod 0777 "$D"
conf "$WORK/c5.conf" "state-dir=$D" "control-socket=$WORK/s1.sock" "pid-file=$WORK/p1.pid"
refused "state-dir 0777 owned by root" "$WORK/c5.conf" "$D" "chmod go-w"
D="$WORK/usersock"
mkdir "$D"
chown "$U" "$D"
chmod 0777 "$D"
conf "$WORK/c6.conf" "state-dir=$WORK/st1" "control-socket=$D/emmd.sock" "pid-file=$WORK/p1.pid"
refused "control socket directory of $U" "$WORK/c6.conf" "$D" "control socket"
[ ! -e "$D/emmd.sock" ] || fail "emmd made its socket in the user's directory"

# --- 3 and 4: a running emmd ---------------------------------------------------------
SHARED="$WORK/shared"
mkdir -p "$SHARED"
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=2G" <<E
[fs first]
backend = memory
mountpoint = $SHARED
E
start_emmd "$CONF"
"$IO" fill -y "$SHARED/first-file" 0 65536 7

# 4: capabilities, in every thread; idle memory
want=$(printf '%016x' $(((1 << 21) | (1 << 14)))) # cap_sys_admin, cap_ipc_lock
for t in /proc/"$EMMD_PID"/task/*; do
    for k in CapEff CapPrm CapBnd; do
        assert_eq "$(awk -v k="$k:" '$1 == k { print $2 }' "$t/status")" "$want" "$k of emmd thread ${t##*/}"
    done
    assert_eq "$(awk '$1 == "CapInh:" { print $2 }' "$t/status")" 0000000000000000 "CapInh of thread ${t##*/}"
done
rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$EMMD_PID/status")
log "idle emmd with resident-limit = 2G: VmRSS $rss kB"
[ "$rss" -lt $((64 << 10)) ] || fail "idle emmd with resident-limit = 2G has VmRSS $rss kB (>= 64 MiB)"
# still able to do what it must after the drop: serve, flush, unmount (at stop)
"$IO" check "$SHARED/first-file" 0 65536 7 || fail "reading back after the capability drop"

# 3: a second emmd on the same mountpoint
mkdir -p "$WORK/st2"
SECOND="$WORK/second.conf"
cat >"$SECOND" <<E
[emmd]
state-dir = $WORK/st2
mount-root = $MNT
control-socket = $WORK/second.sock
pid-file = $WORK/second.pid
[fs second]
backend = memory
mountpoint = $SHARED
E
refused "second emmd on a live mountpoint" "$SECOND" "$SHARED" "already a mount point" "mount-over"
assert_eq "$(grep -c " $SHARED " /proc/self/mountinfo)" 1 "mounts on $SHARED"
"$IO" check "$SHARED/first-file" 0 65536 7 || fail "the first emmd's file after a refused second"
# -n warns about it but does not fail: the mount is the machine's state, not the file's
rc=0
out=$(timeout 10 "$EMMD" -n -c "$SECOND" 2>&1) || rc=$?
[ $rc = 0 ] || fail "emmd -n on a config whose mountpoint is busy exited $rc: $out"
assert_contains "$out" "already a mount point" "emmd -n on a busy mountpoint"

# mount-over = yes: allowed, hides the first, which comes back after
echo "mount-over = yes" >>"$SECOND"
"$EMMD" -f -c "$SECOND" </dev/null >"$WORK/second.log" 2>&1 &
PID2=$!
for ((i = 0; i < EMM_START_WAIT; i++)); do
    [ "$(grep -c " $SHARED " /proc/self/mountinfo)" = 2 ] && [ -S "$WORK/second.sock" ] && break
    kill -0 "$PID2" 2>/dev/null || { cat "$WORK/second.log" >&2; fail "emmd with mount-over = yes exited"; }
    sleep 0.1
done
assert_eq "$(grep -c " $SHARED " /proc/self/mountinfo)" 2 "mounts on $SHARED with mount-over = yes"
[ ! -e "$SHARED/first-file" ] || fail "the first emmd's file is visible through the mount over it"
kill -TERM "$PID2"
rc=0
wait "$PID2" || rc=$?
PID2=""
[ $rc = 0 ] || { cat "$WORK/second.log" >&2; fail "emmd with mount-over = yes exited $rc on SIGTERM"; }
assert_eq "$(grep -c " $SHARED " /proc/self/mountinfo)" 1 "mounts on $SHARED after the second stopped"
"$IO" check "$SHARED/first-file" 0 65536 7 || fail "the first emmd's file after the second stopped"
stop_emmd

# --- 5. resident-limit above half the RAM ---------------------------------------------
ram_kb=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)
big=$((ram_kb / 1024 * 3 / 4))M
write_conf "$WORK/big.conf" "resident-limit=$big" <<'E'
[fs a]
backend = memory
E
out=$(timeout 10 "$EMMD" -n -c "$WORK/big.conf" 2>&1) || fail "emmd -n with resident-limit = $big: $out"
assert_contains "$out" "resident-limit" "warning for resident-limit = $big"
assert_contains "$out" "$((ram_kb / 1024)) MiB" "warning for resident-limit = $big (the RAM size)"
small=$((ram_kb / 1024 / 4))M
write_conf "$WORK/small.conf" "resident-limit=$small" <<'E'
[fs a]
backend = memory
E
out=$(timeout 10 "$EMMD" -n -c "$WORK/small.conf" 2>&1) || fail "emmd -n with resident-limit = $small: $out"
case "$out" in *"more than half"*) fail "warned about resident-limit = $small: $out" ;; esac
