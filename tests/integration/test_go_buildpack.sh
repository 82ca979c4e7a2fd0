#!/usr/bin/env bash
# serve sets PORT_<name> and OUT_<name> with printf -v:
# shellcheck disable=SC2154
# The Go buildpack driven by hand, the way the CNB lifecycle drives it:
# bin/detect and bin/build run under bubblewrap with only /usr, the app
# (/workspace), the layers (/layers), the platform (/platform, read-only)
# and the buildpack (read-only); then the built binary runs in an empty
# root. Also runs the functions framework's unit tests.
# KILN_TEST_NO_SANDBOX=1 runs the buildpack without bubblewrap.
# sanitizers: skip
source "$(dirname "$0")/lib.sh"

BP=$ROOT_DIR/buildpacks/go
BP_ID=dev.kiln.go
START=$(date +%s)

# --- the sandbox ---------------------------------------------------------------
SANDBOX=1
if [ -n "${KILN_TEST_NO_SANDBOX:-}" ]; then
	SANDBOX=0
elif ! bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
	--unshare-all /bin/true 2>/dev/null; then
	SANDBOX=0
	echo "# bubblewrap cannot make namespaces here: running the buildpack without a sandbox"
fi

# bp PHASE ROOT [ARGS...]: runs bin/PHASE for the build root ROOT, which
# holds app/, layers/ and platform/, as the lifecycle would. BP_ENV holds
# extra NAME=VALUE settings of the platform (CNB_TARGET_*).
BP_ENV=()
bp() {
	local phase=$1 root=$2
	shift 2
	mkdir -p "$root/layers/$BP_ID"
	local -a extra=() e
	for e in "${BP_ENV[@]}"; do extra+=(--setenv "${e%%=*}" "${e#*=}"); done
	if [ "$SANDBOX" = 0 ]; then
		(cd "$root/app" && env -i PATH=/usr/bin:/bin \
			CNB_APP_DIR="$root/app" CNB_LAYERS_DIR="$root/layers/$BP_ID" CNB_PLATFORM_DIR="$root/platform" \
			CNB_BUILD_PLAN_PATH="$root/layers/detect-plan.toml" CNB_BP_PLAN_PATH="$root/layers/plan.toml" \
			CNB_BUILDPACK_DIR="$BP" "${BP_ENV[@]}" "$BP/bin/$phase" "$@")
		return
	fi
	local -a args
	if [ "$phase" = detect ]; then
		args=(/platform /layers/detect-plan.toml)
	else
		args=("/layers/$BP_ID" /platform /layers/plan.toml)
	fi
	bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
		--symlink usr/sbin /sbin \
		--ro-bind "$BP" "/cnb/buildpacks/$BP_ID/0.1.0" \
		--bind "$root/app" /workspace --bind "$root/layers" /layers --ro-bind "$root/platform" /platform \
		--proc /proc --dev /dev --tmpfs /tmp --unshare-all --die-with-parent --clearenv \
		--setenv PATH /usr/bin:/bin --setenv CNB_APP_DIR /workspace --setenv CNB_PLATFORM_DIR /platform \
		--setenv CNB_LAYERS_DIR "/layers/$BP_ID" --setenv CNB_BP_PLAN_PATH /layers/plan.toml \
		--setenv CNB_BUILD_PLAN_PATH /layers/detect-plan.toml \
		--setenv CNB_BUILDPACK_DIR "/cnb/buildpacks/$BP_ID/0.1.0" "${extra[@]}" --chdir /workspace \
		"/cnb/buildpacks/$BP_ID/0.1.0/bin/$phase" "${args[@]}"
}

# new_root NAME: an empty build root; prints its path.
new_root() {
	local r=$WORK/$1
	mkdir -p "$r/app" "$r/layers/$BP_ID" "$r/platform/env"
	printf '[[entries]]\nname = "go-function"\n' >"$r/layers/plan.toml"
	echo "$r"
}

# setenv ROOT NAME VALUE: a platform env var (a file, as the platform writes it).
setenv() { printf '%s' "$3" >"$1/platform/env/$2"; }

