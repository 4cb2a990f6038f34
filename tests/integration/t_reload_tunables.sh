#!/bin/bash
# t_reload_tunables.sh - the tunables a reload changes live, with nothing lost:
#   1. pageout.policy cycles second-chance -> s3-fifo -> lru -> fifo ->
#      second-chance while fio writes and verifies 48M on [fs f] (three times
#      the 16M pool, so pages move between the policies' queues and get evicted
#      under each): every reload says "pageout.policy: A -> B", `emmctl info`
#      shows the new policy with pages still queued, and fio's verify passes.
#   2. [default-pager] deadline changes the deadline of [fs k], which has no
#      pager.deadline of its own (emmctl info pagers shows it).
#   2b. A swap area (priority 5) is added by a reload: `emmctl info` shows
#      two areas; the same file again changes nothing.
#   3. [fs k]'s pager stalls every write (error:lmdb, error.action = stall)
#      while dd writes A (32M, twice the pool) through an open object: with the
#      1800s deadline, its pageouts sit in laundry and dd waits for frames, and no
#      return is overdue. A reload sets pager.deadline = 200ms in [fs k]: the
#      open object takes it, its overdue pages go to swap (double paging), and
#      dd finishes. With the stall lifted, A reads back equal to its source.
#      The overdue pages go to a swap area added by a reload before (2b).
#   4. A swap area replaced by another is refused with FILE:LINE and changes
#      nothing.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires fio python3 dd timeout

STALL="$WORK/stall"
DD=""
trap '_rc=$?; trap - ERR; set +e; rm -f "$STALL"; [ -z "$DD" ] || { kill "$DD"; wait "$DD"; } 2>/dev/null; (exit $_rc); _cleanup' EXIT

CONF="$WORK/emmd.conf"
# conf POLICY DP_DEADLINE [K_DEADLINE]
conf() {
    write_conf "$CONF" "resident-limit=16M" "pageout.policy=$1" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 128M
${SWAP2:+swap = $SWAP2}
deadline = $2

[fs f]
backend = file

[fs k]
backend = error:lmdb
error.ops = write
error.action = stall
error.file = $STALL
${3:+pager.deadline = $3}
CONF_EOF
}
until_ok() {
    local i
    for ((i = 0; i < 600; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
reload_ok() {
    ctl reload >"$WORK/out" 2>"$WORK/err" || { show_log; fail "emmctl reload ($1): $(cat "$WORK/err")"; }
}

conf second-chance 3600s
start_emmd "$CONF"
assert_eq "$(info_get pageout_policy)" second-chance "the policy at start"
assert_eq "$(pager_field k deadline_ms)" 3600000 "k's deadline at start (the default pager's)"

# ---- 1: policies switch under fio
(
    fio_run f 300 "$WORK/fio.log" --name=f --directory="$MNT/f" --filename=fio.dat \
        --size=48M --ioengine=psync --rw=randwrite --bs=4k --verify=crc32c --do_verify=1 \
        --verify_fatal=1 --verify_dump=0 --randseed=11 --group_reporting
) &
fio_pid=$!
until_ok test -s "$MNT/f/fio.dat" || fail "fio did not start writing"
queued() { echo $(( $(info_get active_pages) + $(info_get inactive_pages) )); }
# the pool under pressure: most of its 4096 pages queued in the policy
pool_full() { [ "$(queued)" -gt 2048 ]; }
until_ok pool_full || { ctl info memory >&2; fail "the pool did not fill"; }
prev=second-chance
for p in s3-fifo lru fifo second-chance s3-fifo lru fifo second-chance; do
    conf "$p" 3600s
    reload_ok "pageout.policy = $p"
    assert_contains "$(cat "$WORK/out")" "pageout.policy: $prev -> $p"
    assert_eq "$(info_get pageout_policy)" "$p" "the policy after the reload"
    assert_gt "$(queued)" 0 "pages queued in $p after the switch"
    prev=$p
    sleep 0.3
done
wait $fio_pid || fail "fio on [fs f] failed while the policy changed"
emmd_alive || fail "emmd died"

# ---- 2: the default pager's deadline is k's default
conf second-chance 1800s
reload_ok "[default-pager] deadline"
assert_contains "$(cat "$WORK/out")" "[fs k] pager.deadline: 3600000 -> 1800000 ms"
assert_eq "$(pager_field k deadline_ms)" 1800000 "k's deadline after the reload"
assert_eq "$(pager_field f deadline_ms)" 1800000 "f's deadline after the reload"

# ---- 2b: a swap area added live (priority 5: used before the first); a
#      second reload with the same file changes nothing
SWAP2="$WORK/swap2.img 64M priority=5"
conf second-chance 1800s
reload_ok "a swap area added"
assert_contains "$(cat "$WORK/out")" "[default-pager] swap $WORK/swap2.img added (priority 5)"
assert_eq "$(info_get swap_areas)" 2 "swap areas after the reload"
assert_eq "$(info_get swap_1.path)" "$WORK/swap2.img" "the added area"
assert_eq "$(info_get swap_1.used)" 0 "the added area's used slots"
reload_ok "the same file again"
assert_eq "$(info_get swap_areas)" 2 "swap areas after a second reload"

# ---- 3: a stalled pager; the open object takes the new deadline
SRC="$WORK/srcA"
gen_src "$SRC" 32 5
touch "$STALL"
dd if="$SRC" of="$MNT/k/A" bs=1M status=none &
DD=$!
in_laundry() { [ "$(info_get laundry_pages)" -gt 0 ]; }
until_ok in_laundry || { ctl info memory >&2; fail "no pageouts to the stalled pager"; }
assert_eq "$(info_get overdue_returns)" 0 "overdue returns with the 1800s deadline"
conf second-chance 1800s 200ms
reload_ok "[fs k] pager.deadline"
assert_contains "$(cat "$WORK/out")" "[fs k] pager.deadline: 1800000 -> 200 ms"
assert_eq "$(pager_field k deadline_ms)" 200 "k's deadline after the reload"
bounded "dd to the stalled pager after its deadline was cut" timeout -k 5 $STEP_LIMIT \
    bash -c "while kill -0 $DD 2>/dev/null; do sleep 0.1; done"
wait $DD || fail "dd of A failed"
DD=""
assert_gt "$(info_get overdue_returns)" 0 "overdue returns after the deadline was cut"
assert_gt "$(info_get swap_1.used)" 0 "pages double paged to the added area (priority 5)"
rm -f "$STALL"
drop_cache "$MNT/k/A"
assert_eq "$(sha "$MNT/k/A")" "$(sha "$SRC")" "A after the stall"

# ---- 4: changing a swap area is refused, naming the line
sed -i "s|^swap = .*|swap = $WORK/other.img 64M|" "$CONF"
awk '!/^swap/ || !seen++' "$CONF" >"$CONF.new" && mv "$CONF.new" "$CONF"
rc=0
ctl reload >"$WORK/out" 2>"$WORK/err" || rc=$?
assert_eq "$rc" 1 "emmctl reload with a swap area replaced"
line=$(grep -n '^swap' "$CONF" | cut -d: -f1)
assert_contains "$(cat "$WORK/err")" "$CONF:$line: [default-pager] swap:"
assert_contains "$(cat "$WORK/err")" "nothing changed"
assert_eq "$(info_get swap_areas)" 2 "swap areas after a refused reload"
[ ! -e "$WORK/other.img" ] || fail "a refused reload created $WORK/other.img"

emmd_alive || fail "emmd died"
stop_emmd
