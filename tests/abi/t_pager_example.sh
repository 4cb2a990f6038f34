#!/bin/bash
# t_pager_example.sh - a third party's external pager: `cmake --install` of
# this build into a staging DESTDIR, then examples/unlock-pager built out of
# tree with its own Makefile against the staged <emm/pager.h> and
# libemm-pager found by pkg-config alone (PKG_CONFIG_LIBDIR and
# PKG_CONFIG_SYSROOT_DIR point into the stage). The pager runs as its own
# process on a Unix socket and serves object 7 from a file, read-only, granting
# write access page by page on data_unlock.
#
# The kernel side is emm's real kernel (emm/vm) in tests/pager_kernel over the
# stream transport, so the protocol is driven step by step (t_pager_mount.sh
# mounts the same pager through emmd). The data is checked with dd and cmp:
# the object reads back as the seed file; partial-page writes (each needs a data_unlock, and one write spans
# two locked pages) and a whole-page write land in the pager's store file and
# read back through a new connection; the pager's counters say how many grants
# it gave (3) and that it refused nothing.
#
# Environment (set by ctest): EMM_BUILD, EMM_CMAKE, EMM_SRC, EMM_TESTBIN.
# Exit 77 without cc, make, pkg-config, cmp or objdump.
. "$(dirname "$0")/../integration/lib.sh"
requires cc make pkg-config cmp objdump
[ -n "${EMM_BUILD:-}" ] || fail "EMM_BUILD (the build tree) is not set"
KERNEL="$EMM_TESTBIN/pager_kernel"
[ -x "$KERNEL" ] || fail "$KERNEL was not built"

. "$(dirname "$0")/pager_stage.sh"
trap '_rc=$?; [ -z "$PAGER_PID" ] || { kill -TERM "$PAGER_PID"; wait "$PAGER_PID"; }; (exit $_rc); _cleanup' EXIT

# ---- stage an install ----
stage_install PC HDR LIB DOC EX
log "staged: $S_LIB, $S_PC"

# ---- pkg-config sees the stage only ----
export PKG_CONFIG_LIBDIR="$(dirname "$S_PC")" PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR="$STAGE"
cflags=$(pkg-config --cflags emm-pager) || fail "pkg-config does not find emm-pager.pc"
assert_contains "$cflags" "-I$(dirname "$(dirname "$S_HDR")")" "pkg-config --cflags emm-pager"
libs=$(pkg-config --libs emm-pager)
assert_contains "$libs" "-lemm-pager" "pkg-config --libs emm-pager"
assert_contains "$libs" "-L$(dirname "$S_LIB")" "pkg-config --libs emm-pager"

# ---- build the example out of tree, as a third party would ----
build_unlock_pager
export LD_LIBRARY_PATH="$(dirname "$S_LIB")"

# ---- the pager, its store and the seed ----
STORE="$WORK/store"
mkdir "$STORE"
SIZE=262144
head -c $SIZE /dev/urandom >"$WORK/seed"
cp "$WORK/seed" "$STORE/7"
start_unlock_pager "$STORE" -t 2

# kern STEP ARGS...: one kernel run (its own connection), bounded; its stderr in kern.log
kern() {
    local what=$1
    shift
    bounded "$what" "$KERNEL" "$SOCKP" 7 $SIZE "$@" 2>>"$WORK/kern.log"
}

# 1. Read the object through the kernel: the seed, page for page.
kern "read the object" get >"$WORK/got1"
cmp "$WORK/seed" "$WORK/got1" || fail "the object does not read back as its store file"

# 2. Writes: 300 bytes in page 1; 8192 bytes at 20000 (pages 4 and 6 in
#    part: both locked, two data_unlocks for one write; page 5 whole).
cp "$WORK/seed" "$WORK/expect"
head -c 300 /dev/urandom >"$WORK/p1"
head -c 8192 /dev/urandom >"$WORK/p2"
dd if="$WORK/p1" of="$WORK/expect" bs=1 seek=5000 conv=notrunc status=none
dd if="$WORK/p2" of="$WORK/expect" bs=1 seek=20000 conv=notrunc status=none
kern "write 300 bytes at 5000" put 5000 <"$WORK/p1"
kern "write 8192 bytes at 20000 (two locked pages)" put 20000 <"$WORK/p2"
cmp "$WORK/expect" "$STORE/7" || fail "the pager's store does not hold the writes"

# 3. A new connection reads the writes back.
kern "read back" get >"$WORK/got2"
cmp "$WORK/expect" "$WORK/got2" || fail "the writes do not read back through the kernel"

# 4. The pager's own account: one grant per page written in part, none refused.
stop_pager
stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$STORE/unlock-pager.stats"; }
[ -f "$STORE/unlock-pager.stats" ] || fail "unlock-pager wrote no stats"
assert_eq "$(stat_of grants)" 3 "grants (pages 1, 4 and 6)"
assert_eq "$(stat_of lock_completed)" "$(stat_of grants)" "lock_completed answers"
assert_eq "$(stat_of refused)" 0 "refused data_returns"
assert_eq "$(stat_of blind)" 1 "whole pages the kernel wrote without asking (page 5)"
unlocks=$(awk '/^kernel:/ { for (i = 1; i < NF; i++) if ($i == "data_unlocks") s += $(i + 1) } END { print s + 0 }' "$WORK/kern.log")
assert_eq "$unlocks" 3 "data_unlocks the kernel sent"
grep -q "object 7: page 6 granted write" "$WORK/pager.log" || fail "no grant line for page 6 in the pager's log"
log "grants 3, data_unlocks 3, refused 0"
