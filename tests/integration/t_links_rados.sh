#!/bin/bash
# t_links_rados.sh - symbolic and hard links on a filesystem whose catalog is
# the backend's namespace store (rados: the omap of one object in the pool,
# throwaway cluster from ceph_cluster.sh): the checks of t_links.sh
# (links_lib.sh), then a restart with an EMPTY state directory, so every link
# comes back from the pool; removing every name leaves the namespace empty.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
need_fuse
need_emm
requires python3 timeout
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
. "$(dirname "$0")/links_lib.sh"

mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[fs r]
backend = rados
rados.conf = $CEPH_CONF
rados.pool = $CEPH_POOL
rados.object-size = 1M
CONF_EOF
start_emmd "$CONF"
links_make "$MNT/r"
links_check "$MNT/r" "before a restart"
stop_emmd
rm -rf "$STATE"
mkdir -p "$STATE"
start_emmd "$CONF"
links_check "$MNT/r" "after a restart with an empty state directory"
rm -rf "${MNT:?}/r/"*
stop_emmd
start_emmd "$CONF"
[ -z "$(ls -A "$MNT/r")" ] || fail "the filesystem is not empty after removing everything and a restart"
stop_emmd
