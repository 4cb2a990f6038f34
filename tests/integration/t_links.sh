#!/bin/bash
# t_links.sh - symbolic and hard links on emm filesystems, on every catalog
# kind: memory (volatile catalog), lmdb (the catalog in the backend's
# environment), file (its own LMDB catalog) and lmdb behind pager = process.
# Symlinks: symlink/readlink/lstat, relative and absolute targets, a dangling
# link, a link to a directory walked through, a target of 4095 bytes kept whole
# and a longer one refused with ENAMETOOLONG, rename and unlink of a link (its
# target stays), EEXIST, ENOTDIR. Hard links: two names, one inode (st_ino and
# readdir's d_ino), nlink counted, a write through one name read through the
# other, unlinking one name keeps the data, unlinking the object's first name
# keeps it under the other, rename over a link and between two names of one
# file, link of a directory is EPERM, an open file whose names all went is
# still readable. Four processes create, link, unlink, rename and exchange
# names at random: every file's nlink is then its number of names. The
# persistent kinds keep all of it across a kill -9 (each call is in the
# catalog when it returns) and a restart.
# Then real tools: tar of /usr/share/doc into the mount and diff -r, cp -a of
# a tree with symlinks and hard links, git init/add/commit of a tree with a
# symlink and git fsck, stress-ng --symlink/--link --verify.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3 tar diff cp

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=64M" <<'CONF_EOF'
[fs mem]
backend = memory

[fs disk]
backend = lmdb

[fs file]
backend = file

[fs proc]
backend = lmdb
pager = process
CONF_EOF
FSES="mem disk file proc"
PERSISTENT="disk file proc"

. "$(dirname "$0")/links_lib.sh"

start_emmd "$CONF"
for fs in $FSES; do
    log "== links on $fs"
    links_make "$MNT/$fs"
    links_check "$MNT/$fs" "before a restart"
done
# emmctl sees objects only: no symlink, no second name
n=$(ctl ls | awk '$1 == "disk" && ($2 == "hh" || $2 == "dir/sub/h2")' | wc -l)
assert_eq "$n" 1 "emmctl ls rows for the file named hh and dir/sub/h2"
n=$(ctl ls | awk '$1 == "disk" && ($2 == "rel" || $2 == "long" || $2 == "todir")' | wc -l)
assert_eq "$n" 0 "emmctl ls rows for symlinks"

for fs in mem disk; do
    log "== concurrent link/unlink/rename on $fs"
    links_churn "$MNT/$fs/churn"
    links_census "$MNT/$fs/churn" "after the churn"
done

# kill9_emmd: SIGKILL the emmd we started (by pid), reap it, unmount its dead
# mounts (as t_lmdb_kill9.sh): every link is in the catalog when its call returns.
kill9_emmd() {
    local pid=$EMMD_PID mp
    EMMD_PID=""
    log "kill -9 emmd (pid $pid)"
    _kill_wedged "$pid"
    [ ! -e "/proc/$pid" ] || fail "emmd (pid $pid) still exists after SIGKILL"
    for mp in "${MOUNTS[@]}"; do
        if is_mounted "$mp"; then
            fusermount3 -u "$mp" 2>/dev/null || fusermount3 -u -z "$mp" ||
                fail "cannot unmount the dead mount $mp"
        fi
    done
}

log "restart after kill -9: the persistent catalogs keep the links"
kill9_emmd
start_emmd "$CONF"
for fs in $PERSISTENT; do
    links_check "$MNT/$fs" "after a restart"
done
links_census "$MNT/disk/churn" "after a restart"
rm -rf "$MNT/disk/churn"
[ -z "$(ls -A "$MNT/mem")" ] || fail "the memory filesystem kept something across a restart"
grep -q "is a hard link to object" "$EMMD_LOG" && fail "a hard link lost its object at the restart"

log "removing every name: the objects go"
for fs in $PERSISTENT; do
    rm -rf "${MNT:?}/$fs/"*
done
stop_emmd
start_emmd "$CONF"
for fs in $PERSISTENT; do
    [ -z "$(ls -A "$MNT/$fs")" ] || fail "$fs is not empty after removing everything and a restart"
done
n=$(ctl ls | awk 'NR > 1' | wc -l)
assert_eq "$n" 0 "emmctl ls rows after removing everything"

