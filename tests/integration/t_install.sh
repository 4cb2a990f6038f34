#!/bin/bash
# t_install.sh - `cmake --install` (what `make install` runs) into a DESTDIR
# puts in place everything the README lists: emmd, emmswap, emmctl, the
# plug-in, the manual pages, emmd.service, the default configuration, the
# example configurations, emmctl's bash completion, backend.h and
# emm-backend.pc, and libemm-client (header, library, emm-client.pc). A second
# install keeps a configuration the user changed. A program built against the
# installed libemm-client with pkg-config alone links, and reports a missing
# daemon. The installed bash completion completes emmctl's commands. Needs no
# FUSE and no root.
. "$(dirname "$0")/lib.sh"
need_emm
requires cmake pkg-config cc
BUILD=$(cd "$EMM_BIN/.." && pwd)
[ -f "$BUILD/cmake_install.cmake" ] || fail "$BUILD is not a CMake build directory"
PREFIX=$(awk -F= '/^CMAKE_INSTALL_PREFIX:/ { print $2 }' "$BUILD/CMakeCache.txt")
[ -n "$PREFIX" ] || fail "no CMAKE_INSTALL_PREFIX in $BUILD/CMakeCache.txt"
D="$WORK/root"

DESTDIR="$D" cmake --install "$BUILD" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log" >&2; fail "cmake --install failed"; }
R="$D$PREFIX"
ETC=$(awk -F= '/^CMAKE_INSTALL_SYSCONFDIR:/ { print $2 }' "$BUILD/CMakeCache.txt")
case "$ETC" in /*) ETC="$D$ETC" ;; *) ETC="$R/$ETC" ;; esac
libdir=$(awk -F= '/^CMAKE_INSTALL_LIBDIR:/ { print $2 }' "$BUILD/CMakeCache.txt")

want=(
    sbin/emmd sbin/emmswap bin/emmctl
    "$libdir/emm/file.so"
    share/man/man8/emmd.8 share/man/man8/emmctl.8 share/man/man8/emmswap.8
    share/man/man5/emm.conf.5 share/man/man3/emm-backend.3
    lib/systemd/system/emmd.service
    share/bash-completion/completions/emmctl
    share/doc/emm/examples/conf/emmd.conf share/doc/emm/examples/conf/example.conf
    share/doc/emm/examples/conf/quickstart.conf share/doc/emm/README.md
    include/emm/backend.h include/emm/ctl_client.h include/emm/ctl_wire.h
    "$libdir/libemm-client.a" "$libdir/pkgconfig/emm-client.pc" "$libdir/pkgconfig/emm-backend.pc"
)
for f in "${want[@]}"; do
    [ -e "$R/$f" ] || fail "make install did not install $PREFIX/$f"
done
[ -f "$ETC/emm/emmd.conf" ] || fail "the default configuration $ETC/emm/emmd.conf was not installed"
for b in sbin/emmd sbin/emmswap bin/emmctl; do
    [ -x "$R/$b" ] || fail "$PREFIX/$b is not executable"
done
# the README lists each of them
for what in emmd.service emm.conf.5 bash-completion libemm-client emm-client.pc emm-backend.pc emmswap; do
    grep -q "$what" "$EMM_SRC/README.md" || fail "README.md does not list $what among what is installed"
done
# the installed configuration and unit agree with each other and are valid
unit="$R/lib/systemd/system/emmd.service"
grep -q "^ExecStart=$PREFIX/sbin/emmd -f -c ${ETC#$D}/emm/emmd.conf\$" "$unit" ||
    fail "emmd.service does not start the installed emmd with the installed config: $(grep ExecStart "$unit")"
"$EMM_BIN/emmd" --dump-config -c "$ETC/emm/emmd.conf" >/dev/null || fail "the installed emmd.conf does not parse"

# a second install keeps the user's configuration
echo "; changed by the user" >>"$ETC/emm/emmd.conf"
sum=$(sha "$ETC/emm/emmd.conf")
DESTDIR="$D" cmake --install "$BUILD" >"$WORK/install2.log" 2>&1 || fail "the second cmake --install failed"
assert_eq "$(sha "$ETC/emm/emmd.conf")" "$sum" "the user's emmd.conf after a second install"

# a client of libemm-client, built with pkg-config alone
cat >"$WORK/client.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctl_client.h>

int main(int argc, char **argv)
{
    char *verb[] = {"ping"};
    char *body = NULL, *err = NULL;
    int rc = ctl_request(argc > 1 ? argv[1] : "/nonexistent", 1, verb, &body, &err);
    printf("rc=%d err=%s\n", rc, err ? err : "");
    free(body);
    free(err);
    return rc == 0 ? 0 : 1;
}
EOF
export PKG_CONFIG_SYSROOT_DIR="$D" PKG_CONFIG_LIBDIR="$R/$libdir/pkgconfig"
cflags=$(pkg-config --cflags emm-client) || fail "pkg-config --cflags emm-client"
libs=$(pkg-config --libs emm-client) || fail "pkg-config --libs emm-client"
# a sanitizer build installs an instrumented library: link the runtime too
san=""
case "$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$BUILD/CMakeCache.txt")" in
Asan) san="-fsanitize=address,undefined" ;;
Tsan) san="-fsanitize=thread" ;;
esac
cc $san $cflags "$WORK/client.c" -o "$WORK/client" $libs || fail "building against libemm-client ($cflags $libs)"
rc=0
out=$("$WORK/client" "$WORK/none.sock") || rc=$?
assert_eq "$rc" 1 "the client's status without a daemon"
assert_contains "$out" "connect" "the client's error"

# bash completion: the commands, and info's sections
if command -v bash >/dev/null; then
    got=$(bash -c '. "$1"; COMP_WORDS=(emmctl f); COMP_CWORD=1; _emmctl; echo "${COMPREPLY[*]}"' _ \
        "$R/share/bash-completion/completions/emmctl")
    assert_eq "$got" "flush" "completion of 'emmctl f'"
    got=$(bash -c '. "$1"; COMP_WORDS=(emmctl -s x info me); COMP_CWORD=4; _emmctl; echo "${COMPREPLY[*]}"' _ \
        "$R/share/bash-completion/completions/emmctl")
    assert_eq "$got" "memory" "completion of 'emmctl -s x info me'"
fi
log "ok: $(find "$D" -type f | wc -l) files installed under $D"
