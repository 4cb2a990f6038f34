#!/bin/bash
# t_rados_bad_config.sh - the rados backend refuses what cannot work, clearly,
# and mounts nothing. Config mistakes are caught by `emmd -n` with FILE:LINE
# (unknown key, missing rados.pool, unreadable rados.conf or rados.keyring, a
# bad object size or timeout). Against a throwaway cluster with cephx
# (ceph_cluster.sh, CEPH_AUTH=cephx), emmd start-up fails naming the cluster
# for: an unreachable cluster (a ceph.conf whose mon port has nothing behind
# it: bounded by rados.connect-timeout), a missing pool, a wrong key, an
# unknown user, and an object size other than the one the pool's filesystem
# was written with. The right user and keyring (client.emm, caps on the pool
# only) then mount and store data.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
IO=$(helper emmio)

# conf FILE FS-KEYS...: an emmd config with one [fs b] (backend rados) at line 9
conf() {
    local f=$1 kv
    shift
    write_conf "$f" </dev/null
    {
        echo "[fs b]"
        echo "backend = rados"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
    } >>"$f"
}
# check_n OFFSET WANT KEYS...: emmd -n fails and prints WANT, after
# "n.conf:L: " with L the [fs b] line + OFFSET unless OFFSET is -
check_n() {
    local off=$1 want=$2 out rc=0 l
    shift 2
    conf "$WORK/n.conf" "$@"
    l=$(grep -n '^\[fs b\]' "$WORK/n.conf" | cut -d: -f1)
    [ "$off" = - ] || want="n.conf:$((l + off)): $want"
    out=$("$EMMD" -n -c "$WORK/n.conf" 2>&1) || rc=$?
    assert_ne "$rc" 0 "emmd -n status for: $*"
    assert_contains "$out" "$want" "emmd -n output for: $*"
    log "emmd -n: $(printf '%s' "$out" | grep -F "$want" | head -n 1)"
}
echo "; ceph.conf" >"$WORK/empty.conf"
check_n 3 "rados.colour: unknown key" rados.pool=p rados.colour=blue
check_n 1 "rados: rados.pool is required" rados.conf="$WORK/empty.conf"
check_n - "rados.conf: cannot read /nonexistent/ceph.conf" rados.pool=p rados.conf=/nonexistent/ceph.conf
check_n 4 "rados.keyring: 'rel/keyring' is not an absolute path" rados.pool=p rados.conf="$WORK/empty.conf" rados.keyring=rel/keyring
check_n 4 "rados.object-size: '3M' is not a power of two" rados.pool=p rados.conf="$WORK/empty.conf" rados.object-size=3M
check_n 4 "rados.connect-timeout: 'soon' is not a number of seconds" rados.pool=p rados.conf="$WORK/empty.conf" rados.connect-timeout=soon
check_n 4 "rados.meta-timeout: '0' is not a number of seconds (1..3600)" rados.pool=p rados.conf="$WORK/empty.conf" rados.meta-timeout=0
check_n 4 "rados.write-behind: '5T' is not a size from 0 to 4G" rados.pool=p rados.conf="$WORK/empty.conf" rados.write-behind=5T
check_n 4 "rados.write-window: '50' is not a number of milliseconds" rados.pool=p rados.conf="$WORK/empty.conf" rados.write-window=50

# start_fails WANT KEYS...: emmd -f exits non-zero within 60 s, says WANT, mounts nothing
start_fails() {
    local want=$1 out rc=0
    shift
    conf "$WORK/s.conf" "$@"
    out=$(timeout 60 "$EMMD" -f -c "$WORK/s.conf" 2>&1) || rc=$?
    assert_ne "$rc" 0 "emmd status for: $*"
    assert_ne "$rc" 124 "emmd must give up, not hang, for: $*"
    assert_contains "$out" "$want" "emmd output for: $*"
    log "emmd: $(printf '%s' "$out" | grep -F "$want" | head -n 1)"
    ! is_mounted "$MNT/b" || fail "a failed start left $MNT/b mounted"
}

# unreachable: a mon address where nothing listens
PORT=$(_ceph_free_port)
printf '[global]\nfsid = 11111111-2222-3333-4444-555555555555\nmon host = v2:127.0.0.1:%s\nauth client required = none\n' "$PORT" >"$WORK/nowhere.conf"
start_fails "cannot connect to cluster 11111111-2222-3333-4444-555555555555 (mon host v2:127.0.0.1:$PORT) as client.admin within 3 s" \
    rados.conf="$WORK/nowhere.conf" rados.pool=p rados.connect-timeout=3

CEPH_AUTH=cephx
mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
[ -s "$WORK/ceph/emm.keyring" ] || fail "ceph_start wrote no client.emm keyring"
sed 's/key = .*/key = AQBkAAAAAAAAABAAn7Y0U7o7k0dHhF1QdUaLnw==/' "$WORK/ceph/emm.keyring" >"$WORK/wrong.keyring"
start_fails "pool nosuch of cluster" rados.conf="$CEPH_CONF" rados.pool=nosuch
start_fails "cannot connect to cluster" rados.conf="$CEPH_CONF" rados.pool="$CEPH_POOL" rados.user=emm \
    rados.keyring="$WORK/wrong.keyring" rados.connect-timeout=5
start_fails "(check rados.user and rados.keyring)" rados.conf="$CEPH_CONF" rados.pool="$CEPH_POOL" rados.user=nobody \
    rados.keyring="$WORK/ceph/emm.keyring" rados.connect-timeout=5

# the right credentials mount
conf "$WORK/ok.conf" rados.conf="$CEPH_CONF" rados.pool="$CEPH_POOL" rados.user=emm \
    rados.keyring="$WORK/ceph/emm.keyring" rados.object-size=256K
start_emmd "$WORK/ok.conf"
"$IO" fill -y "$MNT/b/x" 0 $((1 << 20)) 31
"$IO" check "$MNT/b/x" 0 $((1 << 20)) 31 || fail "data through client.emm"
stop_emmd
# the pool's filesystem b was written with 256K objects: 4M is refused
start_fails "holds this filesystem with object-size 262144 bytes, not 4194304" rados.conf="$CEPH_CONF" \
    rados.pool="$CEPH_POOL" rados.user=emm rados.keyring="$WORK/ceph/emm.keyring"
