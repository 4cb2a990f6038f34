#!/bin/bash
# t_quickstart.sh - the README's first minutes: a config like conf/quickstart.conf
# (the repo's own file when it exists, with its paths moved under the test's work
# dir), then create, write, read back and list files on the first filesystem that
# keeps data (memory or file backend).
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)

CONF="$WORK/quickstart.conf"
SRC_CONF="$EMM_SRC/conf/quickstart.conf"
if [ -f "$SRC_CONF" ]; then
    log "using $SRC_CONF with its paths moved under $WORK"
    mkdir -p "$STATE" "$MNT"
    # Drop the [emmd] path keys and explicit mountpoints, then put ours first.
    awk -v state="$STATE" -v mnt="$MNT" -v sock="$SOCK" -v pidf="$PIDFILE" '
        function key(l) { l = substr(l, 1, index(l, "=") - 1); gsub(/[ \t]/, "", l); return l }
        /^[ \t]*\[/ {
            s = $0; gsub(/[][ \t]/, "", s); print
            if (s == "emmd") {
                print "state-dir = " state; print "mount-root = " mnt
                print "control-socket = " sock; print "pid-file = " pidf
                seen = 1
            }
            next
        }
        /=/ && key($0) ~ /^(state-dir|mount-root|control-socket|pid-file|mountpoint)$/ { next }
        { print }
        END { if (!seen) exit 3 }' "$SRC_CONF" >"$CONF" || fail "$SRC_CONF has no [emmd] section"
else
    log "$SRC_CONF not found; using the built-in equivalent"
    write_conf "$CONF" <<'CONF_EOF'
[fs scratch]
backend = memory
CONF_EOF
fi

# The first [fs] section whose backend keeps what is written.
FS=$(awk '
    /^[ \t]*[;#]/ { next }
    { sub(/[ \t]+[;#].*$/, "") }
    /^[ \t]*\[/ { s = $0; sub(/^[ \t]*\[[ \t]*/, "", s); sub(/[ \t]*\].*/, "", s)
                  name = (s ~ /^fs[ \t]/) ? s : ""; sub(/^fs[ \t]+/, "", name); next }
    name != "" && /^[ \t]*backend[ \t]*=/ {
        b = substr($0, index($0, "=") + 1); gsub(/[ \t\r]/, "", b)
        if (b == "memory" || b == "file") { print name; exit } }' "$CONF")
[ -n "$FS" ] || skip "the quickstart config has no memory or file filesystem"
log "config:"; sed 's/^/#   /' "$CONF" >&2

"$EMMD" -n -c "$CONF" || fail "emmd -n rejects the quickstart config"
start_emmd "$CONF"
D="$MNT/$FS"
is_mounted "$D" || fail "$D is not mounted"

# create, write, read back
echo "hello, memory object" >"$D/hello"
assert_eq "$(cat "$D/hello")" "hello, memory object" "content of hello"
echo "second line" >>"$D/hello"
assert_eq "$(sed -n 2p "$D/hello")" "second line" "appended line"
assert_eq "$(fsize "$D/hello")" "$(printf 'hello, memory object\nsecond line\n' | wc -c)" "size of hello after append"

# 10 MiB + 1234 bytes of a fixed pattern, odd size on purpose
SIZE=$((10 * 1024 * 1024 + 1234))
"$IO" fill "$D/data" 0 $SIZE 42 || fail "writing data"
"$IO" check "$D/data" 0 $SIZE 42 || fail "data reads back wrong through read(2)"
"$IO" check -m "$D/data" 0 $SIZE 42 || fail "data reads back wrong through mmap"
assert_eq "$(fsize "$D/data")" $SIZE "size of data"
ls_size=$(ls -l "$D/data" | awk '{ print $5 }')
assert_eq "$ls_size" $SIZE "ls -l size of data"

# cp in and out, byte for byte
"$IO" fill "$WORK/src.bin" 0 3000000 7
cp "$WORK/src.bin" "$D/copy.bin"
cmp "$WORK/src.bin" "$D/copy.bin" || fail "cp into the fs changed the bytes"
cp "$D/copy.bin" "$WORK/back.bin"
assert_eq "$(sha "$WORK/back.bin")" "$(sha "$WORK/src.bin")" "sha256 after a round trip"

# listing
names=$(ls "$D" | sort | tr '\n' ' ')
assert_eq "$names" "copy.bin data hello " "ls of the fs"

# overwrite in the middle, check around it
"$IO" fill "$D/data" 4096 8192 43
"$IO" check "$D/data" 0 4096 42 || fail "bytes before the overwrite changed"
"$IO" check "$D/data" 4096 8192 43 || fail "overwrite lost"
"$IO" check "$D/data" 12288 $((SIZE - 12288)) 42 || fail "bytes after the overwrite changed"

# remove
rm "$D/hello"
[ ! -e "$D/hello" ] || fail "hello still exists after rm"
assert_eq "$(ls "$D" | sort | tr '\n' ' ')" "copy.bin data " "ls after rm"

# directories: a file in a subdirectory, listed, then removed with it
mkdir -p "$D/sub/dir"
cp "$D/data" "$D/sub/dir/data"
cmp "$D/data" "$D/sub/dir/data" || fail "copy in a subdirectory differs"
assert_eq "$(ls "$D/sub/dir")" "data" "ls of a subdirectory"
rm -r "$D/sub"
[ ! -e "$D/sub" ] || fail "sub still exists after rm -r"

stop_emmd
