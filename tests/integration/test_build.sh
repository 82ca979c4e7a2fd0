#!/usr/bin/env bash
# kiln build end to end: Go functions from a git repository made here,
# pushed to a local registry through a counting proxy, pulled with skopeo,
# unpacked with umoci and run under bubblewrap as the image config says;
# reproducibility, layer reuse, a third-party buildpack, credentials kept
# from buildpacks, and failures that are one line and leave nothing behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_registry.sh"
source "$(dirname "$0")/lib_build.sh"

START=$(date +%s)
SH_HTTP=$ROOT_DIR/tests/fixtures/third-party/sh-http
FIXTURES=$ROOT_DIR/tests/fixtures/buildpacks
# kiln's temporary dirs go here, so a test can see that none is left.
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
# No registry credentials from the host.
export HOME=$WORK/home DOCKER_CONFIG=$WORK/home/.docker
unset REGISTRY_AUTH_FILE XDG_RUNTIME_DIR XDG_CONFIG_HOME XDG_CACHE_HOME SOURCE_DATE_EPOCH
mkdir -p "$HOME"
CACHE=$WORK/cache
SLOW_SECS=$((40 + RANDOM % 50)).$$

start_plain_registry
UPSTREAM=$REG
start_proxy "$UPSTREAM"
R=$PROXY

# --- helpers (more in lib_build.sh) ------------------------------------------------

# nothing_left WHAT: no work dir of kiln's and no sandbox process remain.
nothing_left() {
        local left procs
        left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'kiln-*' | head -n 3)
        procs=$(pgrep -af "bwrap.*$TMPDIR/kiln-|sleep $SLOW_SECS" || true)
        if [ -z "$left$procs" ]; then
                pass "$1: nothing left behind"
        else
                fail "$1: left behind: $left $procs"
        fi
}

# --- a git repository: a README at the root, the function in fn/, tag v1 ----------
REPO=$WORK/repo
mkdir -p "$REPO/fn/greet" "$REPO/events"
git -C "$REPO" init -q -b main
git -C "$REPO" config user.email t@example.com
git -C "$REPO" config user.name tester
echo "functions" >"$REPO/README.md"
cat >"$REPO/fn/go.mod" <<'EOF'
module example.com/fn

go 1.19
EOF
cat >"$REPO/fn/fn.go" <<'EOF'
package fn

import (
	"fmt"
	"net/http"
	"os"

	"example.com/fn/greet"
)

// HelloWorld greets ?name= and says where it runs.
func HelloWorld(w http.ResponseWriter, r *http.Request) {
	wd, _ := os.Getwd()
	fmt.Fprintf(w, "%s from %s as %d\n", greet.Hello(r.URL.Query().Get("name")), wd, os.Getuid())
}
EOF
cat >"$REPO/fn/greet/greet.go" <<'EOF'
package greet

// Hello says hello.
func Hello(name string) string {
	if name == "" {
		name = "world"
	}
	return "hello, " + name
}
EOF
cat >"$REPO/events/go.mod" <<'EOF'
module example.com/events

go 1.19

require kiln.dev/functions-framework v0.0.0
EOF
cat >"$REPO/events/events.go" <<'EOF'
package events

import (
	"context"
	"fmt"

	framework "kiln.dev/functions-framework"
)

// Receive prints each event's id, type and data.
func Receive(ctx context.Context, e framework.Event) error {
	var data struct{ Msg string }
	if err := e.DataAs(&data); err != nil {
		return err
	}
	fmt.Printf("event %s %s %s\n", e.ID, e.Type, data.Msg)
	return nil
}
EOF
git -C "$REPO" add -A
GIT_COMMITTER_DATE='2024-05-06T07:08:09Z' git -C "$REPO" commit -q -m "first"
git -C "$REPO" tag v1
V1=$(git -C "$REPO" rev-parse 'v1^{commit}')
# A later commit on main, so v1 is not HEAD.
echo "more" >>"$REPO/README.md"
git -C "$REPO" commit -q -am "second"
URL=file://$REPO

# --- a Go http function: --git, --revision v1, --context-dir fn --------------------------
build_ok "kiln build --git --revision v1 --context-dir fn pushes" \
        --git "$URL" --revision v1 --context-dir fn --image "$R/fn:v1" --func-name HelloWorld \
        --digest-file "$WORK/fn.digest"
