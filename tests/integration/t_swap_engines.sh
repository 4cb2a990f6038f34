#!/bin/bash
# t_swap_engines.sh - swap I/O through each engine of swapfs/swap_io.c: io_uring
# (EMM_SWAP_IO=uring, the default) and the thread fallback (EMM_SWAP_IO=threads),
# byte for byte, and a kill -9 in the middle of swap writes.
#
# For each engine, emmd runs a temporary filesystem (backend = none) with a
# 16M pool and a 256M swap file:
#   1. the log names the engine (io_uring may be refused by the machine: then
#      the uring run must say it fell back to threads, and why);
#   2. 96 MiB of random data written with dd conv=fsync, and 32 MiB through
#      mmap + msync (emmio fill -m -y), go out to swap (swap_pages_out) and
#      read back equal after the page cache is dropped (cmp, emmio check),
#      faulting from swap (swap_faults > 0);
#   3. SIGTERM: the close logs the engine's I/O counts with 0 failed;
#   4. restart on the same swap file, a dd stream of 96 MiB starts, and emmd
#      is killed with SIGKILL while pages are being written to swap; the next
#      start must recover the area (its descriptors are scanned: the log line
#      "pages recovered") and drop the dead service's temporary pages, leaving
#      no slot used (info memory swap_used_pages 0), and serve a new file
#      through swap again, byte for byte.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires cmp dd timeout python3
EMMIO=$(helper emmio)

STREAM=""
trap '_rc=$?; trap - ERR; set +e; [ -z "$STREAM" ] || { kill "$STREAM"; wait "$STREAM"; } 2>/dev/null; (exit $_rc); _cleanup' EXIT

head -c $((96 << 20)) /dev/urandom >"$WORK/src"

run_engine() {
    local engine=$1 conf="$WORK/emmd-$1.conf" d
    rm -rf "$STATE"
    rm -f "$WORK/swap-$engine.img"
    write_conf "$conf" "resident-limit=16M" <<CONF_EOF
[default-pager]
swap = $WORK/swap-$engine.img 256M

[fs t]
backend = none
CONF_EOF
    d="$MNT/t"
    export EMM_SWAP_IO=$engine
    : >"$WORK/emmd.log"
    start_emmd "$conf"
    if [ "$engine" = threads ]; then
        grep -q "swap I/O through [0-9]* threads (io_uring: asked for)" "$EMMD_LOG" ||
            fail "threads: the log does not name the thread engine: $(grep 'swap I/O' "$EMMD_LOG")"
    elif ! grep -q "swap I/O through io_uring" "$EMMD_LOG"; then
        grep -q "swap I/O through [0-9]* threads (io_uring: " "$EMMD_LOG" ||
            fail "uring: the log names no engine: $(grep 'swap I/O' "$EMMD_LOG")"
        log "io_uring refused here: $(grep -o 'io_uring: [^)]*' "$EMMD_LOG" | head -1); ran the fallback"
    fi

    dd if="$WORK/src" of="$d/big" bs=1M conv=fsync status=none
    "$EMMIO" fill -m -y "$d/mm" 0 32M 11
    assert_gt "$(mem swap_pages_out)" 0 "$engine: pages out to swap"
    drop_cache "$d/big"
    drop_cache "$d/mm"
    cmp "$WORK/src" "$d/big" || fail "$engine: the dd file reads back different"
    "$EMMIO" check "$d/mm" 0 32M 11 || fail "$engine: the mmap file reads back different"
    assert_gt "$(mem swap_faults)" 0 "$engine: faults served from swap"
    assert_eq "$(mem swap_io_errors)" 0 "$engine: swap I/O errors"
    stop_emmd
    grep -q "swap $WORK/swap-$engine.img: [a-z_]*: [0-9]* I/Os (.*), [0-9]* short, 0 failed" "$EMMD_LOG" ||
        fail "$engine: no I/O counts at close, or failures: $(grep 'I/Os' "$EMMD_LOG")"

    # kill -9 in the middle of swap writes, then recovery
    : >"$WORK/emmd.log"
    start_emmd "$conf"
    local before
    before=$(mem swap_pages_out)
    dd if="$WORK/src" of="$d/cut" bs=1M status=none 2>/dev/null &
    STREAM=$!
    local i
    for ((i = 0; i < 600; i++)); do
        [ "$(mem swap_pages_out)" -gt $((before + 4096)) ] && break
        sleep 0.05
    done
    assert_gt "$(mem swap_pages_out)" $((before + 4096)) "$engine: swap writes under way before the kill"
    kill -KILL "$EMMD_PID"
    wait "$EMMD_PID" 2>/dev/null || true
    EMMD_PID=""
    wait "$STREAM" 2>/dev/null || true
    STREAM=""
    fusermount3 -u "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || true
    rm -f "$SOCK" # the dead one's: start_emmd waits for the new one
    : >"$WORK/emmd.log"
    start_emmd "$conf"
    grep -q "swap $WORK/swap-$engine.img: .* pages recovered ([0-9]* temporary dropped" "$EMMD_LOG" ||
        fail "$engine: no recovery line after kill -9: $(grep 'recovered' "$EMMD_LOG")"
    assert_eq "$(mem swap_used_pages)" 0 "$engine: slots used after recovery (temporary pages die with the service)"
    dd if="$WORK/src" of="$d/again" bs=1M conv=fsync status=none
    drop_cache "$d/again"
    cmp "$WORK/src" "$d/again" || fail "$engine: after recovery, the file reads back different"
    stop_emmd
    unset EMM_SWAP_IO
}

run_engine uring
run_engine threads
log "ok: both engines, byte for byte, and recovery after kill -9"
