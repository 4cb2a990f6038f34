#!/bin/bash
# t_bad_config.sh - every bad config is refused: `emmd -n` exits 1 and prints
# "FILE:LINE: reason" naming the faulty line; `emmd -f` on the same file also
# exits 1 and mounts nothing. Good configs pass -n and mount nothing either.
. "$(dirname "$0")/lib.sh"
need_emm
mkdir -p "$STATE" "$MNT"

# bad NAME LINE: the config on stdin must be rejected at LINE (the line numbers
# below count the 6-line [emmd] header written first).
ncase=0
bad() {
    local name=$1 line=$2 f="$WORK/bad-$1.conf" rc out reason
    ncase=$((ncase + 1))
    {
        echo "[emmd]"
        echo "state-dir = $STATE"
        echo "mount-root = $MNT"
        echo "control-socket = $SOCK"
        echo "pid-file = $PIDFILE"
        echo "; line 6"
        cat
    } >"$f"
    rc=0
    out=$(timeout 10 "$EMMD" -n -c "$f" 2>&1 >/dev/null) || rc=$?
    [ $rc = 1 ] || fail "$name: emmd -n exited $rc, expected 1 (stderr: $out)"
    case "$out" in
    *"$f:$line: "?*) ;;
    *) fail "$name: stderr does not name '$f:$line: <reason>': $out" ;;
    esac
    reason=$(printf '%s\n' "$out" | grep -F "$f:$line: " | head -1)
    log "$name: $reason"
    [ -z "$(mounts_under "$WORK")" ] || fail "$name: something got mounted by emmd -n"

    # without -n (foreground): must refuse the same way and mount nothing
    if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ]; then
        rc=0
        out=$(timeout -s TERM 10 "$EMMD" -f -c "$f" 2>&1 >/dev/null) || rc=$?
        if [ -n "$(mounts_under "$WORK")" ]; then
            for mp in $(mounts_under "$WORK" | sort -r); do fusermount3 -u -z "$mp" 2>/dev/null || true; done
            fail "$name: emmd -f mounted something with a bad config"
        fi
        [ $rc = 1 ] || fail "$name: emmd -f exited $rc, expected 1 (stderr: $out)"
        assert_contains "$out" "$f:$line: " "$name: emmd -f stderr"
    fi
}

# --- [emmd] section ---
bad unknown-key 7 <<'E'
bogus-key = 1
E
bad bad-size 7 <<'E'
resident-limit = 12Q
E
bad size-no-digits 7 <<'E'
resident-limit = M
E
bad fuse-threads-zero 8 <<'E'
# comment lines count too
fuse-threads = 0
E
bad busy-poll-word 7 <<'E'
busy-poll = fast
E
bad log-level 7 <<'E'
log-level = chatty
E
bad unknown-section 9 <<'E'

[fs ok]
[nonsense]
backend = memory
E
bad no-equals 7 <<'E'
this line has no equals sign
E
bad pageout-policy 7 <<'E'
pageout.policy = clock
E

# --- [default-pager] ---
bad dpager-duplicate 10 <<'E'
[default-pager]
threads = 2

[default-pager]
E
bad dpager-unknown-key 8 <<'E'
[default-pager]
swapfile = /tmp/x
E
bad dpager-threads 8 <<'E'
[default-pager]
threads = 17
E
bad dpager-deadline 8 <<'E'
[default-pager]
deadline = 5ms
E
bad dpager-deadline-unit 8 <<'E'
[default-pager]
deadline = 1h
E
bad swap-size-small 8 <<'E'
[default-pager]
swap = /tmp/emm-swap 512K
E
bad swap-size-unaligned 8 <<'E'
[default-pager]
swap = /tmp/emm-swap 1049600
E
bad swap-unknown-token 8 <<'E'
[default-pager]
swap = /tmp/emm-swap 64M fast
E
bad swap-priority 8 <<'E'
[default-pager]
swap = /tmp/emm-swap priority=-2
E
bad swap-duplicate 9 <<'E'
[default-pager]
swap = /tmp/emm-swap 64M
swap = /tmp//emm-swap/ priority=1
E
bad swap-empty 8 <<'E'
[default-pager]
swap =
E
bad swap-inside-mount 8 <<E
[default-pager]
swap = $MNT/t/swapfile 64M

