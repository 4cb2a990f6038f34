#!/bin/bash
# t_dirs.sh - directories on emm filesystems, on the memory and lmdb backends:
# mkdir -p of deep trees with files whose data is checked by cmp; rename of
# files and directories across directories (replace a file, replace an empty
# directory, EISDIR/ENOTDIR/ENOTEMPTY, RENAME_NOREPLACE and RENAME_EXCHANGE);
# a directory cannot move below itself; rmdir of a non-empty directory fails
# with ENOTEMPTY; link(2) of a directory fails with EPERM; nlink of a directory is 2 + its
# subdirectories and a parent's mtime moves on create/unlink/rename; readdir of
# a directory of 2000 entries returns every entry once while entries are
# deleted and added during the iteration; on lmdb the tree, modes, owners and
# times survive a restart of emmd; emmctl ls shows paths and emmctl flush takes
# one; removing everything leaves emmctl ls empty, also after a restart.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3 cmp

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=32M" <<'CONF_EOF'
[fs mem]
backend = memory

[fs disk]
backend = lmdb
CONF_EOF

# pyfs SCRIPT ARGS...: run a python3 check (fails the test on a non-zero exit)
pyfs() {
    local what=$1
    shift
    python3 - "$@" || fail "$what"
}

# ls rows of FS: "PATH STATE" pairs, sorted
ls_rows() {
    ctl ls | awk -v f="$1" 'NR > 1 && $1 == f { print $2, $NF }' | sort
}

src="$WORK/src"
gen_src "$src" 3 7

