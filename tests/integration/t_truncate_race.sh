#!/bin/bash
# t_truncate_race.sh - truncation never brings old data back (issue 8, item 1).
# trunc_race writes a pattern, shrinks the file to a random cut, grows it back
# and checks zeros past the cut by read(2) and mmap, while reader threads keep
# the file's read-ahead READs in flight on the other FUSE threads. Runs on
# `memory` and `zstd:memory` (the backends that lost data: their pager runs in
# the sending thread) and on `lmdb`, each with 4 FUSE threads.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
RACE=$(helper trunc_race)
ITERS=${TRUNC_RACE_ITERS:-600}

write_conf "$WORK/emmd.conf" "fuse-threads=4" <<'CONF_EOF'
[fs mem]
backend = memory

[fs zmem]
backend = zstd:memory

[fs db]
backend = lmdb
CONF_EOF
start_emmd "$WORK/emmd.conf"

for fs in mem zmem db; do
    for seed in 1 7; do
        log "$fs: $ITERS iterations, seed $seed"
        timeout -k 5 300 "$RACE" "$MNT/$fs/f$seed" "$ITERS" 64 3 "$seed" ||
            { show_log; fail "$fs (seed $seed): old data came back past a truncation"; }
    done
done

emmd_alive || fail "emmd died"
stop_emmd
echo "PASS: $T_NAME"
