#!/bin/bash
# t_emmctl_names.sh - any object name survives emmctl (issue 15, item 9, and the
# info comma item). Objects named "a b", "tab<TAB>here", "new<LF>line",
# 'quote"x', 'back\slash', a UTF-8 name and one with byte 0x01:
#   - `emmctl ls` prints one row per object, each name on its row, quoted with
#     C escapes where it needs it (so the columns hold);
#   - `emmctl ls --json` parses (python3 json) and gives back the exact names;
#   - `emmctl flush FS NAME` works on each (the name is quoted on the wire);
#   - a mountpoint holding commas (and "mountpoint=") reads back whole from
#     `emmctl info objects` (fs_NAME.mountpoint) and from `emmctl info --json`,
#     every info line is "# Section", "key:value" or blank.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3

MP="$WORK/mnt/n,mountpoint=x,comma" # (lib.sh reads mountinfo: no spaces)
mkdir -p "$MP"
CONF="$WORK/emmd.conf"
write_conf "$CONF" <<CONF_EOF
[fs n]
backend = memory
mountpoint = $MP
CONF_EOF
start_emmd "$CONF"

NAMES=("a b" $'tab\there' $'new\nline' 'quote"x' 'back\slash' $'caf\xc3\xa9 \xe2\x82\xac' $'ctl\x01char' plain)
for n in "${NAMES[@]}"; do
    printf 'data of %s\n' "$n" >"$MP/$n" || fail "creating object '$n'"
done
# a dirty page still in emmd for flush to push out
for n in "${NAMES[@]}"; do
    printf 'more\n' >>"$MP/$n"
done

# ls: a header and one row per object; odd names quoted, plain ones as they are
ls_out=$(ctl ls) || fail "emmctl ls exited non-zero"
log "emmctl ls:"; printf '%s\n' "$ls_out" | sed 's/^/#   /' >&2
assert_eq "$(printf '%s\n' "$ls_out" | wc -l)" $((1 + ${#NAMES[@]})) "emmctl ls lines (header + one per object)"
for q in '"a b"' '"tab\there"' '"new\nline"' '"quote\"x"' '"back\\slash"' \
    $'caf\xc3\xa9 \xe2\x82\xac' '"ctl\x01char"' ' plain '; do
    grep -qF -- "$q" <<<"$ls_out" || fail "emmctl ls: no row shows the name as $q"
done
# every row has the 8 columns (the quoted UTF-8 name aside, which holds a space
# but is quoted: count fields outside quotes)
bad=$(printf '%s\n' "$ls_out" | tail -n +2 | python3 -c '
import shlex, sys
for line in sys.stdin:
    line = line.rstrip("\n")
    # C escapes inside quotes never hold a bare quote: shlex splits like a shell
    f = shlex.split(line.replace("\\\"", "Q").replace("\\\\", "B"), posix=True)
    if len(f) != 8 or f[0] != "n":
        print(line)') || fail "checking ls columns"
[ -z "$bad" ] || fail "emmctl ls rows without 8 columns: $bad"

# ls --json: the exact names back (bytes, via surrogateescape)
ctl ls --json >"$WORK/ls.json" || fail "emmctl ls --json exited non-zero"
printf '%s\0' "${NAMES[@]}" >"$WORK/names"
python3 - "$WORK/ls.json" "$WORK/names" <<'PY' || fail "emmctl ls --json (see above)"
import json, sys
objs = json.load(open(sys.argv[1], encoding="utf-8"))
want = set(open(sys.argv[2], "rb").read().split(b"\0")[:-1])
got = {o["name"].encode("utf-8", "surrogateescape") for o in objs if o["fs"] == "n"}
if got != want:
    print("FAIL: ls --json names %r, expected %r" % (sorted(got), sorted(want)), file=sys.stderr)
    sys.exit(1)
for o in objs:
    for k, t in (("size", int), ("resident", int), ("stored", int), ("swap", int),
                 ("pager", str), ("state", str)):
        if not isinstance(o.get(k), t):
            print("FAIL: ls --json: %r has no %s of type %s" % (o, k, t.__name__), file=sys.stderr)
            sys.exit(1)
PY

# flush each by its exact name
for n in "${NAMES[@]}"; do
    o=$(ctl flush n "$n" 2>&1) || fail "emmctl flush n $(printf %q "$n"): $o"
    assert_contains "$o" "flushed n " "emmctl flush n $(printf %q "$n")"
done
rc=0; o=$(ctl flush n $'no\nsuch' 2>&1) || rc=$?
assert_eq "$rc" 1 "emmctl flush of a missing object: exit status"
assert_contains "$o" 'no object "no\nsuch" in fs n' "emmctl flush of a missing object"
for n in "${NAMES[@]}"; do
    assert_eq "$(cat "$MP/$n")" "$(printf 'data of %s\nmore' "$n")" "content of '$n' after flush"
done

# info: the mountpoint with its comma, whole; one field per key
assert_eq "$(ctl info objects | awk -F: '$1 == "fs_n.mountpoint" { sub(/^[^:]*:/, ""); print }')" "$MP" "fs_n.mountpoint"
assert_eq "$(info_get fs_n.objects)" ${#NAMES[@]} "fs_n.objects"
out=$(ctl info all)
bad=$(printf '%s\n' "$out" | grep -Ev '^(# [A-Z][A-Za-z]*|[A-Za-z0-9_.-]+:.*|)$' || true)
[ -z "$bad" ] || fail "emmctl info: lines that are neither '# Section' nor 'key:value': $bad"
ctl info --json >"$WORK/info.json" || fail "emmctl info --json exited non-zero"
ctl info --json objects >"$WORK/info-objects.json" || fail "emmctl info --json objects exited non-zero"
python3 - "$WORK/info.json" "$WORK/info-objects.json" "$MP" "$EMMD_PID" <<'PY' || fail "emmctl info --json (see above)"
import json, sys
info = json.load(open(sys.argv[1]))
objs = json.load(open(sys.argv[2]))
def bad(m):
    print("FAIL: " + m, file=sys.stderr)
    sys.exit(1)
if sorted(info) != sorted(["Server", "Memory", "Objects", "Pagers", "Faults"]):
    bad("info --json sections: %r" % sorted(info))
if list(objs) != ["Objects"]:
    bad("info --json objects sections: %r" % list(objs))
if info["Objects"]["fs_n.mountpoint"] != sys.argv[3] or objs["Objects"]["fs_n.mountpoint"] != sys.argv[3]:
    bad("fs_n.mountpoint: %r" % info["Objects"]["fs_n.mountpoint"])
if info["Server"]["pid"] != int(sys.argv[4]):
    bad("Server.pid: %r" % info["Server"]["pid"])
if not isinstance(info["Memory"]["resident_pages"], int):
    bad("Memory.resident_pages is not a number")
if info["Pagers"]["pager_n.mode"] not in ("inline", "threaded"):
    bad("Pagers.pager_n.mode: %r" % info["Pagers"].get("pager_n.mode"))
PY

# bad words are refused by the daemon with the offset, and it goes on
o=$(printf 'flush n "unterminated\n' | python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.makefile("rb").read().decode(), end="")' "$SOCK")
assert_eq "$o" "error: unterminated quote opened at offset 8" "reply to an unterminated quote"
assert_eq "$(ctl ping)" pong "ping after bad requests"

stop_emmd
