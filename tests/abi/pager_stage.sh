# pager_stage.sh - sourced by the ABI tests of the external pager: stage a
# `cmake --install` of this build under $WORK/stage, build
# examples/unlock-pager out of tree against it with pkg-config alone, and run
# it as its own process on a Unix socket. Needs lib.sh sourced first and
# EMM_BUILD set.
#
# stage_install NAMES...: sets S_<NAME> for each of PC HDR LIB DOC EX EMMD EMMCTL
#   asked for, failing if the install lacks one.
# build_unlock_pager: copies the staged example to $WORK/unlock and builds it
#   (as an ASan build when libemm-pager is one).
# start_unlock_pager STORE ARGS...: starts it on $SOCKP (mode 0600 checked),
#   sets PAGER_PID. stop_pager: SIGTERM to it; it must exit 0.

STAGE="$WORK/stage"
SOCKP="$WORK/pager.sock"
PAGER_PID=""

staged() { find "$STAGE" -path "$1" -print -quit; }

stage_install() {
    DESTDIR="$STAGE" "${EMM_CMAKE:-cmake}" --install "$EMM_BUILD" >"$WORK/install.log" 2>&1 ||
        { cat "$WORK/install.log" >&2; fail "cmake --install into DESTDIR=$STAGE failed"; }
    local name pattern
    for name in "$@"; do
        case $name in
        PC) pattern='*/pkgconfig/emm-pager.pc' ;;
        HDR) pattern='*/include/emm/pager.h' ;;
        LIB) pattern='*/libemm-pager.so.1' ;;
        DOC) pattern='*/doc/emm/emm-pager.md' ;;
        EX) pattern='*/doc/emm/examples/unlock-pager/unlock-pager.c' ;;
        EMMD) pattern='*/sbin/emmd' ;;
        EMMCTL) pattern='*/bin/emmctl' ;;
        *) fail "stage_install: unknown name $name" ;;
        esac
        printf -v "S_$name" '%s' "$(staged "$pattern")"
        local var="S_$name"
        [ -n "${!var}" ] || fail "cmake --install did not install $name (see $WORK/install.log)"
    done
}

build_unlock_pager() {
    cp -r "$(dirname "$S_EX")" "$WORK/unlock"
    rm -f "$WORK/unlock/unlock-pager"
    # A sanitizer build's library needs its runtime first: build the example the same way.
    local mkflags=()
    if objdump -p "$S_LIB" | grep -q 'NEEDED *libasan'; then
        mkflags=(CFLAGS="-O1 -g -fsanitize=address,undefined")
        log "libemm-pager is an ASan build: so is the example"
    fi
    PKG_CONFIG_LIBDIR="$(dirname "$S_PC")" PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR="$STAGE" \
        make -C "$WORK/unlock" "${mkflags[@]+"${mkflags[@]}"}" >"$WORK/make.log" 2>&1 ||
        { cat "$WORK/make.log" >&2; fail "the example does not build against the staged install"; }
    objdump -p "$WORK/unlock/unlock-pager" | grep -q 'NEEDED *libemm-pager.so.1' ||
        fail "unlock-pager is not linked against libemm-pager.so.1"
}

start_unlock_pager() {
    local store=$1
    shift
    LD_LIBRARY_PATH="$(dirname "$S_LIB")" "$WORK/unlock/unlock-pager" -s "$SOCKP" -d "$store" "$@" \
        2>"$WORK/pager.log" &
    PAGER_PID=$!
    for _ in $(seq 1 1000); do
        [ -S "$SOCKP" ] && break
        kill -0 "$PAGER_PID" 2>/dev/null || { cat "$WORK/pager.log" >&2; fail "unlock-pager died"; }
        sleep 0.01
    done
    [ -S "$SOCKP" ] || fail "unlock-pager made no socket at $SOCKP"
    [ "$(stat -c %a "$SOCKP")" = 600 ] || fail "the pager socket is mode $(stat -c %a "$SOCKP"), not 600"
}

stop_pager() {
    [ -n "$PAGER_PID" ] || return 0
    local pid=$PAGER_PID rc=0
    PAGER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    [ $rc = 0 ] || { cat "$WORK/pager.log" >&2; fail "unlock-pager exited with status $rc on SIGTERM"; }
}
