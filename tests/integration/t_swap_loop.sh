#!/bin/bash
# t_swap_loop.sh - swap on a block device: the first partition of a loop device.
# A 256M image in the work dir is attached with `losetup -f --show -P`,
# given one partition with sfdisk, and the partition is formatted with
# `emmswap format` (which first must refuse it, unchanged, while it carries a
# Linux swap signature made by mkswap, if mkswap is there). emmd runs a
# temporary filesystem (backend = none) with a 16M pool and `swap =
# /dev/loopNp1`; 96 MiB of random data are written, the page cache is dropped
# and the file must compare equal (cmp) with the original. Checked too:
# info memory names the device in swap_0 (io=direct), pages went out to it and
# came back (swap_pages_out, swap_faults > 0), emmd wrote nothing outside the
# partition (the partition table is the same). After emmd stops (cleanly, on
# SIGTERM), `emmswap info` describes the partition: the uuid it was formatted
# with, a block device, the partition's size, the slot count emmd reported,
# opened at least once, state clean.
# The loop device is always detached (after emmd is stopped). Skips (77) when
# losetup, sfdisk or loop devices with partitions are unavailable.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires losetup sfdisk cmp
EMMSWAP="$EMM_BIN/emmswap"
[ -x "$EMMSWAP" ] || fail "emmswap not found at $EMMSWAP (set EMM_BIN)"
[ -e /dev/loop-control ] || skip "no /dev/loop-control (loop driver not available)"

LOOP=""
# stop emmd (it holds the partition), then detach the loop device, then lib.sh's
# cleanup. errexit and the ERR trap are off first: "(exit $rc)" must hand the
# status to _cleanup, not end the shell inside the EXIT trap.
_loop_cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if [ -n "$EMMD_PID" ]; then
        _stop_emmd_quiet
        if [ -n "$_STOP_ERR" ]; then
            printf 'FAIL: %s: cleanup: %s\n' "$T_NAME" "$_STOP_ERR" >&2
            [ $rc = 0 ] && rc=1
        fi
    fi
    if [ -n "$LOOP" ]; then
        losetup -d "$LOOP" 2>/dev/null || {
            echo "cleanup: could not detach $LOOP" >&2
            [ $rc = 0 ] && rc=1
        }
    fi
    (exit $rc)
    _cleanup
}
trap _loop_cleanup EXIT

IMG="$WORK/disk.img"
truncate -s 256M "$IMG"
LOOP=$(losetup -f --show -P "$IMG" 2>"$WORK/losetup.err") || {
    LOOP=""
    skip "losetup -f --show -P failed (no free loop device?): $(cat "$WORK/losetup.err")"
}
[ -b "$LOOP" ] || skip "losetup gave '$LOOP', not a block device"
log "loop device $LOOP"
printf 'label: dos\n,,83\n' | sfdisk -q "$LOOP" >"$WORK/sfdisk.out" 2>&1 ||
    fail "sfdisk $LOOP failed: $(cat "$WORK/sfdisk.out")"
PART="${LOOP}p1"
# wait_part TENTHS: until $PART is a block device (udev, or devtmpfs alone)
wait_part() {
    local i
    for ((i = 0; i < $1; i++)); do
        [ -b "$PART" ] && return 0
        sleep 0.1
    done
    [ -b "$PART" ]
}
if command -v udevadm >/dev/null 2>&1; then udevadm settle --timeout=10 2>/dev/null || true; fi
if ! wait_part 30; then
    # the kernel did not rescan the table (BLKRRPART): add the partition with BLKPG
    log "$PART did not appear after sfdisk; adding it with partx -a"
    command -v partx >/dev/null 2>&1 && partx -a "$LOOP" 2>/dev/null || true
    wait_part 50 || skip "no partition device $PART after sfdisk and partx -a (loop partitions unavailable here)"
fi
PSIZE=$(($(cat "/sys/class/block/${PART#/dev/}/size") * 512))
log "partition $PART: $PSIZE bytes"
assert_gt "$PSIZE" $((200 << 20)) "size of $PART"
table=$(sfdisk -d "$LOOP")
mbr=$(head -c 1M "$LOOP" | sha256sum | awk '{ print $1 }')