# restore_cache FROM TO: what a platform does with cache=true layers.
restore_cache() {
	local l
	for l in gocache gomodcache tools; do
		[ -d "$1/layers/$BP_ID/$l" ] && cp -a "$1/layers/$BP_ID/$l" "$2/layers/$BP_ID/"
	done
	return 0
}

# serve ROOT NAME: runs ROOT's bin layer in an empty root (nothing but the
# layer: a static binary needs nothing else), with the launch env defaults
# and PORT set to a free port; sets PORT_<NAME> and OUT_<NAME>.
serve() {
	local root=$1 name=$2 port out
	port=$(free_port)
	out=$WORK/$name.out
	local -a envargs=()
	local f n
	for f in "$root/layers/$BP_ID/bin/env/"*.default; do
		n=$(basename "$f" .default)
		[ "$n" = PORT ] && continue
		envargs+=(--setenv "$n" "$(cat "$f")")
	done
	if [ "$SANDBOX" = 1 ]; then
		bwrap --ro-bind "$root/layers/$BP_ID/bin" "/layers/$BP_ID/bin" --proc /proc --dev /dev \
			--unshare-all --share-net --die-with-parent --clearenv "${envargs[@]}" --setenv PORT "$port" \
			"/layers/$BP_ID/bin/fn" >"$out" 2>&1 &
	else
		local -a envs=()
		for f in "$root/layers/$BP_ID/bin/env/"*.default; do
			n=$(basename "$f" .default)
			[ "$n" = PORT ] || envs+=("$n=$(cat "$f")")
		done
		env -i "${envs[@]}" PORT="$port" "$root/layers/$BP_ID/bin/fn" >"$out" 2>&1 &
	fi
	T_PIDS+=($!)
	printf -v "PORT_$name" '%s' "$port"
	printf -v "OUT_$name" '%s' "$out"
	wait_http "http://127.0.0.1:$port/" 20
}

# build_ok WHAT ROOT LOG: runs bin/build, which must succeed; shows its
# output when it does not.
build_ok() {
	if bp build "$2" >"$3" 2>&1; then
		pass "$1"
	else
		fail "$1 (exit $?):"
		sed 's/^/    /' "$3"
	fi
}

# --- the functions framework's own tests ------------------------------------------
fw_test() {
	(cd "$BP/framework" && GOFLAGS=-mod=mod GOPROXY=off GOWORK=off go vet ./... &&
		GOFLAGS=-mod=mod GOPROXY=off GOWORK=off go test -count=1 ./...) >"$WORK/fwtest.log" 2>&1 ||
		{
			cat "$WORK/fwtest.log"
			return 1
		}
}
gen_vet() { (cd "$BP/gen" && GOFLAGS=-mod=mod GOPROXY=off GOWORK=off go vet ./...); }
check "framework: go vet and go test pass" fw_test
check "generator: go vet passes" gen_vet

# --- an http function: several files and a sub-package -----------------------------
H=$(new_root http)
cat >"$H/app/go.mod" <<'EOF'
module example.com/hello

go 1.19
EOF
cat >"$H/app/hello.go" <<'EOF'
package hello

import (
	"fmt"
	"net/http"

	"example.com/hello/greet"
)

// HelloWorld greets ?name=.
func HelloWorld(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Function", "hello")
	fmt.Fprintln(w, greet.Greeting(name(r)))
}
EOF
cat >"$H/app/util.go" <<'EOF'
package hello

import "net/http"

func name(r *http.Request) string {
	if n := r.URL.Query().Get("name"); n != "" {
		return n
	}
	return "world"
}
EOF
mkdir -p "$H/app/greet"
cat >"$H/app/greet/greet.go" <<'EOF'
package greet

// Greeting says hello.
func Greeting(name string) string { return "hello, " + name }
EOF
setenv "$H" FUNC_NAME HelloWorld

