#!/bin/bash
# t_errors.sh - a pager that fails (the error:memory filter, switched on by the
# existence of error.file) turns faults on non-resident pages into EIO for
# read(2) and SIGBUS for a mapping; a second filesystem in the same emmd is not
# affected; emmd stays up; and the failing filesystem works again once the
# trigger file is gone.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
IO=$(helper emmio)
PROBE=$(helper sigbus_probe)

TRIG="$WORK/trigger"
write_conf "$WORK/emmd.conf" <<CONF_EOF
[fs bad]
backend = error:memory
error.rate = 1
error.errno = EIO
error.ops = read
error.file = $TRIG

[fs good]
backend = memory
CONF_EOF
start_emmd "$WORK/emmd.conf"
B="$MNT/bad"
G="$MNT/good"
MB=$((1 << 20))

# set up while the trigger is absent: data written, and a large sparse tail
# nobody has touched (those pages are not resident anywhere)
"$IO" fill -y "$B/obj" 0 $MB 81
"$IO" truncate "$B/obj" $((256 * MB))
"$IO" fill -y "$G/obj" 0 $MB 82
"$IO" truncate "$G/obj" $((256 * MB))
"$IO" check "$B/obj" 0 $MB 81 || fail "bad/obj before the trigger"
errs0=$(info_get data_errors)

touch "$TRIG"
# read(2) of never-touched pages: EIO (each probe uses pages nobody touched)
assert_eq "$("$IO" readerr "$B/obj" $((64 * MB)) 4096)" EIO "read(2) of a non-resident page with the filter on"
assert_eq "$("$IO" readerr "$B/obj" $((65 * MB)) $MB)" EIO "1 MiB read(2) with the filter on"
# mmap read in a child process: SIGBUS
assert_eq "$("$PROBE" "$B/obj" $((128 * MB)))" SIGBUS "mmap read of a non-resident page with the filter on"
assert_eq "$("$PROBE" "$B/obj" $((130 * MB + 4096)))" SIGBUS "second mmap read with the filter on"
# an mmap write to a non-resident page must read it first: SIGBUS too
assert_eq "$("$PROBE" -w "$B/obj" $((140 * MB)))" SIGBUS "mmap write to a non-resident page with the filter on"
emmd_alive || fail "emmd died on injected errors"
errs1=$(info_get data_errors)
assert_gt "$errs1" "$errs0" "data_errors after injected errors"
log "data_errors $errs0 -> $errs1"

# the other filesystem does not notice
assert_eq "$("$IO" readerr "$G/obj" $((64 * MB)) 4096)" OK "read(2) on the good fs while the filter is on"
assert_eq "$("$PROBE" "$G/obj" $((128 * MB)))" OK:0x00 "mmap read on the good fs while the filter is on"
"$IO" check "$G/obj" 0 $MB 82 || fail "good/obj content while the filter is on"
"$IO" zero -m "$G/obj" $((200 * MB)) $MB || fail "good/obj holes while the filter is on"
"$IO" fill -y "$G/new" 0 $((4 * MB)) 83
"$IO" check "$G/new" 0 $((4 * MB)) 83 || fail "good/new written while the filter is on"
# stats still answer
ctl info >/dev/null || fail "emmctl info while the filter is on"

rm -f "$TRIG"
# the failing fs works again, including the very pages that failed
assert_eq "$("$IO" readerr "$B/obj" $((64 * MB)) 4096)" OK "read(2) of a previously failed page after the trigger is gone"
"$IO" zero "$B/obj" $((64 * MB)) $((2 * MB)) || fail "previously failed pages do not read zero after the trigger is gone"
assert_eq "$("$PROBE" "$B/obj" $((128 * MB)))" OK:0x00 "mmap read of a previously failed page after the trigger is gone"
"$IO" zero -m "$B/obj" $((140 * MB)) 4096 || fail "page of the failed mmap write is not zero"
"$IO" check "$B/obj" 0 $MB 81 || fail "bad/obj data after the trigger is gone"
"$IO" fill -y "$B/after" 0 $MB 84
"$IO" check -m "$B/after" 0 $MB 84 || fail "new object on the formerly failing fs"

# switch it on and off once more: same behaviour
touch "$TRIG"
assert_eq "$("$IO" readerr "$B/obj" $((220 * MB)) 4096)" EIO "read(2) with the filter on again"
rm -f "$TRIG"
assert_eq "$("$IO" readerr "$B/obj" $((220 * MB)) 4096)" OK "read(2) with the filter off again"
emmd_alive || fail "emmd died"
stop_emmd
