#!/bin/bash
# t_persist.sh - the file backend keeps objects across a clean restart of emmd
# (same state-dir): names, sizes, holes and contents come back identical, a
# rename and an unlink done before the stop stick, and a second cycle (write
# after restart, restart again) keeps the new data too.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=32M" <<'CONF_EOF'
[fs keep]
backend = file
CONF_EOF
D="$MNT/keep"

# snapshot: "name size sha256" for every object, sorted
snapshot() {
    local f
    for f in "$D"/*; do
        [ -e "$f" ] || continue
        printf '%s %s %s\n' "$(basename "$f")" "$(fsize "$f")" "$(sha "$f")"
    done | sort
}

start_emmd "$CONF"
"$IO" fill -y "$D/big" 0 $((48 << 20)) 51             # bigger than resident-limit
"$IO" fill -y "$D/odd" 0 12345 52                      # not page aligned
: >"$D/empty"                                           # zero bytes
"$IO" truncate "$D/sparse" 1G                           # sparse, two islands
"$IO" fill -y "$D/sparse" $((100 << 20)) 8192 53
"$IO" fill -y "$D/sparse" $(((1 << 30) - 4096)) 4096 54
"$IO" fill -y "$D/mmapped" 0 $((4 << 20)) 55
"$IO" fill -m -y "$D/mmapped" $((1 << 20)) $((1 << 20)) 56  # overwrite the 2nd MiB via mmap + msync
"$IO" fill -y "$D/to-rename" 0 65536 57
mv "$D/to-rename" "$D/renamed"
"$IO" fill -y "$D/to-delete" 0 65536 58
rm "$D/to-delete"
sync -f "$D/big" 2>/dev/null || true
sparse_blocks=$(fblocks "$D/sparse")     # before anything reads the holes
assert_eq "$sparse_blocks" 24 "st_blocks of the sparse object (3 pages written)"
before=$(snapshot)
log "before stop:"; printf '%s\n' "$before" | sed 's/^/#   /' >&2
assert_eq "$(printf '%s\n' "$before" | awk '{ print $1 }' | tr '\n' ' ')" "big empty mmapped odd renamed sparse " "names before stop"
stop_emmd

[ -n "$(ls -A "$STATE")" ] || fail "state-dir $STATE is empty after a clean stop of a file backend"

start_emmd "$CONF"
assert_eq "$(fblocks "$D/sparse")" "$sparse_blocks" "st_blocks of the sparse object after restart"
after=$(snapshot)
log "after restart:"; printf '%s\n' "$after" | sed 's/^/#   /' >&2
assert_eq "$after" "$before" "names, sizes and sha256 after restart"
# contents against the generator too (not only against themselves)
"$IO" check "$D/big" 0 $((48 << 20)) 51 || fail "big after restart"
"$IO" check -m "$D/big" $((40 << 20)) $((8 << 20)) 51 || fail "big via mmap after restart"
"$IO" check "$D/odd" 0 12345 52 || fail "odd after restart"
"$IO" zero "$D/sparse" 0 $((100 << 20)) || fail "sparse: leading hole not zero after restart"
"$IO" check "$D/sparse" $((100 << 20)) 8192 53 || fail "sparse: first island after restart"
"$IO" check "$D/sparse" $(((1 << 30) - 4096)) 4096 54 || fail "sparse: last page after restart"
"$IO" check "$D/mmapped" 0 $((1 << 20)) 55 || fail "mmapped: 1st MiB after restart"
"$IO" check "$D/mmapped" $((1 << 20)) $((1 << 20)) 56 || fail "mmapped: msynced 2nd MiB after restart"
"$IO" check "$D/mmapped" $((2 << 20)) $((2 << 20)) 55 || fail "mmapped: rest after restart"
"$IO" check "$D/renamed" 0 65536 57 || fail "renamed after restart"
[ ! -e "$D/to-rename" ] || fail "the old name of a renamed object came back"
[ ! -e "$D/to-delete" ] || fail "an unlinked object came back"

# second cycle: change things after the restart, restart again
"$IO" fill -y "$D/odd" 4000 5000 59
"$IO" truncate "$D/big" $((16 << 20))
"$IO" fill -y "$D/new" 0 $((2 << 20)) 60
stop_emmd
start_emmd "$CONF"
"$IO" check "$D/odd" 0 4000 52 || fail "odd head after the second restart"
"$IO" check "$D/odd" 4000 5000 59 || fail "odd overwrite after the second restart"
"$IO" check "$D/odd" 9000 3345 52 || fail "odd tail after the second restart"
assert_eq "$(fsize "$D/big")" $((16 << 20)) "size of big after truncate + restart"
"$IO" check "$D/big" 0 $((16 << 20)) 51 || fail "big after truncate + restart"
"$IO" check "$D/new" 0 $((2 << 20)) 60 || fail "new after the second restart"
stop_emmd
