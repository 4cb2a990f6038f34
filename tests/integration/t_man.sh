#!/bin/bash
# t_man.sh - the manual pages and the docs agree with the programs:
#  - every page the build makes from man/*.scd (emmd.8, emmctl.8, emmswap.8, emm-memserver.8,
#    emm.conf.5, emm-backend.3, emm-pager.3) exists and `mandoc -T lint -W warning` finds
#    nothing in it;
#  - every key of emmd's configuration parser (as `emmd --dump-config` shows
#    them, set or as comments) is documented in docs/config.md and emm.conf(5);
#  - every backend key the shipped backends accept (their config callbacks'
#    strcmp(key, "...") in the source) is in emm.conf(5) and docs/backends.md;
#  - every emmctl command (from `emmctl --help`) is in emmctl(8) and
#    docs/emmctl.md, and every long option of each command's --help is in its
#    manual page;
#  - README, docs/ and man/ cite nothing outside the repository (relative
#    links resolve in the tree; no design notes kept beside it).
# Needs no FUSE. Skips without mandoc, or when scdoc was missing at build time.
. "$(dirname "$0")/lib.sh"
need_emm
requires mandoc
MANDIR="$EMM_BIN/../man"
PAGES="emmd.8 emmctl.8 emmswap.8 emm.conf.5 emm-backend.3 emm-pager.3 emm-memserver.8"
if [ ! -d "$MANDIR" ]; then
    command -v scdoc >/dev/null 2>&1 && fail "scdoc is installed but $MANDIR was not built"
    skip "the manual pages were not built (scdoc missing at build time)"
fi

# --- lint ----------------------------------------------------------------------
for p in $PAGES; do
    [ -s "$MANDIR/$p" ] || fail "manual page $MANDIR/$p was not built"
    out=$(mandoc -T lint -W warning "$MANDIR/$p" 2>&1) || fail "mandoc -T lint $p: $out"
    [ -z "$out" ] || fail "mandoc -T lint $p: $out"
    # it renders, with its NAME section
    text=$(mandoc -T ascii "$MANDIR/$p" | sed 's/.\x08//g')
    grep -q '^NAME' <<<"$text" || fail "$p renders without a NAME section"
done
log "lint clean: $PAGES"

CONF_MD="$EMM_SRC/docs/config.md"
CONF_5="$EMM_SRC/man/emm.conf.5.scd"

# --- every key of the parser ------------------------------------------------------
mkdir -p "$WORK/etc"
cat >"$WORK/etc/all.conf" <<'EOF'
[emmd]
[default-pager]
swap = swap.img 1M
[fs a]
backend = memory
EOF
"$EMMD" --dump-config -c "$WORK/etc/all.conf" >"$WORK/dump" || fail "emmd --dump-config"
# "key = value" or "# key = (unset ...)"; backend keys (NAME.key) are the
# backends' own, below; pager.* and pageout.* are emmd's
keys=$(sed -n 's/^#\{0,1\} *\([a-z][a-z.-]*\) = .*/\1/p' "$WORK/dump" |
    grep -Ev '^[a-z]+\.' ; sed -n 's/^#\{0,1\} *\(pager\.[a-z-]*\|pageout\.[a-z-]*\) = .*/\1/p' "$WORK/dump")
keys=$(printf '%s\n' $keys | sort -u)
n=$(printf '%s\n' $keys | wc -l)
assert_ge "$n" 20 "keys shown by --dump-config"
missing=""
for k in $keys; do
    grep -qF "\`$k\`" "$CONF_MD" || missing="$missing docs/config.md:$k"
    grep -qF "*$k*" "$CONF_5" || missing="$missing emm.conf.5:$k"
done
[ -z "$missing" ] || fail "config keys not documented:$missing"
log "$n parser keys documented in docs/config.md and emm.conf(5)"

# --- every backend key ------------------------------------------------------------
bkeys=""
for src in "$EMM_SRC"/emm/backends/backend_*.c "$EMM_SRC"/emm/plugins/*/*.c; do
    [ -f "$src" ] || continue
    case "$src" in
    */backends/backend_*.c) b=$(basename "$src" .c); b=${b#backend_} ;;
    *) b=$(basename "$(dirname "$src")") ;;
    esac
    for k in $({ grep -o 'strcmp(key, "[a-z-]*")' "$src" || true; } | sed 's/.*"\(.*\)")/\1/'); do
        bkeys="$bkeys $b.$k"
    done
