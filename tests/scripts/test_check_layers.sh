#!/bin/sh
# test_check_layers.sh - scripts/check-layers.sh catches what it must.
#
#   sh tests/scripts/test_check_layers.sh SCRIPT SOURCE_DIR CC
#
# Each case builds a small tree (or a copy of the real one) in a scratch
# directory with one include or call that is allowed or not, runs the
# check on it and asserts the exit status and the message. A check that
# passed everything, or failed everything, fails here.

set -eu

script=$1
source_dir=$2
cc=$3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
failures=0
n=0

# A fresh tree with one header per layer, each including only what it may.
new_tree() {
    rm -rf "$tmp/t"
    for layer in core proto store broker backend client worker; do
        mkdir -p "$tmp/t/src/$layer"
        printf '#pragma once\n' >"$tmp/t/src/$layer/$layer.h"
    done
    mkdir -p "$tmp/t/tools/cli" "$tmp/t/include/celeriac"
    printf '#pragma once\n#include <stddef.h>\n' >"$tmp/t/include/celeriac/api.h"
    printf '#include "celeriac/api.h"\n#include "core/core.h"\n' >"$tmp/t/src/core/a.c"
    printf '#include "core/core.h"\n#  include "proto/proto.h"\n' >"$tmp/t/src/proto/a.c"
    printf '#include "proto/proto.h"\n' >"$tmp/t/src/store/a.c"
    printf '#include "store/store.h"\n#include "proto/proto.h"\n' >"$tmp/t/src/broker/a.c"
    printf '#include "store/store.h"\n#include "backend.h"\n' >"$tmp/t/src/backend/a.c"
    printf '#include "broker/broker.h"\n#include "backend/backend.h"\n' >"$tmp/t/src/client/a.c"
    printf '#include "client/client.h"\n#include "celeriac.h"\n' >"$tmp/t/src/worker/a.c"
    printf '#include "worker/worker.h"\n#include "cli.h"\n#include "core/core.h"\n' \
        >"$tmp/t/tools/cli/main.c"
}

# expect pass|fail|error NAME [MESSAGE] -- ARGS...: runs the check with
# ARGS; it must exit 0, 1 (problems found) or 2 (cannot check), and say
# MESSAGE when one is given.
expect() {
    want=$1
    name=$2
    shift 2
    needle=
    if [ "$1" != -- ]; then
        needle=$1
        shift
    fi
    shift
    n=$((n + 1))
    rc=0
    sh "$script" "$@" </dev/null >"$tmp/out" 2>&1 || rc=$?
    ok=true
    case $want in
    pass) [ "$rc" -eq 0 ] || ok=false ;;
    fail) [ "$rc" -eq 1 ] || ok=false ;;
    error) [ "$rc" -eq 2 ] || ok=false ;;
    esac
    if $ok && [ -n "$needle" ] && ! grep -F -- "$needle" "$tmp/out" >/dev/null; then
        ok=false
    fi
    if $ok; then
        echo "ok $n - $name"
    else
        echo "not ok $n - $name (exit $rc, wanted $want${needle:+ with \"$needle\"})"
        sed 's/^/#   /' "$tmp/out"
        failures=$((failures + 1))
    fi
}

# Appends one line to a file of the tree.
add() {
    printf '%s\n' "$2" >>"$tmp/t/$1"
}

new_tree
expect pass "every layer including downward passes" -- "$tmp/t"

# with_include pass|fail NAME FILE LINE [MESSAGE]: a fresh tree with LINE
# added to FILE (created, directory and all, when it is not there).
with_include() {
    new_tree
    mkdir -p "$tmp/t/$(dirname "$3")"
    add "$3" "$4"
    expect "$1" "$2" ${5:+"$5"} -- "$tmp/t"
}

# want|name|file|line added to it|message
while IFS='|' read -r want name file line message; do
    with_include "$want" "$name" "$file" "$line" "$message"
