#!/bin/bash
# t_sigterm_swap.sh - SIGTERM while the default pager is still writing pages of
# a temporary filesystem to swap: emmd exits cleanly (status 0). The pool's
# frames are lent to the default pager in data_returns; the kernel must not
# unmap the pool before every loan is back (it once did: a SEGV in the default
# pager's CRC of a page, about one shutdown in two). A 16 MiB pool and 96 MiB
# written just before the signal keep data_returns in flight at shutdown.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap.img 256M

[fs t]
backend = none
CONF_EOF
D="$MNT/t"

for round in 1 2 3 4; do
    start_emmd "$CONF"
    dd if=/dev/urandom of="$D/f" bs=1M count=96 status=none || fail "round $round: dd"
    stop_emmd    # fails unless emmd exits 0 on SIGTERM
    rm -f "$WORK/swap.img"
done
