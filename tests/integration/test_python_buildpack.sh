#!/usr/bin/env bash
# serve sets PORT_<name>, OUT_<name> and PID_<name> with printf -v:
# shellcheck disable=SC2154
# The Python buildpack driven by hand, the way kiln's lifecycle drives it:
# bin/detect and bin/build run under bubblewrap with only /usr, the app
# (/workspace), the layers (/layers), the platform (/platform, read-only),
# the buildpack (read-only) and no network; then the default process runs
# under bubblewrap with the host's /usr for python3, and is called with
# curl. Requirements come from a wheel the test makes. Also runs the
# functions framework's unit tests (python3 -m unittest).
# sanitizers: skip
source "$(dirname "$0")/lib.sh"
BP=$ROOT_DIR/buildpacks/python
BP_ID=dev.kiln.python
source "$(dirname "$0")/lib_buildpack.sh"
START=$(date +%s)

if [ ! -x /usr/bin/python3 ]; then
	fail "/usr/bin/python3 is needed (scripts/install-deps installs it)"
	finish
fi
if ! bwrap_usable; then
	fail "bubblewrap cannot make namespaces here"
	finish
fi
HAVE_PIP=1
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || HAVE_PIP=0
check "pip is there for /usr/bin/python3 (python3-pip, from scripts/install-deps)" test "$HAVE_PIP" = 1

# --- the functions framework's own tests ------------------------------------------
fw_test() {
	/usr/bin/python3 -B -m unittest discover -s "$BP/framework/tests" >"$WORK/fwtest.log" 2>&1 ||
		{ cat "$WORK/fwtest.log"; return 1; }
}
check "framework: python3 -m unittest passes" fw_test

# make_wheel DIR NAME VERSION CODE: a pure-Python wheel DIR/NAME-VERSION-py3-none-any.whl
# whose module NAME is CODE (tests/helpers/mkwheel.py: no pip, no network).
make_wheel() {
	/usr/bin/python3 "$ROOT_DIR/tests/helpers/mkwheel.py" "$@"
}

# --- an http function with a requirement from a local wheel ---------------------------
H=$(new_root http)
mkdir -p "$H/app/wheels"
make_wheel "$H/app/wheels" kiln_shout 1.0.0 'def shout(s):
    return str(s).upper() + "!"'
check "the test made a wheel" test -f "$H/app/wheels/kiln_shout-1.0.0-py3-none-any.whl"
printf '# the function'"'"'s one dependency\nkiln-shout==1.0.0\n' >"$H/app/requirements.txt"
cat >"$H/app/main.py" <<'EOF'
import asyncio

from kiln_shout import shout

from words import default_name


def hello(request):
    if request.path == "/boom":
        raise ValueError("boom from the function")
    if request.method == "POST":
        return {"got": request.get_json(), "args": request.args.getlist("x")}
    if request.path == "/made":
        return "made", 201, {"X-Function": "hello"}
    return shout(request.args.get("name", default_name()))
EOF
printf 'def default_name():\n    return "world"\n' >"$H/app/words.py"
setenv "$H" FUNC_NAME hello
setenv "$H" PIP_FIND_LINKS /workspace/wheels
setenv "$H" PIP_NO_INDEX 1

check "detect passes on a dir with main.py" bp detect "$H" >/dev/null
check "detect writes a build plan providing python-function" grep -q 'name = "python-function"' "$H/layers/detect-plan.toml"
N=$(new_root nopy)
echo 'exports.f = () => {};' >"$N/app/index.js"
bp detect "$N" >/dev/null 2>&1
check_eq "detect without main.py or requirements.txt exits 100" 100 "$?"
mkdir -p "$N/app/fn" && echo 'def f(r): return ""' >"$N/app/fn/handler.py"
setenv "$N" FUNC_SRC fn/handler.py
check "detect passes when FUNC_SRC names a .py file" bp detect "$N" >/dev/null

