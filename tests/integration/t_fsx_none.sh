#!/bin/bash
# t_fsx_none.sh - the model-checking file tester (emmfsx) on a temporary
# filesystem (backend = none: pages live only in the pool and in swap) with a
# 16M pool and a 256M swap file. Six seeds run at once, each on its own file of
# up to 8 MiB (ops up to 256 KiB), so together they need more than the pool:
# pages go to swap and are faulted back while the files are read, written,
# mapped, truncated, punched and SEEKed. Then swap was used (swap_pages_out
# and swap_faults > 0), no object was killed, and a removed file's slots come
# back. See docs/testing.md "emmfsx".
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" "fuse-threads=4" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M

[fs t]
backend = none
CONF_EOF
start_emmd "$CONF"

fsx_run none "$MNT/t" 6 1500 "101 102 103 104 105 106" -l 8M -o 256K
fsx_check_counts "fsx on none"
out=$(ctl info memory)
printf '%s\n' "$out" | grep -E '^(swap_pages_out|swap_faults|swap_used_pages|evictions|objects_killed|swap_io_errors):' |
    tr '\n' ' ' | sed 's/^/# memory: /' >&2
echo >&2
assert_gt "$(info_get swap_pages_out)" 0 "swap_pages_out (pages of the fsx files went to swap)"
assert_gt "$(info_get swap_faults)" 0 "swap_faults (pages of the fsx files came back from swap)"
assert_eq "$(info_get objects_killed)" 0 "objects_killed"
assert_eq "$(info_get swap_io_errors)" 0 "swap_io_errors"
rm -f "$MNT"/t/fsx-none-*
for ((i = 0; i < 100; i++)); do
    [ "$(info_get swap_used_pages)" = 0 ] && break
    sleep 0.1
done
assert_eq "$(info_get swap_used_pages)" 0 "swap_used_pages once the fsx files are removed (bounded wait)"
stop_emmd
