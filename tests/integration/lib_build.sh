# Helpers for the kiln build tests; source after lib.sh and lib_registry.sh.
# They use $CACHE (the build cache dir) and $WORK.
#   kb ARGS...             kiln build with the shared cache; output in $WORK/kb.{out,err}
#   build_ok WHAT ARGS...  kb must succeed (a check); sets DIGEST
#   pull_unpack REF NAME   skopeo + umoci into $WORK/NAME (bundle/, config.json, manifest.json)
#   cfg FILE EXPR          a Python expression over an image config
#   serve_image NAME       runs $WORK/NAME's process under bubblewrap; sets PORT_NAME
#   uploads                blob digests uploaded through the proxy since its last reset
#   layers FILE            the layer digests of a manifest
SKOPEO=(skopeo --override-os linux)

# kb ARGS...: kiln build with the shared cache; output in $WORK/kb.{out,err}.
kb() {
        "$KILN" build --cache-dir "$CACHE" "$@" >"$WORK/kb.out" 2>"$WORK/kb.err"
}

# build_ok WHAT ARGS...: kb must succeed; sets DIGEST.
build_ok() {
        local what=$1
        shift
        DIGEST=
        if kb "$@"; then
                DIGEST=$(tail -n 1 "$WORK/kb.out")
                pass "$what"
        else
                fail "$what (exit $?):"
                tail -n 30 "$WORK/kb.err" | sed 's/^/    /'
        fi
}

# pull_unpack REF NAME: skopeo copies REF to an OCI layout and umoci unpacks
# it into $WORK/NAME/bundle; the config is $WORK/NAME/config.json.
pull_unpack() {
        local d=$WORK/$2
        rm -rf "$d"
        mkdir -p "$d"
        "${SKOPEO[@]}" copy -q --src-tls-verify=false "docker://$1" "oci:$d/layout:x" &&
                "${SKOPEO[@]}" inspect --config "oci:$d/layout:x" >"$d/config.json" &&
                "${SKOPEO[@]}" inspect --raw "oci:$d/layout:x" >"$d/manifest.json" &&
                umoci unpack --rootless --image "$d/layout:x" "$d/bundle" >/dev/null
}

# cfg FILE EXPR: a Python expression over the image config `c` (its
# "config" object) and the whole document `d`.
cfg() {
        python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); c=d.get("config") or {}
v=eval(sys.argv[2])
print(json.dumps(v,separators=(",",":")) if isinstance(v,(list,dict)) else v)' "$1" "$2"
}

# serve_image NAME: runs $WORK/NAME's Entrypoint+Cmd with its Env (PORT
# set to a free port), WorkingDir and User in the unpacked root under
# bubblewrap; sets PORT_NAME and waits until it answers.
serve_image() {
        local d=$WORK/$1 port
        local -a argv env envargs=()
        port=$(free_port)
        mapfile -t argv < <(cfg "$d/config.json" '"\n".join((c.get("Entrypoint") or [])+(c.get("Cmd") or []))')
        mapfile -t env < <(cfg "$d/config.json" '"\n".join(c.get("Env") or [])')
        local e user uid gid wd
        for e in "${env[@]}"; do
                [ "${e%%=*}" = PORT ] && continue
                envargs+=(--setenv "${e%%=*}" "${e#*=}")
        done
        user=$(cfg "$d/config.json" 'c.get("User") or "0:0"')
        uid=${user%%:*} gid=${user#*:}
        wd=$(cfg "$d/config.json" 'c.get("WorkingDir") or "/"')
        bwrap --bind "$d/bundle/rootfs" / --dev /dev --proc /proc --tmpfs /tmp --unshare-all --share-net \
                --uid "$uid" --gid "$gid" --die-with-parent --clearenv "${envargs[@]}" --setenv PORT "$port" \
                --chdir "$wd" "${argv[@]}" >"$d/run.log" 2>&1 &
        T_PIDS+=($!)
        printf -v "PORT_$1" '%s' "$port"
        wait_http "http://127.0.0.1:$port/" 20 || {
                cat "$d/run.log"
                return 1
        }
}

# uploads: the digests of the blobs uploaded through the proxy since the
# last reset, sorted, one a line.
uploads() {
        proxy_stats | python3 -c 'import json,sys,urllib.parse
for r in json.load(sys.stdin)["requests"]:
    if r["method"]=="PUT" and "/blobs/uploads/" in r["path"] and r["status"]==201:
        print(urllib.parse.parse_qs(r.get("query") or "").get("digest",[""])[0])' | sort
}

# layers FILE: the layer digests of a manifest, one a line.
layers() { cfg "$1" '"\n".join(l["digest"] for l in d["layers"])'; }

