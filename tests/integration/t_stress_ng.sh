#!/bin/bash
# t_stress_ng.sh - stress-ng's file and mapping stressors run clean on emm
# mounts (memory and lmdb backends): mmap (with --mmap-file), msync, hdd, seek
# and msyncmany, two workers each, short runs, --verify, --temp-path on the
# mount (stress-ng makes its own directories there). Each run must exit 0,
# report no failed stressor and no verify error, and emmd must stay up; at the
# end the mount holds nothing stress-ng left behind.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires stress-ng

CONF="$WORK/emmd.conf"
write_conf "$CONF" "resident-limit=64M" <<'CONF_EOF'
[fs mem]
backend = memory

[fs disk]
backend = lmdb
CONF_EOF
start_emmd "$CONF"

STRESSORS=(
    "mmap --mmap-file --mmap-bytes 8M"
    "msync --msync-bytes 8M"
    "hdd --hdd-bytes 16M"
    "seek --seek-size 16M"
    "msyncmany"
)

for fs in mem disk; do
    for s in "${STRESSORS[@]}"; do
        name=${s%% *}
        opts=${s#"$name"}
        slog="$WORK/stress-$fs-$name.log"
        rc=0
        w0=$(info_get write_ops)
        # shellcheck disable=SC2086 # $opts holds the stressor's options
        timeout -k 10 120 stress-ng --"$name" 2 $opts --timeout 8s --verify --temp-path "$MNT/$fs" \
            --metrics-brief --log-file "$slog" >"$slog.out" 2>&1 </dev/null || rc=$?
        out=$(cat "$slog.out")
        log "$fs $name: status $rc: $(grep -E 'successful run|passed:|failed:' <<<"$out" | tr '\n' ' ' || true)"
        if [ $rc = 124 ] || [ $rc = 137 ]; then
            printf '%s\n' "$out" >&2
            fail "stress-ng $name on $fs did not finish within 120 s"
        fi
        [ $rc = 0 ] || { printf '%s\n' "$out" >&2; fail "stress-ng $name on $fs exited $rc"; }
        if grep -qiE 'fail:|verif.*(fail|error)|failed: [1-9]|aborted|bad data' <<<"$out"; then
            printf '%s\n' "$out" >&2
            fail "stress-ng $name on $fs reported a failure"
        fi
        grep -q 'successful run completed' <<<"$out" || { printf '%s\n' "$out" >&2; fail "stress-ng $name on $fs: no successful run"; }
        emmd_alive || fail "emmd died during stress-ng $name on $fs"
        # it did work, on the mount
        ops=$(awk -v n="$name" '$4 == n && $5 ~ /^[0-9]+$/ { print $5 }' <<<"$out" | head -1)
        assert_gt "${ops:-0}" 0 "bogo ops of stress-ng $name on $fs"
        assert_gt "$(info_get write_ops)" "$w0" "emmd write_ops during stress-ng $name on $fs"
    done
    left=$(find "$MNT/$fs" -mindepth 1 | head -5)
    [ -z "$left" ] || fail "stress-ng left entries behind on $fs: $left"
done
stop_emmd
