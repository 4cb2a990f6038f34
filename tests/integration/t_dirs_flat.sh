#!/bin/bash
# t_dirs_flat.sh - a state directory from before directories still opens. An
# lmdb filesystem is written, stopped, and its environment rewritten with
# mdb_dump/mdb_load into the old flat layout (catalog format 1, version-1
# records without parent and type, no root record); emmd then upgrades it:
# the objects are in the root with their data, sizes and modes, the log says
# so, directories can be made, and everything survives one more restart.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires mdb_dump mdb_load python3 cmp

CONF="$WORK/emmd.conf"
write_conf "$CONF" <<'CONF_EOF'
[fs disk]
backend = lmdb
CONF_EOF
D="$MNT/disk"
ENV="$STATE/fs/disk/lmdb"

start_emmd "$CONF"
gen_src "$WORK/big" 2 11
cp "$WORK/big" "$D/big"
echo hello >"$D/small"
chmod 0600 "$D/small"
stop_emmd

# the old layout, by hand
mdb_dump -a "$ENV" >"$WORK/dump" || fail "mdb_dump of $ENV"
python3 - "$WORK/dump" "$WORK/flat" <<'PY' || fail "rewriting the dump as format 1"
import sys
lines = open(sys.argv[1]).read().split("\n")
out, db, i = [], None, 0
while i < len(lines):
    l = lines[i]
    if l.startswith("database="):
        db = l[len("database="):]
    if l.startswith(" ") and i + 1 < len(lines) and lines[i + 1].startswith(" "):
        k, v = l[1:], bytes.fromhex(lines[i + 1][1:])
        if db == "catalog":
            if int(k, 16) == 0:
                i += 2                      # no root record in a flat catalog
                continue
            assert int.from_bytes(v[0:4], "little") == 2, "not a version-2 record"
            payload = v[8:8 + 56] + v[8 + 68:]  # without parent and type
            assert int.from_bytes(v[8 + 64:8 + 68], "little") == 0, "not a file"
            v = (1).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload
        if db == "catalog.meta" and bytes.fromhex(k) == b"format":
            v = (1).to_bytes(4, "little")
        out += [" " + k, " " + v.hex()]
        i += 2
        continue
    out.append(l)
    i += 1
open(sys.argv[2], "w").write("\n".join(out))
PY
mkdir "$WORK/newenv"
mdb_load -f "$WORK/flat" "$WORK/newenv" || fail "mdb_load of the flat dump"
mv "$WORK/newenv/data.mdb" "$ENV/data.mdb"
rm -f "$ENV/lock.mdb"
mdb_dump -s catalog.meta "$ENV" | grep -A1 '^ 666f726d6174$' | grep -q '^ 01000000$' ||
    fail "the rewritten environment is not format 1"

start_emmd "$CONF"
grep -q "upgraded from format 1 (flat namespace) to 2: 2 records" "$EMMD_LOG" ||
    fail "emmd did not log the upgrade of the flat catalog"
assert_eq "$(ls "$D" | tr '\n' ' ')" "big small " "names after the upgrade"
cmp "$WORK/big" "$D/big" || fail "big differs after the upgrade"
assert_eq "$(cat "$D/small")" hello "small after the upgrade"
assert_eq "$(stat -c %a "$D/small")" 600 "mode of small after the upgrade"
mkdir -p "$D/now/with/dirs"
mv "$D/small" "$D/now/with/dirs/"
stop_emmd

start_emmd "$CONF"
grep -c "upgraded from format" "$EMMD_LOG" | grep -qx 1 || fail "the catalog was upgraded twice"
assert_eq "$(cat "$D/now/with/dirs/small")" hello "small in its directory after a restart"
cmp "$WORK/big" "$D/big" || fail "big differs after a restart"
stop_emmd
