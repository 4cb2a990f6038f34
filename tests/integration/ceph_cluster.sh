# ceph_cluster.sh - a throwaway single-node Ceph cluster for the rados tests and
# bench/rados.sh: one mon and one osd from Debian's ceph-mon/ceph-osd packages,
# memstore (objects in the osd's RAM), pool size 1, no mgr, on a free private
# port of 127.0.0.1, all files under one directory. Auth is none, or cephx when
# CEPH_AUTH=cephx (client.admin's key in $CEPH_DIR/keyring, and a client.emm
# with rw caps on the pool in $CEPH_DIR/emm.keyring).
#
# Source it, then:
#   ceph_need              exit 77 (saying why) unless the daemons and librados are here
#   ceph_start DIR [POOL]  start in DIR (must exist, empty); bounded: fails with
#                          a clear message if the pool takes no write within
#                          CEPH_START_WAIT tenths of a second (default 600)
#   ceph_stop              SIGTERM the osd then the mon by pid (bounded), SIGKILL
#                          stragglers; safe to call twice; call it from the EXIT trap
# It sets CEPH_CONF (the ceph.conf every client reads), CEPH_POOL, CEPH_PORT,
# CEPH_OSD_PID and CEPH_MON_PID. Nothing is ever killed by name.

CEPH_OSD_PID=""
CEPH_MON_PID=""
CEPH_DIR=""

_ceph_log() { printf '# ceph: %s\n' "$*" >&2; }

ceph_need() {
    local c
    for c in ceph-mon ceph-osd monmaptool ceph rados; do
        if ! command -v "$c" >/dev/null 2>&1; then
            printf 'SKIP: %s: needs %s (scripts/install-deps.sh installs ceph-mon, ceph-osd, ceph-common)\n' \
                "${T_NAME:-ceph}" "$c" >&2
            exit 77
        fi
    done
}

# A free TCP port on 127.0.0.1 (bind to 0, read it back; a small race is fine
# for a test: the mon's bind then fails loudly).
_ceph_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_ceph_fail() {
    printf 'FAIL: %s: ceph cluster in %s: %s\n' "${T_NAME:-ceph}" "$CEPH_DIR" "$*" >&2
    local f
    for f in "$CEPH_DIR"/log/mon.a.log "$CEPH_DIR"/log/osd.0.log; do
        [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 15 "$f" >&2; }
    done
    ceph_stop
    exit 1
}

_ceph_pid_of() { # FILE: the pid written there, once it is there
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$1" ] && { cat "$1"; return 0; }
        sleep 0.1
    done
    return 1
}