done
[ -n "$bkeys" ] || fail "found no backend key in the sources (did the layout change?)"
missing=""
for k in $bkeys; do
    grep -qF "*$k*" "$CONF_5" || missing="$missing emm.conf.5:$k"
    grep -qF "\`$k\`" "$EMM_SRC/docs/backends.md" || missing="$missing docs/backends.md:$k"
done
[ -z "$missing" ] || fail "backend keys not documented:$missing"
log "backend keys documented:$bkeys"

# --- emmctl commands, and each command's long options ---------------------------------
cmds=$("$EMMCTL" --help | awk '/^commands:/ { on = 1; next } /^$/ { on = 0 } on { print $1 }')
[ -n "$cmds" ] || fail "no commands in emmctl --help"
missing=""
for c in $cmds; do
    grep -qE "^\*$c\*" "$EMM_SRC/man/emmctl.8.scd" || missing="$missing emmctl.8:$c"
    grep -qE "^\| \`$c[ \`]" "$EMM_SRC/docs/emmctl.md" || missing="$missing docs/emmctl.md:$c"
done
[ -z "$missing" ] || fail "emmctl commands not documented:$missing"
for cmd in emmd emmctl emmswap emm-memserver; do
    for o in $("$EMM_BIN/$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -qF -- "*$o*" "$EMM_SRC/man/$cmd.8.scd" || missing="$missing $cmd.8:$o"
    done
done
[ -z "$missing" ] || fail "options not in their manual page:$missing"

# --- emm-memserver's keys (its parser's table) ---------------------------------------
mkeys=$(sed -n '/^static const char \*const keys\[\]/,/};/p' "$EMM_SRC/services/emm-memserver/config.c" |
    grep -o '"[a-z-]*"' | tr -d '"')
[ -n "$mkeys" ] || fail "found no key in services/emm-memserver/config.c (did the layout change?)"
missing=""
for k in $mkeys; do
    grep -qF "*$k*" "$EMM_SRC/man/emm-memserver.8.scd" || missing="$missing emm-memserver.8:$k"
    grep -qF "\`$k\`" "$EMM_SRC/docs/memserver.md" || missing="$missing docs/memserver.md:$k"
done
[ -z "$missing" ] || fail "emm-memserver keys not documented:$missing"
# emmd's pager.* keys (not in --dump-config: they follow pager = tcp)
for k in pager.tls pager.tls-psk-file pager.tls-ca pager.tls-cert pager.tls-key; do
    grep -qF "\`$k\`" "$CONF_MD" || missing="$missing docs/config.md:$k"
    grep -qF "*$k*" "$CONF_5" || missing="$missing emm.conf.5:$k"
done
[ -z "$missing" ] || fail "emmd pager keys not documented:$missing"
log "emm-memserver keys documented"

# --- the docs cite nothing outside the repository ------------------------------------
bad=""
for f in "$EMM_SRC"/README.md "$EMM_SRC"/docs/*.md "$EMM_SRC"/man/*.scd; do
    # relative Markdown links must name a file of the tree
    for l in $({ grep -o '\]([^)#]*' "$f" || true; } | sed 's/^](//'); do
        case "$l" in http://* | https://* | mailto:* | '') continue ;; esac
        [ -e "$(dirname "$f")/$l" ] || bad="$bad ${f#$EMM_SRC/}->$l"
    done
    # the design notes kept beside the repository are not part of it
    if grep -nE 'DESIGN\.md|\.\./shared/|reference/[a-z-]+\.md' "$f" >/dev/null; then
        bad="$bad ${f#$EMM_SRC/}:$(grep -nE 'DESIGN\.md|\.\./shared/|reference/[a-z-]+\.md' "$f" | head -1 | cut -d: -f1)"
    fi
done
[ -z "$bad" ] || fail "docs point outside the repository:$bad"
log "docs cite only the tree"
log "ok"
