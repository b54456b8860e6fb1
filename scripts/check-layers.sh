#!/bin/sh
# check-layers.sh - fails when code points up the layer order.
#
#   sh scripts/check-layers.sh [ROOT]             #include lines in ROOT/src,
#                                                 tools and include (default
#                                                 ROOT: this script's parent)
#   sh scripts/check-layers.sh --objects OBJ...   calls between the library's
#                                                 object files (nm), built
#                                                 from src/<layer>/*.c
#
# The layers of src/, lowest first (docs/architecture.md, "Layers"):
#
#   core < proto, schedule < store < broker, backend < client < worker, beat, dashboard < tools
#
# A file may use its own layer and any layer below it. Layers of the same
# rank are siblings and may not use each other: broker and backend both
# sit on store/, and worker, beat and dashboard all sit on client/. A
# layer is a directory name, whether or not the directory exists yet, so
# "store/x.h" is judged the same before and after src/store/ is created.
#
# Includes: also refused are ".." in a path and a directory that is not a
# layer (a new directory under src/ must be added to LAYERS below).
# "celeriac.h" and "celeriac/*.h" (include/, the public headers) may be
# included from anywhere, and public headers may include nothing else.
# An include without a directory ("cli_common.h") is its own directory's.
# Lines are matched as text: an #include in a comment counts too.
#
# Objects: the include check cannot see a call that goes up through a
# public header (backend/ calling a function of the client API, declared
# in celeriac/client.h, as it once did for the state names); the symbol
# check does.
#
# POSIX sh, find and awk, and nm from binutils for --objects.

set -eu

# name:rank; equal ranks are siblings.
LAYERS='core:0 proto:1 schedule:1 store:2 broker:3 backend:3 client:4 worker:5 beat:5 dashboard:5 tools:6'

# Uses that point up today, each with the change that removes it: a file
# and the header it includes, or the source file whose symbols it calls
# (paths under src/). An entry whose file still exists but no longer has
# that use fails the check, so the list cannot outlive the problem.
EXCEPTIONS='
'

# The rule, shared by both checks: why_not() says why a use is refused, or "".
RULES='
function load_layers(    n, i, pairs, nr, prev) {
    n = split(ENVIRON["LAYERS"], pairs, " ")
    for (i = 1; i <= n; i++) {
        split(pairs[i], nr, ":")
        rank[nr[1]] = nr[2] + 0
        order = i == 1 ? nr[1] : order (nr[2] == prev ? ", " : " < ") nr[1]
        prev = nr[2]
    }
}
function load_exceptions(kind,    n, i, lines, f) {
    n = split(ENVIRON["EXCEPTIONS"], lines, "\n")
    for (i = 1; i <= n; i++)
        if (split(lines[i], f, " ") >= 2 && f[2] ~ kind) {
            allowed[f[1] " " f[2]] = 1
            nexc++
            exc_file[nexc] = f[1]
            exc_use[nexc] = f[2]
        }
}
# Layer of a path under src/ or tools/ ("src/backend/redis.c": backend).
function layer_of(path,    p) {
    if (path ~ /^tools\//)
        return "tools"
    split(path, p, "/")
    return p[2]
}
function why_not(from, to) {
    if (to == from || rank[to] < rank[from])
        return ""
    return from " may not use " to " (" (rank[to] == rank[from] ? \
        "siblings may not use each other" : to " is above " from) "; layers: " order ")"
}
# Listed exceptions no longer seen in a file that is still there.
function stale_exceptions(    i, n) {
    for (i = 1; i <= nexc; i++)
        if (!((exc_file[i] " " exc_use[i]) in seen) && (exc_file[i] in present)) {
            printf "scripts/check-layers.sh: the exception \"%s %s\" no longer occurs: remove it\n", \
                exc_file[i], exc_use[i]
            n++
        }
    return n
}
'

if [ "${1:-}" = --objects ]; then
    shift
    [ $# -gt 0 ] || { echo "check-layers: --objects needs object files" >&2; exit 2; }
    # One line per symbol: the source file (src/<layer>/x.c), the symbol
    # and its nm type (U: used here, upper case: defined here).
    for obj in "$@"; do
        case $obj in
        */src/*) src=src/${obj##*/src/} ;;
        *) echo "check-layers: $obj: not built from src/" >&2; exit 2 ;;
        esac
        nm -P "$obj" | awk -v f="${src%.o}" '{ print f, $1, $2 }'
    done | LAYERS=$LAYERS EXCEPTIONS=$EXCEPTIONS awk "$RULES"'
    BEGIN { load_layers(); load_exceptions("\\.c$") }
    { present[$1] = 1 }
    $3 == "U" { nuse++; use_file[nuse] = $1; use_sym[nuse] = $2; next }
    $3 ~ /^[TDBRCGSVW]$/ { def[$2] = $1 }
    END {
        for (i = 1; i <= nuse; i++) {
            if (!(use_sym[i] in def))
                continue # from another library
            f = use_file[i]
            t = def[use_sym[i]]
            target = substr(t, 5) # the defining file under src/
            seen[f " " target] = 1
            from = layer_of(f)
            to = layer_of(t)
            if (!(from in rank) || !(to in rank)) {
                if (!reported[f]++) {
                    printf "%s: not in a layer; add its directory to scripts/check-layers.sh\n", \
                        (from in rank) ? t : f
                    bad++
                }
                continue
            }
            why = why_not(from, to)
            if (why != "" && !((f " " target) in allowed) && !reported[f " " target]++) {
                printf "%s: calls %s (%s): %s\n", f, use_sym[i], t, why
                bad++
            }
            checked++
        }
        bad += stale_exceptions()
        if (bad) {
            printf "check-layers: %d problem(s) in %d calls between objects\n", bad, checked
            exit 1
        }
        printf "check-layers: %d calls between objects checked, all point down the layers\n", checked
    }'
    exit
