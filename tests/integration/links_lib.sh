# links_lib.sh - the link checks t_links.sh and t_links_rados.sh share, sourced
# after lib.sh:
#   links_make DIR    makes symlinks and hard links in DIR (an empty directory
#                     on an emm mount), checking each step's result and errno
#   links_check DIR WHEN  checks what links_make left, as a restart keeps it
#   links_churn DIR   4 processes create, link, unlink, rename and exchange
#                     names of a few files at random (a fixed number of operations)
#   links_census DIR WHEN  every file's nlink is the number of its names in the
#                     tree, and each holds the data it was made with
# Both run python3 and fail the test on the first difference.

pyfs() {
    local what=$1
    shift
    python3 - "$@" || fail "$what"
}

# links_make DIR: makes the links and checks everything a restart must keep
links_make() {
    pyfs "symlinks and hard links on $1" "$1" <<'PY'
import errno, os, stat, sys
d = sys.argv[1]
j = lambda *p: os.path.join(d, *p)
def expect(err, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except OSError as e:
        if e.errno != err:
            sys.exit(f"{fn.__name__}{a}: errno {e.errno} ({os.strerror(e.errno)}), expected {errno.errorcode[err]}")
        return
    sys.exit(f"{fn.__name__}{a}: succeeded, expected {errno.errorcode[err]}")
def check(cond, what):
    if not cond:
        sys.exit(what)

os.makedirs(j("dir", "sub"))
with open(j("dir", "f"), "wb") as f:
    f.write(b"file data\n" * 1000)
# symlinks: relative, absolute, dangling, to a directory
os.symlink("dir/f", j("rel"))
os.symlink(j("dir", "f"), j("abs"))
os.symlink("no/such/thing", j("dangling"))
os.symlink("dir", j("todir"))
os.symlink("../f", j("dir", "sub", "up"))
check(os.readlink(j("rel")) == "dir/f", "readlink rel")
check(os.readlink(j("abs")) == j("dir", "f"), "readlink abs")
st = os.lstat(j("rel"))
check(stat.S_ISLNK(st.st_mode), f"lstat rel: mode {st.st_mode:o}")
check(st.st_size == len("dir/f"), f"lstat rel: size {st.st_size}")
check(st.st_nlink == 1, f"lstat rel: nlink {st.st_nlink}")
for name in ("rel", "abs", ("todir", "f"), ("dir", "sub", "up")):
    p = j(*name) if isinstance(name, tuple) else j(name)
    with open(p, "rb") as f:
        check(f.read() == b"file data\n" * 1000, f"read through {p}")
check(os.stat(j("rel")).st_ino == os.stat(j("dir", "f")).st_ino, "stat follows the link")
expect(errno.ENOENT, os.stat, j("dangling"))
check(os.path.islink(j("dangling")), "dangling link is a link")
check(sorted(os.listdir(j("todir"))) == ["f", "sub"], "listing through a link to a directory")
for e in os.scandir(d):
    if e.name in ("rel", "abs", "dangling", "todir"):
        check(e.is_symlink(), f"readdir type of {e.name}")
# limits
os.symlink("x" * 4095, j("long"))
check(os.readlink(j("long")) == "x" * 4095, "a 4095-byte target")
check(os.lstat(j("long")).st_size == 4095, "size of a 4095-byte target")
expect(errno.ENAMETOOLONG, os.symlink, "y" * 4096, j("toolong"))
expect(errno.EEXIST, os.symlink, "a", j("rel"))
expect(errno.ENOTDIR, os.rmdir, j("todir"))
expect(errno.EINVAL, os.readlink, j("dir", "f"))
# rename and unlink of links: the target stays
os.symlink("dir/f", j("tmp"))
os.rename(j("tmp"), j("dir", "moved"))
check(os.readlink(j("dir", "moved")) == "dir/f", "a renamed symlink keeps its target")
os.unlink(j("dir", "moved"))
check(os.path.exists(j("dir", "f")), "unlinking a symlink left its target")
os.symlink("gone", j("victim"))
os.rename(j("rel"), j("relcopy"))
os.symlink("dir/f", j("rel"))
os.unlink(j("relcopy"))
os.rename(j("abs"), j("victim"))   # a link replaces a link
check(os.readlink(j("victim")) == j("dir", "f"), "rename over a symlink")
os.rename(j("victim"), j("abs"))

# hard links
with open(j("h1"), "wb") as f:
    f.write(b"one" * 5000)
os.link(j("h1"), j("dir", "sub", "h2"))
a, b = os.stat(j("h1")), os.stat(j("dir", "sub", "h2"))
check(a.st_ino == b.st_ino, "two names, one inode")
check(a.st_nlink == 2 and b.st_nlink == 2, f"nlink {a.st_nlink} {b.st_nlink}, expected 2")
ino = {e.name: e.inode() for e in os.scandir(j("dir", "sub"))}
check(ino["h2"] == a.st_ino, "readdir's d_ino of a hard link is its file's")
with open(j("dir", "sub", "h2"), "r+b") as f:
    f.seek(3)
    f.write(b"TWO")
with open(j("h1"), "rb") as f:
    check(f.read(9) == b"oneTWOone", "a write through one name is read through the other")
os.link(j("h1"), j("h3"))
check(os.stat(j("h1")).st_nlink == 3, "nlink 3")
os.unlink(j("h1"))   # the object's first name
check(os.stat(j("h3")).st_nlink == 2, "nlink after unlinking the first name")
with open(j("h3"), "rb") as f:
    check(f.read(9) == b"oneTWOone", "data kept under another name")
os.rename(j("h3"), j("dir", "sub", "h2"))   # two names of one file: nothing happens
check(os.path.exists(j("h3")) and os.path.exists(j("dir", "sub", "h2")), "rename between names of one file")
with open(j("other"), "wb") as f:
    f.write(b"other")
os.rename(j("other"), j("h3"))   # a file replaces one name of a linked file
check(os.stat(j("dir", "sub", "h2")).st_nlink == 1, "nlink after a rename over a link")
with open(j("h3"), "rb") as f:
    check(f.read() == b"other", "the renamed file")
os.link(j("dir", "sub", "h2"), j("hh"))
expect(errno.EPERM, os.link, j("dir"), j("dirlink"))
expect(errno.EEXIST, os.link, j("hh"), j("h3"))
expect(errno.ENOENT, os.link, j("nothing"), j("n2"))
# a link to a symlink (link(2) does not follow it)
os.link(j("dangling"), j("dangling2"), follow_symlinks=False)
check(os.lstat(j("dangling")).st_nlink == 2, "nlink of a linked symlink")
check(os.readlink(j("dangling2")) == "no/such/thing", "readlink of a symlink's second name")
# an open file outlives its names
with open(j("tmpf"), "wb") as f:
    f.write(b"still here")
os.link(j("tmpf"), j("tmpf2"))
fd = os.open(j("tmpf"), os.O_RDONLY)
os.unlink(j("tmpf"))
os.unlink(j("tmpf2"))
check(os.fstat(fd).st_nlink == 0, "nlink 0 once every name went")
check(os.pread(fd, 100, 0) == b"still here", "an open file whose names went is readable")
os.close(fd)
check(not os.path.exists(j("tmpf")) and not os.path.exists(j("tmpf2")), "names gone")
# the data on the pager's store (links_check may follow a kill -9)
for root, dirs, files in os.walk(d):
    for n in files:
        p = os.path.join(root, n)
        if not os.path.islink(p):
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
# the last change of a file is its first name going (by unlink, by a rename
# over it), after its data is on the store: the name it keeps must be the one
# a restart finds, even after a kill -9
def put(name, data):
    with open(name, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
put(j("p1"), b"promoted")
os.link(j("p1"), j("dir", "p2"))
os.unlink(j("p1"))
put(j("q1"), b"q data")
put(j("r"), b"r data")
os.link(j("q1"), j("dir", "q2"))
os.rename(j("r"), j("q1"))
PY
}

# links_check DIR: what links_make left, as a restart must keep it
links_check() {
    pyfs "links on $1 ($2)" "$1" <<'PY'
import os, stat, sys
d = sys.argv[1]
j = lambda *p: os.path.join(d, *p)
def check(cond, what):
    if not cond:
        sys.exit(what)
check(os.readlink(j("rel")) == "dir/f", "readlink rel")
check(os.readlink(j("abs")) == j("dir", "f"), "readlink abs")
check(os.readlink(j("dangling")) == "no/such/thing", "readlink dangling")
check(os.readlink(j("dangling2")) == "no/such/thing", "readlink dangling2")
check(os.lstat(j("dangling")).st_nlink == 2, "nlink of the linked symlink")
check(os.readlink(j("long")) == "x" * 4095, "the 4095-byte target")
check(stat.S_ISLNK(os.lstat(j("todir")).st_mode), "todir is a link")
with open(j("todir", "sub", "up"), "rb") as f:
    check(f.read() == b"file data\n" * 1000, "read through two links")
a, b = os.stat(j("dir", "sub", "h2")), os.stat(j("hh"))
check(a.st_ino == b.st_ino and a.st_nlink == 2 and b.st_nlink == 2,
      f"hard link: ino {a.st_ino} {b.st_ino}, nlink {a.st_nlink} {b.st_nlink}")
with open(j("hh"), "rb") as f:
    check(f.read() == b"oneTWOone" + b"one" * 4997, "hard-linked data")
with open(j("h3"), "rb") as f:
    check(f.read() == b"other", "h3")
names = sorted(os.listdir(d))
for name, data in ((("dir", "p2"), b"promoted"), (("dir", "q2"), b"q data"), (("q1",), b"r data")):
    st = os.stat(j(*name))
    check(st.st_nlink == 1, f"{name}: nlink {st.st_nlink}")
    with open(j(*name), "rb") as f:
        check(f.read() == data, f"{name}: data")
names = [n for n in names if n != "churn"]
check(names == sorted(["abs", "dangling", "dangling2", "dir", "h3", "hh", "long", "q1", "rel", "todir"]),
      f"the root holds {names}")
PY
}


links_churn() {
    pyfs "concurrent link/unlink/rename on $1" "$1" <<'PY'
import ctypes, errno, os, random, sys
d = sys.argv[1]
os.makedirs(os.path.join(d, "a"))
os.makedirs(os.path.join(d, "b"))
for i in range(6):
    with open(os.path.join(d, "a", f"f{i}"), "wb") as f:
        f.write((f"file {i} " * 500).encode())
libc = ctypes.CDLL(None, use_errno=True)
names = [os.path.join(d, x, f"n{k}") for x in ("a", "b") for k in range(12)] + \
        [os.path.join(d, "a", f"f{i}") for i in range(6)]
kids = []
for w in range(4):
    pid = os.fork()
    if pid == 0:
        rnd = random.Random(w)
        for _ in range(1000):
            op = rnd.random()
            a, b = rnd.choice(names), rnd.choice(names)
            try:
                if op < 0.15:
                    fd = os.open(a, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    os.write(fd, (f"file {rnd.randrange(10)} " * 500).encode())
                    os.close(fd)
                elif op < 0.45:
                    os.link(a, b)
                elif op < 0.60:
                    os.unlink(a)
                elif op < 0.85:
                    os.rename(a, b)
                else:
                    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
                        raise OSError(ctypes.get_errno(), "renameat2")
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.EEXIST):
                    print(f"worker {w}: {e}", file=sys.stderr)
                    os._exit(1)
        os._exit(0)
    kids.append(pid)
bad = [pid for pid in kids if os.waitpid(pid, 0)[1] != 0]
if bad:
    sys.exit(f"{len(bad)} workers saw an unexpected error")
for root, dirs, files in os.walk(d):   # the data on the store (a kill -9 may follow)
    for n in files:
        fd = os.open(os.path.join(root, n), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
PY
}

links_census() {
    pyfs "nlink census on $1 ($2)" "$1" <<'PY'
import os, sys
d = sys.argv[1]
seen = {}
for root, dirs, files in os.walk(d):
    for n in files:
        p = os.path.join(root, n)
        st = os.lstat(p)
        seen.setdefault(st.st_ino, []).append((p, st.st_nlink))
if not seen:
    sys.exit("no file left at all (the churn should leave some)")
for ino, ps in seen.items():
    for p, nl in ps:
        if nl != len(ps):
            sys.exit(f"{p}: nlink {nl}, but {len(ps)} names in the tree: {[q for q, _ in ps]}")
    with open(ps[0][0], "rb") as f:
        data = f.read()
    i = data[5:6].decode() if data.startswith(b"file ") else "?"
    if data != (f"file {i} " * 500).encode():
        sys.exit(f"{ps[0][0]}: unexpected data {data[:20]!r}")
print(f"census: {len(seen)} files, {sum(len(p) for p in seen.values())} names", file=sys.stderr)
PY
}
