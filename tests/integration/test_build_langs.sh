#!/usr/bin/env bash
# kiln build of Node.js and Python functions end to end: the samples (http
# and cloudevent for each) from a git repository made here, on their
# default run images (kiln-stack:nodejs and kiln-stack:python, built from
# Debian packages on first use), pushed to a local registry through a
# counting proxy, pulled with skopeo, unpacked with umoci and run under
# bubblewrap as the image config says.  A rebuild with only the function
# changed reuses the node_modules layer and uploads neither it nor the run
# image again.  A Python requirement comes from a wheel in the repository.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_registry.sh"
source "$(dirname "$0")/lib_build.sh"
source "$(dirname "$0")/lib_stack.sh"

export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
export HOME=$WORK/home DOCKER_CONFIG=$WORK/home/.docker
unset REGISTRY_AUTH_FILE XDG_RUNTIME_DIR XDG_CONFIG_HOME XDG_CACHE_HOME SOURCE_DATE_EPOCH
mkdir -p "$HOME"
CACHE=$WORK/cache
# The stacks' Debian packages are downloaded once per machine.
seed_stack_cache "$CACHE/stacks"

start_plain_registry
UPSTREAM=$REG
start_proxy "$UPSTREAM"
R=$PROXY

# --- the samples in a git repository, tag v1 ----------------------------------------
REPO=$WORK/repo
mkdir -p "$REPO"
git -C "$REPO" init -q -b main
git -C "$REPO" config user.email t@example.com
git -C "$REPO" config user.name tester
for s in node-http node-cloudevent python-http python-cloudevent; do
        cp -r "$ROOT_DIR/samples/$s" "$REPO/$s"
done
# A Python function with a requirement served from a wheel directory in
# the repository (PyPI is not reachable): the wheel is made here.
mkdir -p "$REPO/py-wheel/wheels"
/usr/bin/python3 "$ROOT_DIR/tests/helpers/mkwheel.py" "$REPO/py-wheel/wheels" kiln_shout 1.0.0 \
        'def shout(s):
    return str(s).upper() + "!"'
printf 'kiln-shout==1.0.0\n' >"$REPO/py-wheel/requirements.txt"
printf 'from kiln_shout import shout\n\n\ndef loud(request):\n    return shout(request.args.get("name", "world"))\n' \
        >"$REPO/py-wheel/main.py"
git -C "$REPO" add -A
git -C "$REPO" commit -q -m samples
git -C "$REPO" tag v1
COMMIT=$(git -C "$REPO" rev-parse HEAD)