# --- emmswap format --------------------------------------------------------------
if command -v mkswap >/dev/null 2>&1; then
    mkswap "$PART" >/dev/null 2>&1 || fail "mkswap $PART failed"
    before=$(head -c 64K "$PART" | sha256sum)
    rc=0
    "$EMMSWAP" format "$PART" >"$WORK/fmt.out" 2>"$WORK/fmt.err" || rc=$?
    assert_eq "$rc" 1 "emmswap format of a partition with a Linux swap signature, without --force"
    assert_contains "$(cat "$WORK/fmt.err")" "Linux swap" "emmswap's refusal"
    assert_contains "$(cat "$WORK/fmt.err")" "$PART" "emmswap's refusal"
    assert_eq "$(head -c 64K "$PART" | sha256sum)" "$before" "the Linux swap partition after a refused format"
    "$EMMSWAP" format --force "$PART" >"$WORK/fmt.out" 2>"$WORK/fmt.err" ||
        fail "emmswap format --force $PART: $(cat "$WORK/fmt.err")"
else
    log "mkswap missing: not checking the refusal of a Linux swap signature"
    "$EMMSWAP" format "$PART" >"$WORK/fmt.out" 2>"$WORK/fmt.err" ||
        fail "emmswap format $PART: $(cat "$WORK/fmt.err")"
fi
uuid=$(awk '/^formatted / { print $NF }' "$WORK/fmt.out")
[[ $uuid =~ ^[0-9a-f-]{36}$ ]] || fail "emmswap format printed no uuid: $(cat "$WORK/fmt.out")"
# info_val OUTPUT KEY
info_val() { printf '%s\n' "$1" | awk -F': ' -v k="$2" '$1 == k { print $2; exit }'; }
out=$("$EMMSWAP" info "$PART")
assert_eq "$(info_val "$out" uuid)" "$uuid" "uuid after format"
assert_eq "$(info_val "$out" used)" 0 "used slots after format"

# --- emmd with swap on the partition -------------------------------------------
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $PART

[fs t]
backend = none
CONF_EOF
start_emmd "$CONF"

assert_eq "$(mem swap_areas)" 1 "swap_areas"
log "swap_0: $(ctl info memory | grep '^swap_0\.' | tr '\n' ' ')"
assert_eq "$(mem swap_0.path)" "$PART" "swap_0.path"
assert_eq "$(mem swap_0.io)" direct "swap_0.io"
slots=$(mem swap_0.total)
assert_eq "$slots" "$(mem swap_total_pages)" "swap_0 total against swap_total_pages"
assert_eq "$slots" "$(info_val "$out" slots)" "swap_0 total against emmswap info's slots"

head -c $((96 << 20)) /dev/urandom >"$WORK/data.ref"
cp "$WORK/data.ref" "$MNT/t/data"
echo 3 >/proc/sys/vm/drop_caches
cmp "$WORK/data.ref" "$MNT/t/data" || fail "96 MiB on a 16M pool with swap on $PART: data differ"
assert_eq "$(fsize "$MNT/t/data")" $((96 << 20)) "size of the file"
out_pages=$(mem swap_pages_out)
faults=$(mem swap_faults)
used=$(mem swap_used_pages)
log "swap_pages_out $out_pages, swap_faults $faults, swap_used_pages $used"
assert_gt "$out_pages" 0 "swap_pages_out"
assert_gt "$faults" 0 "swap_faults (the compare read pages back from $PART)"
# every page of the file is resident or in swap
assert_ge "$((used + $(mem pool_pages)))" $(((96 << 20) / 4096)) "swap_used_pages + pool_pages"
assert_eq "$(mem swap_io_errors)" 0 "swap_io_errors"
assert_eq "$(mem objects_killed)" 0 "objects_killed"
stop_emmd

# --- after emmd ------------------------------------------------------------------
assert_eq "$(sfdisk -d "$LOOP")" "$table" "the partition table after emmd"
assert_eq "$(head -c 1M "$LOOP" | sha256sum | awk '{ print $1 }')" "$mbr" "the first MiB of $LOOP (outside the partition) after emmd"
out=$("$EMMSWAP" info "$PART") || fail "emmswap info $PART after emmd stopped"
printf '%s\n' "$out" | sed 's/^/#   /' >&2
assert_eq "$(info_val "$out" path)" "$PART" "emmswap info path"
assert_eq "$(info_val "$out" uuid)" "$uuid" "emmswap info uuid after emmd"
assert_eq "$(info_val "$out" type)" "block device" "emmswap info type"
assert_eq "$(info_val "$out" size)" "$PSIZE" "emmswap info size"
assert_eq "$(info_val "$out" slots)" "$slots" "emmswap info slots"
assert_ge "$(info_val "$out" opens)" 1 "emmswap info opens (emmd opened the area)"
assert_eq "$(info_val "$out" state)" clean "emmswap info state after a clean stop"