log "tar of /usr/share/doc (a real tree with symlinks) into the mount"
if [ -d /usr/share/doc ] && [ -n "$(find /usr/share/doc -maxdepth 3 -type l -print -quit)" ]; then
    mkdir "$MNT/disk/doc"
    tar -cf - -C /usr/share/doc . | tar -xf - -C "$MNT/disk/doc" || fail "tar -x into the mount"
    diff -r --no-dereference /usr/share/doc "$MNT/disk/doc" >"$WORK/doc.diff" 2>&1 ||
        { head -20 "$WORK/doc.diff" >&2; fail "the tree in the mount differs from /usr/share/doc"; }
    nl=$(find "$MNT/disk/doc" -type l | wc -l)
    assert_eq "$nl" "$(find /usr/share/doc -type l | wc -l)" "symlinks in the copied tree"
    rm -rf "$MNT/disk/doc"
else
    log "no symlinks in /usr/share/doc: tar part skipped"
fi

log "cp -a of a tree with symlinks and hard links"
src="$WORK/tree"
mkdir -p "$src/a/b"
head -c 200000 /dev/urandom >"$src/a/data"
ln "$src/a/data" "$src/a/b/data.hard"
ln -s ../data "$src/a/b/data.sym"
ln -s /nonexistent "$src/dangling"
ln -s a/b "$src/dirlink"
chmod 0750 "$src/a/b"
cp -a "$src" "$MNT/file/tree" || fail "cp -a into the mount"
diff -r --no-dereference "$src" "$MNT/file/tree" || fail "cp -a tree differs"
assert_eq "$(stat -c %i "$MNT/file/tree/a/data")" "$(stat -c %i "$MNT/file/tree/a/b/data.hard")" \
    "cp -a kept the hard link"
assert_eq "$(stat -c %h "$MNT/file/tree/a/data")" 2 "nlink of the copied hard link"
assert_eq "$(readlink "$MNT/file/tree/dirlink")" a/b "readlink of the copied dirlink"
cp -a "$MNT/file/tree" "$WORK/back" || fail "cp -a out of the mount"
diff -r --no-dereference "$src" "$WORK/back" || fail "cp -a back out differs"

if command -v git >/dev/null; then
    log "git: a repository with a symlink, committed and checked"
    R="$MNT/disk/repo"
    mkdir "$R"
    export HOME="$WORK" GIT_CONFIG_NOSYSTEM=1
    git -C "$R" init -q || fail "git init"
    echo "hello" >"$R/file"
    ln -s file "$R/link"
    mkdir "$R/d"
    ln -s ../file "$R/d/up"
    git -C "$R" add -A || fail "git add"
    git -C "$R" -c user.name=t -c user.email=t@e commit -qm first || fail "git commit"
    git -C "$R" fsck --full --strict 2>&1 || fail "git fsck"
    [ -z "$(git -C "$R" status --porcelain)" ] || fail "git status is not clean after the commit"
    assert_eq "$(git -C "$R" ls-files -s link | awk '{print $1}')" 120000 "git's mode of the symlink"
    git -C "$R" clone -q "$R" "$MNT/disk/clone" || fail "git clone inside the mount"
    assert_eq "$(readlink "$MNT/disk/clone/d/up")" ../file "the cloned symlink"
    rm -rf "$R" "$MNT/disk/clone"
else
    log "no git: that part skipped"
fi

if command -v stress-ng >/dev/null; then
    for fs in mem disk; do
        slog="$WORK/stress-$fs.log"
        rc=0
        timeout -k 10 120 stress-ng --symlink 2 --link 2 --timeout 5s --verify \
            --temp-path "$MNT/$fs" --metrics-brief --log-file "$slog" >"$slog.out" 2>&1 </dev/null || rc=$?
        out=$(cat "$slog.out")
        log "stress-ng symlink/link on $fs: status $rc"
        [ $rc = 0 ] || { printf '%s\n' "$out" >&2; fail "stress-ng --symlink --link on $fs exited $rc"; }
        if grep -qiE 'fail:|verif.*(fail|error)|failed: [1-9]|aborted' <<<"$out"; then
            printf '%s\n' "$out" >&2
            fail "stress-ng --symlink --link on $fs reported a failure"
        fi
        emmd_alive || fail "emmd died under stress-ng on $fs"
    done
else
    log "no stress-ng: that part skipped"
fi
stop_emmd
