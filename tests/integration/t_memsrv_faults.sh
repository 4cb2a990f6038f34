#!/bin/bash
# t_memsrv_faults.sh - emm-memserver against bad peers and dying hosts
# (docs/memserver.md, "Security" and "Faults"), on 127.0.0.1:
# - an emmd with the wrong pre-shared key is refused by the server during
#   the TLS handshake, with a log line naming its address, and gets no mount;
# - a plain-text emmd (pager.tls = off) against a TLS server is refused too;
# - a garbage client (random bytes) and one that connects and says nothing
#   are refused, and two hosts sharing a file go on undisturbed meanwhile;
# - kill -9 of a host in the middle of its writes: the server logs it gone,
#   the surviving host still reads and writes the shared object (the page the
#   dead host held for writing is taken back from it without its answer), and
#   a restarted host sees the survivor's data;
# - with tls = off the server still talks to a loopback host (tests only),
#   and says PLAIN TEXT in its log.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
. "$(dirname "$0")/memsrv_lib.sh"

ms_start_server
ms_start_host a || fail "host a did not start"
ms_start_host b || fail "host b did not start"
A=$(ms_mnt a) B=$(ms_mnt b)
ms_share f 1M
head -c 1M /dev/urandom >"$WORK/data"
cp "$WORK/data" "$A/f"
cmp "$WORK/data" "$B/f" || fail "B does not read A's data"

log "a host with the wrong key is refused before any request"
ms_psk "$WORK/wrongpsk" emmtest
if ms_start_host bad "$WORK/wrongpsk"; then
    fail "a host with the wrong PSK mounted"
fi
MS_HOST_PID[bad]=""
wait_log() { # PATTERN FILE: bounded wait for a log line
    local i
    for ((i = 0; i < 100; i++)); do grep -q "$1" "$2" && return 0; sleep 0.1; done
    return 1
}
wait_log "refused host 127.0.0.1:[0-9]*: TLS handshake failed" "$MS_LOG" ||
    fail "no log line refusing the wrong key with the peer's address"
grep -q "TLS with the pager at 127.0.0.1:$MS_PORT failed" "$WORK/hosts/bad/emmd.log" ||
    fail "the refused host does not say why"
is_mounted "$WORK/hosts/bad/mnt/s" && fail "the refused host is mounted"

log "a plain-text host is refused by a TLS server"
n=$(grep -c "refused host" "$MS_LOG")
if ms_start_host plain off; then
    fail "a plain-text host mounted against a TLS server"
fi
MS_HOST_PID[plain]=""
wait_log "refused host" "$MS_LOG"
assert_gt "$(grep -c "refused host" "$MS_LOG")" "$n" "refusals after the plain-text host"

log "garbage clients are refused; the hosts go on"
n=$(grep -c "refused host" "$MS_LOG")
head -c 65536 /dev/urandom >"/dev/tcp/127.0.0.1/$MS_PORT" || true
# a TLS-shaped start, then garbage
{ printf '\x16\x03\x01\x02\x00'; head -c 8192 /dev/urandom; } >"/dev/tcp/127.0.0.1/$MS_PORT" || true
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c "refused host" "$MS_LOG")" -ge $((n + 2)) ] && break
    sleep 0.1
done
assert_ge "$(grep -c "refused host" "$MS_LOG")" $((n + 2)) "refusals of the garbage clients"
printf 'after garbage' | dd of="$B/f" bs=1 seek=777 conv=notrunc status=none
printf 'after garbage' | dd of="$WORK/data" bs=1 seek=777 conv=notrunc status=none
cmp "$WORK/data" "$A/f" || fail "A and B no longer share the file after the garbage"
kill -0 "$MS_PID" || fail "the memserver died"

log "kill -9 of host b in the middle of its writes; a goes on"
( while :; do dd if=/dev/urandom of="$B/f" bs=4k count=256 conv=notrunc status=none 2>/dev/null || exit 0; done ) &
writer=$!
sleep 1
kill -KILL "${MS_HOST_PID[b]}"
wait "${MS_HOST_PID[b]}" 2>/dev/null || true
MS_HOST_PID[b]=""
wait "$writer" 2>/dev/null || true
fusermount3 -u "$B" 2>/dev/null || fusermount3 -u -z "$B"
wait_log "host 127.0.0.1:[0-9]* (psk identity emmtest) is gone" "$MS_LOG" ||
    fail "the memserver did not notice host b's death"
# A takes every page back (b held some for writing): bounded by timeout, no hang.
timeout 60 dd if=/dev/urandom of="$WORK/data" bs=1M count=1 status=none
timeout 60 dd if="$WORK/data" of="$A/f" bs=64k conv=notrunc status=none || fail "A cannot write after b died"
timeout 60 cmp "$WORK/data" "$A/f" || fail "A does not read back its own writes after b died"
kill -0 "$MS_PID" || fail "the memserver died with host b"

log "host b again: it sees a's data"
rm -rf "$WORK/hosts/b/state"
ms_start_host b || fail "host b did not restart"
B=$(ms_mnt b)
assert_eq "$(stat -c %s "$B/f")" 1048576 "size of f on the restarted b (the server's namespace)"
timeout 60 cmp "$WORK/data" "$B/f" || fail "the restarted b does not read a's data"
ms_stop_host a
ms_stop_host b
ms_stop_server
grep -q "[1-9][0-9]* lost" "$MS_LOG" || fail "the memserver's stop line counts no host lost"

log "tls = off: a loopback host in plain text, loudly"
MS_PORT=""
: >"$MS_LOG"
ms_start_server tls=off
grep -q "PLAIN TEXT" "$MS_LOG" || fail "no PLAIN TEXT warning from the memserver"
rm -rf "$WORK/hosts/a/state"
ms_start_host a off || fail "a plain-text host on loopback did not start"
grep -q "PLAIN TEXT" "$WORK/hosts/a/emmd.log" || fail "no PLAIN TEXT warning from emmd"
touch "$(ms_mnt a)/g"
printf 'plain' >"$(ms_mnt a)/g"
assert_eq "$(cat "$(ms_mnt a)/g")" "plain" "a plain-text host reads its write"
ms_stop_host a
ms_stop_server
