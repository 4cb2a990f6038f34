#!/bin/bash
# t_rados_conformance.sh - the backend conformance suite (tests/unit/test_backend.c)
# on the rados plug-in and on zstd:rados, against a throwaway one-mon one-osd
# memstore cluster this script starts (ceph_cluster.sh) and stops by pid.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ceph_cluster.sh"
ceph_need
[ -e "$EMM_BIN/../lib/emm/rados.so" ] || skip "rados.so was not built (librados-dev missing at configure time)"
[ -x "$EMM_BIN/test_backend" ] || skip "test_backend not built (cmocka missing)"
mkdir "$WORK/ceph"
ceph_start "$WORK/ceph"
EMM_TEST_RADOS_CONF=$CEPH_CONF EMM_TEST_RADOS_POOL=$CEPH_POOL "$EMM_BIN/test_backend" ||
    fail "conformance suite on rados failed"
