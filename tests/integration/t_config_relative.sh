#!/bin/bash
# t_config_relative.sh - relative paths in a configuration are taken from the
# file's own directory: emmd started from that directory and emmctl run from
# anywhere else (with -c, a relative or an absolute path to the file) agree on
# the control socket. The foreground log carries timestamps; with stderr
# connected to the journal ($JOURNAL_STREAM naming stderr's device and inode)
# each line is "<N>message", N its syslog priority, as journald reads it.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm

mkdir -p "$WORK/etc" "$WORK/other" "$STATE" "$MNT"
CONF="$WORK/etc/emmd.conf"
# mount-root stays absolute: lib.sh registers the mountpoints from the text
cat >"$CONF" <<EOF
[emmd]
state-dir = ../state
mount-root = $MNT
control-socket = ../emmd.sock
pid-file = ../state/emmd.pid
log-level = info

[fs rel]
backend = memory
EOF

# started from the file's directory with a relative -c (lib.sh reads the
# relative socket path from here too)
cd "$WORK/etc"
start_emmd emmd.conf
[ -S "$WORK/emmd.sock" ] || fail "control socket not at $WORK/emmd.sock"

# emmctl from elsewhere finds the same socket through the file
cd "$WORK/other"
"$EMMCTL" -c "$CONF" ping >/dev/null || fail "emmctl -c $CONF ping from $WORK/other"
cd "$WORK"
"$EMMCTL" -c etc/emmd.conf ping >/dev/null || fail "emmctl -c etc/emmd.conf ping from $WORK"
cd /
"$EMMCTL" -c "$CONF" info server >/dev/null || fail "emmctl -c $CONF info from /"
[ ! -e "$WORK/other/emmd.sock" ] && [ ! -e /emmd.sock ] || fail "a socket appeared beside the cwd"
echo data >"$MNT/rel/f"
stop_emmd

# every emmd line of a foreground run starts with a timestamp
n=$(grep -c 'emmd\[[0-9]*\]: ' "$EMMD_LOG" || true)
assert_gt "$n" 2 "emmd log lines"
bad=$(grep 'emmd\[[0-9]*\]: ' "$EMMD_LOG" |
    grep -Ev '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} emmd\[[0-9]+\]: (debug|info|notice|warn|error): ' || true)
[ -z "$bad" ] || fail "log lines without a timestamp: $bad"

# under the journal: "<N>message" with the syslog priority, no timestamp
cd "$WORK/etc"
: >"$WORK/journal.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$WORK/journal.log")
export JOURNAL_STREAM
EMMD_LOG_SAVED=$EMMD_LOG
_register_mounts emmd.conf
"$EMMD" -f -c emmd.conf </dev/null >>"$WORK/journal.log" 2>&1 &
EMMD_PID=$!
EMMD_CHILD=1
EMMD_LOG="$WORK/journal.log"
wait_mounted emmd.conf "$EMMD_PID"
unset JOURNAL_STREAM
stop_emmd
grep -q '^<5>ready: 1 filesystems' "$WORK/journal.log" ||
    fail "no '<5>ready: ...' (notice) line in the journal stream: $(head -5 "$WORK/journal.log")"
grep -q '^<6>' "$WORK/journal.log" || fail "no <6> (info) line in the journal stream"
bad=$(grep -v '^<[0-7]>' "$WORK/journal.log" || true)
[ -z "$bad" ] || fail "journal lines without a priority prefix: $bad"
cd /
log "ok ($EMMD_LOG_SAVED)"