check "detect passes on a dir with go.mod" bp detect "$H" >/dev/null
check "detect writes a build plan providing go-function" grep -q 'name = "go-function"' "$H/layers/detect-plan.toml"
N=$(new_root nogo)
echo 'print("hi")' >"$N/app/main.py"
bp detect "$N" >/dev/null 2>&1
check_eq "detect without go.mod exits 100" 100 "$?"

L=$H/layers/$BP_ID
build_ok "build of the http function succeeds" "$H" "$WORK/http-build.log"
check "bin/fn is in the bin layer" test -x "$L/bin/fn"
check "bin.toml is a launch layer" grep -qx 'launch = true' "$L/bin.toml"
check "gocache.toml is a cache layer" grep -qx 'cache = true' "$L/gocache.toml"
check "gomodcache.toml is a cache layer" grep -qx 'cache = true' "$L/gomodcache.toml"
check "gocache layer is not launched" grep -qx 'launch = false' "$L/gocache.toml"
check "the Go build cache is in the cache layer and non-empty" test -n "$(find "$L/gocache" -type f -name '*-d' | head -n 1)"
check "launch.toml declares the web process" grep -qx 'type = "web"' "$L/launch.toml"
check_eq "launch.toml command is the layer path at run time" \
	'command = ["/layers/dev.kiln.go/bin/fn"]' "$(grep '^command' "$L/launch.toml")"
check "launch.toml web process is the default" grep -qx 'default = true' "$L/launch.toml"
check_eq "launch env PORT.default" 8080 "$(cat "$L/bin/env/PORT.default")"
check_eq "launch env FUNC_NAME.default" HelloWorld "$(cat "$L/bin/env/FUNC_NAME.default")"
check_eq "launch env FUNCTION_TARGET.default" HelloWorld "$(cat "$L/bin/env/FUNCTION_TARGET.default")"
check_eq "launch env FUNCTION_SIGNATURE_TYPE.default" http "$(cat "$L/bin/env/FUNCTION_SIGNATURE_TYPE.default")"
check "generated main module replaces the user module and the framework" \
	grep -q '^replace kiln.dev/functions-framework => ../framework$' "$L/fnmain/go.mod"
check "generated main.go calls ServeHTTP" grep -q 'kilnff.ServeHTTP(userfn.HelloWorld)' "$L/fnmain/main.go"
check "binary is built with CGO_ENABLED=0" bash -c "go version -m '$L/bin/fn' | grep -q 'CGO_ENABLED=0'"
check "binary has no dynamic section (static)" bash -c "readelf -d '$L/bin/fn' | grep -q 'no dynamic section'"
check "binary has no program interpreter" bash -c "! readelf -l '$L/bin/fn' | grep -q 'interpreter'"

if serve "$H" http; then
	check_eq "http function answers in an empty root" "hello, kiln" "$(curl -s "http://127.0.0.1:$PORT_http/?name=kiln")"
	check_eq "http function sets its header" "hello" \
		"$(curl -s -D - -o /dev/null "http://127.0.0.1:$PORT_http/" | tr -d '\r' | sed -n 's/^X-Function: //Ip')"
	check "the framework logs the request line" grep -qE '^GET /\?name=kiln 200 [0-9.]+(ns|µs|us|ms|s)$' "$OUT_http"
	check "the framework logs what it serves" grep -q "serving http function HelloWorld on :$PORT_http" "$OUT_http"
else
	fail "http function did not start: $(cat "$OUT_http")"
fi

# --- the second build reuses the cache layer -----------------------------------------
setenv "$H" FUNC_GOFLAGS -x
build_ok "second build succeeds" "$H" "$WORK/http-build2.log"
check "second build reports the cache layer it found" grep -q 'reusing the Go build cache' "$WORK/http-build2.log"
check "second build links but compiles nothing (all cache hits)" \
	bash -c "grep -q '/link ' '$WORK/http-build2.log' && ! grep -q '/compile ' '$WORK/http-build2.log'"
rm -f "$H/platform/env/FUNC_GOFLAGS"

