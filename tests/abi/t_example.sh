#!/bin/bash
# t_example.sh - a third party's view of the plug-in ABI: `cmake --install` of
# this build into a staging DESTDIR, then examples/ramdisk-plugin built out of
# tree with its own Makefile against the staged header alone (pkg-config with
# PKG_CONFIG_LIBDIR and PKG_CONFIG_SYSROOT_DIR pointing into the stage) and
# installed into the .pc's plugindir. The staged emmd must load it by its bare
# name (emmd -n, and a bad key named by file:line) and, when FUSE is usable,
# mount it (alone, under the error filter, and next to the staged file.so) and
# move data through it, with pages evicted to the plug-in and read back.
#
# Environment (set by ctest): EMM_BUILD (the build tree), EMM_CMAKE, EMM_SRC.
# Exit 77 without cc, make, pkg-config or nm, or (after the load checks) FUSE.
. "$(dirname "$0")/../integration/lib.sh"
requires cc make pkg-config nm
[ -n "${EMM_BUILD:-}" ] || fail "EMM_BUILD (the build tree) is not set"
CMAKE=${EMM_CMAKE:-cmake}
IO=$(helper emmio)
unset EMM_PLUGIN_DIR

# ---- stage an install ----
STAGE="$WORK/stage"
DESTDIR="$STAGE" "$CMAKE" --install "$EMM_BUILD" >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; fail "cmake --install into DESTDIR=$STAGE failed"; }
staged() { find "$STAGE" -path "$1" -print -quit; }
S_EMMD=$(staged '*/sbin/emmd')
S_EMMCTL=$(staged '*/bin/emmctl')
S_FILE=$(staged '*/emm/file.so')
S_PC=$(staged '*/pkgconfig/emm-backend.pc')
S_HDR=$(staged '*/include/emm/backend.h')
S_DOC=$(staged '*/doc/emm/emm-backend.md')
for v in S_EMMD S_EMMCTL S_FILE S_PC S_HDR S_DOC; do
    [ -n "${!v}" ] || fail "cmake --install did not install ${v#S_} (see $WORK/install.log)"
done
S_PLUGINDIR=$(dirname "$S_FILE")
log "staged: $S_EMMD, $S_FILE, $S_PC"

# ---- pkg-config sees the stage only ----
export PKG_CONFIG_LIBDIR="$(dirname "$S_PC")" PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR="$STAGE"
cflags=$(pkg-config --cflags emm-backend) || fail "pkg-config does not find emm-backend.pc"
assert_contains "$cflags" "-I$(dirname "$(dirname "$S_HDR")")" "pkg-config --cflags emm-backend"
assert_eq "$(pkg-config --libs emm-backend | tr -d ' ')" "" "pkg-config --libs (plug-ins link nothing of emm)"
pdir=$(pkg-config --variable=plugindir emm-backend)
case $pdir in
"$STAGE"/*) destdir="" ;;    # pkgconf puts the sysroot in front of path variables
*) destdir=$STAGE ;;         # freedesktop pkg-config does not
esac
assert_eq "$destdir$pdir" "$S_PLUGINDIR" "plugindir of emm-backend.pc (where file.so was installed)"

# ---- build the example out of tree, as a third party would ----
cp -r "$EMM_SRC/examples/ramdisk-plugin" "$WORK/ramdisk"
rm -f "$WORK/ramdisk/ramdisk.so"
make -C "$WORK/ramdisk" >"$WORK/make.log" 2>&1 ||
    { cat "$WORK/make.log" >&2; fail "the example does not build against the staged header"; }
make -C "$WORK/ramdisk" install DESTDIR="$destdir" >>"$WORK/make.log" 2>&1 ||
    { cat "$WORK/make.log" >&2; fail "make install of the example failed"; }
assert_eq "$(nm -D --defined-only "$WORK/ramdisk/ramdisk.so" | awk '{ print $NF }')" \
    "emm_backend_init" "exports of ramdisk.so"
[ -f "$S_PLUGINDIR/ramdisk.so" ] || fail "make install did not put ramdisk.so into $S_PLUGINDIR"

# ---- the staged emmd loads it by name ----
EMMD=$S_EMMD
EMMCTL=$S_EMMCTL
# PREFIX/sbin/../lib/emm is the plug-in dir when LIBDIR is "lib" (prefix /usr/local);
# otherwise (e.g. lib/x86_64-linux-gnu) tell emmd where the staged plug-ins are.
extra=()
if [ "$(dirname "$(dirname "$S_EMMD")")/lib/emm" != "$S_PLUGINDIR" ]; then
    extra=("plugin-dir=$S_PLUGINDIR")
    log "LIBDIR is not lib: using plugin-dir = $S_PLUGINDIR"
fi

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=32M" "${extra[@]+"${extra[@]}"}" <<'CONF_EOF'
[fs rd]
backend = ramdisk
ramdisk.max = 64M

[fs stack]
backend = error:ramdisk
error.rate = 0

[fs keep]
backend = file
CONF_EOF
out=$("$EMMD" -n -c "$CONF" 2>&1) || fail "emmd -n rejects the staged plug-ins: $out"
assert_contains "$out" "configuration OK (3 filesystems)" "emmd -n"

BAD="$WORK/bad.conf"
write_conf "$BAD" "${extra[@]+"${extra[@]}"}" <<'CONF_EOF'
[fs rd]
backend = ramdisk
ramdisk.max = lots
CONF_EOF
rc=0
out=$("$EMMD" -n -c "$BAD" 2>&1) || rc=$?
assert_eq "$rc" 1 "emmd -n status with ramdisk.max = lots"
line=$(grep -n '^ramdisk.max' "$BAD" | cut -d: -f1)
assert_contains "$out" "$BAD:$line: ramdisk.max: 'lots' is not a size" "emmd -n message"

# ---- mount and move data through it ----
need_fuse
start_emmd "$CONF"
# 48M through a 32M resident pool: pages are written to ramdisk.so and read back.
"$IO" fill -y "$MNT/rd/big" 0 48M 71 || fail "write through ramdisk"
"$IO" check "$MNT/rd/big" 0 48M 71 || fail "read back through ramdisk"
"$IO" fill -y "$MNT/stack/f" 0 2M 72 || fail "write through error:ramdisk"
"$IO" check "$MNT/stack/f" 0 2M 72 || fail "read back through error:ramdisk"
"$IO" fill -y "$MNT/keep/f" 0 2M 73 || fail "write through the staged file.so"
"$IO" check "$MNT/keep/f" 0 2M 73 || fail "read back through the staged file.so"
assert_eq "$(info_get rd.layer)" "ramdisk" "rd.layer"
assert_gt "$(info_get rd.ramdisk.stored_pages)" 0 "rd.ramdisk.stored_pages"
assert_eq "$(info_get rd.ramdisk.max_pages)" 16384 "rd.ramdisk.max_pages"
assert_eq "$(info_get stack.layer)" "error" "stack's top layer"
assert_gt "$(info_get stack.ramdisk.stored_pages)" 0 "stack.ramdisk.stored_pages"
assert_eq "$(info_get keep.layer)" "file" "keep.layer"
grep -q "fs rd: ramdisk: keeping at most 16384 pages" "$EMMD_LOG" ||
    fail "host->log line of the plug-in missing from emmd's log"
stop_emmd