L=$H/layers/$BP_ID
if [ "$HAVE_PIP" = 1 ]; then
	build_ok "build of the http function with a wheel requirement succeeds offline" "$H" "$WORK/http-build.log"
	check "the build ran pip" grep -q 'Successfully installed kiln-shout-1.0.0' "$WORK/http-build.log"
	check "packages.toml is a launch and cache layer" \
		bash -c "grep -qx 'launch = true' '$L/packages.toml' && grep -qx 'cache = true' '$L/packages.toml'"
	check "packages.toml records the checksum" grep -qE '^checksum = "[0-9a-f]{64}"$' "$L/packages.toml"
	check "the requirement is in the packages layer" test -f "$L/packages/site/kiln_shout/__init__.py"
	check_eq "the packages layer prepends itself to PYTHONPATH" "/layers/$BP_ID/packages/site" \
		"$(cat "$L/packages/env/PYTHONPATH.prepend")"
	check "pip-cache.toml is a cache layer only" \
		bash -c "grep -qx 'cache = true' '$L/pip-cache.toml' && grep -qx 'launch = false' '$L/pip-cache.toml'"
	check "framework.toml is a launch layer" grep -qx 'launch = true' "$L/framework.toml"
	check "the framework is in its layer, without its tests" \
		bash -c "test -f '$L/framework/serve.py' && test -f '$L/framework/kiln_functions/server.py' && test ! -e '$L/framework/tests'"
	check_eq "launch.toml command runs python3 from PATH" \
		"command = [\"python3\", \"/layers/$BP_ID/framework/serve.py\"]" "$(grep '^command' "$L/launch.toml")"
	check_eq "launch env FUNC_NAME.default" hello "$(cat "$L/framework/env/FUNC_NAME.default")"
	check_eq "launch env FUNC_SOURCE.default" /workspace/main.py "$(cat "$L/framework/env/FUNC_SOURCE.default")"
	check_eq "launch env FUNC_SIGNATURE_TYPE.default" http "$(cat "$L/framework/env/FUNC_SIGNATURE_TYPE.default")"
	check_eq "launch env PORT.default" 8080 "$(cat "$L/framework/env/PORT.default")"
	check "the build wrote no byte code into the app" test -z "$(find "$H/app" -name __pycache__)"

	if serve "$H" http; then
		U="http://127.0.0.1:$PORT_http"
		check_eq "http function answers with its requirement's help" "KILN!" "$(curl -s "$U/?name=kiln")"
		check_eq "the function imports its neighbour module" "WORLD!" "$(curl -s "$U/")"
		check_eq "a str answer is text/html" "text/html; charset=utf-8" \
			"$(curl -s -D - -o /dev/null "$U/" | tr -d '\r' | sed -n 's/^Content-Type: //Ip')"
		check_eq "(body, status, headers) sets all three" "201 hello made" \
			"$(curl -s -D "$WORK/made.h" -o "$WORK/made" -w '%{http_code}' "$U/made") $(tr -d '\r' <"$WORK/made.h" | sed -n 's/^X-Function: //Ip') $(cat "$WORK/made")"
		check_eq "a dict answer is JSON; get_json() and args work" '{"got": {"a": [1, 2]}, "args": ["1", "2"]}' \
			"$(curl -s "$U/p?x=1&x=2" -H 'Content-Type: application/json' -d '{"a":[1,2]}')"
		check_eq "bad JSON answers 400" 400 "$(http_code "$U/" -H 'Content-Type: application/json' -d '{x')"
		check_eq "a raised exception answers 500" 500 "$(http_code "$U/boom")"
		check "the request is logged" wait_log "$OUT_http" '^GET /\?name=kiln 200 [0-9.]+(µs|ms|s)$'
		check "the error's request line is logged" \
			wait_log "$OUT_http" '^GET /boom 500 .* function error: ValueError: boom from the function$'
		check "the traceback is logged" grep -q '^  File "/workspace/main.py", line 10, in hello$' "$OUT_http"
		check "the framework logs what it serves" grep -q "serving http function hello on :$PORT_http" "$OUT_http"
	else
		fail "http function did not start: $(cat "$OUT_http")"
	fi

	# --- a second build with only the function changed reuses the packages ------------
	D1=$(layer_diff_id "$H" packages)
	H2=$(new_root http2)
	restore_cache "$H" "$H2"
	cp -a "$H/app/." "$H2/app/"
	cp -a "$H/platform/env/." "$H2/platform/env/"
	sed -i 's/return shout(/return "v2 " + shout(/' "$H2/app/main.py"
	touch -d '2001-01-01' "$H2/layers/$BP_ID/packages/site/kiln_shout/__init__.py"
	build_ok "second build (function changed) succeeds" "$H2" "$WORK/http2-build.log"
	check "second build reuses the packages layer" grep -q 'reusing the packages layer' "$WORK/http2-build.log"
	check "second build does not run pip" bash -c "! grep -q 'pip install' '$WORK/http2-build.log'"
	check "the reused layer was not rewritten" \
		test "$(stat -c %Y "$H2/layers/$BP_ID/packages/site/kiln_shout/__init__.py")" = "$(date -d 2001-01-01 +%s)"
	check_eq "the reused packages layer has the same diff_id" "$D1" "$(layer_diff_id "$H2" packages)"
	if serve "$H2" http2; then
		check_eq "the changed function answers" "v2 KILN!" "$(curl -s "http://127.0.0.1:$PORT_http2/?name=kiln")"
	fi
	# A changed requirements.txt reinstalls; the same packages give the same layer.
	H3=$(new_root http3)
	restore_cache "$H2" "$H3"
	cp -a "$H2/app/." "$H3/app/"
	cp -a "$H/platform/env/." "$H3/platform/env/"
	echo '# changed' >>"$H3/app/requirements.txt"
	build_ok "third build (requirements.txt changed) succeeds" "$H3" "$WORK/http3-build.log"
	check "a changed requirements.txt runs pip again" grep -q 'pip install -r requirements.txt' "$WORK/http3-build.log"
	check_eq "reinstalled packages give the same diff_id (reproducible byte code)" "$D1" "$(layer_diff_id "$H3" packages)"

	# A requirement the wheel directory does not have.
	R=$(new_root badreq)
	cp -a "$H/app/." "$R/app/"
	cp -a "$H/platform/env/." "$R/platform/env/"
	echo 'kiln-missing==2.0' >>"$R/app/requirements.txt"
	bp build "$R" >/dev/null 2>"$WORK/pip.err"
	check_eq "a requirement pip cannot find fails the build" 1 "$?"
	check "the last line says pip failed and why" \
		grep -qE '^pip install failed: (Could not find a version|No matching distribution).*kiln-missing' <(tail -n 1 "$WORK/pip.err")
