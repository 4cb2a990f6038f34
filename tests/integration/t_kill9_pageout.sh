#!/bin/bash
# t_kill9_pageout.sh - kill -9 of emmd while a stalled pager's pages sit in
# swap loses nothing of a persistent object: the restarted emmd finds them in
# swap, serves them, and replays them to the pager.
#
# One filesystem `k` on error:lmdb (a threaded pager) whose writes stall while
# $WORK/stall exists, pager.deadline = 200ms; resident-limit 16M; a 256M swap
# file created by emmd.
#   1. B (64 MiB random) is written and fsync'd while the pager is healthy.
#   2. The stall begins. A (48 MiB random) is written with dd (no fsync); a
#      reader streams B (page cache dropped before each pass, so every read is
#      a fault emmd serves) to push A's dirty pages out of the pool. Polled
#      until A's SWAP column (emmctl ls) is A's page count, 12288; LMDB holds
#      none of A (its writes all stalled), so after the crash A can come back
#      only from swap.
#   3. kill -9 emmd (B's reader may still be running), unmount the dead mount,
#      remove the stall file, restart on the same config and state: the log
#      says it replays 12288 pages of 1 object from swap; A and B compare equal
#      with their sources; A's SWAP reaches 0 with replayed > 0, LMDB holds all
#      of A, fsync of A succeeds.
#   4. SIGTERM and restart: nothing is left in swap, no replay is logged, A and
#      B compare equal again (now from LMDB alone: swap_faults stays 0).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3 cmp dd sync timeout

STALL="$WORK/stall"
READER=""
# Stop B's reader (our child, by pid) and remove the stall file before lib.sh's
# cleanup: its SIGTERM flush would wait for the stalled pager. (ERR off and no
# errexit first: "(exit 1)" would end the shell before _cleanup.)
trap '_rc=$?; trap - ERR; set +e; rm -f "$STALL"; [ -z "$READER" ] || { kill "$READER"; wait "$READER"; } 2>/dev/null; (exit $_rc); _cleanup' EXIT

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M

[fs k]
backend = error:lmdb
error.ops = write
error.action = stall
error.file = $STALL
pager.deadline = 200ms
CONF_EOF
D="$MNT/k"
MB=$((1 << 20))
A_PAGES=$((48 * MB / 4096))
B_PAGES=$((64 * MB / 4096))
STEP_LIMIT=180    # liveness bound: turns a step that hangs on the stalled pager into a failure

# run_log N: emmd's log of its Nth start in this test
run_log() { awk -v n="$1" '/^=== / { r++ } r == n' "$EMMD_LOG"; }

dump_state() {
    ctl info memory | grep -E '^(resident_pages|dirty_pages|free_pages|swap_used_pages|swap_pages_out|swap_faults|double_paged|overdue_returns|replayed|objects_killed|frame_waits)' |
        tr '\n' ' ' | sed 's/^/# memory: /' >&2
    echo >&2
    ctl info pagers | grep '^paging_' | sed 's/^/# /' >&2
    ctl ls | sed 's/^/# /' >&2
}

SRCA="$WORK/srcA"
SRCB="$WORK/srcB"
gen_src "$SRCA" 48 3
gen_src "$SRCB" 64 4

# ---- 1: B, written and fsync'd while the pager is healthy
start_emmd "$CONF"
assert_eq "$(pager_field k deadline_ms)" 200 "k: pager.deadline"
bounded "writing B" dd if="$SRCB" of="$D/B" bs=1M conv=fsync status=none
assert_eq "$(ls_col k B STORED)" $B_PAGES "B's pages in LMDB after its fsync"

# ---- 2: the stall begins; A is written, B's reads push A out to swap
log "stall on"
touch "$STALL"
bounded "writing A while the pager is stalled" dd if="$SRCA" of="$D/A" bs=1M status=none
python3 - "$D/B" "$SRCB" >"$WORK/reader.log" 2>&1 <<'PY' &
import os, sys
path, src = sys.argv[1], sys.argv[2]
want = open(src, "rb").read()
for n in range(1000):
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got = bytearray()
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            got += b
        os.close(fd)
    except OSError as e:
        print("pass %d: %s" % (n, e), flush=True)
        sys.exit(0)
    if bytes(got) != want:
        off = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
        print("MISMATCH pass %d: length %d, first difference at %d" % (n, len(got), off), flush=True)
        sys.exit(1)
    print("pass %d ok" % n, flush=True)