[fs t]
backend = memory
E
# swap entries that only fail at start: -n opens them read-only and says so
"$EMM_BIN/emmswap" format "$WORK/corrupt.img" 1M >/dev/null
printf 'X' | dd of="$WORK/corrupt.img" bs=1 seek=200 conv=notrunc status=none
echo "I am a text file, not a swap area" >"$WORK/text.img"
mkdir -p "$WORK/swapdir"
swap_sums=$(sha "$WORK/corrupt.img"; sha "$WORK/text.img")
bad swap-corrupt 8 <<E
[default-pager]
swap = $WORK/corrupt.img 1M
[fs a]
backend = memory
E
bad swap-not-an-area 8 <<E
[default-pager]
swap = $WORK/text.img
[fs a]
backend = memory
E
bad swap-directory 8 <<E
[default-pager]
swap = $WORK/swapdir 4M
[fs a]
backend = memory
E
bad swap-missing-no-size 8 <<E
[default-pager]
swap = $WORK/nosuch.img
[fs a]
backend = memory
E
assert_eq "$(sha "$WORK/corrupt.img"; sha "$WORK/text.img")" "$swap_sums" "swap files after emmd -n and -f refused them"
[ -z "$(ls -A "$WORK/swapdir")" ] || fail "emmd wrote into the directory named as swap"

# --- [fs] sections ---
bad fs-unknown-key 9 <<'E'
[fs a]
backend = memory
colour = blue
E
bad duplicate-fs 12 <<'E'
[fs x]
backend = memory

[fs y]
backend = memory
[fs x]
backend = memory
E
bad unknown-backend 8 <<'E'
[fs a]
backend = nosuchbackend
E
bad key-for-no-backend 9 <<'E'
[fs a]
backend = memory
zstd.level = 3
E
bad mountpoint-missing 9 <<E
[fs a]
backend = memory
mountpoint = $WORK/does/not/exist
E
bad readahead-size 9 <<'E'
[fs a]
backend = memory
readahead = lots
E
bad error-rate-range 9 <<'E'
[fs a]
backend = error:memory
error.rate = 1.5
E
bad error-errno-name 10 <<'E'
[fs a]
backend = error:memory
error.rate = 0.5
error.errno = ENOTANERRNO
E
bad error-ops 9 <<'E'
[fs a]
backend = error:memory
error.ops = read,frobnicate
E
bad error-unknown-key 9 <<'E'
[fs a]
backend = error:memory
error.colour = red
E
bad error-lower-unknown 8 <<'E'
[fs a]
backend = error:nosuchbackend
E
bad file-key-on-memory 9 <<'E'
[fs a]
backend = memory
file.dir = /tmp
E
bad fs-pager-deadline 9 <<'E'
[fs a]
backend = memory
pager.deadline = 2 s
E
bad fs-pager-unknown 9 <<'E'
[fs a]
backend = memory
pager.threads = 4
E
bad fs-pager-tcp-address 9 <<'E'
[fs a]
backend = memory
pager = tcp:127.0.0.1
E
bad fs-pager-tcp-port 9 <<'E'
[fs a]
backend = memory
pager = tcp:127.0.0.1:99999
E
bad fs-pager-tcp-no-credentials 9 <<'E'
[fs a]
backend = memory
pager = tcp:127.0.0.1:7070
E
bad fs-pager-tls-without-tcp 9 <<'E'
[fs a]
backend = memory
pager.tls-psk-file = /etc/emm/psk
E
bad fs-pager-tls-value 10 <<'E'
[fs a]
backend = memory
pager = tcp:127.0.0.1:7070
pager.tls = maybe
E
bad fs-pager-tls-both 10 <<'E'
[fs a]
backend = memory
pager = tcp:127.0.0.1:7070
pager.tls-psk-file = /etc/emm/psk
pager.tls-ca = /etc/emm/ca.pem
pager.tls-cert = /etc/emm/host.pem
pager.tls-key = /etc/emm/host.key
E
bad none-without-swap 9 <<'E'
[fs a]

backend = none
[default-pager]
threads = 2
E
bad none-with-keys 11 <<E
[default-pager]
swap = $WORK/swap.img 4M
[fs a]
backend = none
memory.limit = 1M
E
bad error-action 9 <<'E'
[fs a]
backend = error:memory
error.action = hang
E
bad error-stall-no-file 8 <<'E'
[fs a]
backend = error:memory
error.action = stall
E
log "$ncase bad configs refused with FILE:LINE"

