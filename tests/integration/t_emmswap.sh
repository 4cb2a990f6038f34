#!/bin/bash
# t_emmswap.sh - the swap area tool: `emmswap format` on a new file, on an
# existing one and on a loop device; `emmswap info` describes them; format
# refuses an ext4 image and a mkswap'd file unless --force; bad arguments exit 2.
# Parts that need mkfs.ext4, mkswap or a loop device are skipped when those are
# missing (the test then exits 77 after running the rest).
. "$(dirname "$0")/lib.sh"

EMMSWAP="$EMM_BIN/emmswap"
[ -x "$EMMSWAP" ] || fail "emmswap not found at $EMMSWAP (set EMM_BIN)"
SKIPPED=()
LOOP=""

_swp_cleanup() {
    local rc=$?
    trap - ERR
    set +e
    if [ -n "$LOOP" ]; then
        losetup -d "$LOOP" 2>/dev/null || echo "cleanup: could not detach $LOOP" >&2
    fi
    (exit $rc)
    _cleanup
}
trap _swp_cleanup EXIT

# info_val OUTPUT KEY: the value of KEY in emmswap info output
info_val() {
    printf '%s\n' "$1" | awk -F': ' -v k="$2" '$1 == k { print $2; exit }'
}

# expect_rc RC CMD...: run CMD (output to $WORK/out, $WORK/err), check its status
expect_rc() {
    local want=$1 rc=0
    shift
    "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    [ "$rc" = "$want" ] || fail "'$*' exited $rc, expected $want: $(cat "$WORK/err")"
}

