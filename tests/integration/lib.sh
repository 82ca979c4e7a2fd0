# kiln integration-test helpers; source this file from a test script.
# Each test makes its own temporary directory, registries and inputs, and
# ends with `finish`, which prints "N passed, N failed" and sets the exit.
set -u
set -o pipefail

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT_DIR=$(cd "$TESTS_DIR/.." && pwd)
KILN=${KILN:-$ROOT_DIR/${KILN_BUILD:-build}/kiln}
T_PASSED=0
T_FAILED=0
T_PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-it-XXXXXX")

cleanup_test() {
        local p
        for p in "${T_PIDS[@]}"; do kill "$p" 2>/dev/null; done
        for p in "${T_PIDS[@]}"; do wait "$p" 2>/dev/null; done
        chmod -R u+rwx "$WORK" 2>/dev/null
        rm -rf "$WORK"
}
trap cleanup_test EXIT

pass() { T_PASSED=$((T_PASSED + 1)); echo "ok - $*"; }
fail() { T_FAILED=$((T_FAILED + 1)); echo "not ok - $*"; }

# check "description" command...: passes when the command exits 0.
check() {
        local what=$1
        shift
        if "$@"; then pass "$what"; else fail "$what (command: $*)"; fi
}

# check_fails "description" PATTERN command...: passes when the command exits
# non-zero and its stderr is one line matching PATTERN (grep -E).
check_fails() {
        local what=$1 pattern=$2
        shift 2
        local err="$WORK/.stderr.$$"
        if "$@" >/dev/null 2>"$err"; then
                fail "$what: expected failure, got success"
                return
        fi
        local lines
        lines=$(grep -c '' "$err")
        if [ "$lines" -ne 1 ]; then
                fail "$what: expected one line of error, got $lines:"
                sed 's/^/    /' "$err"
                return
        fi
        if grep -qE "$pattern" "$err"; then
                pass "$what"
        else
                fail "$what: error does not match /$pattern/: $(cat "$err")"
        fi
}

# check_eq "description" EXPECTED ACTUAL
check_eq() {
        if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}

finish() {
        echo "$(basename "$0" .sh): $T_PASSED passed, $T_FAILED failed"
        [ "$T_FAILED" -eq 0 ]
        exit $?
}

# free_port: prints a TCP port nothing listens on (loopback).
free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL [SECONDS]: waits until URL answers (any HTTP status).
wait_http() {
        local url=$1 n=${2:-20}
        local i
        for ((i = 0; i < n * 10; i++)); do
                curl -ks -o /dev/null "$url" && return 0
                sleep 0.1
        done
        echo "timed out waiting for $url" >&2
        return 1
}

# start_registry NAME [extra config yaml lines]: starts Debian's
# docker-registry on a free loopback port; sets REG_PORT and REG (host:port).
start_registry() {
        local name=$1
        shift
        local dir="$WORK/registry-$name"
        mkdir -p "$dir/data"
        REG_PORT=$(free_port)
        REG="127.0.0.1:$REG_PORT"
        cat >"$dir/config.yml" <<EOC
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REG_PORT
$(printf '%s\n' "$@")
EOC
        docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
        T_PIDS+=($!)
        wait_http "http://$REG/v2/" 20 || wait_http "https://$REG/v2/" 5 || {
                cat "$dir/log" >&2
                return 1
        }
}

# make_busybox_tree DIR: a tiny root with busybox-static and a few links.
make_busybox_tree() {
        local d=$1
        mkdir -p "$d/bin"
        cp /bin/busybox "$d/bin/busybox"
        ln -sf busybox "$d/bin/sh"
        ln -sf busybox "$d/bin/echo"
        ln -sf busybox "$d/bin/cat"
        ln -sf busybox "$d/bin/env"
}

# run_in_root ROOT CONFIG_JSON: runs the image config's Entrypoint+Cmd with
# its Env and WorkingDir inside ROOT under bubblewrap; prints its output.
run_in_root() {
        local root=$1 config=$2
        local -a argv env
        mapfile -t argv < <(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])).get("config") or {}
for a in (c.get("Entrypoint") or []) + (c.get("Cmd") or []): print(a)' "$config")
        mapfile -t env < <(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])).get("config") or {}
for e in c.get("Env") or []: print(e)' "$config")
        local wd
        wd=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("config") or {}).get("WorkingDir") or "/")' "$config")
        local -a envargs=()
        local e
        for e in "${env[@]}"; do envargs+=(--setenv "${e%%=*}" "${e#*=}"); done
        bwrap --bind "$root" / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent \
                --clearenv "${envargs[@]}" --chdir "$wd" "${argv[@]}"
}