# a control socket path that cannot fit sockaddr_un (108 bytes with its NUL)
LONGDIR="$WORK/$(printf 'd%.0s' {1..110})"
f="$WORK/bad-long-socket.conf"
cat >"$f" <<E
[emmd]
state-dir = $STATE
mount-root = $MNT
control-socket = $LONGDIR/emmd.sock
[fs a]
backend = memory
E
rc=0
out=$(timeout 10 "$EMMD" -n -c "$f" 2>&1 >/dev/null) || rc=$?
[ $rc = 1 ] || fail "long-socket: emmd -n exited $rc, expected 1: $out"
assert_contains "$out" "$f:4: " "long-socket: emmd -n"
assert_contains "$out" "at most 107" "long-socket: emmd -n"
[ ! -e "$LONGDIR" ] || fail "long-socket: emmd -n created $LONGDIR"
log "long-socket: $out"

# snapshot: every path under $WORK with its type, mode and size (a check must
# change nothing: no directory, file or socket appears, nothing is rewritten)
snapshot() { find "$WORK" -printf '%p %y %m %s %T@\n' | sort; }

# good configs: -n says yes, prints nothing alarming, mounts nothing, changes nothing
good() {
    local name=$1 f="$WORK/good-$1.conf" rc=0 out before
    shift
    write_conf "$f" "$@"
    before=$(snapshot)
    out=$(timeout 10 "$EMMD" -n -c "$f" 2>&1) || rc=$?
    [ $rc = 0 ] || fail "good config $name: emmd -n exited $rc: $out"
    [ -z "$(mounts_under "$WORK")" ] || fail "good config $name: emmd -n mounted something"
    [ ! -e "$SOCK" ] || fail "good config $name: emmd -n created the control socket"
    [ "$(snapshot)" = "$before" ] ||
        fail "good config $name: emmd -n changed the filesystem: $(diff <(printf '%s\n' "$before") <(snapshot) | head -5)"
}
good memory <<'E'
[fs a]
backend = memory
E
mkdir -p "$WORK/explicit"
good all-backends <<E
; a comment
[fs a]
backend = memory
readahead = 2M
pager-threads = 4

[fs b]
backend = null

[fs c]
backend = file
file.dir = $WORK/filestore

[fs d]
backend = error:memory
error.rate = 0.25
error.errno = ENOSPC
error.ops = read,write,sync,discard
error.file = $WORK/trigger
mountpoint = $WORK/explicit

[fs e]
backend = error:memory
error.action = stall
error.ops = write
error.file = $WORK/stall
pager.deadline = 250ms
E
good default-pager "pageout.policy=s3-fifo" <<E
[default-pager]
swap = $WORK/swap.img 4M priority=5
swap = $WORK/swap2.img 1M
deadline = 2s
threads = 4
[fs a]
backend = memory
pager.deadline = 100
E
good temporary <<E
[default-pager]
swap = $WORK/swap-tmp.img 4M
[fs t]
backend = none
E
good emmd-keys "resident-limit=16M" "fuse-threads=4" "busy-poll=0" <<'E'
[fs a]
backend = memory
E

# -n creates nothing: not a state-dir, mount-root/NAME, the socket's or pid
# file's directory, nor a swap file it would create; an existing swap area is
# read, never written (its header keeps its open count and clean state)
"$EMM_BIN/emmswap" format "$WORK/good-swap.img" 1M >/dev/null
f="$WORK/good-fresh.conf"
cat >"$f" <<E
[emmd]
state-dir = $WORK/fresh-state/deep
mount-root = $MNT
control-socket = $WORK/fresh-run/emmd.sock
pid-file = $WORK/fresh-pid/emmd.pid
[default-pager]
swap = $WORK/good-swap.img 1M
swap = $WORK/fresh-swap.img 4M
[fs never]
backend = memory
E
before=$(snapshot)
rc=0
out=$(timeout 10 "$EMMD" -n -c "$f" 2>&1) || rc=$?
[ $rc = 0 ] || fail "good config fresh: emmd -n exited $rc: $out"
for p in "$WORK/fresh-state" "$MNT/never" "$WORK/fresh-run" "$WORK/fresh-pid" "$WORK/fresh-swap.img"; do
    [ ! -e "$p" ] || fail "emmd -n created $p"
done
[ "$(snapshot)" = "$before" ] ||
    fail "emmd -n changed the filesystem: $(diff <(printf '%s\n' "$before") <(snapshot) | head -5)"
log "fresh: emmd -n created nothing"
