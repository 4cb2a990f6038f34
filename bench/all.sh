#!/bin/bash
# bench/all.sh BUILD_DIR [OUT_DIR] - what `make bench` runs (not a test): the
# bench scripts one after another, each table printed and saved in OUT_DIR
# (default bench/plots), then bench/plot.sh draws them there:
#   run.sh      -> run.txt       (emm's pool against tmpfs; a table, no plot)
#   backends.sh -> backends.txt  -> backends-latency.svg
#   policy.sh   -> policy.txt    -> policy-hits.svg
#   pressure.sh -> pressure.txt  -> pressure-throughput.svg
#   pager_process.sh -> pager_process.txt (inline against pager = process; a table)
#   datapath.sh -> datapath.txt  (issue 10's rows against their floors; a table)
#   rados.sh    -> rados.txt     (the rados backend on a throwaway Ceph cluster
#                                 against lmdb and `rados bench`; a table)
# BENCH_SCRIPTS picks the scripts, default "run backends policy pager_process rados" (pressure.sh
# takes ~30 min at its defaults: add it with BENCH_SCRIPTS="... pressure"; a
# pressure.txt already in OUT_DIR is plotted either way);
# the scripts' own knobs (BENCH_SIZE, POLICY_REQUESTS, ...) pass through. A
# script that fails stops the run, and the tables saved so far are plotted.
# Needs root for run, backends and pressure (FUSE, drop_caches, cgroups), and
# gnuplot for the plots (scripts/install-deps.sh --bench).
set -euo pipefail

BUILD=${1:?usage: bench/all.sh BUILD_DIR [OUT_DIR]}
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$SRC/bench/plots}
mkdir -p "$OUT"
rc=0
for s in ${BENCH_SCRIPTS:-run backends policy pager_process rados}; do
    case $s in
    run | backends | policy | pressure | pager_process | datapath | rados) ;;
    *) echo "bench/all.sh: unknown script '$s' in BENCH_SCRIPTS" >&2; exit 2 ;;
    esac
    echo "=== bench/$s.sh" >&2
    # a table is kept only when its script finished
    if "$SRC/bench/$s.sh" "$BUILD" | tee "$OUT/$s.txt.new"; then
        mv "$OUT/$s.txt.new" "$OUT/$s.txt"
    else
        rc=1
        rm -f "$OUT/$s.txt.new"
        echo "bench/all.sh: bench/$s.sh failed; plotting what was saved" >&2
        break
    fi
done
"$SRC/bench/plot.sh" "$OUT" || rc=1
exit $rc
