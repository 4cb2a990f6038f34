#!/bin/bash
# t_pager_header.sh - <emm/pager.h> stands alone: abi_pager_layout.c (the header
# plus static assertions on every public field, the wire header and every
# function's type) compiles as strict C11 (-std=c11 -pedantic -Werror and
# emm's warning set) and as C++11 with g++ (skipped if absent), from a
# directory holding nothing else. Then the built libemm-pager must export
# exactly the functions the header declares (nothing of emm-ipc or emm-base),
# under the version node EMM_PAGER_1. Needs cc and nm (else exit 77).
. "$(dirname "$0")/../integration/lib.sh"
requires cc nm
[ -n "${EMM_BUILD:-}" ] || fail "EMM_BUILD (the build tree) is not set"

INC="$EMM_SRC/emm/include"
SRC="$EMM_SRC/tests/abi/abi_pager_layout.c"
HDR="$INC/emm/pager.h"
WARN=(-Wall -Wextra -Werror -pedantic -Wshadow -Wvla -Wformat=2)

cd "$WORK"
cc -std=c11 "${WARN[@]}" -Wstrict-prototypes -Wmissing-prototypes -I"$INC" \
    -fPIC -fvisibility=hidden -c "$SRC" -o c11.o ||
    fail "abi_pager_layout.c does not compile as C11 with only <emm/pager.h>"
log "C11: ok"
if command -v g++ >/dev/null 2>&1; then
    g++ -std=c++11 "${WARN[@]}" -I"$INC" -fPIC -c -x c++ "$SRC" -o cxx.o ||
        fail "abi_pager_layout.c does not compile as C++11"
    nm cxx.o | grep -q ' T abi_pager_ops$' ||
        fail "the C++ build lost C linkage (extern \"C\" in <emm/pager.h>)"
    log "C++11: ok"
else
    log "g++ not found: C++ check skipped"
fi

# The library's exports are the header's functions, no more, no less.
LIB="$EMM_BUILD/lib/libemm-pager.so"
[ -f "$LIB" ] || fail "$LIB was not built"
declared=$(grep -oE '\bemm_pager_[a-z_]+\(' "$HDR" | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$LIB" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u)
assert_eq "$exported" "$declared" "libemm-pager's exports against <emm/pager.h>'s functions"
nm -D --defined-only "$LIB" | grep -q ' T emm_pager_create@@EMM_PAGER_1$' ||
    fail "emm_pager_create is not under the version node EMM_PAGER_1"
soname=$(objdump -p "$LIB" 2>/dev/null | awk '/SONAME/ { print $2 }')
[ -z "$soname" ] || assert_eq "$soname" "libemm-pager.so.1" "SONAME"
log "exports: $(echo "$exported" | wc -l) functions"
