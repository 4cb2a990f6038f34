#!/bin/bash
# t_dirs_concurrent.sh - several processes change one small tree at once on an
# lmdb mount (mkdir, rmdir, create with data, unlink, rename of files and
# directories across directories, RENAME_EXCHANGE, readdir), each checking
# only errnos POSIX allows. Afterwards the tree is consistent: every directory's
# nlink is 2 + its subdirectories, every file holds data one writer wrote
# whole, emmctl ls lists exactly the paths find sees, and after a restart the
# tree (paths, types, sizes, contents) is the same.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3

CONF="$WORK/emmd.conf"
write_conf "$CONF" <<'CONF_EOF'
[fs disk]
backend = lmdb
CONF_EOF
D="$MNT/disk"
start_emmd "$CONF"

python3 - "$D" <<'PY' || fail "concurrent namespace operations"
import ctypes, errno, os, random, sys
root = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
NAMES = ["a", "b", "c", "d"]
ALLOWED = {errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR,
           errno.EINVAL, errno.EBUSY}

def rpath(r):
    return os.path.join(root, *[r.choice(NAMES) for _ in range(r.randint(1, 3))])

def exchange(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def worker(seed):
    r = random.Random(seed)
    for _ in range(1500):
        p, q = rpath(r), rpath(r)
        op = r.randrange(8)
        try:
            if op == 0:
                os.mkdir(p)
            elif op == 1:
                os.rmdir(p)
            elif op == 2:
                data = bytes([r.randrange(256)]) * r.randint(1, 20000)
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, data)
                os.close(fd)
            elif op == 3:
                os.unlink(p)
            elif op in (4, 5):
                os.rename(p, q)
            elif op == 6:
                exchange(p, q)
            else:
                os.listdir(p)
        except OSError as e:
            if e.errno not in ALLOWED:
                print(f"worker {seed}: op {op} {p} {q}: {e}", file=sys.stderr)
                os._exit(1)
    os._exit(0)

pids = []
for s in range(4):
    pid = os.fork()
    if pid == 0:
        worker(s)
    pids.append(pid)
bad = 0
for pid in pids:
    _, st = os.waitpid(pid, 0)
    bad |= st != 0
sys.exit(1 if bad else 0)
PY

# consistency of what is left
python3 - "$D" <<'PY' || fail "the tree after the concurrent run"
import os, sys
root = sys.argv[1]
for dirpath, dirnames, filenames in os.walk(root):
    st = os.stat(dirpath)
    assert st.st_nlink == 2 + len(dirnames), f"{dirpath}: nlink {st.st_nlink}, {len(dirnames)} subdirs"
    for f in filenames:
        data = open(os.path.join(dirpath, f), "rb").read()
        assert data and data == data[:1] * len(data), f"{dirpath}/{f}: torn or empty data"
PY
snap() {
    (cd "$D" && find . -mindepth 1 -printf '%P %y %s\n' | sort)
}
before=$(snap)
log "tree after the run: $(printf '%s\n' "$before" | wc -l) entries"
rows=$(ctl ls | awk '$1 == "disk" { p = $2; if ($NF == "dir") sub(/\/$/, "", p); print p }' | sort)
assert_eq "$rows" "$(printf '%s\n' "$before" | awk '{ print $1 }' | sort)" "emmctl ls paths against find"
sums=$(cd "$D" && find . -type f -exec sha256sum {} + | sort)
stop_emmd
start_emmd "$CONF"
assert_eq "$(snap)" "$before" "the tree after a restart"
assert_eq "$(cd "$D" && find . -type f -exec sha256sum {} + | sort)" "$sums" "file contents after a restart"
stop_emmd
