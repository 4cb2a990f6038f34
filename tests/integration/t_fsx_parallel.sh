#!/bin/bash
# t_fsx_parallel.sh - several instances of the model-checking file tester
# (emmfsx) at once on one mount, each on its own file with its own seed: four
# at a time, eight seeds, on lmdb with a 2M pool and 4 FUSE threads, so the
# instances' pages push each other out of the pool while their FUSE requests
# interleave on the loop threads. Every run's reads must match its model. See
# docs/testing.md "emmfsx".
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=2M" "fuse-threads=4" <<CONF_EOF
[fs p]
backend = lmdb
CONF_EOF
start_emmd "$CONF"
fsx_run parallel "$MNT/p" 4 3000 "301 302 303 304 305 306 307 308"
fsx_check_counts "parallel fsx on lmdb"
n=$(ctl ls | awk '$1 == "p" && $2 ~ /^fsx-parallel-/' | wc -l)
assert_eq "$n" 8 "objects of the parallel runs in emmctl ls"
stop_emmd
