#!/bin/bash
# t_emmswap.sh - the swap area tool: `emmswap format` on a new file, on an
# existing one and on a loop device; `emmswap info` describes them; format
# refuses an ext4 image and a mkswap'd file unless --force; bad arguments exit 2.
# A refused format changes nothing: files with data but no signature are kept
# byte for byte without --force, and a size that is not whole pages or below
# the 1M minimum is refused, never rounded. info escapes labels and names the
# reason for a text file, a short file and an overflowing header field.
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

# --- a refused format changes nothing ------------------------------------------
# set_hdr FILE FIELD_OFFSET U64: rewrite one header field and its CRC32C, as a
# careful attacker (or a bit-flip plus a bad tool) would
set_hdr() {
    python3 - "$@" <<'PY'
import struct, sys
path, off, val = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
with open(path, "r+b") as f:
    h = bytearray(f.read(4096))
    assert struct.unpack_from("<I", h, 168)[0] == crc32c(h[:168] + b"\0" * 4 + h[172:]), "crc"
    struct.pack_into("<Q", h, off, val)
    struct.pack_into("<I", h, 168, crc32c(h[:168] + b"\0" * 4 + h[172:]))
    f.seek(0)
    f.write(h)
PY
}
for n in 100 5000 12288 1048576; do
    V="$WORK/victim-$n"
    head -c "$n" /dev/urandom >"$V"
    before=$(sha "$V")
    expect_rc 1 "$EMMSWAP" format "$V"
    assert_contains "$(cat "$WORK/err")" "$V" "refusal of a $n-byte file"
    assert_eq "$(sha "$V")" "$before" "a $n-byte random file after a refused format"
    assert_eq "$(fsize "$V")" "$n" "size of a $n-byte random file after a refused format"
    rc=0
    "$EMMSWAP" format "$V" 1M >"$WORK/out" 2>"$WORK/err" || rc=$?
    [ $rc != 0 ] || fail "format of a $n-byte random file with a size succeeded without --force"
    assert_eq "$(sha "$V")" "$before" "a $n-byte random file after a refused format to 1M"
done
assert_contains "$(cat "$WORK/err")" "no known signature" "refusal of data without a signature"
assert_contains "$(cat "$WORK/err")" "--force" "refusal of data without a signature"
# a size of the wrong shape is refused before anything is created
expect_rc 2 "$EMMSWAP" format "$WORK/odd.img" 12345
assert_contains "$(cat "$WORK/err")" "whole number of 4096-byte pages"
[ ! -e "$WORK/odd.img" ] || fail "a refused size left $WORK/odd.img behind"
expect_rc 2 "$EMMSWAP" format "$WORK/odd.img" 12288
assert_contains "$(cat "$WORK/err")" "minimum is 1M"
[ ! -e "$WORK/odd.img" ] || fail "a refused size left $WORK/odd.img behind"
# ... and with --force too: --force overrides a signature, not the size rules
V="$WORK/victim-5000"
before=$(sha "$V")
expect_rc 1 "$EMMSWAP" format --force "$V"
assert_contains "$(cat "$WORK/err")" "not a whole number"
assert_eq "$(sha "$V")" "$before" "a 5000-byte file after format --force without a size"
# with --force, data without a signature is overwritten; an all-zero (or empty)
# file needs no --force
expect_rc 0 "$EMMSWAP" format --force "$WORK/victim-1048576"
truncate -s 2M "$WORK/zeros.img"
expect_rc 0 "$EMMSWAP" format "$WORK/zeros.img"
assert_eq "$(info_val "$("$EMMSWAP" info "$WORK/zeros.img")" size)" $((2 << 20)) "size of a formatted zero file"

# --- info: escaped strings and named reasons ----------------------------------------
N="$WORK/label.img"
expect_rc 0 "$EMMSWAP" format --label $'two\nlines\tand\\' "$N" 1M
expect_rc 0 "$EMMSWAP" info "$N"
assert_eq "$(info_val "$(cat "$WORK/out")" label)" 'two\nlines\tand\\' "escaped label"
assert_eq "$(grep -c '' "$WORK/out")" "$(grep -c '' <("$EMMSWAP" info "$F"))" "lines of info with a newline in the label"
# a text file: not an area, said so (not "Input/output error")
echo "hello, I am a text file" >"$WORK/text"
expect_rc 1 "$EMMSWAP" info "$WORK/text"
assert_contains "$(cat "$WORK/err")" "not an emmswap area: no signature"
case "$(cat "$WORK/err")" in *"Input/output error"*) fail "info of a text file: $(cat "$WORK/err")" ;; esac
# a header whose size_pages overflows when turned into bytes (2^52 pages = 2^64
# bytes, i.e. "0 bytes") is refused, naming the field
C="$WORK/overflow.img"
expect_rc 0 "$EMMSWAP" format "$C" 1M
set_hdr "$C" 32 $((1 << 52))
expect_rc 1 "$EMMSWAP" info "$C"
assert_contains "$(cat "$WORK/err")" "size_pages"
case "$(cat "$WORK/err")" in *" 0 bytes"*) fail "overflowed size reported: $(cat "$WORK/err")" ;; esac

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
