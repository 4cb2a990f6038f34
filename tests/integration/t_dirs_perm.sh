#!/bin/bash
# t_dirs_perm.sh - directories on an emm mount obey modes and owners (emmd runs
# as root and mounts with allow_other,default_permissions, so the kernel checks
# every access against the modes, owners and groups emmd reports). A user made
# for the test (deleted in the trap) cannot create in or remove from a 0755
# root-owned directory, can in a directory it owns, cannot list or enter a 0700
# one, cannot chmod someone else's, cannot rmdir another user's directory in a
# sticky 1777 directory (but can its own), and its new directories get its
# uid and gid; a setgid directory hands its group down.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires useradd userdel setpriv

U="emmt$$"
useradd -M -N -s /usr/sbin/nologin "$U" >/dev/null 2>&1 || skip "cannot create a test user with useradd"
trap 'rc=$?; userdel -f "$U" >/dev/null 2>&1; (exit $rc); _cleanup' EXIT
UID_U=$(id -u "$U")
GID_U=$(id -g "$U")

CONF="$WORK/emmd.conf"
write_conf "$CONF" <<'CONF_EOF'
[fs p]
backend = memory
CONF_EOF
start_emmd "$CONF"
D="$MNT/p"
[ -n "$(awk -v d="$D" '$2 == d && /allow_other/ && /default_permissions/' /proc/self/mounts)" ] ||
    fail "emmd as root must mount with allow_other,default_permissions: $(grep " $D " /proc/self/mounts)"

# as_user CMD...: run CMD as the test user (no supplementary groups)
as_user() { setpriv --reuid="$UID_U" --regid="$GID_U" --clear-groups -- "$@"; }
# denied WHAT CMD...: CMD run as the user must fail with "Permission denied" or
# "Operation not permitted"
denied() {
    local what=$1 out
    shift
    if out=$(as_user "$@" 2>&1); then fail "$what: allowed, expected EACCES/EPERM"; fi
    case "$out" in
    *"Permission denied"* | *"Operation not permitted"*) ;;
    *) fail "$what: failed for another reason: $out" ;;
    esac
}

mkdir -m 0755 "$D/rootdir"
mkdir -m 0700 "$D/private"
echo secret >"$D/private/s"
mkdir -m 1777 "$D/sticky"
mkdir "$D/sticky/roots"
mkdir -m 0777 "$D/open"
mkdir "$D/open/victim"
assert_eq "$(stat -c '%u %a' "$D/rootdir")" "0 755" "owner and mode of rootdir"

denied "mkdir in a 0755 root-owned directory" mkdir "$D/rootdir/x"
denied "create in a 0755 root-owned directory" touch "$D/rootdir/f"
denied "mkdir in the 0755 root-owned root" mkdir "$D/x"
denied "rmdir in a 0755 root-owned directory" rmdir "$D/sticky/roots"
denied "readdir of a 0700 root-owned directory" ls "$D/private"
denied "entering a 0700 root-owned directory" cat "$D/private/s"
denied "chmod of another user's directory" chmod 777 "$D/rootdir"
denied "rename into a 0755 root-owned directory" mv "$D/open/victim" "$D/rootdir/victim"

# the user's own directory: it can do everything there
chown "$U" "$D/rootdir"
as_user mkdir -p "$D/rootdir/mine/deeper" || fail "mkdir in a directory the user owns"
as_user sh -c "echo hello >'$D/rootdir/mine/deeper/f'" || fail "create in the user's directory"
assert_eq "$(stat -c '%u %g' "$D/rootdir/mine/deeper")" "$UID_U $GID_U" "owner of a directory the user made"
assert_eq "$(stat -c '%u %g' "$D/rootdir/mine/deeper/f")" "$UID_U $GID_U" "owner of a file the user made"
as_user chmod 0700 "$D/rootdir/mine" || fail "chmod of the user's own directory"
as_user ls "$D/rootdir/mine" >/dev/null || fail "readdir of the user's 0700 directory"
as_user mv "$D/rootdir/mine/deeper/f" "$D/rootdir/mine/g" || fail "rename in the user's directory"
as_user rm -r "$D/rootdir/mine" || fail "rm -r of the user's tree"

# a sticky directory: only the owner of an entry may remove it
as_user mkdir "$D/sticky/users" || fail "mkdir in a 1777 directory"
mkdir "$D/sticky/roots2"
denied "rmdir of root's directory in a sticky directory" rmdir "$D/sticky/roots2"
denied "rename of root's directory in a sticky directory" mv "$D/sticky/roots2" "$D/sticky/r3"
as_user rmdir "$D/sticky/users" || fail "rmdir of the user's own directory in a sticky directory"
# without the sticky bit, a writable directory lets anyone remove entries
as_user rmdir "$D/open/victim" || fail "rmdir in a 0777 directory"

# setgid directory: the group is handed down, and to new directories the bit too
mkdir -m 2777 "$D/sg"
chgrp 4321 "$D/sg"
as_user mkdir "$D/sg/d" || fail "mkdir in a setgid 2777 directory"
assert_eq "$(stat -c '%g' "$D/sg/d")" 4321 "group of a directory made in a setgid directory"
assert_eq "$(( 0$(stat -c '%a' "$D/sg/d") & 02000 ))" 1024 "setgid bit on a directory made in a setgid directory"

stop_emmd