# --- a cloudevent function with a local replaced module, and a go.mod ------
# --- written for a newer toolchain (go 1.21.0, toolchain line) ----------------
C=$(new_root event)
restore_cache "$H" "$C"
cat >"$C/app/go.mod" <<'EOF'
module example.com/events

go 1.21.0

toolchain go1.21.3

require (
	example.com/label v0.0.0
	kiln.dev/functions-framework v0.0.0
)

replace example.com/label => ./label
EOF
cat >"$C/app/events.go" <<'EOF'
package events

import (
	"context"
	"errors"
	"fmt"

	"example.com/label"
	framework "kiln.dev/functions-framework"
)

// Receive prints the event id; an event of type "fail" fails.
func Receive(ctx context.Context, e framework.Event) error {
	if e.Type == "fail" {
		return errors.New("refusing event " + e.ID)
	}
	var body struct{ Msg string }
	_ = e.DataAs(&body)
	fmt.Println(label.Of("event id"), e.ID, "msg", body.Msg)
	return nil
}
EOF
mkdir -p "$C/app/label"
printf 'module example.com/label\n\ngo 1.19\n' >"$C/app/label/go.mod"
printf 'package label\n\nfunc Of(s string) string { return "[" + s + "]" }\n' >"$C/app/label/label.go"
setenv "$C" FUNC_NAME Receive
setenv "$C" FUNC_SIGNATURE_TYPE cloudevent
build_ok "build of the cloudevent function succeeds" "$C" "$WORK/event-build.log"
check "generated main.go calls ServeCloudEvent" grep -q 'kilnff.ServeCloudEvent(userfn.Receive)' "$C/layers/$BP_ID/fnmain/main.go"
check_eq "launch env FUNCTION_SIGNATURE_TYPE.default is cloudevent" cloudevent \
	"$(cat "$C/layers/$BP_ID/bin/env/FUNCTION_SIGNATURE_TYPE.default")"
if serve "$C" event; then
	U="http://127.0.0.1:$PORT_event/"
	check_eq "binary-mode event answers 204" 204 "$(curl -s -o /dev/null -w '%{http_code}' "$U" \
		-H 'ce-id: bin-42' -H 'ce-source: /test' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.test' \
		-H 'Content-Type: application/json' -d '{"msg":"binary"}')"
	check_eq "structured-mode event answers 204" 204 "$(curl -s -o /dev/null -w '%{http_code}' "$U" \
		-H 'Content-Type: application/cloudevents+json' \
		-d '{"specversion":"1.0","id":"struct-7","source":"/test","type":"dev.kiln.test","data":{"msg":"structured"}}')"
	check_eq "malformed event (no ce-id) answers 400" 400 "$(curl -s -o "$WORK/bad.body" -w '%{http_code}' "$U" \
		-H 'ce-source: /test' -H 'ce-specversion: 1.0' -H 'ce-type: t' -d '{}')"
	check "malformed event body says what is missing" grep -q 'missing required attribute "id"' "$WORK/bad.body"
	check_eq "structured event with bad JSON answers 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "$U" \
		-H 'Content-Type: application/cloudevents+json' -d '{"id":')"
	check_eq "function error answers 500" 500 "$(curl -s -o /dev/null -w '%{http_code}' "$U" -X POST \
		-H 'ce-id: f-1' -H 'ce-source: /test' -H 'ce-specversion: 1.0' -H 'ce-type: fail')"
	sleep 0.2
	check "the function printed the binary event's id" grep -q '^\[event id\] bin-42 msg binary$' "$OUT_event"
	check "the function printed the structured event's id" grep -q '^\[event id\] struct-7 msg structured$' "$OUT_event"
	check "the malformed event is logged" grep -q '^POST / 400 .*missing required attribute "id"' "$OUT_event"
	check "the function's error is logged" grep -q 'refusing event f-1' "$OUT_event"
else
	fail "cloudevent function did not start: $(cat "$OUT_event")"
fi

