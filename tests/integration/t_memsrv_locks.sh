#!/bin/bash
# t_memsrv_locks.sh - fcntl and flock locks are cluster-wide on a pager = tcp:
# filesystem (docs/memserver.md "Record locks"): two emmd hosts, one
# emm-memserver on 127.0.0.1 (TLS PSK).
# - four processes (two per host) each add one to a counter in one shared
#   page 500 times under F_SETLKW: through pread/pwrite, through mmap +
#   msync, through mmap without msync (the release writes the page cache
#   back), and under flock: the count is exactly 2000 on both hosts (lost
#   updates when the locks are each host's own);
# - the same without locks on disjoint pages: 500 on each page;
# - flock exclusion across hosts; F_GETLK on B reports A's lock and its pid;
# - an F_SETLKW waiting on B for a lock held on A is interrupted by a signal;
# - kill -9 of the host holding a lock: the other host gets it.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
. "$(dirname "$0")/memsrv_lib.sh"
LC=$(helper lockctr)
HOLDER="" W=""
# A failed step may leave a holder or a waiter (started here) behind: they go
# first, then memsrv_lib's trap stops the hosts and the server.
trap '_rc=$?; for p in $HOLDER $W; do kill -KILL "$p" 2>/dev/null || true; done; (exit $_rc); _ms_exit' EXIT
tlog() { log "$(date +%T) $*"; }

ms_start_server
ms_start_host a || fail "host a did not start"
ms_start_host b || fail "host b did not start"
A=$(ms_mnt a) B=$(ms_mnt b)
ms_share f 64K
ms_share g 8M
ms_share h 64K

# count FILE OFF KIND [mmap]: four processes, two per host, 500 each.
count() {
    local f=$1 off=$2 kind=$3 mode=${4:-} p pids=() rc=0
    for m in "$A" "$A" "$B" "$B"; do
        timeout -k 5 $STEP_LIMIT "$LC" incr "$m/$f" "$off" 500 "$kind" $mode &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=$?; done
    [ $rc = 0 ] || fail "a counter process ($kind $mode) failed (status $rc)"
    for m in "$A" "$B"; do
        assert_eq "$("$LC" read "$m/$f" "$off")" 2000 "$kind $mode counter at $off on $m"
    done
}

tlog "fcntl F_SETLKW around pread/pwrite: 4 x 500 on two hosts"
count f 0 fcntl
tlog "fcntl F_SETLKW around mmap stores + msync"
count f 8192 fcntl mmap
tlog "fcntl F_SETLKW around mmap stores, no msync: the unlock writes them back"
count f 12288 fcntl mmapnosync
tlog "flock around pread/pwrite"
count f 16384 flock

# Pages 2 MiB apart: neighbouring pages would be read ahead by the other
# host and bounce between the two (false sharing, slow under coherence).
tlog "no locks, disjoint pages: 500 on each of four pages"
pids=()
i=0
for m in "$A" "$A" "$B" "$B"; do
    "$LC" incr "$m/g" $((i << 21)) 500 none &
    pids+=($!)
    i=$((i + 1))
done
for p in "${pids[@]}"; do wait "$p" || fail "an unlocked counter failed"; done
for i in 0 1 2 3; do
    for m in "$A" "$B"; do
        assert_eq "$("$LC" read "$m/g" $((i << 21)))" 500 "page $((i << 9)) on $m"
    done
done

# hold KIND FILE OUT: a holder in the background, once it has the lock.
hold() {
    "$LC" hold "$2" "$1" >"$3" 2>&1 &
    HOLDER=$!
    for ((i = 0; i < 100; i++)); do
        grep -q locked "$3" && return 0
        kill -0 $HOLDER 2>/dev/null || { cat "$3" >&2; fail "the holder ($1 on $2) exited"; }
        sleep 0.1
    done
    fail "the holder ($1 on $2) did not get its lock"
}
unhold() {
    kill -TERM "$HOLDER"
    wait "$HOLDER" 2>/dev/null || true
}

tlog "flock exclusion across hosts"
hold flock "$A/h" "$WORK/hold1"
assert_eq "$("$LC" try "$B/h" flock || true)" busy "flock on B while A holds it"
assert_eq "$("$LC" try "$B/h" fcntl)" got "fcntl on B (another kind) while A holds a flock"
unhold
assert_eq "$("$LC" try "$B/h" flock)" got "flock on B after A let go"

tlog "F_GETLK on B reports A's fcntl lock"
hold fcntl "$A/h" "$WORK/hold2"
got=$("$LC" getlk "$B/h")
assert_eq "$got" "F_WRLCK start 0 len 4096 pid $HOLDER" "F_GETLK on B"
assert_eq "$("$LC" try "$B/h" fcntl || true)" busy "F_SETLK on B while A holds it"

tlog "an F_SETLKW waiting on B is interrupted by a signal"
"$LC" wait "$B/h" fcntl >"$WORK/waiter" 2>&1 &
W=$!
sleep 0.5
kill -0 $W 2>/dev/null || fail "the waiter on B did not wait: $(cat "$WORK/waiter")"
kill -TERM $W
rc=0
timeout 10 tail --pid=$W -f /dev/null || fail "SIGTERM did not end an F_SETLKW waiting across hosts"
wait $W || rc=$?
assert_eq "$rc" 143 "the interrupted waiter's status"
unhold
assert_eq "$("$LC" try "$B/h" fcntl)" got "F_SETLK on B after A let go (the cancelled waiter holds nothing)"

tlog "kill -9 of host A holding a lock: B gets it"
hold fcntl "$A/h" "$WORK/hold3"
timeout -k 5 $STEP_LIMIT "$LC" wait "$B/h" fcntl >"$WORK/waiter2" 2>&1 &
W=$!
sleep 0.5
grep -q got "$WORK/waiter2" && fail "B got the lock while A held it"
kill -KILL "${MS_HOST_PID[a]}"
wait "${MS_HOST_PID[a]}" 2>/dev/null || true
MS_HOST_PID[a]=""
wait $W || fail "B's waiter failed after A died: $(cat "$WORK/waiter2")"
assert_eq "$(cat "$WORK/waiter2")" got "B's waiter"
kill -KILL "$HOLDER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true
fusermount3 -u -z "$A" 2>/dev/null || true
grep -q "record lock is released" "$MS_LOG" || fail "the server did not say it released A's lock"
assert_eq "$("$LC" read "$B/f" 0)" 2000 "the counter on B after A died"
tlog "ok"
