#!/bin/bash
# bench/plot.sh DIR - draws the bench tables in DIR as SVG plots (gnuplot).
#
# Reads whichever of these DIR holds (each a bench script's output, as printed):
#   backends.txt  bench/backends.sh -> backends-latency.svg: random 4 KiB fault
#                 latency (mean and p99, µs, log scale) per backend, with the
#                 null backend's mean drawn across as the floor of the FUSE +
#                 pager path and tmpfs as the kernel's own ceiling
#   policy.txt    bench/policy.sh   -> policy-hits.svg: hit ratio (%) per
#                 trace and cache size, one bar per policy
#   pressure.txt  bench/pressure.sh -> pressure-throughput.svg: MB/s per
#                 workload and store, one bar per policy (log scale; tmpfs,
#                 the ceiling, left out)
# and writes the plots beside them (PLOT_FORMAT=png for PNG instead of SVG). Only parses the printed tables, so a table
# saved from an earlier run (or pasted from RESULTS.md) plots the same. Not a
# test; needs gnuplot (Debian: gnuplot-nox, installed by scripts/install-deps.sh
# --bench).
set -euo pipefail

DIR=${1:?usage: bench/plot.sh DIR}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
made=()
EXT=${PLOT_FORMAT:-svg} # svg, or png (pngcairo)
case $EXT in
svg) TERM_SVG='set terminal svg size 900,480 dynamic enhanced font "sans,11" background rgb "white"' ;;
png) TERM_SVG='set terminal pngcairo size 900,480 enhanced font "sans,10" background rgb "white"' ;;
*) echo "plot.sh: PLOT_FORMAT must be svg or png" >&2; exit 2 ;;
esac

# ---- backends: rows after the "backend  seq GB/s ..." header, until a blank line
if [ -f "$DIR/backends.txt" ]; then
    awk '/^backend[ \t]+seq/ { t = 1; next } t && /^[ \t]*$/ { t = 0 } t && NF >= 4 && $1 !~ /^\(/ && $3 ~ /^[0-9.]+$/ {
            print $1, $3, $4 }' "$DIR/backends.txt" >"$TMP/backends.dat"
    if [ -s "$TMP/backends.dat" ]; then
        floor=$(awk '$1 == "null" { print $2 }' "$TMP/backends.dat")
        floor_gp=""
        [ -z "$floor" ] || floor_gp="set arrow from graph 0, first $floor to graph 1, first $floor nohead lw 2 dt 2 lc rgb '#444444' front
set label 'floor: null backend, mean $floor µs' at graph 0.01, first $floor offset 0,0.8 front"
        gnuplot <<GP
$TERM_SVG
set output "$DIR/backends-latency.$EXT"
set title "Random 4 KiB page faults per backend (every page from the backend)"
set ylabel "fault latency, µs (log scale)"
set logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics nomirror
$floor_gp
plot "$TMP/backends.dat" using 2:xtic(1) title "mean" lc rgb "#4477aa", \
     "" using 3 title "p99" lc rgb "#ee6677"
GP
        made+=("$DIR/backends-latency.$EXT")
    fi
fi

# ---- policy: "trace cache pages sc fifo s3 lru sc-1/3 ..." rows
if [ -f "$DIR/policy.txt" ]; then
    awk '/^trace[ \t]+cache/ { t = 1; for (i = 4; i <= 8; i++) h[i] = $i; next } t && /^[ \t]*$/ { t = 0 }
         t && NF >= 8 { print $1 "/" $2, $4, $5, $6, $7 }
         END { if (t || h[4] != "") print h[4], h[5], h[6], h[7] > "/dev/stderr" }' \
        "$DIR/policy.txt" >"$TMP/policy.dat" 2>"$TMP/policy.hdr"
    if [ -s "$TMP/policy.dat" ]; then
        read -r p1 p2 p3 p4 <"$TMP/policy.hdr"
        gnuplot <<GP
$TERM_SVG
set output "$DIR/policy-hits.$EXT"
set title "Pageout policies on synthetic traces (bench/policy.sh)"
set ylabel "hit ratio, %"
set yrange [0:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xlabel "trace / cache size (share of the footprint)"
set xtics nomirror rotate by -30
plot "$TMP/policy.dat" using 2:xtic(1) title "$p1" lc rgb "#4477aa", \
     "" using 3 title "$p2" lc rgb "#ccbb44", \
     "" using 4 title "$p3" lc rgb "#228833", \
     "" using 5 title "$p4" lc rgb "#ee6677"
GP
        made+=("$DIR/policy-hits.$EXT")
    fi
fi

# ---- pressure: "workload store policy IOPS ±% MB/s ..." rows, policies as columns
if [ -f "$DIR/pressure.txt" ]; then
    awk '/^workload[ \t]+store/ { t = 1; next } t && /^[ \t]*$/ { t = 0 }
         t && NF >= 6 && $2 != "tmpfs" {
             k = $1 "/" $2
             if (!(k in seen)) { seen[k] = 1; keys[++n] = k }
             if (!($3 in pseen)) { pseen[$3] = 1; pols[++np] = $3 }
             v[k, $3] = $6
         }
         END {
             printf "group"; for (j = 1; j <= np; j++) printf " %s", pols[j]; print ""
             for (i = 1; i <= n; i++) {
                 printf "%s", keys[i]
                 for (j = 1; j <= np; j++) printf " %s", ((keys[i], pols[j]) in v) ? v[keys[i], pols[j]] : "NaN"
                 print ""
             }
         }' "$DIR/pressure.txt" >"$TMP/pressure.dat"
    ncols=$(head -1 "$TMP/pressure.dat" | wc -w)
    if [ "$(wc -l <"$TMP/pressure.dat")" -gt 1 ] && [ "$ncols" -gt 1 ]; then
        gnuplot <<GP
$TERM_SVG
set output "$DIR/pressure-throughput.$EXT"
set title "Throughput under memory pressure per pageout policy (bench/pressure.sh)"
set ylabel "MB/s (log scale)"
set logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key outside right top
set key autotitle columnheader
set xlabel "workload / store"
set xtics nomirror rotate by -30
plot for [c=2:$ncols] "$TMP/pressure.dat" using c:xtic(1)
GP
        made+=("$DIR/pressure-throughput.$EXT")
    fi
fi

[ ${#made[@]} -gt 0 ] || { echo "plot.sh: no table to plot in $DIR (backends.txt, policy.txt, pressure.txt)" >&2; exit 1; }
printf 'plot: %s\n' "${made[@]}"