# tree_checks DIR: everything but persistence, on one mount
tree_checks() {
    local D=$1
    log "== $D"
    mkdir -p "$D/a/b/c/d/e/f/g/h"
    cp "$src" "$D/a/b/c/d/e/f/g/h/data"
    head -c 12345 "$src" >"$D/a/b/small"
    cmp "$src" "$D/a/b/c/d/e/f/g/h/data" || fail "deep file differs from its source"
    cmp <(head -c 12345 "$src") "$D/a/b/small" || fail "a/b/small differs"
    [ -d "$D/a/b/c" ] || fail "a/b/c is not a directory"
    assert_eq "$(stat -c %h "$D/a")" 3 "nlink of a (one subdirectory)"
    mkdir "$D/a/x" "$D/a/y"
    assert_eq "$(stat -c %h "$D/a")" 5 "nlink of a (three subdirectories)"
    rmdir "$D/a/y"
    assert_eq "$(stat -c %h "$D/a")" 4 "nlink of a after rmdir"

    # errnos, from python so the exact errno is checked
    pyfs "POSIX errors of mkdir/rmdir/rename/link" "$D" <<'PY'
import ctypes, errno, os, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
def expect(err, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        if e.errno != err:
            sys.exit(f"{fn.__name__}{a}: errno {e.errno} ({os.strerror(e.errno)}), expected {errno.errorcode[err]}")
        return
    sys.exit(f"{fn.__name__}{a}: succeeded, expected {errno.errorcode[err]}")
def renameat2(a, b, flags):
    AT_FDCWD = -100
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
renameat2.__name__ = "renameat2"
NOREPLACE, EXCHANGE = 1, 2
j = lambda *p: os.path.join(d, *p)
expect(errno.EEXIST, os.mkdir, j("a"))
expect(errno.ENOTEMPTY, os.rmdir, j("a", "b"))
expect(errno.ENOTDIR, os.rmdir, j("a", "b", "small"))
expect(errno.EISDIR, os.unlink, j("a", "b"))
expect(errno.ENOENT, os.mkdir, j("nope", "x"))
expect(errno.ENOTDIR, os.mkdir, j("a", "b", "small", "x"))
expect(errno.EINVAL, os.rename, j("a"), j("a", "b", "c", "a"))          # below itself
expect(errno.EINVAL, os.rename, j("a", "b"), j("a", "b", "c", "d", "b"))
expect(errno.EPERM, os.link, j("a", "b"), j("a", "hard"))              # a directory (t_links: files)
# file over file: replaced
open(j("a", "x", "f1"), "wb").write(b"one")
open(j("a", "f2"), "wb").write(b"two")
os.rename(j("a", "f2"), j("a", "x", "f1"))
assert open(j("a", "x", "f1"), "rb").read() == b"two", "rename did not replace the file"
assert not os.path.exists(j("a", "f2"))
# file over dir / dir over file / dir over non-empty dir
os.mkdir(j("a", "e1"))
os.mkdir(j("a", "e2"))
open(j("a", "e2", "in"), "wb").write(b"x")
expect(errno.EISDIR, os.rename, j("a", "x", "f1"), j("a", "e1"))
expect(errno.ENOTDIR, os.rename, j("a", "e1"), j("a", "x", "f1"))
expect(errno.ENOTEMPTY, os.rename, j("a", "e1"), j("a", "e2"))
# dir over empty dir: replaced, across directories
os.mkdir(j("a", "x", "empty"))
os.rename(j("a", "e2"), j("a", "x", "empty"))
assert os.listdir(j("a", "x", "empty")) == ["in"], os.listdir(j("a", "x", "empty"))
assert not os.path.exists(j("a", "e2"))
# RENAME_NOREPLACE and RENAME_EXCHANGE
open(j("a", "p"), "wb").write(b"p")
open(j("a", "x", "q"), "wb").write(b"q")
expect(errno.EEXIST, renameat2, j("a", "p"), j("a", "x", "q"), NOREPLACE)
renameat2(j("a", "p"), j("a", "x", "q"), EXCHANGE)
assert open(j("a", "p"), "rb").read() == b"q" and open(j("a", "x", "q"), "rb").read() == b"p"
renameat2(j("a", "e1"), j("a", "x", "q"), EXCHANGE)                    # a dir with a file
assert os.path.isdir(j("a", "x", "q")) and open(j("a", "e1"), "rb").read() == b"p"
expect(errno.ENOENT, renameat2, j("a", "p"), j("a", "nothere"), EXCHANGE)
expect(errno.EINVAL, renameat2, j("a", "x"), j("a", "x", "empty"), EXCHANGE)  # would cycle
renameat2(j("a", "p"), j("a", "p2"), NOREPLACE)
# a directory with contents moves across directories, keeps them
os.rename(j("a", "b", "c"), j("a", "x", "moved"))
assert open(j("a", "x", "moved", "d", "e", "f", "g", "h", "data"), "rb").read(4) != b""
# the parent's mtime moves on create, unlink and rename
for op in ("create", "unlink", "rename"):
    os.utime(j("a"), (1000000000, 1000000000))
    if op == "create":
        open(j("a", "t"), "wb").close()
    elif op == "unlink":
        os.unlink(j("a", "t"))
    else:
        os.rename(j("a", "p2"), j("a", "x", "p3"))
    st = os.stat(j("a"))
    assert st.st_mtime > 1000000000 + 100, f"{op}: parent's mtime did not move"
PY
    cmp "$src" "$D/a/x/moved/d/e/f/g/h/data" || fail "data differs after moving its directory"

    # readdir of a large directory while it changes
    pyfs "readdir of a changing directory" "$D/big" <<'PY'
import os, sys
d = sys.argv[1]
os.mkdir(d)
N = 2000
for i in range(N):
    open(os.path.join(d, f"e{i:05d}"), "wb").close()
seen = []
gone = set()
with os.scandir(d) as it:
    for k, e in enumerate(it):
        seen.append(e.name)
        if k % 10 == 0 and e.name.startswith("e"):
            # delete one already seen and one not seen yet, add a new one
            for victim in (seen[k // 2], f"e{N - 1 - k // 10:05d}"):
                if victim.startswith("e") and victim not in gone:
                    os.unlink(os.path.join(d, victim))
                    gone.add(victim)
            open(os.path.join(d, f"n{k:05d}"), "wb").close()
assert len(gone) > 100, f"only {len(gone)} entries deleted during the iteration"
dups = {n for n in seen if seen.count(n) > 1} if len(seen) != len(set(seen)) else set()
assert not dups, f"readdir returned duplicates: {sorted(dups)[:10]}"
now = set(os.listdir(d))
kept = {f"e{i:05d}" for i in range(N)} & now
missing = kept - set(seen)
assert not missing, f"entries present throughout were skipped: {sorted(missing)[:10]}"
assert len(now) == len(set(os.listdir(d))), "listdir not stable"
for n in now:
    os.unlink(os.path.join(d, n))
os.rmdir(d)
PY
}

start_emmd "$CONF"
tree_checks "$MNT/mem"
tree_checks "$MNT/disk"

# emmctl ls: paths from the filesystem's root; flush takes a path
rows=$(ls_rows disk)
log "emmctl ls (disk):"; printf '%s\n' "$rows" | sed 's/^/#   /' >&2
assert_contains "$rows" "a/x/moved/d/e/f/g/h/data " "emmctl ls rows"
assert_contains "$rows" "a/x/moved/ dir" "emmctl ls rows"
out=$(ctl flush disk a/x/moved/d/e/f/g/h/data) || fail "emmctl flush by path: $out"
if ctl flush disk a/x/nothere >/dev/null 2>&1; then fail "emmctl flush of a missing path succeeded"; fi

# persistence on lmdb: tree, modes, owners, times
D="$MNT/disk"
mkdir -p "$D/keep/sub"
chmod 0710 "$D/keep/sub"
chown 1234:5678 "$D/keep/sub"
chmod 2775 "$D/keep"
chown 42:4242 "$D/keep"
mkdir "$D/keep/inherit"                                 # setgid: inherits the group
touch -d '2001-02-03 04:05:06' "$D/keep/sub"
head -c 100000 "$src" >"$D/keep/sub/file"
touch -m -d '2002-03-04 05:06:07' "$D/keep"
assert_eq "$(stat -c %g "$D/keep/inherit")" 4242 "group inherited from a setgid directory"
snap() {
    (cd "$1" && find . -printf '%p %y %m %u %g %s %n %A@ %T@ %C@\n' | sort)
}
before=$(snap "$D")
stop_emmd
start_emmd "$CONF"
after=$(snap "$D")
if [ "$before" != "$after" ]; then
    diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
    fail "tree, modes, owners or times differ after a restart"
fi
cmp <(head -c 100000 "$src") "$D/keep/sub/file" || fail "file in a directory differs after restart"
cmp "$src" "$D/a/x/moved/d/e/f/g/h/data" || fail "deep file differs after restart"

# removing everything leaves the catalog empty
for fs in mem disk; do
    rm -rf "${MNT:?}/$fs/"*
    [ -z "$(ls -A "$MNT/$fs")" ] || fail "$fs not empty after rm -rf"
    assert_eq "$(ls_rows $fs)" "" "emmctl ls rows of $fs after removing everything"
done
stop_emmd
start_emmd "$CONF"
assert_eq "$(ls_rows disk)" "" "emmctl ls rows of disk after removing everything and a restart"
assert_eq "$(stat -c %h "$MNT/disk")" 2 "nlink of the empty root"
stop_emmd
