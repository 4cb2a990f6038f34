#!/bin/bash
# t_links_memsrv.sh - a filesystem on a memory server (pager = tcp) refuses
# symlink(2) and link(2) with EPERM (docs/memserver.md: its namespace is to be
# the server's; a link made on one host would be that host's alone), and the
# refusal leaves nothing behind: the names stay free, the file keeps nlink 1,
# emmd stays up.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3 timeout
. "$(dirname "$0")/memsrv_lib.sh"

ms_start_server
ms_start_host a || fail "host a did not start"
A=$(ms_mnt a)
ms_share f 64K
python3 - "$A" <<'PY' || fail "links on a memory server's filesystem"
import errno, os, sys
d = sys.argv[1]
def expect(err, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        if e.errno != err:
            sys.exit(f"{fn.__name__}{a}: errno {e.errno} ({os.strerror(e.errno)}), expected {errno.errorcode[err]}")
        return
    sys.exit(f"{fn.__name__}{a}: succeeded, expected {errno.errorcode[err]}")
expect(errno.EPERM, os.symlink, "f", os.path.join(d, "l"))
expect(errno.EPERM, os.link, os.path.join(d, "f"), os.path.join(d, "g"))
if os.path.lexists(os.path.join(d, "l")) or os.path.lexists(os.path.join(d, "g")):
    sys.exit("a refused link left a name")
if os.stat(os.path.join(d, "f")).st_nlink != 1:
    sys.exit("nlink of f changed")
PY
ms_stop_host a
ms_stop_server
