#!/bin/bash
# t_metrics.sh - the live numbers: `emmctl info faults` has per-filesystem
# fault latency percentiles (p50 <= p99 <= p99.9, from a histogram whose count
# is the number of READs emmd answered); `emmctl metrics` prints the
# Prometheus text format, checked by a strict parser (every sample's family
# declared by # TYPE before it, names and labels well formed, values numbers,
# counters ending in _total, histograms with cumulative buckets ending at
# le="+Inf" equal to _count, and _sum); the numbers move with I/O
# (emm_faults_total{fs="a"} counts the READs, emm_write_bytes_total the bytes
# written). With metrics-listen = 127.0.0.1:PORT, curl GET /metrics returns the
# same format (Content-Type text/plain; version=0.0.4), another path 404, POST
# 405; without it no port is opened. A bad metrics-listen is a FILE:LINE error.
. "$(dirname "$0")/lib.sh"
need_fuse
need_emm
requires python3 curl
IO=$(helper emmio)

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CONF="$WORK/emmd.conf"
write_conf "$CONF" "metrics-listen=127.0.0.1:$PORT" <<'EOF'
[fs a]
backend = memory

[fs b]
backend = file
EOF

# the strict parser: exit 1 with the reason on the first violation; prints
# "name{labels} value" lines, normalized, for the checks below
cat >"$WORK/promparse.py" <<'PY'
import math, re, sys
NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*$')
LNAME = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*$')
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)')
def die(n, msg, line):
    print("line %d: %s: %r" % (n, msg, line), file=sys.stderr); sys.exit(1)
text = sys.stdin.read()
if not text.endswith("\n"):
    die(0, "does not end with a newline", text[-40:])