# --- SIGTERM: graceful shutdown, exit 0 ---------------------------------------------------
P=$(free_port)
PORT=$P "$C/layers/$BP_ID/bin/fn" >"$WORK/term.out" 2>&1 &
TPID=$!
T_PIDS+=("$TPID")
if wait_http "http://127.0.0.1:$P/" 20; then
	kill -TERM "$TPID"
	wait "$TPID"
	check_eq "SIGTERM stops the function with exit 0" 0 "$?"
	check "shutdown is logged" grep -q 'shutting down' "$WORK/term.out"
fi

# --- vendored third-party dependency, no network, then FUNC_CLEAR_SOURCE -------------------
V=$(new_root vendored)
restore_cache "$H" "$V"
cat >"$V/app/go.mod" <<'EOF'
module example.com/vend

go 1.19

require github.com/acme/quote v1.4.2
EOF
mkdir -p "$V/app/vendor/github.com/acme/quote/words"
cat >"$V/app/vendor/modules.txt" <<'EOF'
# github.com/acme/quote v1.4.2
## explicit; go 1.18
github.com/acme/quote
github.com/acme/quote/words
EOF
cat >"$V/app/vendor/github.com/acme/quote/quote.go" <<'EOF'
package quote

import "github.com/acme/quote/words"

func Glass() string { return "I can eat " + words.Thing() + "." }
EOF
printf 'package words\n\nfunc Thing() string { return "glass" }\n' >"$V/app/vendor/github.com/acme/quote/words/words.go"
cat >"$V/app/fn.go" <<'EOF'
package vend

import (
	"io"
	"net/http"

	"github.com/acme/quote"
)

func Quote(w http.ResponseWriter, r *http.Request) { io.WriteString(w, quote.Glass()) }
EOF
setenv "$V" FUNC_NAME Quote
setenv "$V" FUNC_CLEAR_SOURCE true
build_ok "build with a vendored dependency succeeds offline (GOPROXY=off)" "$V" "$WORK/vend-build.log"
check "the vendored module is not fetched into the module cache" \
	test ! -e "$V/layers/$BP_ID/gomodcache/pkg/mod/github.com/acme"
check_eq "FUNC_CLEAR_SOURCE=true leaves the app dir empty" "" "$(ls -A "$V/app")"
if serve "$V" vend; then
	check_eq "function using the vendored module answers" "I can eat glass." "$(curl -s "http://127.0.0.1:$PORT_vend/")"
fi

# --- the samples build and answer as samples/README.md says ---------------------------------------
S=$(new_root sample-http)
restore_cache "$H" "$S"
cp -a "$ROOT_DIR/samples/go-http/." "$S/app/"
setenv "$S" FUNC_NAME HelloWorld
build_ok "samples/go-http builds" "$S" "$WORK/sample-http-build.log"
if serve "$S" shttp; then
	check_eq "samples/go-http answers" "Hello, kiln!" "$(curl -s "http://127.0.0.1:$PORT_shttp/?name=kiln")"
	check_eq "samples/go-http answers JSON" '{"message":"Hello, kiln!"}' \
		"$(curl -s -H 'Accept: application/json' -d '{"name":"kiln"}' "http://127.0.0.1:$PORT_shttp/")"
fi
S=$(new_root sample-event)
restore_cache "$H" "$S"
cp -a "$ROOT_DIR/samples/go-cloudevent/." "$S/app/"
setenv "$S" FUNC_NAME HandleEvent
setenv "$S" FUNC_SIGNATURE_TYPE cloudevent
build_ok "samples/go-cloudevent builds" "$S" "$WORK/sample-event-build.log"
if serve "$S" sevent; then
	U="http://127.0.0.1:$PORT_sevent/"
	check_eq "samples/go-cloudevent takes a binary event" 204 "$(curl -s -o /dev/null -w '%{http_code}' "$U" \
		-H 'ce-id: 1' -H 'ce-source: /samples/curl' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.greeting' \
		-H 'Content-Type: application/json' -d '{"name":"kiln"}')"
	check_eq "samples/go-cloudevent takes a structured event" 204 "$(curl -s -o /dev/null -w '%{http_code}' "$U" \
		-H 'Content-Type: application/cloudevents+json' \
		-d '{"specversion":"1.0","id":"2","source":"/samples/curl","type":"dev.kiln.greeting","datacontenttype":"application/json","data":{"name":"structured"}}')"
	sleep 0.2
	check "samples/go-cloudevent printed both greetings" bash -c "grep -q '^event 1 from /samples/curl (dev.kiln.greeting): Hello, kiln!$' '$OUT_sevent' &&
		grep -q '^event 2 .*Hello, structured!$' '$OUT_sevent'"