else
	echo "# python3 has no pip here: the requirement tests are skipped"
fi

# --- without pip: a function with no requirements builds, one with them fails clearly --------
PIPDIR=$(/usr/bin/python3 -c 'import os, pip; print(os.path.dirname(pip.__file__))' 2>/dev/null || true)
case $PIPDIR in
/usr/*)
	BP_BWRAP=(--tmpfs "$PIPDIR")
	NP=$(new_root nopip)
	echo 'def hello(request): return "hi"' >"$NP/app/main.py"
	setenv "$NP" FUNC_NAME hello
	build_ok "without pip, a function without requirements.txt builds" "$NP" "$WORK/nopip-build.log"
	echo 'kiln-shout==1.0.0' >"$NP/app/requirements.txt"
	check_fails "without pip, requirements.txt fails the build with one line" \
		'^requirements.txt lists packages, but /usr/bin/python3 has no pip \(on Debian: apt-get install python3-pip\)$' bp build "$NP"
	BP_BWRAP=()
	;;
esac

# --- a cloudevent function in FUNC_SRC, no requirements -------------------------------
C=$(new_root event)
mkdir -p "$C/app/events"
cat >"$C/app/events/handler.py" <<'EOF'
def receive(cloud_event):
    if cloud_event["type"] == "fail":
        raise RuntimeError(f"refusing event {cloud_event['id']}")
    data = cloud_event.data or {}
    print("[event id]", cloud_event["id"], "msg", data.get("msg"), "ext", cloud_event.get("color", "-"))
EOF
setenv "$C" FUNC_NAME receive
setenv "$C" FUNC_SIGNATURE_TYPE cloudevent
setenv "$C" FUNC_SRC events/handler.py
build_ok "build of the cloudevent function in FUNC_SRC succeeds" "$C" "$WORK/event-build.log"
check "no requirements: pip does not run" grep -q 'pip does not run' "$WORK/event-build.log"
check "no requirements: no packages layer" test ! -e "$C/layers/$BP_ID/packages.toml"
check_eq "launch env FUNC_SOURCE.default is FUNC_SRC" /workspace/events/handler.py \
	"$(cat "$C/layers/$BP_ID/framework/env/FUNC_SOURCE.default")"
if serve "$C" event; then
	U="http://127.0.0.1:$PORT_event/"
	check_eq "binary-mode event answers 204" 204 "$(http_code "$U" \
		-H 'ce-id: bin-42' -H 'ce-source: /test' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.test' \
		-H 'ce-color: blue' -H 'Content-Type: application/json' -d '{"msg":"binary"}')"
	check_eq "structured-mode event answers 204" 204 "$(http_code "$U" \
		-H 'Content-Type: application/cloudevents+json' \
		-d '{"specversion":"1.0","id":"struct-7","source":"/test","type":"dev.kiln.test","data":{"msg":"structured"}}')"
	check_eq "malformed event (no ce-id) answers 400" 400 "$(curl -s -o "$WORK/bad.body" -w '%{http_code}' "$U" \
		-H 'ce-source: /test' -H 'ce-specversion: 1.0' -H 'ce-type: t' -d '{}')"
	check_eq "the 400 says what is missing" 'malformed CloudEvent: missing required attribute "id"' "$(cat "$WORK/bad.body")"
	check_eq "structured event with bad JSON answers 400" 400 "$(http_code "$U" \
		-H 'Content-Type: application/cloudevents+json' -d '{"id":')"
	check_eq "specversion 0.3 answers 400" 400 "$(curl -s -o "$WORK/bad03.body" -w '%{http_code}' "$U" \
		-H 'Content-Type: application/cloudevents+json' -d '{"specversion":"0.3","id":"1","source":"/s","type":"t"}')"
	check "the 400 names the specversion" grep -q 'unsupported specversion "0.3"' "$WORK/bad03.body"
	check_eq "a plain request (no event) answers 400" 400 "$(http_code "$U" -d 'x=1')"
	check_eq "function error answers 500" 500 "$(http_code -X POST "$U" \
		-H 'ce-id: f-1' -H 'ce-source: /test' -H 'ce-specversion: 1.0' -H 'ce-type: fail')"
	check "the function printed the binary event's id" wait_log "$OUT_event" '^\[event id\] bin-42 msg binary ext blue$'
	check "the function printed the structured event's id" wait_log "$OUT_event" '^\[event id\] struct-7 msg structured ext -$'
	check "the malformed event is logged" grep -q '^POST / 400 .*missing required attribute "id"' "$OUT_event"
	check "the function's error is logged with its traceback" \
		bash -c "grep -q '^function failed on event f-1:' '$OUT_event' && grep -q '^RuntimeError: refusing event f-1$' '$OUT_event'"
else
	fail "cloudevent function did not start: $(cat "$OUT_event")"
fi

# --- SIGTERM: graceful shutdown, exit 0 ---------------------------------------------------
P=$(free_port)
env -i PATH=/usr/bin:/bin PORT="$P" FUNC_SOURCE="$C/app/events/handler.py" FUNC_NAME=receive FUNC_SIGNATURE_TYPE=cloudevent \
	/usr/bin/python3 -B "$C/layers/$BP_ID/framework/serve.py" >"$WORK/term.out" 2>&1 &
TPID=$!
T_PIDS+=("$TPID")
if wait_http "http://127.0.0.1:$P/" 20; then
	kill -TERM "$TPID"
	wait "$TPID"
	check_eq "SIGTERM stops the function with exit 0" 0 "$?"
	check "shutdown is logged" grep -q 'shutting down on SIGTERM' "$WORK/term.out"
fi

# --- the samples build and answer as samples/README.md says ---------------------------------
S=$(new_root sample-http)
cp -a "$ROOT_DIR/samples/python-http/." "$S/app/"
setenv "$S" FUNC_NAME hello_world
build_ok "samples/python-http builds" "$S" "$WORK/sample-http-build.log"
if serve "$S" shttp; then
	check_eq "samples/python-http answers" "Hello, kiln!" "$(curl -s "http://127.0.0.1:$PORT_shttp/?name=kiln")"
	check_eq "samples/python-http answers JSON" '{"message": "Hello, kiln!"}' \
		"$(curl -s -H 'Accept: application/json' -d '{"name":"kiln"}' "http://127.0.0.1:$PORT_shttp/")"
fi
S=$(new_root sample-event)
cp -a "$ROOT_DIR/samples/python-cloudevent/." "$S/app/"
setenv "$S" FUNC_NAME handle_event
setenv "$S" FUNC_SIGNATURE_TYPE cloudevent
build_ok "samples/python-cloudevent builds" "$S" "$WORK/sample-event-build.log"
if serve "$S" sevent; then
	U="http://127.0.0.1:$PORT_sevent/"
	check_eq "samples/python-cloudevent takes a binary event" 204 "$(http_code "$U" \
		-H 'ce-id: 1' -H 'ce-source: /samples/curl' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.greeting' \
		-H 'Content-Type: application/json' -d '{"name":"kiln"}')"
	check_eq "samples/python-cloudevent takes a structured event" 204 "$(http_code "$U" \
		-H 'Content-Type: application/cloudevents+json' \
		-d '{"specversion":"1.0","id":"2","source":"/samples/curl","type":"dev.kiln.greeting","datacontenttype":"application/json","data":{"name":"structured"}}')"
	check_eq "samples/python-cloudevent refuses an event without a name" 500 "$(http_code "$U" \
		-H 'ce-id: 3' -H 'ce-source: /samples/curl' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.greeting')"
	check "samples/python-cloudevent printed the structured greeting" wait_log "$OUT_sevent" '^event 2 .*Hello, structured!$'
	check "samples/python-cloudevent printed the binary greeting" \
		grep -q '^event 1 from /samples/curl (dev.kiln.greeting): Hello, kiln!$' "$OUT_sevent"
fi

# --- failures ------------------------------------------------------------------------------------
F=$(new_root fail)
echo 'def hello(request): return "hi"' >"$F/app/main.py"
check_fails "missing FUNC_NAME is one line" '^FUNC_NAME is required: ' bp build "$F"
setenv "$F" FUNC_NAME hello-world
check_fails "a FUNC_NAME that is no identifier is one line" 'is not a Python identifier' bp build "$F"
setenv "$F" FUNC_NAME hello
setenv "$F" FUNC_SIGNATURE_TYPE event
check_fails "unknown FUNC_SIGNATURE_TYPE is one line" '^FUNC_SIGNATURE_TYPE must be http or cloudevent, not "event"$' bp build "$F"
rm "$F/platform/env/FUNC_SIGNATURE_TYPE"
setenv "$F" FUNC_SRC fn/missing.py
check_fails "a FUNC_SRC that does not exist is one line" '^FUNC_SRC "fn/missing.py" is not a file in the app$' bp build "$F"
setenv "$F" FUNC_SRC ../etc/passwd.py
check_fails "a FUNC_SRC outside the app is one line" 'must be a relative path to a .py file in the app' bp build "$F"
rm "$F/platform/env/FUNC_SRC"
setenv "$F" FUNC_NAME nope
check_fails "a FUNC_NAME main.py does not define is one line" \
	'^function nope is not defined in main.py \(it defines: hello\)$' bp build "$F"
setenv "$F" FUNC_NAME hello
printf 'def hello(request):\n    return (\n' >"$F/app/main.py"
bp build "$F" >/dev/null 2>"$WORK/syntax.err"
check_eq "a syntax error fails the build with exit 1" 1 "$?"
check "the last line names the file, the line and the error" \
	grep -qE "^Python syntax error: main.py:2:[0-9]+: '\(' was never closed$" <(tail -n 1 "$WORK/syntax.err")
echo 'def hello(request): return "hi"' >"$F/app/main.py"
mkdir -p "$F/app/lib"
printf 'def helper(:\n    pass\n' >"$F/app/lib/util.py"
bp build "$F" >/dev/null 2>"$WORK/syntax2.err"
check_eq "a syntax error in another module fails the build too" \
	"Python syntax error: lib/util.py:1:12: invalid syntax" "$(tail -n 1 "$WORK/syntax2.err")"
rm -r "$F/app/lib"
rm "$F/app/main.py"
echo 'x' >"$F/app/requirements.txt"
check_fails "no main.py is one line" '^no main.py in the app: ' bp build "$F"

echo "# took $(($(date +%s) - START)) s"
# KEEP_LOGS=DIR keeps the build logs and the functions' output.
[ -n "${KEEP_LOGS:-}" ] && cp "$WORK"/*.log "$WORK"/*.err "$WORK"/*.out "$KEEP_LOGS"/ 2>/dev/null
finish