D1=$DIGEST
check "progress names each phase on stderr" \
        bash -c "grep -q '^==> fetch' '$WORK/kb.err' && grep -q '^==> detect' '$WORK/kb.err' &&
                grep -q '^==> build' '$WORK/kb.err' && grep -q '^==> export' '$WORK/kb.err' &&
                grep -q '^==> push' '$WORK/kb.err'"
check "buildpack output is streamed with its label" grep -q '^\[build dev.kiln.go\] ' "$WORK/kb.err"
check_eq "--digest-file holds the digest printed" "$D1" "$(cat "$WORK/fn.digest")"
check_eq "the registry has that digest" "$D1" \
        "$("${SKOPEO[@]}" inspect --tls-verify=false "docker://$UPSTREAM/fn:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')"
nothing_left "a successful build"

if pull_unpack "$UPSTREAM/fn:v1" http; then
        pass "skopeo pulls and umoci unpacks the image"
        C=$WORK/http/config.json
        M=$WORK/http/manifest.json
        check_eq "revision annotation is the commit of v1" "$V1" \
                "$(cfg "$M" 'd["annotations"]["org.opencontainers.image.revision"]')"
        check_eq "source annotation is the URL" "$URL" \
                "$(cfg "$M" 'd["annotations"]["org.opencontainers.image.source"]')"
        check_eq "created (annotation and config) is the commit time" \
                "2024-05-06T07:08:09Z 2024-05-06T07:08:09Z" \
                "$(cfg "$M" 'd["annotations"]["org.opencontainers.image.created"]') $(cfg "$C" 'd["created"]')"
        check_eq "base annotations name kiln:static and its digest" "kiln:static True" \
                "$(cfg "$M" 'd["annotations"]["org.opencontainers.image.base.name"]+" "+str(d["annotations"]["org.opencontainers.image.base.digest"].startswith("sha256:"))')"
        check_eq "Entrypoint is the web process, Cmd empty" '["/layers/dev.kiln.go/bin/fn"] None' \
                "$(cfg "$C" 'json.dumps(c["Entrypoint"])+" "+str(c.get("Cmd"))')"
        check_eq "WorkingDir, User, ExposedPorts" "/workspace 65532:65532 ['8080/tcp']" \
                "$(cfg "$C" 'c["WorkingDir"]+" "+c["User"]+" "+str(list(c["ExposedPorts"]))')"
        check_eq "Env keeps the base's PATH and adds the launch env" \
                "PATH=/usr/local/bin:/usr/bin:/bin FUNC_NAME=HelloWorld PORT=8080" \
                "$(cfg "$C" '" ".join(e for e in c["Env"] if e.split("=")[0] in ("PATH","FUNC_NAME","PORT"))')"
        check_eq "history names the buildpack layer and the app" \
                "kiln build: buildpack dev.kiln.go@0.1.0, layer bin|kiln build: app" \
                "$(cfg "$C" '"|".join(h["created_by"] for h in d["history"][-2:])')"
        check_eq "the build metadata label names the buildpack, process and commit" \
                "dev.kiln.go 0.1.0 web $V1 fn" \
                "$(cfg "$C" '(lambda m: " ".join([m["buildpacks"][0]["id"], m["buildpacks"][0]["version"], m["processes"][0]["type"], m["source"]["commit"], m["source"]["contextDir"]]))(json.loads(c["Labels"]["dev.kiln.build.metadata"]))')"
        check "the app is at /workspace, without .git" \
                test -f "$WORK/http/bundle/rootfs/workspace/go.mod" -a ! -e "$WORK/http/bundle/rootfs/workspace/.git"
        if serve_image http; then
                check_eq "the function answers over HTTP, in /workspace as 65532" \
                        "hello, kiln from /workspace as 65532" "$(curl -s "http://127.0.0.1:$PORT_http/?name=kiln")"
        else
                fail "the http function did not start"
        fi
fi

# --- nothing changed: same digest, nothing uploaded ----------------------------------------
proxy_reset
build_ok "a rebuild with nothing changed succeeds" \
        --git "$URL" --revision v1 --context-dir fn --image "$R/fn:v1" --func-name HelloWorld
