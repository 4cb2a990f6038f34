#!/bin/bash
# t_reload.sh - live reload while fio writes and verifies on a filesystem that
# stays: SIGHUP with a new file mounts the new [fs fresh], unmounts the idle
# [fs gone] whose section was removed, keeps the [fs busy] whose section was
# removed but holds an open file (named in the reply and the log), and applies
# busy-poll and log-level at once. `emmctl reload` with a file that does not
# parse, with a changed resident-limit (and a new section besides), or with a
# changed backend of a filesystem that stays, or with a new section whose
# backend does not exist (and a section dropped besides), is refused with
# FILE:LINE and changes nothing (no mount appears or goes). Once the file is closed, a reload
# unmounts [fs busy]. fio's verify passes, emmd stops cleanly, and a restart
# finds fio's file whole.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio

CONF="$WORK/emmd.conf"
conf1() {
    write_conf "$CONF" "resident-limit=64M" <<'EOF'
[fs keep]
backend = file

[fs gone]
backend = memory

[fs busy]
backend = memory
EOF
}
# the second file: keep stays, gone and busy go, fresh comes; two tunables change
conf2() {
    write_conf "$CONF" "resident-limit=64M" "busy-poll=0" <<'EOF'
[fs keep]
backend = file

[fs fresh]
backend = memory
EOF
    sed -i 's/^log-level = debug$/log-level = notice/' "$CONF"
}
mounts() { mounts_under "$WORK" | sort | tr '\n' ' '; }
# until CMD: run CMD every 0.1 s until it succeeds (at most 30 s)
until_ok() {
    local i
    for ((i = 0; i < 300; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}

conf1
start_emmd "$CONF"
echo "gone's data" >"$MNT/gone/f"
echo "held open" >"$MNT/busy/held"

# fio writes and verifies 128M on keep (twice the pool) while the reloads run
(
    fio_run keep 300 "$WORK/fio.log" --name=keep --directory="$MNT/keep" --filename=fio.dat \
        --size=128M --ioengine=psync --rw=randwrite --bs=4k --verify=crc32c --do_verify=1 \
        --verify_fatal=1 --verify_dump=0 --randseed=7 --group_reporting
) &
fio_pid=$!
until_ok test -s "$MNT/keep/fio.dat" || fail "fio did not start writing"
# hold a file of busy open (after fio started: fio must not inherit it)
exec 7<"$MNT/busy/held"

# 1. SIGHUP: add fresh, remove gone, keep busy, tunables
conf2
_register_mounts "$CONF"
kill -HUP "$EMMD_PID"
until_ok is_mounted "$MNT/fresh" || { show_log; fail "[fs fresh] was not mounted by the reload"; }
until_ok grep -q 'reload: .*reloaded' "$EMMD_LOG" || { show_log; fail "the reload did not finish"; }
! is_mounted "$MNT/gone" || fail "[fs gone] is still mounted after its section was removed"
is_mounted "$MNT/busy" || fail "[fs busy] (a file open) was unmounted"
grep -q 'reload: \[fs busy\] is busy (1 object open): kept mounted' "$EMMD_LOG" ||
    { show_log; fail "the log does not say [fs busy] was kept"; }
assert_eq "$(cat "$MNT/busy/held")" "held open" "the busy filesystem's file"
assert_eq "$(info_get busy_poll_us)" 0 "busy_poll_us after the reload"
assert_eq "$(info_get filesystems)" 3 "filesystems after the reload (keep, busy, fresh)"
echo "fresh data" >"$MNT/fresh/new"
assert_eq "$(cat "$MNT/fresh/new")" "fresh data" "a file on the new filesystem"
# log-level = notice: info lines stop
n_info=$(grep -c ': info: ' "$EMMD_LOG" || true)
ctl info >/dev/null

# 2. a file that does not parse: FILE:LINE, nothing changes
before=$(mounts)
cp "$CONF" "$WORK/good.conf"
printf '[fs more]\nbackend = memory\nthis is not a key line\n' >>"$CONF"
rc=0
ctl reload >"$WORK/out" 2>"$WORK/err" || rc=$?
assert_eq "$rc" 1 "emmctl reload of a broken file"
assert_contains "$(cat "$WORK/err")" "$CONF:$(grep -n 'this is not' "$CONF" | cut -d: -f1): expected 'key = value'"
assert_contains "$(cat "$WORK/err")" "nothing changed"
assert_eq "$(mounts)" "$before" "mounts after a refused reload"

# 3. a change that needs a restart (and a new section besides): refused whole
cp "$WORK/good.conf" "$CONF"
sed -i 's/^resident-limit = 64M$/resident-limit = 32M/' "$CONF"
printf '\n[fs extra]\nbackend = memory\n' >>"$CONF"
rc=0
ctl reload >"$WORK/out" 2>"$WORK/err" || rc=$?
assert_eq "$rc" 1 "emmctl reload with a new resident-limit"
line=$(grep -n '^resident-limit' "$CONF" | cut -d: -f1)
assert_contains "$(cat "$WORK/err")" "$CONF:$line: [emmd] resident-limit: cannot change while running (was 64M, now 32M)"
assert_eq "$(mounts)" "$before" "mounts after a refused reload ([fs extra] must not appear)"
[ ! -d "$MNT/extra" ] || ! is_mounted "$MNT/extra" || fail "[fs extra] was mounted by a refused reload"

# 4. a filesystem that stays cannot change its backend
cp "$WORK/good.conf" "$CONF"
awk '/^\[fs keep\]/ { k = 1 } k && /^backend/ { print "backend = memory"; k = 0; next } { print }' \
    "$WORK/good.conf" >"$CONF"
rc=0
ctl reload >"$WORK/out" 2>"$WORK/err" || rc=$?
assert_eq "$rc" 1 "emmctl reload with keep's backend changed"
line=$(awk '/^\[fs keep\]/ { k = 1 } k && /^backend/ { print NR; exit }' "$CONF")
assert_contains "$(cat "$WORK/err")" "$CONF:$line: [fs keep] backend: cannot change while running (was file, now memory)"
assert_eq "$(mounts)" "$before" "mounts after a refused backend change"

# 5. a new section whose backend cannot be opened: refused before anything
#    changes (fresh, whose section is dropped in the same file, stays mounted)
awk '/^\[fs fresh\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip { print }' "$WORK/good.conf" >"$CONF"
printf '\n[fs bad]\nbackend = nosuchbackend\n' >>"$CONF"
rc=0
ctl reload >"$WORK/out" 2>"$WORK/err" || rc=$?
assert_eq "$rc" 1 "emmctl reload with an unknown backend"
line=$(grep -n 'nosuchbackend' "$CONF" | cut -d: -f1)
assert_contains "$(cat "$WORK/err")" "$CONF:$line: unknown backend 'nosuchbackend'"
assert_eq "$(mounts)" "$before" "mounts after a refused new filesystem ([fs fresh] must stay)"

# 6. the file closed: the next reload unmounts busy
exec 7<&-
cp "$WORK/good.conf" "$CONF"
ctl reload >"$WORK/out" 2>"$WORK/err" || fail "emmctl reload after closing the file: $(cat "$WORK/err")"
assert_contains "$(cat "$WORK/out")" "[fs busy] removed: unmounted $MNT/busy"
! is_mounted "$MNT/busy" || fail "[fs busy] still mounted after its file was closed and a reload"
assert_eq "$(info_get filesystems)" 2 "filesystems at the end (keep, fresh)"
[ "$(grep -c ': info: ' "$EMMD_LOG" || true)" = "$n_info" ] ||
    fail "info lines were logged after log-level = notice"

# fio on keep, all along: its verify passes
wait $fio_pid || fail "fio on [fs keep] failed during the reloads (see above)"
emmd_alive || fail "emmd died"
size=$(stat -c %s "$MNT/keep/fio.dat")
assert_eq "$size" $((128 << 20)) "fio's file"
sum=$(sha "$MNT/keep/fio.dat")
stop_emmd

# a restart with the final file: keep's data whole
start_emmd "$CONF"
assert_eq "$(sha "$MNT/keep/fio.dat")" "$sum" "fio's file after a restart"
stop_emmd
log "ok"
