#!/bin/bash
# t_pager_kill9_backends.sh - the dead-pager path beyond lmdb (issue 11 §3):
# one emmd with three filesystems behind `pager = process`: `mem` (memory),
# `zl` (zstd:lmdb) and `fl` (file), pager.deadline = 20s, a 256M swap. On
# each, a 2 MiB file `kept` is written and fsync'd, and a writer rewrites a
# second file with fsync in a loop; each emm-pager is killed with SIGKILL
# while its writer runs. Asserted, per filesystem: emmd survives; the pager
# is restarted (a new pid, up, restarts >= 1); the writer ends (its faults
# and fsyncs waited for the new pager, or failed with EIO past the deadline:
# either way they end); the object works again (a new 1 MiB write, fsync,
# read back equal). For zstd:lmdb and file, `kept` (fsync'd before the kill)
# reads back equal. For memory a killed pager's store is gone with it: only
# that `kept` can be read to its end without hanging is asserted (zeros or
# EIO are both expected outcomes), and that the file works again.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout cmp
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

mkdir -p "$WORK/files"
conf="$WORK/emmd.conf"
write_conf "$conf" "resident-limit=32M" "fuse-threads=4" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M

[fs mem]
backend = memory
pager = process
pager.deadline = 20s

[fs zl]
backend = zstd:lmdb
pager = process
pager.deadline = 20s

[fs fl]
backend = file
pager = process
pager.deadline = 20s
CONF_EOF
start_emmd "$conf"

gen_src "$WORK/src" 2 51
gen_src "$WORK/w" 1 52
gen_src "$WORK/again" 1 53
for fs in mem zl fl; do
    dd if="$WORK/src" of="$MNT/$fs/kept" bs=1M conv=fsync status=none || fail "dd to $fs/kept"
done

for fs in mem zl fl; do
    pid1=$(info_get "pager_$fs.pid")
    assert_gt "$pid1" 0 "$fs's pager pid"
    # The writer: rewrites w with fsync until stopped (or an error ends it).
    timeout -k 5 120 sh -c "while [ ! -e '$WORK/stop.$fs' ]; do dd if='$WORK/w' of='$MNT/$fs/w' bs=256k conv=fsync status=none 2>/dev/null || true; done" &
    W=$!
    sleep 0.5 # let it write (an ordering, not a timing assertion)
    kill -KILL "$pid1"
    log "$fs: killed its emm-pager (pid $pid1) while the writer runs"
    up=0
    for ((i = 0; i < 600; i++)); do
        info=$(ctl info pagers 2>/dev/null || true)
        p=$(awk -F: -v k="pager_$fs.pid" '$1 == k { gsub(/[ \t]/, "", $2); v = $2 } END { print v + 0 }' <<<"$info")
        st=$(awk -F: -v k="pager_$fs.state" '$1 == k { gsub(/[ \t]/, "", $2); v = $2 } END { print v }' <<<"$info")
        if [ "$st" = up ] && [ "$p" != "$pid1" ] && [ "$p" != 0 ]; then
            up=1
            break
        fi
        sleep 0.1
    done
    [ $up = 1 ] || fail "$fs: the pager was not restarted"
    assert_ge "$(info_get "pager_$fs.restarts")" 1 "pager_$fs.restarts"
    : >"$WORK/stop.$fs"
    rc=0
    wait "$W" || rc=$?
    [ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "$fs: the writer did not end (status $rc)"
    emmd_alive || fail "emmd died after $fs's pager was killed"
    drop_cache "$MNT/$fs/kept"
    if [ "$fs" = mem ]; then
        rc=0
        timeout -k 5 60 cat "$MNT/$fs/kept" >/dev/null 2>&1 || rc=$?
        [ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "mem: a read of kept did not end"
    else
        timeout -k 5 60 cmp "$WORK/src" "$MNT/$fs/kept" || fail "$fs: kept (fsync'd before the kill) differs"
    fi
    bounded "$fs: a new write after the restart" dd if="$WORK/again" of="$MNT/$fs/kept" bs=1M conv=fsync,notrunc status=none
    drop_cache "$MNT/$fs/kept"
    bounded "$fs: read back" cmp -n $((1 << 20)) "$WORK/again" "$MNT/$fs/kept"
    log "$fs: the pager restarted, the writer ended, the object works again"
done
assert_ge "$(info_get pager_zl.reinits)" 1 "objects re-initialised on zl's new pager"
stop_emmd