done <<'CASES'
fail|proto including client fails, naming file, line and layers|src/proto/a.c|#include "client/client.h"|src/proto/a.c:3: #include "client/client.h": proto may not use client (client is above proto
fail|broker including backend fails (siblings)|src/broker/a.c|#include "backend/backend.h"|broker may not use backend (siblings may not use each other
fail|backend including broker fails (siblings)|src/backend/a.c|#include "broker/broker.h"|backend may not use broker
fail|store including broker fails|src/store/a.c|#include "broker/broker.h"|store may not use broker
fail|core including proto fails|src/core/a.c|#include "proto/proto.h"|core may not use proto
pass|beat may include client|src/beat/a.c|#include "client/client.h"|
fail|worker including beat fails (siblings)|src/worker/a.c|#include "beat/beat.h"|worker may not use beat
fail|client including tools fails|src/client/a.c|#include "tools/cli.h"|client may not use tools
fail|an unknown directory fails|src/client/a.c|#include "foo/foo.h"|"foo" is not a layer
fail|a file in an unknown directory fails|src/foo/a.c|#include "core/core.h"|"foo" is not a layer
fail|a relative include fails|src/broker/a.c|#include "../client/client.h"|relative include
fail|a public header including an internal one fails|include/celeriac/api.h|#include "core/core.h"|a public header may include only public headers
fail|an indented include with a comment is read|src/worker/a.c|  #include "tools/x.h"  /* a comment */|src/worker/a.c:3: #include "tools/x.h": worker may not use tools
CASES

new_tree
rm -rf "$tmp/t/src/store"
expect pass "store/ is a layer before the directory exists" -- "$tmp/t"
add src/proto/a.c '#include "store/store.h"'
expect fail "proto including a store/ that does not exist yet fails" \
    'proto may not use store' -- "$tmp/t"

expect error "a tree without src/ is refused" 'no src/ directory' -- "$tmp/none"

# The real tree: passes as it is, fails with one upward include added,
# and fails when a listed exception is gone (what merging the move of
# the Redis connection code to src/store/ does) until it is removed.
rm -rf "$tmp/t"
mkdir -p "$tmp/t"
cp -R "$source_dir/src" "$source_dir/tools" "$source_dir/include" "$tmp/t/"
expect pass "the real tree passes" -- "$tmp/t"
cp "$tmp/t/src/proto/message.c" "$tmp/message.c"
add src/proto/message.c '#include "client/client_internal.h"'
expect fail "the real tree with proto including client fails" \
    'src/proto/message.c:' -- "$tmp/t"
cp "$tmp/message.c" "$tmp/t/src/proto/message.c"
if grep -q '"broker/redis_conn.h"' "$tmp/t/src/backend/redis.c"; then
    sed 's|"broker/redis_conn.h"|"store/redis_conn.h"|' "$source_dir/src/backend/redis.c" \
        >"$tmp/t/src/backend/redis.c"
    expect fail "an exception that no longer occurs fails" \
        'the exception "src/backend/redis.c broker/redis_conn.h" no longer occurs' -- "$tmp/t"
fi

# Calls between objects: a store calling up into the client through a
# public header passes the include check and must fail this one.
mkdir -p "$tmp/o/src/core" "$tmp/o/src/client" "$tmp/o/src/backend"
printf 'int core_f(void);\nint core_f(void) { return 1; }\n' >"$tmp/o/src/core/c.c"
printf 'int core_f(void);\nint client_f(void);\nint client_f(void) { return core_f(); }\n' \
    >"$tmp/o/src/client/c.c"
printf 'int core_f(void);\nint back_f(void);\nint back_f(void) { return core_f(); }\n' \
    >"$tmp/o/src/backend/ok.c"
printf 'int client_f(void);\nint up_f(void);\nint up_f(void) { return client_f(); }\n' \
    >"$tmp/o/src/backend/up.c"
for f in core/c client/c backend/ok backend/up; do
    "$cc" -c -o "$tmp/o/src/$f.c.o" "$tmp/o/src/$f.c"
done
expect pass "objects calling downward pass" -- --objects "$tmp/o/src/core/c.c.o" \
    "$tmp/o/src/client/c.c.o" "$tmp/o/src/backend/ok.c.o"
expect fail "a store calling the client fails" \
    'src/backend/up.c: calls client_f (src/client/c.c): backend may not use client' \
    -- --objects "$tmp/o/src/core/c.c.o" "$tmp/o/src/client/c.c.o" "$tmp/o/src/backend/ok.c.o" \
    "$tmp/o/src/backend/up.c.o"

echo "1..$n"
[ "$failures" -eq 0 ]
