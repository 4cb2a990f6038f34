#!/bin/bash
# t_emmctl.sh - emmctl info prints its sections and keys, and the numbers move
# with I/O; `info SECTION` prints one section; ls lists every object with its
# filesystem, name and size; -c CONFIG finds the socket; a bad socket is exit 1;
# the control socket is mode 0600.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=48M" <<'CONF_EOF'
[fs one]
backend = memory

[fs two]
backend = memory
CONF_EOF
start_emmd "$CONF"

# the socket
[ -S "$SOCK" ] || fail "control socket $SOCK missing"
assert_eq "$(stat -c %a "$SOCK")" 600 "control socket mode"

# every section, every key the contract names, each a number
out=$(ctl info) || fail "emmctl info exited non-zero"
log "emmctl info:"; printf '%s\n' "$out" | sed 's/^/#   /' >&2
for s in Server Memory Objects Pagers Faults; do
    grep -qx "# $s" <<<"$out" || fail "emmctl info has no '# $s' section"
done
# key_in SECTION KEY: KEY appears inside SECTION
key_in() {
    printf '%s\n' "$out" | awk -v s="# $1" -v k="$2" '
        /^# / { cur = $0; next }
        cur == s && index($0, k ":") == 1 { f = 1 } END { exit !f }' ||
        fail "emmctl info: no key '$2' in section '# $1'"
}
for k in pid filesystems; do key_in Server $k; done
for k in resident_limit_bytes resident_pages dirty_pages free_pages; do key_in Memory $k; done
key_in Objects objects
for k in data_requests data_supplies data_unavailable data_errors data_returns; do key_in Faults $k; done
for k in pid filesystems resident_limit_bytes resident_pages dirty_pages free_pages objects \
    data_requests data_supplies data_unavailable data_errors data_returns; do
    v=$(info_get $k)
    case "$v" in *[!0-9]* | '') fail "emmctl info: $k is '$v', not a number" ;; esac
done
# lines are "# Section", "key:value" or blank
bad=$(printf '%s\n' "$out" | grep -Ev '^(# [A-Z][A-Za-z]*|[A-Za-z0-9_.-]+:.*|)$' || true)
[ -z "$bad" ] || fail "emmctl info: lines that are neither '# Section' nor 'key:value': $bad"

assert_eq "$(info_get pid)" "$EMMD_PID" "info pid"
assert_eq "$(info_get filesystems)" 2 "info filesystems"
assert_eq "$(info_get resident_limit_bytes)" $((48 << 20)) "info resident_limit_bytes"
assert_eq "$(info_get objects)" 0 "info objects before any I/O"

# numbers move with I/O
req0=$(info_get data_requests)
sup0=$(( $(info_get data_supplies) + $(info_get data_unavailable) ))
res0=$(info_get resident_pages)
"$IO" fill -y "$MNT/one/a" 0 $((8 << 20)) 91
"$IO" fill -y "$MNT/two/b" 0 $((1 << 20)) 92
"$IO" truncate "$MNT/two/c" 64M
"$IO" zero "$MNT/two/c" $((32 << 20)) $((4 << 20))    # faults on pages never written
assert_eq "$(info_get objects)" 3 "info objects after creating 3"
assert_gt "$(info_get data_requests)" "$req0" "data_requests after reading fresh pages"
assert_gt "$(( $(info_get data_supplies) + $(info_get data_unavailable) ))" "$sup0" "data_supplies + data_unavailable after reading fresh pages"
res1=$(info_get resident_pages)
assert_gt "$res1" "$res0" "resident_pages after writing 9 MiB"
log "resident_pages $res0 -> $res1"
free=$(info_get free_pages)
[ $((res1 + free)) -le $(((48 << 20) / 4096)) ] || fail "resident_pages + free_pages ($res1 + $free) exceed the limit"

