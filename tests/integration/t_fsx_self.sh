#!/bin/bash
# t_fsx_self.sh - the model-checking file tester (emmfsx) checks itself on a
# local file (the work dir from mktemp -d: tmpfs or the local disk), no FUSE:
#   - a clean run passes, and every op kind ran (a tester that exercises
#     nothing would pass vacuously);
#   - the same seed gives the same op sequence, another seed another one;
#   - -X N corrupts one byte of the model from op N on: the run must fail
#     (exit 1) with "BAD DATA", the seed and a replay line, the first bad range
#     and the op log; a fault injected early is caught by an op's own check,
#     before the final read-back;
#   - -x disables op kinds; bad usage exits 2.
. "$(dirname "$0")/lib.sh"
requires timeout
FSX=$(helper emmfsx)
D="$WORK/local"
mkdir -p "$D"

# a clean run, every kind exercised
fsx_run self "$D" 2 3000 "1 2"
fsx_check_counts "emmfsx on $(stat -f -c %T "$D")"

# determinism
"$FSX" -v -S 7 -N 500 "$D/a" | grep -E '^ *[0-9]+ ' >"$WORK/a.ops"
"$FSX" -v -S 7 -N 500 "$D/b" | grep -E '^ *[0-9]+ ' >"$WORK/b.ops"
"$FSX" -v -S 8 -N 500 "$D/c" | grep -E '^ *[0-9]+ ' >"$WORK/c.ops"
assert_eq "$(wc -l <"$WORK/a.ops")" 500 "ops printed by emmfsx -v -N 500"
cmp -s "$WORK/a.ops" "$WORK/b.ops" || fail "seed 7 twice gave two op sequences: $(diff "$WORK/a.ops" "$WORK/b.ops" | head -n 4)"
! cmp -s "$WORK/a.ops" "$WORK/c.ops" || fail "seeds 7 and 8 gave the same op sequence"

# fault injection: every position must be caught
for x in 1 50 500 2990; do
    rc=0
    "$FSX" -S 1 -N 3000 -X "$x" "$D/x$x" >"$WORK/x$x.out" 2>&1 || rc=$?
    out=$(cat "$WORK/x$x.out")
    assert_eq "$rc" 1 "exit status of emmfsx -X $x (a corrupted model)"
    assert_contains "$out" "BAD DATA" "emmfsx -X $x output"
    assert_contains "$out" "seed 1; replay: emmfsx -X $x -S 1 -N " "emmfsx -X $x output"
    assert_contains "$out" "first bad range:" "emmfsx -X $x output"
    assert_contains "$out" "LOG: the last" "emmfsx -X $x output"
    assert_contains "$out" "[FAULT -X]" "emmfsx -X $x op log"
    log "-X $x: $(grep -m1 'emmfsx: FAIL' "$WORK/x$x.out")"
    if [ "$x" -le 500 ]; then
        # caught by the op that read it, long before the last op's read-back
        case $out in
        *"FINAL READ BAD DATA"*) fail "emmfsx -X $x: the fault was only caught by the final read-back" ;;
        esac
    fi
done

# -x: disabled kinds do not run and are listed
out=$("$FSX" -S 3 -N 1000 -x punch,seek -x map "$D/d")
assert_contains "$out" "punch=0" "emmfsx -x punch counts"
assert_contains "$out" "seek=0" "emmfsx -x seek counts"
assert_contains "$out" "mapread=0 mapwrite=0 msync=0" "emmfsx -x map counts"
assert_contains "$out" "disabled: mapread mapwrite msync punch seek" "emmfsx -x disabled line"

# usage errors
rc=0; "$FSX" -x nosuchop "$D/e" 2>/dev/null || rc=$?
assert_eq "$rc" 2 "exit status of emmfsx -x nosuchop"
rc=0; "$FSX" -S 1 2>/dev/null || rc=$?
assert_eq "$rc" 2 "exit status of emmfsx without a file"