PY
READER=$!
a_swap=0
for ((i = 0; i < 1200; i++)); do
    a_swap=$(ls_col k A SWAP)
    [ "$a_swap" -ge $A_PAGES ] && break
    sleep 0.1
done
dump_state
log "A: SWAP $a_swap of $A_PAGES pages after $((i / 10)) s; B's reader: $(grep -c ' ok$' "$WORK/reader.log" || true) passes"
! grep -q MISMATCH "$WORK/reader.log" || fail "B read back wrong while the pager was stalled: $(cat "$WORK/reader.log")"
assert_eq "$a_swap" $A_PAGES "A's SWAP column (120 s after the stall began)"
assert_eq "$(ls_col k A STORED)" 0 "A's pages in LMDB while every write stalls"
assert_eq "$(ls_col k A SIZE)" $((48 * MB)) "A's size before kill -9"
assert_gt "$(info_get double_paged)" 0 "double_paged before kill -9"
assert_gt "$(info_get overdue_returns)" 0 "overdue_returns before kill -9"
[ -e "$STALL" ] || fail "the stall file vanished"

# ---- 3: kill -9, clean up the dead mount, restart without the stall
pid=$EMMD_PID
EMMD_PID=""
log "kill -9 emmd (pid $pid)"
_kill_wedged "$pid"    # lib.sh: SIGKILL by pid, bounded, aborts a wedged FUSE connection
[ ! -e "/proc/$pid" ] || fail "emmd (pid $pid) still exists after SIGKILL"
kill "$READER" 2>/dev/null || true
wait "$READER" 2>/dev/null || true
READER=""
! grep -q MISMATCH "$WORK/reader.log" || fail "B read back wrong while the pager was stalled: $(cat "$WORK/reader.log")"
if is_mounted "$D"; then
    fusermount3 -u "$D" 2>/dev/null || fusermount3 -u -z "$D" || fail "cannot unmount the dead mount $D"
fi
! is_mounted "$D" || fail "$D still mounted after fusermount3 -u"
rm -f "$STALL"

start_emmd "$CONF"
run2=$(run_log 2)
line=$(printf '%s\n' "$run2" | grep 'replaying them to the pager' || true)
[ -n "$line" ] || fail "emmd does not say it replays pages from swap after kill -9: $run2"
log "restart: ${line#*: }"
assert_contains "$line" "fs k: $A_PAGES pages of 1 objects are in swap" "the replay line"
assert_eq "$(fsize "$D/A")" $((48 * MB)) "A's size after kill -9"
bounded "cmp of A right after the restart (swap and/or replay)" cmp "$SRCA" "$D/A"
log "A compares equal; swap_faults=$(pager_field k swap_faults) replayed=$(pager_field k replayed) SWAP=$(ls_col k A SWAP)"
bounded "cmp of B after kill -9" cmp "$SRCB" "$D/B"
r=0 s=x
for ((i = 0; i < 600; i++)); do
    r=$(pager_field k replayed)
    s=$(ls_col k A SWAP)
    [ "$r" -gt 0 ] && [ "$s" = 0 ] && break
    sleep 0.1
done
dump_state
assert_gt "$r" 0 "pages replayed to the pager after the restart"
assert_eq "$s" 0 "A's SWAP column 60 s after the restart"
assert_eq "$(ls_col k A STORED)" $A_PAGES "A's pages in LMDB after the replay"
bounded "sync of A after the replay" sync "$D/A"
assert_eq "$(info_get swap_used_pages)" 0 "swap_used_pages after the replay"
drop_cache "$D/A"
bounded "cmp of A after the replay" cmp "$SRCA" "$D/A"
stop_emmd

# ---- 4: a clean restart: LMDB alone
start_emmd "$CONF"
case "$(run_log 3)" in
*"replaying them to the pager"*) fail "emmd replays from swap again after the replay completed and a clean stop" ;;
esac
bounded "cmp of A after the clean restart" cmp "$SRCA" "$D/A"
bounded "cmp of B after the clean restart" cmp "$SRCB" "$D/B"
assert_eq "$(info_get swap_used_pages)" 0 "swap_used_pages after the clean restart"
assert_eq "$(info_get swap_faults)" 0 "swap_faults after the clean restart (LMDB serves everything)"
assert_eq "$(ls_col k A STORED)" $A_PAGES "A's pages in LMDB after the clean restart"
assert_eq "$(ls_col k B STORED)" $B_PAGES "B's pages in LMDB after the clean restart"
stop_emmd
