#!/bin/bash
# t_pager_tail_crash.sh - after a crash, pages past a file's catalog size
# leave its pager's store through the protocol (issue 9, "no side doors"),
# also when the pager runs in its own process (pager = process: emmd's own
# backend is a null one then, and a discard into it goes nowhere).
#
# a/f (1 MiB, 256 pages) is written and fsync'd into the lmdb store of a's
# emm-pager. The pager is stopped (SIGSTOP) and a/f truncated to one page:
# the catalog saves the new size, the kernel's MO_DISCARD waits in the
# stopped pager's socket. Then emmd and the stopped pager are killed (-9):
# the store keeps 256 pages, the catalog says 4096 bytes. At the restart,
# emmd discards every file's pages past its catalog size through the pager:
# the store holds 1 page again (counted with mdb_stat), and a/f, extended to
# 1 MiB again, reads zeros past its first page. Unfixed, the discard went
# into the null backend: 256 pages stayed and the old bytes read back.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout mdb_stat cmp python3 truncate
[ -x "$EMM_BIN/emm-pager" ] || skip "emm-pager is not built ($EMM_BIN/emm-pager)"

APID=""
trap '[ -z "$APID" ] || kill -KILL "$APID" 2>/dev/null || true; _cleanup' EXIT

# Entries of the lmdb page databases under the state dir (the pager's store;
# the catalog's environment has none), summed.
stored() {
    local env n=0 e
    while IFS= read -r env; do
        e=$(mdb_stat -a "$(dirname "$env")" | awk '/^Status of/ { db = $3 } /Entries:/ { if (db ~ /page/) n += $2 } END { print n + 0 }')
        n=$((n + e))
    done < <(find "$STATE" -name data.mdb)
    echo "$n"
}
wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < 600; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "$what: not within 60 s"
}
store_is() { [ "$(stored)" = "$1" ]; }

conf="$WORK/emmd.conf"
write_conf "$conf" <<CONF_EOF
[fs a]
backend = lmdb
pager = process
pager.deadline = 60s
CONF_EOF
start_emmd "$conf"

gen_src "$WORK/src" 1 51
dd if="$WORK/src" of="$MNT/a/f" bs=1M conv=fsync status=none || fail "dd to a/f"
wait_for "256 pages in the pager's store ($(stored))" store_is 256

APID=$(info_get pager_a.pid)
assert_gt "$APID" 0 "a's pager pid"
kill -STOP "$APID"
log "stopped a's emm-pager (pid $APID)"
timeout 60 truncate -s 4096 "$MNT/a/f" || fail "truncate a/f to one page"
assert_eq "$(fsize "$MNT/a/f")" 4096 "a/f's size after the truncate"

# The crash: emmd first (the stopped pager never reads the discard), then the pager.
pid=$EMMD_PID
EMMD_PID=""
_kill_wedged "$pid"
for mp in "${MOUNTS[@]}"; do
    if is_mounted "$mp"; then
        fusermount3 -u "$mp" 2>/dev/null || fusermount3 -u -z "$mp" || fail "cannot unmount $mp"
    fi
done
kill -KILL "$APID"
for ((i = 0; i < 100; i++)); do
    [ -e "/proc/$APID" ] || break
    sleep 0.1
done
[ ! -e "/proc/$APID" ] || fail "emm-pager pid $APID still exists after SIGKILL"
APID=""
after=$(stored)
log "after the crash the store holds $after pages (a/f's catalog size: one page)"
assert_eq "$after" 256 "pages in the store after the crash (the truncate's discard never arrived)"

start_emmd "$conf"
assert_eq "$(fsize "$MNT/a/f")" 4096 "a/f's size after the restart"
wait_for "the stale tail leaves the store ($(stored) pages)" store_is 1
log "the store holds 1 page: the tail past the catalog size was discarded at the pager"
timeout 60 truncate -s 1M "$MNT/a/f" || fail "extend a/f to 1 MiB"
drop_cache "$MNT/a/f"
timeout 60 cmp -n 4096 "$WORK/src" "$MNT/a/f" || fail "a/f's first page changed"
head -c $(((1 << 20) - 4096)) /dev/zero >"$WORK/zeros"
timeout 60 cmp -i 4096:0 "$MNT/a/f" "$WORK/zeros" ||
    fail "a/f past its first page does not read as zeros after the restart (stale tail)"
log "a/f past its first page reads zeros"
stop_emmd
