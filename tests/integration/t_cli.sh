#!/bin/bash
# t_cli.sh - the commands behave like Unix commands: emmd, emmctl, emmswap and emm-pager
# take --help (usage on stdout, exit 0) and --version ("NAME VERSION", the
# project's version), a usage error exits 2 with a message on stderr that
# names the bad argument and nothing on stdout, a runtime failure exits 1.
# emmd --dump-config prints the effective configuration with every default,
# in config syntax: loading its output gives the same dump again, relative
# paths are resolved against the config file's directory (not the working
# directory), and every key the parser knows is present. Needs no FUSE.
. "$(dirname "$0")/lib.sh"
need_emm
EMMSWAP="$EMM_BIN/emmswap"
[ -x "$EMMSWAP" ] || fail "emmswap not found at $EMMSWAP"

VERSION=$(sed -n 's/^project(emm VERSION \([0-9.]*\).*/\1/p' "$EMM_SRC/CMakeLists.txt")
[ -n "$VERSION" ] || fail "no project version in $EMM_SRC/CMakeLists.txt"

# run RC CMD...: CMD must exit RC; its stdout in $WORK/out, stderr in $WORK/err
run() {
    local want=$1 rc=0
    shift
    "$@" >"$WORK/out" 2>"$WORK/err" </dev/null || rc=$?
    [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want; stderr: $(cat "$WORK/err")"
}

# usage_err WORD CMD...: exit 2, stderr names WORD, stdout empty
usage_err() {
    local word=$1
    shift
    run 2 "$@"
    assert_contains "$(cat "$WORK/err")" "$word" "stderr of $*"
    [ ! -s "$WORK/out" ] || fail "$* wrote to stdout on a usage error: $(cat "$WORK/out")"
}

# --- --help and --version for every command ------------------------------------
EMMPAGER="$EMM_BIN/emm-pager"
[ -x "$EMMPAGER" ] || fail "emm-pager not found at $EMMPAGER"
for cmd in "$EMMD" "$EMMCTL" "$EMMSWAP" "$EMMPAGER"; do
    name=$(basename "$cmd")
    for h in --help -h; do
        run 0 "$cmd" $h
        assert_contains "$(head -1 "$WORK/out")" "usage: $name" "$name $h"
        assert_contains "$(cat "$WORK/out")" "Exit status: 0 ok, 1 failure" "$name $h"
        [ ! -s "$WORK/err" ] || fail "$name $h wrote to stderr: $(cat "$WORK/err")"
    done
    for v in --version -V; do
        run 0 "$cmd" $v
        assert_eq "$(cat "$WORK/out")" "$name $VERSION" "$name $v"
    done
    usage_err "'--no-such-option'" "$cmd" --no-such-option
    assert_contains "$(cat "$WORK/err")" "Try '$name --help'" "$name --no-such-option"
done

# --- usage errors name the bad argument -----------------------------------------
echo '[fs a]' >"$WORK/x.conf"
echo 'backend = memory' >>"$WORK/x.conf"
usage_err "-c CONFIG" "$EMMD"
usage_err "'surplus'" "$EMMD" -c "$WORK/x.conf" surplus
usage_err "'c'" "$EMMD" -c
usage_err "'q'" "$EMMD" -q -c "$WORK/x.conf"
usage_err "exclude" "$EMMD" -n --dump-config -c "$WORK/x.conf"
usage_err "no command" "$EMMCTL"
usage_err "'frobnicate'" "$EMMCTL" frobnicate
usage_err "'extra'" "$EMMCTL" -s "$WORK/none.sock" ping extra
usage_err "'b'" "$EMMCTL" -s "$WORK/none.sock" info a b
usage_err "missing argument" "$EMMCTL" -s "$WORK/none.sock" flush fs
usage_err "'s'" "$EMMCTL" -s
usage_err "'frobnicate'" "$EMMSWAP" frobnicate
usage_err "'--bogus'" "$EMMSWAP" format --bogus "$WORK/a.img"
usage_err "emmswap format" "$EMMSWAP" format --bogus "$WORK/a.img"
usage_err "'--bogus'" "$EMMSWAP" info --bogus
usage_err "'extra'" "$EMMSWAP" format "$WORK/a.img" 1M extra
usage_err "--fs NAME is missing" "$EMMPAGER" --backend memory --fd 3
usage_err "one of --fd N and --listen PATH" "$EMMPAGER" --fs a --backend memory
usage_err "'surplus'" "$EMMPAGER" --fs a --backend memory --fd 3 surplus
usage_err "bad --key" "$EMMPAGER" --fs a --backend memory --fd 3 --key nokey
usage_err "'12Q'" "$EMMSWAP" format "$WORK/a.img" 12Q
usage_err "missing PATH" "$EMMSWAP" info
[ ! -e "$WORK/a.img" ] || fail "a usage error created $WORK/a.img"

# --- runtime failures exit 1 ----------------------------------------------------
run 1 "$EMMD" -n -c "$WORK/missing.conf"
assert_contains "$(cat "$WORK/err")" "$WORK/missing.conf"
run 1 "$EMMD" --dump-config -c "$WORK/missing.conf"
run 1 "$EMMCTL" -s "$WORK/none.sock" ping
assert_contains "$(cat "$WORK/err")" "$WORK/none.sock"
run 1 "$EMMSWAP" info "$WORK/missing.img"

# --- --dump-config --------------------------------------------------------------
mkdir -p "$WORK/etc/sub/b" "$WORK/etc/mnt" "$WORK/elsewhere"
CONF="$WORK/etc/emmd.conf"
cat >"$CONF" <<'EOF'
[emmd]
state-dir = ../state            ; relative: from the file's directory
mount-root = mnt
resident-limit = 64M
log-level = notice

[fs a]
backend = memory
memory.limit = 4M

[fs b]
backend = none
mountpoint = sub/./b/
pager.deadline = 250ms

[default-pager]
swap = swap.img 8M priority=3
threads = 3
EOF
# from another working directory, with a relative path to the file
cd "$WORK/elsewhere"
run 0 "$EMMD" --dump-config -c ../etc/emmd.conf
cd - >/dev/null
cp "$WORK/out" "$WORK/dump1"
[ ! -s "$WORK/err" ] || fail "--dump-config wrote to stderr: $(cat "$WORK/err")"
log "dump:"; sed 's/^/#   /' "$WORK/dump1" >&2

# key = value of section SECT in a dump (a key shown as a comment, "# key =
# value (why)", gives its value too)
val() {
    awk -v s="$2" -v k="$3" '
        /^\[/ { sec = $0; gsub(/[][]/, "", sec); next }
        sec == s && index($0, k " = ") == 1 { print substr($0, length(k) + 4); exit }
        sec == s && index($0, "# " k " = ") == 1 { v = substr($0, length(k) + 6); sub(/ \(.*/, "", v); print v; exit }' "$1"
}
# the file's directory is $WORK/etc: paths resolve from there, whatever the cwd
assert_eq "$(val "$WORK/dump1" emmd state-dir)" "$WORK/etc/../state" "state-dir (.. is kept)"
assert_eq "$(val "$WORK/dump1" emmd mount-root)" "$WORK/etc/mnt" "mount-root"
assert_eq "$(val "$WORK/dump1" emmd control-socket)" "$WORK/etc/../state/emmd.sock" "default control-socket"
assert_eq "$(val "$WORK/dump1" emmd pid-file)" "$WORK/etc/../state/emmd.pid" "default pid-file"
assert_eq "$(val "$WORK/dump1" "fs a" mountpoint)" "$WORK/etc/mnt/a" "default mountpoint"
assert_eq "$(val "$WORK/dump1" "fs b" mountpoint)" "$WORK/etc/sub/b" "explicit relative mountpoint"
assert_eq "$(val "$WORK/dump1" default-pager swap)" "$WORK/etc/swap.img 8M priority=3" "swap"
# given values and defaults
assert_eq "$(val "$WORK/dump1" emmd resident-limit)" 64M "resident-limit"
assert_eq "$(val "$WORK/dump1" emmd log-level)" notice "log-level"
assert_eq "$(val "$WORK/dump1" emmd fuse-threads)" 2 "default fuse-threads"
assert_eq "$(val "$WORK/dump1" emmd busy-poll)" 50 "default busy-poll"
assert_eq "$(val "$WORK/dump1" emmd pageout.policy)" second-chance "default pageout.policy"
assert_eq "$(val "$WORK/dump1" default-pager deadline)" 5s "default deadline"
assert_eq "$(val "$WORK/dump1" default-pager threads)" 3 "threads"
assert_eq "$(val "$WORK/dump1" "fs a" readahead)" 1M "default readahead"
assert_eq "$(val "$WORK/dump1" "fs a" pager-threads)" 2 "default pager-threads"
assert_eq "$(val "$WORK/dump1" "fs a" pager.deadline)" 5s "inherited pager.deadline"
assert_eq "$(val "$WORK/dump1" "fs a" mount-over)" no "default mount-over"
assert_eq "$(val "$WORK/dump1" "fs a" memory.limit)" 4M "backend key"
assert_eq "$(val "$WORK/dump1" "fs b" pager.deadline)" 250ms "pager.deadline"
assert_eq "$(val "$WORK/dump1" "fs b" backend)" none "backend"

# every key of every section is there, set or a comment when unset: compare
# with the keys a hand-written list of the parser's keys would give
keys=$(sed -n 's/^#\{0,1\} *\([a-z.-]*\) = .*/\1/p' "$WORK/dump1" | sort -u | tr '\n' ' ')
for k in state-dir mount-root control-socket pid-file plugin-dir resident-limit fuse-threads \
    busy-poll log-level pageout.policy swap deadline threads backend mountpoint readahead \
    pager-threads pager.deadline mount-over root-uid root-gid root-mode metrics-listen; do
    case " $keys " in *" $k "*) ;; *) fail "--dump-config does not show key $k: $keys" ;; esac
done

# re-parse: the dump, loaded from another directory, dumps the same
cp "$WORK/dump1" "$WORK/elsewhere/dumped.conf"
run 0 "$EMMD" --dump-config -c "$WORK/elsewhere/dumped.conf"
diff <(tail -n +2 "$WORK/dump1") <(tail -n +2 "$WORK/out") >&2 ||
    fail "--dump-config of a dump differs from the dump"
# and emmd -n accepts it as it accepts the original (nothing is created by -n)
run 0 "$EMMD" -n -c "$WORK/elsewhere/dumped.conf"

# a bad file: the reason with FILE:LINE, exit 1, nothing on stdout
printf '[emmd]\nbusy-poll = lots\n[fs a]\nbackend = memory\n' >"$WORK/bad.conf"
run 1 "$EMMD" --dump-config -c "$WORK/bad.conf"
assert_contains "$(cat "$WORK/err")" "$WORK/bad.conf:2: bad value 'lots' for busy-poll"
[ ! -s "$WORK/out" ] || fail "--dump-config of a bad file printed: $(cat "$WORK/out")"
log "ok"
