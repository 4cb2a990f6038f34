#!/bin/bash
# t_mount_root.sh - how a mount is exposed to other users: as root emmd mounts
# with allow_other,default_permissions, and root-uid, root-gid and root-mode
# set the root directory's owner and mode at every start. An unprivileged
# user (created here, removed in the trap) can create a file in a 1777 root,
# the mount shows the configured owner and mode, a restart without the keys
# keeps them (they are stored), and root-mode = 0700 shuts the user out.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires useradd userdel runuser

U="emmt$$"
useradd -M -N -s /bin/sh "$U" 2>/dev/null || skip "cannot create user $U"
# lib.sh's cleanup runs from its own EXIT trap: chain it
_user_cleanup() { userdel "$U" 2>/dev/null || true; _cleanup; }
trap _user_cleanup EXIT
UID_U=$(id -u "$U")

CONF="$WORK/emmd.conf"
write_conf "$CONF" <<EOF
[fs shared]
backend = file
root-uid = $U
root-gid = 0
root-mode = 1777
EOF
start_emmd "$CONF"
D="$MNT/shared"
assert_contains "$(awk -v d="$D" '$2 == d { print $4 }' /proc/mounts)" "allow_other" "mount options"
assert_contains "$(awk -v d="$D" '$2 == d { print $4 }' /proc/mounts)" "default_permissions" "mount options"
assert_eq "$(stat -c '%u %g %a' "$D")" "$UID_U 0 1777" "root owner, group, mode"
chmod 755 "$WORK" "$MNT"
runuser -u "$U" -- sh -c "echo hi >'$D/from-user'" || fail "user $U cannot create a file in a 1777 root"
assert_eq "$(stat -c %u "$D/from-user")" "$UID_U" "owner of the user's file"
stop_emmd

# the keys removed: the stored root keeps its owner and mode
write_conf "$CONF" <<EOF
[fs shared]
backend = file
EOF
start_emmd "$CONF"
assert_eq "$(stat -c '%u %g %a' "$D")" "$UID_U 0 1777" "root after a restart without the keys"
stop_emmd

# root-mode = 0700, root-uid = 0: the user is shut out
write_conf "$CONF" <<EOF
[fs shared]
backend = file
root-uid = 0
root-mode = 0700
EOF
start_emmd "$CONF"
assert_eq "$(stat -c '%u %a' "$D")" "0 700" "root after root-mode = 0700"
if runuser -u "$U" -- sh -c "ls '$D'" >/dev/null 2>&1; then
    fail "user $U can list a 0700 root owned by root"
fi
assert_eq "$(cat "$D/from-user")" "hi" "the user's file, read by root"
stop_emmd
log "ok"