check_eq "the rebuild gives the identical digest" "$D1" "$DIGEST"
check_eq "the rebuild uploads nothing" "" "$(uploads)"
check_eq "the rebuild puts no manifest" 0 "$(proxy_count PUT '/manifests/')"
check "the rebuild reuses the Go build cache (cache layers restored)" \
        grep -q 'reusing the Go build cache' "$WORK/kb.err"
check "the rebuild reuses the compressed layers" grep -q 'from the cache' "$WORK/kb.err"

# --- a Go cloudevent function, binary and structured mode -------------------------------------
build_ok "a cloudevent function builds (--signature cloudevent)" \
        --git "$URL" --revision v1 --context-dir events --image "$R/fn:events" \
        --func-name Receive --signature cloudevent
if pull_unpack "$UPSTREAM/fn:events" event && serve_image event; then
        U="http://127.0.0.1:$PORT_event/"
        check_eq "binary-mode event answers 204" 204 "$(http_status "$U" -H 'ce-id: b-1' -H 'ce-source: /t' \
                -H 'ce-specversion: 1.0' -H 'ce-type: t.binary' -H 'Content-Type: application/json' -d '{"msg":"bin"}')"
        check_eq "structured-mode event answers 204" 204 "$(http_status "$U" \
                -H 'Content-Type: application/cloudevents+json' \
                -d '{"specversion":"1.0","id":"s-2","source":"/t","type":"t.structured","data":{"msg":"struct"}}')"
        check_eq "a malformed event answers 400" 400 "$(http_status "$U" -H 'ce-source: /t' \
                -H 'ce-specversion: 1.0' -H 'ce-type: t' -d '{}')"
        sleep 0.3
        check "the function saw both events" bash -c "grep -q '^event b-1 t.binary bin$' '$WORK/event/run.log' &&
                grep -q '^event s-2 t.structured struct$' '$WORK/event/run.log'"
        check_eq "FUNCTION_SIGNATURE_TYPE in Env is cloudevent" "FUNCTION_SIGNATURE_TYPE=cloudevent" \
                "$(cfg "$WORK/event/config.json" '[e for e in c["Env"] if e.startswith("FUNCTION_SIGNATURE_TYPE=")][0]')"
else
        fail "the cloudevent function did not start"
fi

# --- samples/go-cloudevent, built as samples/README.md says --------------------------------------
build_ok "samples/go-cloudevent builds with the README's command" "$ROOT_DIR/samples/go-cloudevent" \
        --image "$R/fn:sample-event" --func-name HandleEvent --signature cloudevent
if pull_unpack "$UPSTREAM/fn:sample-event" sample && serve_image sample; then
        check_eq "the README's binary-mode curl gets 204" 204 "$(http_status "http://127.0.0.1:$PORT_sample/" \
                -H 'ce-id: 1' -H 'ce-source: /samples/curl' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.greeting' \
                -H 'Content-Type: application/json' -d '{"name":"kiln"}')"
        sleep 0.3
        check "the sample printed its greeting" \
                grep -q '^event 1 from /samples/curl (dev.kiln.greeting): Hello, kiln!$' "$WORK/sample/run.log"
else
        fail "samples/go-cloudevent did not start"
fi

# --- two clean builds: another work dir, time, umask and cwd, an empty cache ------------------
mkdir -p "$WORK/tmp2" "$WORK/elsewhere"
D2=$(cd "$WORK/elsewhere" && umask 077 && TMPDIR=$WORK/tmp2 "$KILN" build -q --cache-dir "$WORK/cache2" \
        --git "$URL" --revision v1 --context-dir fn --image "$R/fn-clean:v1" --func-name HelloWorld 2>"$WORK/clean.err")
check_eq "a second clean build elsewhere gives the same digest" "$D1" "$D2"
[ "$D1" = "$D2" ] || cat "$WORK/clean.err"

# --- a one-line change to the Go function -----------------------------------------------------
sed -i 's/name = "world"/name = "everyone"/' "$REPO/fn/greet/greet.go"
git -C "$REPO" commit -q -am "one line"
git -C "$REPO" tag v2
"${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$UPSTREAM/fn:v1" >"$WORK/v1.manifest"
proxy_reset
build_ok "the changed Go function builds" \
        --git "$URL" --revision v2 --context-dir fn --image "$R/fn:v2" --func-name HelloWorld