ceph_start() {
    CEPH_DIR=$1
    CEPH_POOL=${2:-emm}
    local wait=${CEPH_START_WAIT:-600} auth=none fsid i
    [ "${CEPH_AUTH:-none}" = cephx ] && auth=cephx
    mkdir -p "$CEPH_DIR"/{mon,osd,log,run,crash}
    CEPH_PORT=$(_ceph_free_port)
    fsid=$(cat /proc/sys/kernel/random/uuid)
    export CEPH_CONF="$CEPH_DIR/ceph.conf"
    cat >"$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$CEPH_PORT
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
$( [ $auth = cephx ] && echo "keyring = $CEPH_DIR/keyring" )
run dir = $CEPH_DIR/run

log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
crash dir = $CEPH_DIR/crash
chdir = ""
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
mon allow pool delete = true
paxos propose interval = 0.1
osd fast shutdown = true
mon data avail crit = 0
mon data avail warn = 0
mon warn on pool no redundancy = false
ms bind msgr1 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth allow insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
[mon.a]
admin socket = $CEPH_DIR/run/\$name.asok
mon data = $CEPH_DIR/mon
mon cluster log file = $CEPH_DIR/log/cluster.log
[osd.0]
admin socket = $CEPH_DIR/run/\$name.asok
osd data = $CEPH_DIR/osd
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-4294967296}
osd class load list = *
osd class default list = *
CONF
    local monkeyring=/dev/null
    if [ $auth = cephx ]; then
        ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
        ceph-authtool "$CEPH_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
            --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
        ceph-authtool "$CEPH_DIR/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' \
            --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
        monkeyring="$CEPH_DIR/keyring"
    fi
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$CEPH_PORT]" \
        "$CEPH_DIR/monmap" >/dev/null 2>&1 || _ceph_fail "monmaptool failed"
    ceph-mon --id a --mkfs --monmap "$CEPH_DIR/monmap" --keyring "$monkeyring" \
        >"$CEPH_DIR/log/mkfs-mon.out" 2>&1 || _ceph_fail "ceph-mon --mkfs failed: $(cat "$CEPH_DIR/log/mkfs-mon.out")"
    ceph-mon --id a >"$CEPH_DIR/log/mon.out" 2>&1 || _ceph_fail "ceph-mon did not start: $(cat "$CEPH_DIR/log/mon.out")"
    CEPH_MON_PID=$(_ceph_pid_of "$CEPH_DIR/run/mon.a.pid") || _ceph_fail "ceph-mon wrote no pid file"
    [ $auth = cephx ] && { timeout 60 ceph auth import -i "$CEPH_DIR/keyring" >/dev/null 2>&1 ||
        _ceph_fail "ceph auth import failed"; }
    local uuid id
    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(timeout 60 ceph osd new "$uuid" 2>"$CEPH_DIR/log/osdnew.err") ||
        _ceph_fail "ceph osd new failed: $(cat "$CEPH_DIR/log/osdnew.err")"
    [ "$id" = 0 ] || _ceph_fail "ceph osd new gave id '$id', expected 0"
    timeout 60 ceph osd crush add osd.0 1 root=default >/dev/null 2>&1 || _ceph_fail "ceph osd crush add failed"
    [ $auth = cephx ] && cp "$CEPH_DIR/keyring" "$CEPH_DIR/osd/keyring"
    ceph-osd --id 0 --mkfs --osd-uuid "$uuid" >"$CEPH_DIR/log/mkfs-osd.out" 2>&1 ||
        _ceph_fail "ceph-osd --mkfs failed: $(tail -n 5 "$CEPH_DIR/log/mkfs-osd.out")"
    ceph-osd --id 0 >"$CEPH_DIR/log/osd.out" 2>&1 || _ceph_fail "ceph-osd did not start: $(cat "$CEPH_DIR/log/osd.out")"
    CEPH_OSD_PID=$(_ceph_pid_of "$CEPH_DIR/run/osd.0.pid") || _ceph_fail "ceph-osd wrote no pid file"
    timeout 60 ceph osd pool create "$CEPH_POOL" 8 8 >/dev/null 2>&1 || _ceph_fail "cannot create pool $CEPH_POOL"
    timeout 60 ceph osd pool application enable "$CEPH_POOL" emm >/dev/null 2>&1 || true
    for ((i = 0; i < wait; i += 5)); do
        if echo probe | timeout 10 rados -p "$CEPH_POOL" put _probe - 2>/dev/null; then
            timeout 10 rados -p "$CEPH_POOL" rm _probe 2>/dev/null || true
            if [ $auth = cephx ]; then
                timeout 60 ceph auth get-or-create client.emm mon 'allow r' \
                    osd "allow rwx pool=$CEPH_POOL" >"$CEPH_DIR/emm.keyring" 2>/dev/null ||
                    _ceph_fail "cannot create client.emm"
            fi
            _ceph_log "up: mon pid $CEPH_MON_PID, osd pid $CEPH_OSD_PID, 127.0.0.1:$CEPH_PORT, pool $CEPH_POOL, auth $auth"
            return 0
        fi
        kill -0 "$CEPH_OSD_PID" 2>/dev/null || _ceph_fail "ceph-osd (pid $CEPH_OSD_PID) died"
        sleep 0.5
    done
    _ceph_fail "pool $CEPH_POOL took no write within $((wait / 10)) s"
}

_ceph_stop_pid() { # PID NAME
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null || true   # a SIGSTOPped daemon must see its SIGTERM
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    _ceph_log "$2 (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

ceph_stop() {
    _ceph_stop_pid "$CEPH_OSD_PID" ceph-osd
    CEPH_OSD_PID=""
    _ceph_stop_pid "$CEPH_MON_PID" ceph-mon
    CEPH_MON_PID=""
}

# lib.sh's _cleanup calls this after stopping emmd, before removing $WORK.
cleanup_hook() { ceph_stop; }