types, helps, done, cur = {}, {}, set(), None
hist = {}
out = []
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line == "":
        die(n, "empty line", line)
    if line.startswith("#"):
        m = re.match(r'# (HELP|TYPE) (\S+) (.*)$', line)
        if not m:
            if line.startswith("# HELP") or line.startswith("# TYPE"):
                die(n, "malformed", line)
            continue
        kind, name, rest = m.groups()
        if not NAME.match(name):
            die(n, "bad metric name", line)
        d = helps if kind == "HELP" else types
        if name in d:
            die(n, "second " + kind, line)
        if kind == "TYPE":
            if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                die(n, "bad type", line)
            if name in done:
                die(n, "TYPE after its samples", line)
        d[name] = rest
        continue
    m = SAMPLE.match(line)
    if not m:
        die(n, "malformed sample", line)
    name, _, labels, value = m.group(1), m.group(2), m.group(3) or "", m.group(4)
    fam = name
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
            fam = name[: -len(suf)]
    if fam not in types:
        die(n, "sample without a TYPE before it", line)
    if fam != cur:
        if fam in done:
            die(n, "family's samples not together", line)
        if cur is not None:
            done.add(cur)
        cur = fam
    if types[fam] == "counter" and not fam.endswith("_total"):
        die(n, "counter not named *_total", line)
    lab, rest = {}, labels
    while rest:
        lm = LABEL.match(rest)
        if not lm:
            die(n, "malformed labels", line)
        if lm.group(1) in lab:
            die(n, "label repeated", line)
        lab[lm.group(1)] = lm.group(2)
        rest = rest[lm.end():]
    try:
        v = float(value)
    except ValueError:
        die(n, "value is not a number", line)
    if types[fam] == "counter" and (v < 0 or math.isnan(v)):
        die(n, "negative counter", line)
    if types[fam] == "histogram":
        key = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
        h = hist.setdefault((fam, key), {"b": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            if "le" not in lab:
                die(n, "bucket without le", line)
            le = float(lab["le"])
            if h["b"] and (le <= h["b"][-1][0] or v < h["b"][-1][1]):
                die(n, "buckets not increasing and cumulative", line)
            h["b"].append((le, v))
        elif name.endswith("_sum"):
            h["sum"] = v
        elif name.endswith("_count"):
            h["count"] = v
        else:
            die(n, "histogram sample without _bucket/_sum/_count", line)
    ls = ",".join('%s="%s"' % kv for kv in sorted(lab.items()))
    out.append("%s%s %s" % (name, "{%s}" % ls if ls else "", repr(v)))
for (fam, key), h in hist.items():
    if not h["b"] or not math.isinf(h["b"][-1][0]):
        die(0, "histogram %s%s without le=\"+Inf\"" % (fam, key), "")
    if h["count"] is None or h["sum"] is None:
        die(0, "histogram %s%s without _count or _sum" % (fam, key), "")
    if h["b"][-1][1] != h["count"]:
        die(0, "histogram %s%s: +Inf bucket %s != count %s" % (fam, key, h["b"][-1][1], h["count"]), "")
print("\n".join(out))
PY
parse() { python3 "$WORK/promparse.py"; }
# sample NAME{LABELS}: its value in the parsed output $1
sample() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }

# the parser rejects what it must (a check of the checker)
for bad in 'x_total 1' $'# TYPE x counter\nx 1' $'# TYPE x_total counter\nx_total{a="1} 1' \
    $'# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1' \
    $'# TYPE g gauge\ng one'; do
    if printf '%s\n' "$bad" | parse >/dev/null 2>&1; then fail "the parser accepted: $bad"; fi
done

start_emmd "$CONF"
m0=$(ctl metrics | parse) || fail "emmctl metrics does not parse: $(ctl metrics | head -20)"
f0=$(sample "$m0" 'emm_faults_total{fs="a"}')
[ -n "$f0" ] || fail "no emm_faults_total{fs=\"a\"}: $m0"
# write 4 MiB, drop the page cache of the file, read it back: READs reach emmd
"$IO" fill -y "$MNT/a/obj" 0 $((4 << 20)) 7
drop_cache "$MNT/a/obj"
"$IO" check "$MNT/a/obj" 0 $((4 << 20)) 7 || fail "read back"
m1=$(ctl metrics | parse) || fail "emmctl metrics does not parse after I/O"
f1=$(sample "$m1" 'emm_faults_total{fs="a"}')
assert_gt "${f1%.*}" "${f0%.*}" "emm_faults_total{fs=\"a\"} after reading"
assert_ge "$(sample "$m1" 'emm_write_bytes_total{fs="a"}' | cut -d. -f1)" $((4 << 20)) "emm_write_bytes_total{fs=\"a\"}"
assert_eq "$(sample "$m1" 'emm_faults_total{fs="b"}')" 0.0 "emm_faults_total{fs=\"b\"} (untouched)"
assert_eq "$(sample "$m1" 'emm_fault_latency_seconds_count{fs="a"}')" "$f1" "latency count = faults"
for k in emm_resident_limit_bytes emm_pool_resident_bytes emm_process_resident_bytes \
    'emm_resident_pages{fs="a"}' 'emm_dirty_pages{fs="a"}' 'emm_pageouts_total{fs="b"}' \
    'emm_swap_in_pages_total{fs="a"}' 'emm_swap_out_pages_total{fs="a"}' \
    'emm_double_paged_total{fs="a"}' 'emm_fault_latency_seconds_sum{fs="a"}' \
    'emm_fault_latency_seconds_bucket{fs="a",le="+Inf"}' 'emm_build_info{version="'"$(info_get version)"'"}' \
    'emm_pager_reinits_total{fs="a"}' 'emm_pager_objects_waiting{fs="a"}' \
    'emm_pager_objects_lost_total{fs="b"}' 'emm_pager_lost_eio_total{fs="b"}' \
    'emm_pager_stale_answers_total{fs="a"}'; do
    [ -n "$(sample "$m1" "$k")" ] || fail "emmctl metrics has no $k"
done

# info faults: percentiles, ordered, over as many faults as were answered
out=$(ctl info faults)
n=$(awk -F: '$1 == "fs_a.faults" { print $2 }' <<<"$out")
assert_ge "$n" 1 "fs_a.faults"
p50=$(awk -F: '$1 == "fs_a.fault_p50_us" { print $2 }' <<<"$out")
p99=$(awk -F: '$1 == "fs_a.fault_p99_us" { print $2 }' <<<"$out")
p999=$(awk -F: '$1 == "fs_a.fault_p99.9_us" { print $2 }' <<<"$out")
[ -n "$p50" ] && [ -n "$p99" ] && [ -n "$p999" ] || fail "info faults lacks percentiles: $out"
python3 -c 'import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(0 if 0 < a <= b <= c else 1)' \
    "$p50" "$p99" "$p999" || fail "percentiles not ordered: p50 $p50 p99 $p99 p99.9 $p999"
log "fs a: $n faults, p50 $p50 us, p99 $p99 us, p99.9 $p999 us"

# the pager's latency (the kernel's data_request -> first answer): flushed
# from the pool, the object is read again through its pager
ctl flush a obj >/dev/null || fail "emmctl flush a obj"
drop_cache "$MNT/a/obj"
"$IO" check "$MNT/a/obj" 0 $((4 << 20)) 7 || fail "read back after the flush"
out=$(ctl info faults)
n=$(awk -F: '$1 == "fs_a.pager_requests" { print $2 }' <<<"$out")
assert_ge "$n" 1 "fs_a.pager_requests (data_requests answered by a's pager)"
p50=$(awk -F: '$1 == "fs_a.pager_p50_us" { print $2 }' <<<"$out")
p99=$(awk -F: '$1 == "fs_a.pager_p99_us" { print $2 }' <<<"$out")
p999=$(awk -F: '$1 == "fs_a.pager_p99.9_us" { print $2 }' <<<"$out")
python3 -c 'import sys; a, b, c = map(float, sys.argv[1:]); sys.exit(0 if 0 < a <= b <= c else 1)' \
    "$p50" "$p99" "$p999" || fail "pager percentiles not ordered: p50 $p50 p99 $p99 p99.9 $p999"
m2=$(ctl metrics | parse) || fail "emmctl metrics does not parse after the flush"
c=$(sample "$m2" 'emm_pager_latency_seconds_count{fs="a"}')
assert_ge "${c%.*}" "$n" "emm_pager_latency_seconds_count{fs=\"a\"}"
[ -n "$(sample "$m2" 'emm_pager_latency_seconds_bucket{fs="b",le="+Inf"}')" ] ||
    fail "no emm_pager_latency_seconds for fs b"
log "fs a: $n pager requests, p50 $p50 us, p99 $p99 us, p99.9 $p999 us"

# the HTTP endpoint
curl -sS -D "$WORK/headers" -o "$WORK/scrape" "http://127.0.0.1:$PORT/metrics" || fail "curl /metrics"
grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/headers" ||
    fail "Content-Type of /metrics: $(grep -i content-type "$WORK/headers")"
parse <"$WORK/scrape" >"$WORK/scrape.parsed" || fail "/metrics does not parse"
[ -n "$(sample "$(cat "$WORK/scrape.parsed")" 'emm_faults_total{fs="a"}')" ] || fail "/metrics lacks emm_faults_total{fs=\"a\"}"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")
assert_eq "$code" 404 "GET /"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "http://127.0.0.1:$PORT/metrics")
assert_eq "$code" 405 "POST /metrics"
stop_emmd
# stopped: the port is closed
if curl -s -o /dev/null "http://127.0.0.1:$PORT/metrics"; then fail "/metrics still answers after emmd stopped"; fi

# off by default: no listening socket of emmd's
write_conf "$CONF" <<'EOF'
[fs a]
backend = memory
EOF
start_emmd "$CONF"
inodes=$(ls -l /proc/$EMMD_PID/fd 2>/dev/null | grep -o 'socket:\[[0-9]*\]' | tr -dc '0-9\n' | sort -u)
listening=$(awk 'NR > 1 && $4 == "0A" { print $10 }' /proc/net/tcp /proc/net/tcp6 | sort -u)
both=$(comm -12 <(printf '%s\n' $inodes) <(printf '%s\n' $listening) | grep -c . || true)
assert_eq "$both" 0 "TCP sockets emmd listens on without metrics-listen"
ctl metrics | parse >/dev/null || fail "emmctl metrics without metrics-listen"
stop_emmd

# a bad value: FILE:LINE
write_conf "$CONF" "metrics-listen=localhost:http" <<'EOF'
[fs a]
backend = memory
EOF
rc=0
err=$("$EMMD" -n -c "$CONF" 2>&1) || rc=$?
assert_eq "$rc" 1 "emmd -n with a bad metrics-listen"
assert_contains "$err" "$CONF:7: bad value 'localhost:http' for metrics-listen"
log "ok"