# --- a new file -------------------------------------------------------------
F="$WORK/swap.img"
expect_rc 0 "$EMMSWAP" format --label primary "$F" 64M
assert_contains "$(cat "$WORK/out")" "uuid"
assert_eq "$(fsize "$F")" $((64 << 20)) "size of the new swap file"
assert_ge "$(($(fblocks "$F") * 512))" $((64 << 20)) "allocated bytes (preallocated, not sparse)"
out=$("$EMMSWAP" info "$F")
assert_eq "$(info_val "$out" path)" "$F" "info path"
assert_eq "$(info_val "$out" label)" primary "info label"
assert_eq "$(info_val "$out" size)" $((64 << 20)) "info size"
assert_eq "$(info_val "$out" used)" 0 "info used"
assert_eq "$(info_val "$out" free)" "$(info_val "$out" slots)" "info free"
assert_eq "$(info_val "$out" state)" clean "info state"
assert_eq "$(info_val "$out" type)" file "info type"
uuid=$(info_val "$out" uuid)
[[ $uuid =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
    fail "info uuid '$uuid' is not a v4 uuid"

# an existing area is not reformatted without --force; with it, a new uuid
expect_rc 1 "$EMMSWAP" format "$F"
assert_contains "$(cat "$WORK/err")" "$F"
assert_contains "$(cat "$WORK/err")" "emm swap area"
expect_rc 0 "$EMMSWAP" format --force "$F"
assert_ne "$(info_val "$("$EMMSWAP" info "$F")" uuid)" "$uuid" "uuid after reformatting"
assert_eq "$(info_val "$("$EMMSWAP" info "$F")" label)" "" "label after reformatting without one"

# several areas at once; a bad one makes the status 1 but the others print
G="$WORK/second.img"
expect_rc 0 "$EMMSWAP" format -L second "$G" 1M
expect_rc 1 "$EMMSWAP" info "$F" "$WORK/missing" "$G"
assert_eq "$(grep -c '^uuid: ' "$WORK/out")" 2 "areas described"
assert_contains "$(cat "$WORK/err")" "$WORK/missing"

# a corrupt header is refused with a reason
printf 'X' | dd of="$G" bs=1 seek=200 conv=notrunc status=none
expect_rc 1 "$EMMSWAP" info "$G"
assert_contains "$(cat "$WORK/err")" "corrupt"
# so is a file that is not a swap area, and one that was truncated
expect_rc 0 "$EMMSWAP" format --force -L third "$G" 1M
truncate -s 512K "$G"
expect_rc 1 "$EMMSWAP" info "$G"
assert_contains "$(cat "$WORK/err")" "truncated"

# --- bad arguments: usage on stderr, exit 2 ----------------------------------
expect_rc 2 "$EMMSWAP"
assert_contains "$(cat "$WORK/err")" "usage:"
expect_rc 2 "$EMMSWAP" frobnicate
expect_rc 2 "$EMMSWAP" format
expect_rc 2 "$EMMSWAP" format --bogus "$F"
expect_rc 2 "$EMMSWAP" format "$WORK/new.img" 12Q
expect_rc 2 "$EMMSWAP" format "$WORK/new.img" 1M extra
expect_rc 2 "$EMMSWAP" info
expect_rc 1 "$EMMSWAP" format "$WORK/new.img"     # no size for a file that does not exist
assert_contains "$(cat "$WORK/err")" "size"
[ ! -e "$WORK/new.img" ] || fail "a refused format left $WORK/new.img behind"
expect_rc 0 "$EMMSWAP" --help

# --- an ext4 image ------------------------------------------------------------
if command -v mkfs.ext4 >/dev/null 2>&1; then
    E="$WORK/ext4.img"
    truncate -s 16M "$E"
    mkfs.ext4 -q -F "$E" >/dev/null 2>&1 || fail "mkfs.ext4 on $E failed"
    before=$(sha "$E")
    expect_rc 1 "$EMMSWAP" format "$E"
    assert_contains "$(cat "$WORK/err")" "$E"
    assert_contains "$(cat "$WORK/err")" "ext2/3/4"
    assert_eq "$(sha "$E")" "$before" "the ext4 image after a refused format"
    expect_rc 0 "$EMMSWAP" format --force --label was-ext4 "$E"
    assert_eq "$(info_val "$("$EMMSWAP" info "$E")" label)" was-ext4 "label of the reformatted image"
else
    SKIPPED+=("ext4 image (mkfs.ext4 missing)")
fi

# --- a Linux swap file -----------------------------------------------------------
if command -v mkswap >/dev/null 2>&1; then
    S="$WORK/linux.swap"
    truncate -s 8M "$S"
    mkswap "$S" >/dev/null 2>&1 || fail "mkswap on $S failed"
    expect_rc 1 "$EMMSWAP" format "$S"
    assert_contains "$(cat "$WORK/err")" "$S"
    assert_contains "$(cat "$WORK/err")" "Linux swap"
    expect_rc 0 "$EMMSWAP" format -f "$S"
    assert_eq "$(info_val "$("$EMMSWAP" info "$S")" state)" clean "state of the reformatted swap"
else
    SKIPPED+=("Linux swap file (mkswap missing)")
fi

# --- a loop device -----------------------------------------------------------------
L="$WORK/loop.img"
truncate -s 32M "$L"
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null 2>&1 &&
    LOOP=$(losetup -f --show "$L" 2>/dev/null) && [ -b "$LOOP" ]; then
    log "loop device $LOOP"
    expect_rc 0 "$EMMSWAP" format --label blockdev "$LOOP"
    out=$("$EMMSWAP" info "$LOOP")
    assert_eq "$(info_val "$out" type)" "block device" "info type of $LOOP"
    assert_eq "$(info_val "$out" size)" $((32 << 20)) "info size of $LOOP"
    assert_eq "$(info_val "$out" label)" blockdev "info label of $LOOP"
    assert_eq "$(info_val "$out" used)" 0 "info used of $LOOP"
    expect_rc 1 "$EMMSWAP" format "$LOOP"
    losetup -d "$LOOP"
    LOOP=""
    # what went to the device is in the backing file
    assert_eq "$(info_val "$("$EMMSWAP" info "$L")" uuid)" "$(info_val "$out" uuid)" "uuid in the backing file"
else
    LOOP=""
    SKIPPED+=("loop device (needs root and a free loop device)")
fi

if [ ${#SKIPPED[@]} -gt 0 ]; then
    skip "ran the rest; skipped: ${SKIPPED[*]}"
fi
