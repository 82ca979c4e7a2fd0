# Helpers for the stack and rebase tests; source after lib.sh.
#
# Stack builds download Debian packages.  To keep that to once per machine
# (`make test` then `make check` build the same stacks), the .debs and
# apt's lists are kept in $KILN_TEST_STACK_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/kiln/test-stacks), copied into each fresh
# cache directory a test uses and copied back after.  Only the archive's
# own files live there (apt checks them against the signed lists); built
# images never do, so every test builds its images itself.
#   seed_stack_cache DIR     a fresh stack cache DIR holding the shared .debs and lists
#   save_stack_cache DIR     keeps DIR's new .debs and lists for next time
#   config_get CONFIG PY     evaluates the Python expression PY with c = the image config
#   serve_in_root ROOT CONFIG PORT   runs the config's Entrypoint+Cmd in ROOT under
#       bubblewrap as the config's User, with PORT set and the host's network,
#       in the background (stopped at the end of the test)
#   in_root ROOT UID CMD...  runs CMD in ROOT under bubblewrap as UID:UID
STACK_SHARED=${KILN_TEST_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/test-stacks}

seed_stack_cache() {
        local dir=$1
        mkdir -p "$dir" "$STACK_SHARED/debs" "$STACK_SHARED/apt"
        cp -al "$STACK_SHARED/debs" "$dir/" 2>/dev/null || cp -a "$STACK_SHARED/debs" "$dir/"
        cp -a "$STACK_SHARED/apt" "$dir/"
}

save_stack_cache() {
        local dir=$1
        mkdir -p "$STACK_SHARED/debs"
        cp -an "$dir/debs/." "$STACK_SHARED/debs/" 2>/dev/null
        rm -rf "$STACK_SHARED/apt.new"
        cp -a "$dir/apt" "$STACK_SHARED/apt.new" && rm -rf "$STACK_SHARED/apt" &&
                mv "$STACK_SHARED/apt.new" "$STACK_SHARED/apt"
}

config_get() {
        python3 -c 'import json,sys
c=json.load(open(sys.argv[1]))
v=eval(sys.argv[2])
print(v if isinstance(v,str) else json.dumps(v))' "$1" "$2"
}

in_root() {
        local root=$1 uid=$2
        shift 2
        bwrap --bind "$root" / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --die-with-parent \
                --uid "$uid" --gid "$uid" --clearenv --setenv PATH /usr/local/bin:/usr/bin:/bin \
                --setenv LANG C.UTF-8 "$@"
}

serve_in_root() {
        local root=$1 config=$2 port=$3
        local -a argv env envargs=()
        local user uid gid wd e
        mapfile -t argv < <(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])).get("config") or {}
for a in (c.get("Entrypoint") or []) + (c.get("Cmd") or []): print(a)' "$config")
        mapfile -t env < <(python3 -c 'import json,sys
c=json.load(open(sys.argv[1])).get("config") or {}
for e in c.get("Env") or []: print(e)' "$config")
        user=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("config") or {}).get("User") or "0:0")' "$config")
        wd=$(python3 -c 'import json,sys; print((json.load(open(sys.argv[1])).get("config") or {}).get("WorkingDir") or "/")' "$config")
        uid=${user%%:*}
        gid=${user#*:}
        for e in "${env[@]}"; do envargs+=(--setenv "${e%%=*}" "${e#*=}"); done
        bwrap --bind "$root" / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --share-net \
                --die-with-parent --uid "$uid" --gid "$gid" --clearenv "${envargs[@]}" \
                --setenv PORT "$port" --chdir "$wd" "${argv[@]}" >"$WORK/serve-$port.log" 2>&1 &
        T_PIDS+=($!)
}
