#!/bin/bash
# t_memsrv_namespace.sh - the namespace is the memory server's (issue 12 §1,
# docs/memserver.md "The namespace"): three emmd hosts on one emm-memserver
# (lmdb backend) over TLS on 127.0.0.1 see one namespace:
# - a file created on A is listed on B and C (ls) and stat'd there with A's
#   size; a directory made on B is seen on A;
# - a write on A is read on B, byte for byte, with the size A gave it;
# - a rename on B is seen on A (old name gone, new name with the data);
# - an unlink on C is gone on A and B, and from the server's object count;
# - a truncate on A (shrink) is seen on B with the content below the new end,
#   zeros after a later extension on B, a hole punched on B reads as zeros on A;
# - files created on A and B in a different order keep their own data (ids
#   are the server's, not each host's); a directory tree renamed and then
#   removed on A is followed on B;
# - a restart of the server (SIGTERM, then kill -9) keeps the namespace, and
#   a host with an empty state that starts afterwards sees all of it;
# - `emmctl memserver s` shows the server's stats (hosts, objects, pages,
#   invalidations) and the pages this host holds with their access.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires timeout
. "$(dirname "$0")/memsrv_lib.sh"

ms_start_server backend=lmdb
ms_start_host a || fail "host a did not start"
ms_start_host b || fail "host b did not start"
ms_start_host c || fail "host c did not start"
A=$(ms_mnt a) B=$(ms_mnt b) C=$(ms_mnt c)
T="timeout -s KILL 60"

log "create on A: listed and stat'd on B and C"
head -c 20000 /dev/urandom >"$WORK/data"
cp "$WORK/data" "$A/made-on-a"
for h in "$B" "$C"; do
    $T ls "$h" | grep -qx made-on-a || fail "$h does not list A's new file: $(ls "$h")"
    assert_eq "$(stat -c %s "$h/made-on-a")" 20000 "size of A's file on $h"
done
mkdir "$B/dir-b"
$T ls -d "$A/dir-b" >/dev/null || fail "A does not see the directory made on B"
[ -d "$A/dir-b" ] || fail "B's directory is not a directory on A"

log "write on A, read on B"
$T cmp "$WORK/data" "$B/made-on-a" || fail "B does not read what A wrote"
$T cmp "$WORK/data" "$C/made-on-a" || fail "C does not read what A wrote"

log "rename on B, seen on A"
mv "$B/made-on-a" "$B/dir-b/renamed"
[ ! -e "$A/made-on-a" ] || fail "A still sees the old name after B's rename"
$T cmp "$WORK/data" "$A/dir-b/renamed" || fail "A does not read the renamed file's data"
$T ls "$C/dir-b" | grep -qx renamed || fail "C does not list the renamed file"

log "unlink on C, gone everywhere"
echo gone >"$A/victim"
$T cat "$C/victim" >/dev/null
rm "$C/victim"
for h in "$A" "$B" "$C"; do
    [ ! -e "$h/victim" ] || fail "$h still sees the file C unlinked"
    ! $T ls "$h" | grep -qx victim || fail "$h still lists the file C unlinked"
done
echo again >"$B/victim" # the name is free again everywhere
assert_eq "$($T cat "$A/victim")" again "A reads the new file of the same name"

log "truncate on A, seen on B with its content; extension reads zeros"
$T truncate -s 5000 "$A/dir-b/renamed"
assert_eq "$(stat -c %s "$B/dir-b/renamed")" 5000 "size on B after A's truncate"
$T cmp <(head -c 5000 "$WORK/data") "$B/dir-b/renamed" || fail "B's content after A's truncate"
$T truncate -s 12288 "$B/dir-b/renamed"
$T cmp <(head -c 5000 "$WORK/data"; head -c 7288 /dev/zero) "$A/dir-b/renamed" ||
    fail "A does not read zeros past the old end after B extended the truncated file"