# build_sample DIR FUNC [ARGS...]: builds DIR of the repository at v1 to
# $R/DIR:v1, then pulls and unpacks it as $WORK/NAME (NAME: DIR with _ for -).
build_sample() {
        local dir=$1 func=$2 name=${1//-/_}
        shift 2
        build_ok "$dir: kiln build --git --revision v1 --context-dir $dir" \
                --git "file://$REPO" --revision v1 --context-dir "$dir" \
                --image "$R/$dir:v1" --func-name "$func" "$@"
        check "$dir: skopeo pulls and umoci unpacks it" pull_unpack "$UPSTREAM/$dir:v1" "$name"
        check_eq "$dir: the revision annotation is the commit" "$COMMIT" \
                "$(cfg "$WORK/$name/manifest.json" 'd["annotations"]["org.opencontainers.image.revision"]')"
        check_eq "$dir: runs as the stack's non-root user" "65532:65532" \
                "$(cfg "$WORK/$name/config.json" 'c.get("User")')"
}

# event_checks NAME: binary and structured events reach the function (its
# stdout shows the ids) and a malformed one is a 400.
event_checks() {
        local name=$1 port_var="PORT_$1" port
        port=${!port_var}
        check_eq "$name: a binary-mode event is taken" 204 "$(http_status \
                -H 'ce-id: bin-1' -H 'ce-source: /test' -H 'ce-specversion: 1.0' \
                -H 'ce-type: dev.kiln.test' -H 'Content-Type: application/json' \
                -d '{"name":"binary"}' "http://127.0.0.1:$port/")"
        check_eq "$name: a structured-mode event is taken" 204 "$(http_status \
                -H 'Content-Type: application/cloudevents+json' \
                -d '{"specversion":"1.0","id":"st-2","source":"/test","type":"dev.kiln.test","data":{"name":"structured"}}' \
                "http://127.0.0.1:$port/")"
        check_eq "$name: a malformed event is a 400" 400 "$(http_status \
                -H 'Content-Type: application/cloudevents+json' -d '{"specversion":"1.0"}' \
                "http://127.0.0.1:$port/")"
        sleep 0.2
        check "$name: the function saw the binary event" grep -q 'event bin-1 .*Hello, binary!' "$WORK/$name/run.log"
        check "$name: the function saw the structured event" grep -q 'event st-2 .*Hello, structured!' "$WORK/$name/run.log"
}

# --- Node.js --------------------------------------------------------------------
build_sample node-http helloWorld
check "node-http: its process is node" grep -q '"node"' <<<"$(cfg "$WORK/node_http/config.json" 'c.get("Entrypoint")')"
if serve_image node_http; then
        check_eq "node-http answers through its npm dependency" "Hello, kiln!" \
                "$(curl -sf "http://127.0.0.1:$PORT_node_http/?name=kiln")"
fi

build_sample node-cloudevent handleEvent --signature cloudevent
serve_image node_cloudevent && event_checks node_cloudevent

# Only the function changes: node_modules and the run image are reused.
node_layers=$(layers "$WORK/node_http/manifest.json")
sed -i 's/res.type(.text.).send(`${message}\\n`);/res.type("text").send(`${message} (v2)\\n`);/' "$REPO/node-http/hello.js"
git -C "$REPO" commit -q -am "node-http: v2"
git -C "$REPO" tag v2
proxy_reset
build_ok "node-http v2: rebuild after a one-line change" --git "file://$REPO" --revision v2 \
        --context-dir node-http --image "$R/node-http:v2" --func-name helloWorld
check "node-http v2: pulled and unpacked" pull_unpack "$UPSTREAM/node-http:v2" node_http_v2
new_layers=$(layers "$WORK/node_http_v2/manifest.json")
changed=$(comm -13 <(sort <<<"$node_layers") <(sort <<<"$new_layers") | wc -l)
check_eq "node-http v2: only the app layer is new" 1 "$changed"
check_eq "node-http v2: the run image and node_modules layers are kept" \
        "$(head -n 1 <<<"$node_layers")" "$(head -n 1 <<<"$new_layers")"
check_eq "node-http v2: only the app layer and the config are uploaded" 2 "$(uploads | grep -c .)"

# --- Python ---------------------------------------------------------------------
build_sample python-http hello_world
check "python-http: its process is python3" grep -q '"python3"' <<<"$(cfg "$WORK/python_http/config.json" 'c.get("Entrypoint")')"
if serve_image python_http; then
        port=$PORT_python_http
        check_eq "python-http answers" "Hello, kiln!" "$(curl -sf "http://127.0.0.1:$port/?name=kiln")"
        check_eq "python-http answers JSON when asked" '{"message": "Hello, py!"}' \
                "$(curl -sf -H 'Accept: application/json' -d '{"name":"py"}' "http://127.0.0.1:$port/")"
fi

build_sample python-cloudevent handle_event --signature cloudevent
serve_image python_cloudevent && event_checks python_cloudevent

build_sample py-wheel loud --env PIP_FIND_LINKS=/workspace/wheels --env PIP_NO_INDEX=1
check "py-wheel: the requirement is installed in a layer of its own" \
        test -n "$(find "$WORK/py_wheel/bundle/rootfs/layers" -path '*/kiln_shout/__init__.py' -print -quit)"
if serve_image py_wheel; then
        check_eq "py-wheel answers through its requirement" "KILN!" \
                "$(curl -sf "http://127.0.0.1:$PORT_py_wheel/?name=kiln")"
fi

save_stack_cache "$CACHE/stacks"
finish
