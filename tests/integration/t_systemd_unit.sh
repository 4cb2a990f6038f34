#!/bin/bash
# t_systemd_unit.sh - the emmd.service the build makes (conf/systemd/
# emmd.service.in) checks clean with `systemd-analyze verify` (ExecStart
# pointed at the built emmd, the manual pages of Documentation= staged in a
# MANPATH): exit 0 and not a word on stderr. It runs `emmd -f` with
# Type=notify, has ExecReload, LimitMEMLOCK, RuntimeDirectory and
# StateDirectory, and no option that would give emmd a private mount namespace
# (its FUSE mounts would then be invisible to everyone else). Skips without
# systemd-analyze. Needs no FUSE.
. "$(dirname "$0")/lib.sh"
need_emm
requires systemd-analyze
BUILD="$EMM_BIN/.."
UNIT="$BUILD/conf/systemd/emmd.service"
[ -f "$UNIT" ] || fail "$UNIT was not built"

# key VALUE: the unit's value of KEY (the last one)
key() { awk -F= -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$UNIT"; }

assert_eq "$(key Type)" notify "Type"
assert_contains "$(key ExecStart)" "/emmd -f -c " "ExecStart"
assert_contains "$(key ExecReload)" 'kill -HUP $MAINPID' "ExecReload"
assert_eq "$(key LimitMEMLOCK)" infinity "LimitMEMLOCK"
assert_eq "$(key RuntimeDirectory)" emm "RuntimeDirectory"
assert_eq "$(key RuntimeDirectoryMode)" 0755 "RuntimeDirectoryMode (mountpoints under it)"
assert_eq "$(key StateDirectory)" emm "StateDirectory"
assert_contains "$(key CapabilityBoundingSet)" CAP_SYS_ADMIN "CapabilityBoundingSet"
assert_contains "$(key CapabilityBoundingSet)" CAP_IPC_LOCK "CapabilityBoundingSet"
for k in ProtectSystem ProtectHome PrivateTmp PrivateDevices PrivateMounts ProtectKernelTunables \
    ProtectKernelModules ProtectKernelLogs ProtectControlGroups ProtectClock ProtectProc \
    ReadOnlyPaths ReadWritePaths InaccessiblePaths TemporaryFileSystem BindPaths MountFlags \
    DevicePolicy DeviceAllow RootDirectory RootImage; do
    v=$(key $k)
    case "$v" in '' | no | false) ;; *) fail "emmd.service sets $k=$v: a private mount namespace or device filter breaks the FUSE mounts" ;; esac
done

# systemd-analyze verify: the unit as installed, with the built emmd and the
# built manual pages (verify runs `man` for each Documentation= page)
mkdir -p "$WORK/man/man5" "$WORK/man/man8"
cp "$BUILD"/man/*.5 "$WORK/man/man5/" 2>/dev/null || true
cp "$BUILD"/man/*.8 "$WORK/man/man8/" 2>/dev/null || true
sbin=$(key ExecStart | awk '{ print $1 }')
sed "s|$sbin|$EMM_BIN/emmd|g" "$UNIT" >"$WORK/emmd.service"
grep -q "ExecStart=$EMM_BIN/emmd -f" "$WORK/emmd.service" || fail "could not point ExecStart at $EMM_BIN/emmd"
rc=0
MANPATH="$WORK/man" systemd-analyze verify "$WORK/emmd.service" >"$WORK/verify.out" 2>&1 || rc=$?
out=$(cat "$WORK/verify.out")
[ $rc = 0 ] || fail "systemd-analyze verify exited $rc: $out"
[ -z "$out" ] || fail "systemd-analyze verify complained: $out"
log "systemd-analyze verify: clean"
