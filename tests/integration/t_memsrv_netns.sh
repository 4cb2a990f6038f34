#!/bin/bash
# t_memsrv_netns.sh - issue 12 §5, a link cut inside a namespace pair: an
# emm-memserver in one network namespace, an emmd host in another (TLS PSK
# over a veth pair this test creates; nsenter --net, so the host's mounts are
# in the test's mount namespace). The host's veth end is set down with
# `ip link set down` while it needs the server:
# - a fault on a page the host does not hold ends within the deadline, with
#   EIO (bounded: it must not hang);
# - the host's other filesystem (inline) goes on meanwhile;
# - the link set up again, the host talks to the server again (the same
#   connection, or a new one) and continues: it reads its fsync'd data back
#   and writes on.
# Exit 77 when `ip netns` or nsenter cannot be used here.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires ip
requires nsenter

NS_S="emms$$"
NS_H="emmh$$"
V_S="ems$$"
V_H="emh$$"
ip netns add "$NS_S" 2>/dev/null || skip "ip netns add fails here (no CAP_SYS_ADMIN or no netns support)"
if ! ip netns add "$NS_H" 2>/dev/null; then
    ip netns del "$NS_S"
    skip "ip netns add fails here"
fi
NETNS_UP=1
_netns_del() {
    [ -n "${NETNS_UP:-}" ] || return 0
    NETNS_UP=""
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_H" 2>/dev/null || true
}

export MS_ADDR=10.77.12.1 MS_SERVER_NETNS=$NS_S MS_HOST_NETNS=$NS_H
. "$(dirname "$0")/memsrv_lib.sh"
# memsrv_lib's trap stops the hosts and the server; the namespaces go after.
trap '_rc=$?; _ms_exit_then_netns $_rc' EXIT
_ms_exit_then_netns() {
    # Let the host reach its server for its stop (its pages go back).
    ip -n "$NS_H" link set "$V_H" up 2>/dev/null || true
    (exit "$1")
    _ms_exit
}
# lib.sh's _cleanup ends the script: delete the namespaces from its hook.
_orig_cleanup=$(declare -f _cleanup)
eval "${_orig_cleanup/_cleanup ()/_cleanup_lib ()}"
_cleanup() {
    local rc=$?
    _netns_del
    (exit $rc)
    _cleanup_lib
}

ip link add "$V_S" type veth peer name "$V_H" || { _netns_del; skip "cannot make a veth pair"; }
ip link set "$V_S" netns "$NS_S"
ip link set "$V_H" netns "$NS_H"
ip -n "$NS_S" addr add 10.77.12.1/24 dev "$V_S"
ip -n "$NS_H" addr add 10.77.12.2/24 dev "$V_H"
ip -n "$NS_S" link set lo up
ip -n "$NS_H" link set lo up
ip -n "$NS_S" link set "$V_S" up
ip -n "$NS_H" link set "$V_H" up

ms_start_server
ms_start_host a "$MS_PSK" "pager.deadline = 3s" "" "[fs i]" "backend = memory" ||
    fail "host a did not start"
A=$(ms_mnt a)
I="$WORK/hosts/a/mnt/i"
MOUNTS+=("$I")
for ((n = 0; n < 100; n++)); do is_mounted "$I" && break; sleep 0.1; done
is_mounted "$I" || fail "fs i did not mount"
grep -q "TLS 1.3 with the pager at 10.77.12.1" "$WORK/hosts/a/emmd.log" ||
    fail "the host did not reach the server over the veth pair with TLS"
actl() { "$EMMCTL" -s "$WORK/hosts/a/emmd.sock" "$@"; }

log "data on the server, then out of the host's pool and page cache"
head -c 4M /dev/urandom >"$WORK/data"
touch "$A/f"
dd if="$WORK/data" of="$A/f" bs=1M conv=fsync status=none
actl flush s f >/dev/null
echo 3 >/proc/sys/vm/drop_caches

log "cut: ip link set down in the host's namespace"
ip -n "$NS_H" link set "$V_H" down
rc=0
timeout -k 5 60 dd if="$A/f" of=/dev/null bs=4k count=1 skip=100 2>"$WORK/dd.err" || rc=$?
[ $rc != 124 ] && [ $rc != 137 ] || fail "a fault with the link cut did not end within 60 s"
[ $rc != 0 ] || fail "a fault with the link cut succeeded (the page was still cached?)"
grep -q "Input/output error" "$WORK/dd.err" || fail "the fault failed, but not with EIO: $(cat "$WORK/dd.err")"

log "the host's other filesystem goes on while the link is cut"
head -c 1M /dev/urandom >"$WORK/idata"
timeout -k 5 30 dd if="$WORK/idata" of="$I/g" bs=64k conv=fsync status=none ||
    fail "fs i did not take a write while fs s's link was cut"
timeout -k 5 30 cmp "$WORK/idata" "$I/g" || fail "fs i did not read back while fs s's link was cut"

log "link up: the host talks to the server again and continues"
ip -n "$NS_H" link set "$V_H" up
ok=""
for ((n = 0; n < 60; n++)); do
    if timeout -k 5 30 cmp "$WORK/data" "$A/f" 2>/dev/null; then ok=1; break; fi
    sleep 1
done
[ -n "$ok" ] || fail "the host did not read its data back within 60 s of the link coming back"
printf 'after the cut' | dd of="$A/f" bs=1 seek=4096 conv=notrunc,fsync status=none ||
    fail "a write after the link came back failed"
assert_eq "$(dd if="$A/f" bs=1 skip=4096 count=13 status=none)" "after the cut" "the write after the cut"
log "ok"