"${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$UPSTREAM/fn:v2" >"$WORK/v2.manifest"
paste <(layers "$WORK/v1.manifest") <(layers "$WORK/v2.manifest") >"$WORK/go-layers"
check_eq "Go: the base layer is kept; the function's binary and the app change" "same changed changed" \
        "$(awk '{printf "%s%s", (NR>1 ? " " : ""), ($1==$2 ? "same" : "changed")}' "$WORK/go-layers")"
check_eq "Go: only the changed layers and the config are uploaded" \
        "$( (cut -f2 "$WORK/go-layers" | tail -n 2; cfg "$WORK/v2.manifest" 'd["config"]["digest"]') | sort)" "$(uploads)"

# --- the third-party-style buildpack ----------------------------------------------------------
BB=$WORK/busybox-root
make_busybox_tree "$BB"
check "a busybox run image" bash -c "'$KILN' append -q --base scratch --layer '$BB' --env PATH=/bin \
        --output 'oci:$WORK/bb-base:v1' >/dev/null"
APP=$WORK/sh-app
mkdir -p "$APP"
cat >"$APP/handler.sh" <<'EOF'
echo "$GREETING from sh: $QUERY_STRING"
EOF
build_ok "a buildpack from tests/ (not kiln's) builds with --buildpack" "$APP" --buildpack "$SH_HTTP" \
        --run-image "oci:$WORK/bb-base:v1" --image "$R/sh:v1" --env GREETING=howdy
if pull_unpack "$UPSTREAM/sh:v1" sh && serve_image sh; then
        check_eq "its process serves the app's handler" "howdy from sh: x=1" \
                "$(curl -s "http://127.0.0.1:$PORT_sh/cgi-bin/fn?x=1")"
        check_eq "its args are the Cmd, its bin/ is on PATH before the base's" \
                '["-v"] PATH=/layers/example.sh-http/runtime/bin:/bin' \
                "$(cfg "$WORK/sh/config.json" 'json.dumps(c["Cmd"])+" "+[e for e in c["Env"] if e.startswith("PATH=")][0]')"
        check_eq "its launch.toml label is in the config" "1.2.3" \
                "$(cfg "$WORK/sh/config.json" 'c["Labels"]["com.example.sh-http"]')"
else
        fail "the sh-http image did not start"
fi

# A one-line change to the app: only the app layer and the config change.
"${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$UPSTREAM/sh:v1" >"$WORK/sh1.manifest"
sed -i 's/from sh/from sh, changed/' "$APP/handler.sh"
proxy_reset
build_ok "after a one-line change the app builds again" "$APP" --buildpack "$SH_HTTP" \
        --run-image "oci:$WORK/bb-base:v1" --image "$R/sh:v2" --env GREETING=howdy
"${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$UPSTREAM/sh:v2" >"$WORK/sh2.manifest"
paste <(layers "$WORK/sh1.manifest") <(layers "$WORK/sh2.manifest") >"$WORK/sh-layers"
check_eq "one-line change: only the app layer changes" "same same changed" \
        "$(awk '{printf "%s%s", (NR>1 ? " " : ""), ($1==$2 ? "same" : "changed")}' "$WORK/sh-layers")"
check_eq "one-line change: only the app layer and the config are uploaded" \
        "$( (cut -f2 "$WORK/sh-layers" | tail -n 1; cfg "$WORK/sh2.manifest" 'd["config"]["digest"]') | sort)" "$(uploads)"
check_eq "the config differs" "different" \
        "$(cfg "$WORK/sh1.manifest" 'd["config"]["digest"]' | grep -qxF "$(cfg "$WORK/sh2.manifest" 'd["config"]["digest"]')" && echo same || echo different)"

# --- outputs on disk: oci:, oci-archive:, docker-archive: ---------------------------------------
build_ok "--output writes oci:, oci-archive: and docker-archive:" "$APP" --buildpack "$SH_HTTP" \
        --run-image "oci:$WORK/bb-base:v1" --env GREETING=howdy --output "oci:$WORK/out-oci:v1" \
        --output "oci-archive:$WORK/out.tar:v1" --output "docker-archive:$WORK/out-docker.tar:example.com/sh:v1"