fi

root=${1:-$(dirname "$0")/..}
if ! cd "$root" 2>/dev/null || [ ! -d src ]; then
    echo "check-layers: no src/ directory under '$root'" >&2
    exit 2
fi
dirs=
for d in src tools include; do
    [ -d "$d" ] && dirs="$dirs $d"
done
# Word splitting is wanted: directory and file names are plain (set -f
# below keeps them from being globbed).
set -f
# shellcheck disable=SC2086
files=$(find $dirs -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
if [ -z "$files" ]; then
    echo "check-layers: no C sources under '$root'" >&2
    exit 2
fi

# shellcheck disable=SC2086
LAYERS=$LAYERS EXCEPTIONS=$EXCEPTIONS awk "$RULES"'
BEGIN { load_layers(); load_exceptions("\\.h$") }

FNR == 1 { present[FILENAME] = 1 }

function fail(msg) {
    printf "%s:%d: #include \"%s\": %s\n", FILENAME, FNR, inc, msg
    bad++
}

/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0
    sub(/^[^"]*"/, "", inc)
    sub(/".*$/, "", inc)
    checked++
    seen[FILENAME " " inc] = 1

    if (inc == "celeriac.h" || inc ~ /^celeriac\/[^\/]+\.h$/)
        next
    if (FILENAME ~ /^include\//) {
        fail("a public header may include only public headers (celeriac/*.h)")
        next
    }
    if (inc ~ /(^|\/)\.\.(\/|$)/) {
        fail("relative include: name the layer directory instead")
        next
    }
    if (inc !~ /\//)
        next
    from = layer_of(FILENAME)
    to = inc
    sub(/\/.*$/, "", to)
    if (!(to in rank)) {
        fail("\"" to "\" is not a layer (layers: " order "); add it to scripts/check-layers.sh")
        next
    }
    if (!(from in rank)) {
        fail("\"" from "\" is not a layer; add it to scripts/check-layers.sh")
        next
    }
    why = why_not(from, to)
    if (why != "" && !((FILENAME " " inc) in allowed))
        fail(why)
}

END {
    bad += stale_exceptions()
    if (bad) {
        printf "check-layers: %d problem(s) in %d includes\n", bad, checked
        exit 1
    }
    printf "check-layers: %d includes checked, all point down the layers\n", checked
}
' $files