# info SECTION prints that section only
for pair in memory:Memory faults:Faults server:Server objects:Objects pagers:Pagers; do
    sec=${pair%%:*} title=${pair#*:}
    o=$(ctl info "$sec") || fail "emmctl info $sec exited non-zero"
    grep -qx "# $title" <<<"$o" || fail "emmctl info $sec has no '# $title'"
    n=$(printf '%s\n' "$o" | grep -c '^# ' || true)
    assert_eq "$n" 1 "number of sections printed by 'emmctl info $sec'"
done

# ls: a header then one row per object: FS NAME SIZE RESIDENT STORED SWAP PAGER STATE
ls_out=$(ctl ls) || fail "emmctl ls exited non-zero"
log "emmctl ls:"; printf '%s\n' "$ls_out" | sed 's/^/#   /' >&2
hdr=$(printf '%s\n' "$ls_out" | head -1 | awk '{ $1 = $1; print }')
assert_eq "$hdr" "FS NAME SIZE RESIDENT STORED SWAP PAGER STATE" "emmctl ls header"
assert_eq "$(printf '%s\n' "$ls_out" | tail -n +2 | grep -c .)" 3 "emmctl ls rows"
row() { printf '%s\n' "$ls_out" | awk -v fs="$1" -v n="$2" 'NR > 1 && $1 == fs && $2 == n { print; exit }'; }
for o in one:a:$((8 << 20)) two:b:$((1 << 20)) two:c:$((64 << 20)); do
    IFS=: read -r fs name size <<<"$o"
    r=$(row "$fs" "$name")
    [ -n "$r" ] || fail "emmctl ls: no row for $fs $name"
    state=$(awk '{ print $NF }' <<<"$r")
    assert_eq "$state" ready "STATE of $fs/$name"
    # SIZE may be printed in bytes or human units: accept the byte count, or a
    # human form that converts back within rounding
    sz=$(awk '{ print $3 }' <<<"$r")
    if [ "$sz" != "$size" ]; then
        b=$(numfmt --from=iec "${sz%B}" 2>/dev/null || numfmt --from=auto "${sz%B}" 2>/dev/null || echo -1)
        [ "$b" -ge $((size * 99 / 100)) ] && [ "$b" -le $((size * 101 / 100)) ] ||
            fail "emmctl ls SIZE of $fs/$name is '$sz', expected $size bytes"
    fi
done
rm "$MNT/two/b"
ls_out=$(ctl ls)
[ -z "$(row two b)" ] || fail "emmctl ls still lists two/b after rm"
assert_eq "$(info_get objects)" 2 "info objects after rm"

# -c CONFIG finds the socket
o=$("$EMMCTL" -c "$CONF" info memory) || fail "emmctl -c CONF info memory"
assert_contains "$o" "resident_limit_bytes:" "emmctl -c CONF info memory"

# bad socket: exit 1 and a message
rc=0; o=$("$EMMCTL" -s "$WORK/no-such.sock" info 2>&1) || rc=$?
assert_eq "$rc" 1 "emmctl on a missing socket: exit status"
[ -n "$o" ] || fail "emmctl on a missing socket printed nothing"
: >"$WORK/not-a-socket"
rc=0; "$EMMCTL" -s "$WORK/not-a-socket" info >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 1 "emmctl on a regular file as socket: exit status"
# unknown verb / unknown section: non-zero, emmd unharmed
rc=0; "$EMMCTL" -s "$SOCK" no-such-verb >/dev/null 2>&1 || rc=$?
assert_ne "$rc" 0 "emmctl with an unknown verb: exit status"
rc=0; "$EMMCTL" -s "$SOCK" info no-such-section >/dev/null 2>&1 || rc=$?
assert_ne "$rc" 0 "emmctl info with an unknown section: exit status"
emmd_alive || fail "emmd died after bad emmctl requests"
ctl info >/dev/null || fail "emmctl info after bad requests"

stop_emmd
[ ! -e "$SOCK" ] || fail "control socket still exists after emmd stopped"
rc=0; "$EMMCTL" -s "$SOCK" info >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 1 "emmctl after emmd stopped: exit status"