fi

# --- CNB_TARGET_ARCH: the function is cross-built for the run image ------------------------------
X=$(new_root cross)
restore_cache "$H" "$X"
cp -a "$H/app/." "$X/app/"
setenv "$X" FUNC_NAME HelloWorld
BP_ENV=(CNB_TARGET_OS=linux CNB_TARGET_ARCH=arm64)
build_ok "CNB_TARGET_ARCH=arm64 build succeeds" "$X" "$WORK/cross-build.log"
BP_ENV=()
check "CNB_TARGET_ARCH=arm64 gives an arm64 binary" \
	bash -c "readelf -h '$X/layers/$BP_ID/bin/fn' | grep -q 'Machine: *AArch64'"

# --- failures ------------------------------------------------------------------------------------
F=$(new_root fail)
restore_cache "$H" "$F"
cp -a "$H/app/." "$F/app/"
setenv "$F" FUNC_NAME HelloWorld
build_ok "the same function builds again in another build root" "$F" "$WORK/repro-build.log"
check_eq "the two builds give the same binary (reproducible)" \
	"$(sha256sum <"$L/bin/fn")" "$(sha256sum <"$F/layers/$BP_ID/bin/fn")"
rm "$F/platform/env/FUNC_NAME"
check_fails "missing FUNC_NAME is one line" '^FUNC_NAME is required: ' bp build "$F"
setenv "$F" FUNC_NAME HelloWorld
setenv "$F" FUNC_SIGNATURE_TYPE event
check_fails "unknown FUNC_SIGNATURE_TYPE is one line" '^FUNC_SIGNATURE_TYPE must be http or cloudevent, not "event"$' bp build "$F"
rm "$F/platform/env/FUNC_SIGNATURE_TYPE"
setenv "$F" FUNC_NAME helloWorld
check_fails "unexported FUNC_NAME is one line" 'FUNC_NAME "helloWorld" is not an exported Go function name' bp build "$F"
setenv "$F" FUNC_NAME Missing
check_fails "FUNC_NAME not in the package is one line" '^function Missing not found in package example.com/hello' bp build "$F"
setenv "$F" FUNC_NAME HelloWorld
setenv "$F" FUNC_SIGNATURE_TYPE cloudevent
check_fails "http function built as cloudevent is one line" 'does not have the cloudevent signature' bp build "$F"
rm "$F/platform/env/FUNC_SIGNATURE_TYPE"

cat >>"$F/app/greet/greet.go" <<'EOF'

func broken() int { return "not a number" }
EOF
bp build "$F" >/dev/null 2>"$WORK/compile.err"
check_eq "a compile error fails the build with exit 1" 1 "$?"
check "the compiler's error is shown with the app-relative path" \
	grep -q '^greet/greet.go:6:28: cannot use "not a number"' "$WORK/compile.err"
check_eq "the last line sums up the compile error" \
	'go build failed: greet/greet.go:6:28: cannot use "not a number" (untyped string constant) as int value in return statement' \
	"$(tail -n 1 "$WORK/compile.err")"
check "a failed build leaves no binary" test ! -e "$F/layers/$BP_ID/bin/fn"

echo "# took $(($(date +%s) - START)) s"
# KEEP_LOGS=DIR keeps the build logs and the functions' output.
[ -n "${KEEP_LOGS:-}" ] && cp "$WORK"/*.log "$WORK"/*.err "$WORK"/*.out "$KEEP_LOGS"/ 2>/dev/null
finish