log "a hole punched on B reads as zeros on A"
head -c 16384 /dev/urandom >"$WORK/p"
cp "$WORK/p" "$A/punched"
$T cmp "$WORK/p" "$B/punched" || fail "B reads A's file before the punch"
fallocate -p -o 4096 -l 8192 "$B/punched" || fail "fallocate --punch-hole on B"
$T cmp <(head -c 4096 "$WORK/p"; head -c 8192 /dev/zero; tail -c 4096 "$WORK/p") "$A/punched" ||
    fail "A does not read zeros where B punched a hole"

log "files created in a different order on two hosts keep their own data"
echo one-from-a >"$A/x1"
echo two-from-b >"$B/x2"
echo three-from-a >"$A/x3"
assert_eq "$($T cat "$B/x1")" one-from-a "x1 on B"
assert_eq "$($T cat "$A/x2")" two-from-b "x2 on A"
assert_eq "$($T cat "$C/x3")" three-from-a "x3 on C"

log "a directory tree moved and removed on A, followed on B"
mkdir -p "$A/t/u"
echo deep >"$A/t/u/f"
assert_eq "$($T cat "$B/t/u/f")" deep "B reads A's file two directories down"
mv "$A/t" "$A/t2"
[ ! -e "$B/t" ] || fail "B still sees the directory A renamed"
assert_eq "$($T cat "$B/t2/u/f")" deep "B reads the file under the renamed directory"
rm -r "$A/t2"
[ ! -e "$B/t2/u/f" ] || fail "B still sees a file A removed with its directories"
! $T ls "$B" | grep -qx t2 || fail "B still lists the directory tree A removed"

log "emmctl memserver: the server's stats and this host's pages"
st=$("$EMMCTL" -c "$WORK/hosts/a/emmd.conf" memserver s) || fail "emmctl memserver s: $st"
echo "$st" | grep -q '^# Memserver' || fail "no # Memserver section: $st"
assert_eq "$(echo "$st" | sed -n 's/^hosts_connected://p')" 3 "hosts connected"
assert_eq "$(echo "$st" | sed -n 's/^objects://p')" 6 "objects in the namespace"
assert_eq "$(echo "$st" | sed -n 's/^directories://p')" 1 "directories in the namespace"
assert_gt "$(echo "$st" | sed -n 's/^invalidations://p')" 0 "invalidations"
assert_gt "$(echo "$st" | sed -n 's/^pages_dropped://p')" 0 "pages dropped by truncate/punch"
echo "$st" | grep -q '^held\.dir-b/renamed:read=[0-9]* write=[0-9]*$' ||
    fail "no access line for dir-b/renamed held by A: $st"
echo "$st" | grep -q '^rtt_avg_us:[0-9]' || fail "no round-trip latency: $st"
echo "$st" | grep -q '^resident\.punched:pages=' || fail "no resident pages line: $st"

log "the server restarts (SIGTERM, then kill -9): the namespace stays"
ms_stop_host c
ms_stop_server
ms_start_server backend=lmdb
$T ls "$A/dir-b" | grep -qx renamed || fail "the namespace is gone after the server's restart"
$T cmp <(head -c 5000 "$WORK/data"; head -c 7288 /dev/zero) "$B/dir-b/renamed" ||
    fail "data lost across the server's restart"
echo after-restart >"$A/late"
sync "$A/late"
kill -KILL "$MS_PID"
wait "$MS_PID" 2>/dev/null || true
MS_PID=""
ms_start_server backend=lmdb
assert_eq "$($T cat "$B/late")" after-restart "a file made before the server's kill -9"

log "a new host with an empty state sees the whole namespace"
ms_start_host d || fail "host d did not start"
D=$(ms_mnt d)
got=$($T ls "$D" | sort | tr '\n' ' ')
assert_eq "$got" "dir-b late punched victim x1 x2 x3 " "the namespace on a new host"
assert_eq "$($T cat "$D/x2")" two-from-b "x2 on the new host"
$T cmp <(head -c 4096 "$WORK/p"; head -c 8192 /dev/zero; tail -c 4096 "$WORK/p") "$D/punched" ||
    fail "the punched file on the new host"
ms_stop_host d
ms_stop_host b
ms_stop_host a
ms_stop_server
grep -q "namespace in the lmdb environment" "$MS_LOG" || fail "the server did not say where its namespace is"