for loc in "oci:$WORK/out-oci:v1" "oci-archive:$WORK/out.tar:v1"; do
        check_eq "skopeo reads ${loc%%:*} with the digest printed" "$DIGEST" \
                "$("${SKOPEO[@]}" inspect "$loc" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')"
done
# skopeo shows a docker-archive as a Docker manifest it makes itself: the
# config is what is the same.
check_eq "skopeo reads docker-archive with the same config" \
        "$("${SKOPEO[@]}" inspect --raw "oci:$WORK/out-oci:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')" \
        "$("${SKOPEO[@]}" inspect --raw "docker-archive:$WORK/out-docker.tar" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')"
"$KILN" build -q --json --cache-dir "$CACHE" "$APP" --buildpack "$SH_HTTP" --run-image "oci:$WORK/bb-base:v1" \
        --env GREETING=howdy --output "oci:$WORK/out-oci:v1" >"$WORK/json.out" 2>/dev/null
check_eq "--json prints the digest and what was built" "$DIGEST example.sh-http@1.2.3" \
        "$(cfg "$WORK/json.out" 'd["digest"]+" "+d["buildpacks"][0]')"

# --- a buildpack cannot read the credentials kiln holds ---------------------------------------
start_htpasswd_registry pusher s3cret-pw auth
AUTH=$REG
write_docker_config "$HOME/.docker" "$AUTH" pusher s3cret-pw
mkdir -p "$WORK/outside"
build_ok "a build pushes with credentials from ~/.docker/config.json" "$APP" \
        --buildpack "$FIXTURES/snoop" --buildpack "$SH_HTTP" --run-image "oci:$WORK/bb-base:v1" \
        --env "SECRET_PATH=$DOCKER_CONFIG_FILE" --env "OUTSIDE_DIR=$WORK/outside" \
        --image "$AUTH/snoop:v1" --output "oci:$WORK/snoop:v1"
check "the image is in the registry that needs them" \
        bash -c "skopeo inspect --tls-verify=false --creds pusher:s3cret-pw 'docker://$AUTH/snoop:v1' >/dev/null"
if umoci unpack --rootless --image "$WORK/snoop:v1" "$WORK/snoop-bundle" >/dev/null; then
        check_eq "the buildpack could not read the docker config" denied \
                "$(cat "$WORK/snoop-bundle/rootfs/layers/tests.snoop/report/read")"
        check_eq "nor write outside its dirs" denied \
                "$(cat "$WORK/snoop-bundle/rootfs/layers/tests.snoop/report/write")"
else
        fail "umoci unpacks the snoop image"
fi
check "the secret is nowhere in the image" bash -c "! grep -rq s3cret '$WORK/snoop-bundle/rootfs'"
rm -rf "$HOME/.docker"

# --- git over HTTP with Basic auth: credentials from a file or the environment -------------------
GITSRV=$WORK/gitsrv
mkdir -p "$GITSRV"
git clone -q --bare "$REPO" "$GITSRV/fns.git"
GPORT=$(free_port)
python3 "$TESTS_DIR/fixtures/git-http-server.py" "$GPORT" "$GITSRV" alice 'p@ss:w/rd' &
T_PIDS+=($!)
wait_http "http://127.0.0.1:$GPORT/" 20
GURL=http://127.0.0.1:$GPORT/fns.git
printf 'https://alice:nope@127.0.0.1:%s\nhttp://alice:p%%40ss%%3Aw%%2Frd@127.0.0.1:%s\n' "$GPORT" "$GPORT" \
        >"$WORK/git-credentials"
build_ok "--git-credentials (git-credential-store lines) authenticate the clone" --git "$GURL" \
        --revision v1 --context-dir fn --image "$R/fn:http" --func-name HelloWorld \
        --git-credentials "$WORK/git-credentials"
DH=$DIGEST
check "the password is not in the output" bash -c "! grep -q 'p@ss' '$WORK/kb.err' '$WORK/kb.out'"
KILN_GIT_USERNAME=alice KILN_GIT_PASSWORD='p@ss:w/rd' build_ok "KILN_GIT_USERNAME and KILN_GIT_PASSWORD authenticate it" \
        --git "$GURL" --revision v1 --context-dir fn --image "$R/fn:http" --func-name HelloWorld
check_eq "either way the same image" "$DH" "$DIGEST"

