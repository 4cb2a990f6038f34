#!/bin/bash
# t_plugin_abi.sh - emmd refuses a broken backend plug-in with a message naming
# the file and the reason, exits 1 and mounts nothing: a wrong api_version, no
# emm_backend_init, a required op missing, a file that is not a shared object.
# Then the plug-in search: a bare name found nowhere lists the directories
# searched; [emmd] plugin-dir and $EMM_PLUGIN_DIR replace the default
# directories; with neither, `backend = file` finds the build's lib/emm/file.so
# next to bin/emmd. Needs cc (exit 77 without it); FUSE is not needed.
. "$(dirname "$0")/lib.sh"
requires cc
need_emm
unset EMM_PLUGIN_DIR
INC="$EMM_SRC/emm/include"
SO="$WORK/so"
mkdir -p "$SO"

# build NAME <<EOF C source EOF: compiles $SO/NAME.so against the public header.
build() {
    cat >"$SO/$1.c"
    cc -std=c11 -Wall -Werror -fPIC -shared -I"$INC" -o "$SO/$1.so" "$SO/$1.c" ||
        fail "cannot build test plug-in $1"
}

build badver <<'C_EOF'
#include <emm/backend.h>
static struct emm_backend_ops ops = {.name = "badver"};
__attribute__((visibility("default"))) const struct emm_backend_ops *emm_backend_init(void);
const struct emm_backend_ops *emm_backend_init(void)
{
    ops.struct_size = sizeof(ops);
    ops.api_version = EMM_BACKEND_API_VERSION + 98;
    return &ops;
}
C_EOF

build noinit <<'C_EOF'
#include <emm/backend.h>
int emm_backend_init_v2(void);
int emm_backend_init_v2(void) { return 0; }
C_EOF

build noread <<'C_EOF'
#include <emm/backend.h>
static int cr(const struct emm_backend_host *h, void **i) { (void)h; *i = 0; return 0; }
static struct emm_backend_ops ops = {.name = "noread", .create = cr};
EMM_BACKEND_REGISTER(ops, EMM_THREAD_SERIAL)
C_EOF

build good <<'C_EOF'
#include <emm/backend.h>
#include <string.h>
static int cr(const struct emm_backend_host *h, void **i) { *i = (void *)h; return 0; }
static int rd(void *i, uint64_t o, uint64_t f, uint32_t n, void *b, uint8_t *p)
{ (void)i; (void)o; (void)f; memset(b, 0, (size_t)n * EMM_PAGE_SIZE); memset(p, 0, n); return 0; }
static int wr(void *i, uint64_t o, uint64_t f, uint32_t n, const void *b)
{ (void)i; (void)o; (void)f; (void)n; (void)b; return 0; }
static struct emm_backend_ops ops = {.name = "good", .create = cr, .read_pages = rd,
                                     .write_pages = wr};
EMM_BACKEND_REGISTER(ops, EMM_THREAD_SERIAL)
C_EOF

echo "not a shared object" >"$SO/junk.so"

# conf_for SPEC [KEY=VALUE...]: writes a one-filesystem config using backend SPEC
# (a new file each time, kept for EMM_KEEP=1) and sets CONF to its path.
N=0
conf_for() {
    local spec=$1
    shift
    N=$((N + 1))
    CONF="$WORK/c$N.conf"
    write_conf "$CONF" "$@" <<CONF_EOF
[fs t]
backend = $spec
CONF_EOF
}

# refused SPEC WANT [KEY=VALUE...]: emmd -n exits 1 with "CONF:LINE: WANT"; so does
# a real start (emmd -f), before mounting anything.
refused() {
    local spec=$1 want=$2 conf out rc line
    shift 2
    conf_for "$spec" "$@"
    conf=$CONF
    line=$(grep -n '^backend = ' "$conf" | cut -d: -f1)
    rc=0
    out=$("$EMMD" -n -c "$conf" 2>&1) || rc=$?
    assert_eq "$rc" 1 "emmd -n status for backend = $spec"
    assert_contains "$out" "emmd: $conf:$line: $want" "emmd -n message for backend = $spec"
    rc=0
    out=$(timeout 20 "$EMMD" -f -c "$conf" </dev/null 2>&1) || rc=$?
    assert_eq "$rc" 1 "emmd -f status for backend = $spec"
    assert_contains "$out" "$conf:$line: $want" "emmd -f message for backend = $spec"
    assert_eq "$(mounts_under "$WORK")" "" "mounts under $WORK after backend = $spec"
    log "refused: backend = $spec: ${out#emmd: }"
}

# accepted SPEC [KEY=VALUE...]: emmd -n says the configuration is OK.
accepted() {
    local spec=$1 conf out
    shift
    conf_for "$spec" "$@"
    conf=$CONF
    out=$("$EMMD" -n -c "$conf" 2>&1) || fail "emmd -n rejects backend = $spec: $out"
    assert_contains "$out" "configuration OK (1 filesystems)" "emmd -n for backend = $spec"
}

# ---- broken plug-ins, named by path ----
refused "$SO/badver.so" "$SO/badver.so: api_version 99 is not supported (this emm speaks 1)"
refused "$SO/noinit.so" "$SO/noinit.so: no symbol emm_backend_init"
refused "$SO/noread.so" "$SO/noread.so: name, create, read_pages and write_pages are required"
refused "$SO/junk.so" "cannot load plug-in: $SO/junk.so"
refused "$SO/missing.so" "cannot load plug-in: $SO/missing.so"
# ... and found by name: the same errors name the file found.
refused "plugin:badver" "$SO/badver.so: api_version 99 is not supported" "plugin-dir=$SO"
refused "noinit" "$SO/noinit.so: no symbol emm_backend_init" "plugin-dir=$SO"

# ---- the search ----
DEFAULT_DIR=$(cd "$EMM_BIN/.." && pwd -P)/lib/emm
refused "nosuch" "unknown backend 'nosuch' (not built in; no nosuch.so in $DEFAULT_DIR, "
refused "plugin:nosuch" "unknown backend 'plugin:nosuch' (no nosuch.so in $DEFAULT_DIR, "
refused "plugin:../x" "bad plug-in name '../x'"
accepted "file"                                    # EXE_DIR/../lib/emm/file.so
accepted "error:file" "plugin-dir=$DEFAULT_DIR"
accepted "good" "plugin-dir=$SO"
accepted "error:plugin:good" "plugin-dir=$SO"
refused "file" "unknown backend 'file' (not built in; no file.so in $SO)" "plugin-dir=$SO"
export EMM_PLUGIN_DIR="$SO"
accepted "good"
refused "file" "unknown backend 'file' (not built in; no file.so in $SO)"
accepted "file" "plugin-dir=$DEFAULT_DIR"          # plugin-dir wins over the environment
unset EMM_PLUGIN_DIR
