#!/bin/bash
# t_header.sh - <emm/backend.h> stands alone, like nbdkit's test-just-plugin-header:
# abi_layout.c (the header plus static assertions on every ABI field) compiles
# as strict C11 (-std=c11 -pedantic -Werror and emm's warning set) and as C++11
# with g++ (skipped if absent), each into a plug-in whose only export is the
# unmangled emm_backend_init. Needs cc and nm (else exit 77).
. "$(dirname "$0")/../integration/lib.sh"
requires cc nm

INC="$EMM_SRC/emm/include"
SRC="$EMM_SRC/tests/abi/abi_layout.c"
WARN=(-Wall -Wextra -Werror -pedantic -Wshadow -Wvla -Wformat=2)

# exports SO: the dynamic symbols SO defines, one a line, sorted.
exports() { nm -D --defined-only "$1" | awk '{ print $NF }' | sort; }

# Only the public header: compile from a directory with nothing else in it.
cd "$WORK"
cc -std=c11 "${WARN[@]}" -Wstrict-prototypes -Wmissing-prototypes -I"$INC" \
    -fPIC -fvisibility=hidden -shared "$SRC" -o c11.so ||
    fail "abi_layout.c does not compile as C11 with only <emm/backend.h>"
assert_eq "$(exports c11.so)" "emm_backend_init" "exports of the C11 plug-in"
log "C11: ok"

if command -v g++ >/dev/null 2>&1; then
    g++ -std=c++11 "${WARN[@]}" -I"$INC" -fPIC -fvisibility=hidden -shared -x c++ "$SRC" \
        -o cxx.so || fail "abi_layout.c does not compile as C++11"
    assert_eq "$(exports cxx.so)" "emm_backend_init" \
        "exports of the C++ plug-in (EMM_BACKEND_REGISTER must give C linkage)"
    log "C++11: ok"
else
    log "g++ not found: C++ check skipped"
fi