# --- failures: one line on stderr naming the cause, exit 1, nothing left ---------------------
# fails_one WHAT PATTERN ARGS...: kiln build ARGS fails with exit 1 and one
# line on stderr matching PATTERN, and leaves nothing behind.
fails_one() {
        local what=$1 pattern=$2 rc
        shift 2
        "$KILN" build -q --cache-dir "$CACHE" "$@" >"$WORK/fail.out" 2>"$WORK/fail.err"
        rc=$?
        if [ "$rc" -ne 1 ]; then
                fail "$what: exit $rc, not 1: $(head -n 3 "$WORK/fail.err")"
        elif [ "$(grep -c '' "$WORK/fail.err")" -ne 1 ]; then
                fail "$what: not one line of error:"
                sed 's/^/    /' "$WORK/fail.err"
        elif ! grep -qE "^kiln: error: .*$pattern" "$WORK/fail.err"; then
                fail "$what: error does not match /$pattern/: $(cat "$WORK/fail.err")"
        else
                pass "$what: one line, exit 1: $(cut -c 1-100 "$WORK/fail.err")"
        fi
        nothing_left "$what"
}
fails_one "missing --func-name" 'FUNC_NAME is required' \
        --git "$URL" --revision v1 --context-dir fn --image "$R/fn:err"
BROKEN=$WORK/broken
cp -a "$REPO/fn" "$BROKEN"
printf '\nfunc broken() int { return "x" }\n' >>"$BROKEN/greet/greet.go"
fails_one "a Go compile error" 'go build failed: greet/greet.go:[0-9]+:[0-9]+: ' "$BROKEN" \
        --image "$R/fn:err" --func-name HelloWorld
mkdir -p "$WORK/plain"
echo "just text" >"$WORK/plain/notes.txt"
fails_one "an undetectable source" "no buildpack detected the source in \`$WORK/plain\`" "$WORK/plain" --image "$R/x:err"
fails_one "a bad git URL" "repository \`file://$WORK/nope\` not found" --git "file://$WORK/nope" \
        --image "$R/x:err" --func-name F
fails_one "an unreachable git server" 'http://127.0.0.1:1/repo.git' \
        --git "http://user:s3cret@127.0.0.1:1/repo.git" --image "$R/x:err"
check "its error does not show the URL's password" bash -c "! grep -q s3cret '$WORK/fail.err'"
fails_one "git credentials missing" "$GURL" --git "$GURL" --revision v1 --context-dir fn \
        --image "$R/fn:err" --func-name HelloWorld
fails_one "an unknown revision" 'revision `v9` not found' --git "$URL" --revision v9 \
        --context-dir fn --image "$R/fn:err" --func-name HelloWorld
# A buildpack that never ends and leaves a child behind; its sleep is this
# test's own, so other tests' processes are not mistaken for it.
mkdir -p "$WORK/slow/bin"
printf 'api = "0.10"\n[buildpack]\nid = "tests.slow"\nversion = "0.1.0"\n' >"$WORK/slow/buildpack.toml"
printf '#!/bin/sh\nexit 0\n' >"$WORK/slow/bin/detect"
printf '#!/bin/sh\nsleep %s &\nsleep %s\n' "$SLOW_SECS" "$SLOW_SECS" >"$WORK/slow/bin/build"
chmod +x "$WORK/slow/bin/detect" "$WORK/slow/bin/build"
T0=$(date +%s)
fails_one "a build past --timeout" 'timed out after 2s \(--timeout\) during build tests.slow' \
        "$APP" --buildpack "$WORK/slow" --run-image scratch --image "$R/x:err" --timeout 2s
check "the timeouts stopped the builds quickly" test $(($(date +%s) - T0)) -lt 20
"$KILN" build -q --cache-dir "$CACHE" "$APP" --buildpack "$WORK/slow" --run-image scratch \
        --image "$R/x:err" >/dev/null 2>"$WORK/term.err" &
KPID=$!
sleep 1.5
kill -TERM "$KPID"
wait "$KPID"
check_eq "SIGTERM stops a build with exit 1" 1 "$?"
check "and says so in one line" grep -qx 'kiln: error: build canceled during build tests.slow' "$WORK/term.err"
nothing_left "a build stopped by SIGTERM"

echo "# took $(($(date +%s) - START)) s"
finish
