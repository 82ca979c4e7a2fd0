#!/usr/bin/env bash
# serve sets PORT_<name>, OUT_<name> and PID_<name> with printf -v:
# shellcheck disable=SC2154
# The Node.js buildpack driven by hand, the way kiln's lifecycle drives it:
# bin/detect and bin/build run under bubblewrap with only /usr, the app
# (/workspace), the layers (/layers), the platform (/platform, read-only),
# the buildpack (read-only) and no network; then the default process runs
# under bubblewrap with the host's /usr for node, and is called with curl.
# Also runs the functions framework's unit tests (node --test).
# sanitizers: skip
source "$(dirname "$0")/lib.sh"
BP=$ROOT_DIR/buildpacks/nodejs
BP_ID=dev.kiln.nodejs
source "$(dirname "$0")/lib_buildpack.sh"
START=$(date +%s)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	fail "node and npm are needed (scripts/install-deps installs them)"
	finish
fi
if ! bwrap_usable; then
	fail "bubblewrap cannot make namespaces here"
	finish
fi

# --- the functions framework's own tests ------------------------------------------
fw_test() { node --test "$BP"/framework/test/*.test.js >"$WORK/fwtest.log" 2>&1 || { cat "$WORK/fwtest.log"; return 1; }; }
check "framework: node --test passes" fw_test

# --- a local npm package, packed: the function's dependency, no network -----------
mkdir -p "$WORK/shout"
printf '{"name":"kiln-shout","version":"1.0.0","main":"index.js"}\n' >"$WORK/shout/package.json"
printf 'exports.shout = (s) => String(s).toUpperCase() + "!";\n' >"$WORK/shout/index.js"
export npm_config_cache=$WORK/npm-host-cache npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
H=$(new_root http)
mkdir -p "$H/app/vendor"
(cd "$WORK/shout" && npm pack --pack-destination "$H/app/vendor" >/dev/null 2>&1)
check "npm pack made the dependency's tarball" test -f "$H/app/vendor/kiln-shout-1.0.0.tgz"
cat >"$H/app/package.json" <<'EOF'
{
  "name": "hello",
  "version": "1.0.0",
  "main": "fn.js",
  "dependencies": { "kiln-shout": "file:vendor/kiln-shout-1.0.0.tgz" }
}
EOF
cat >"$H/app/fn.js" <<'EOF'
const { shout } = require('kiln-shout');

exports.hello = async (req, res) => {
  if (req.path === '/boom') throw new Error('boom from the function');
  if (req.path === '/later') {
    await new Promise((r) => setTimeout(r, 20));
    return res.status(202).send('later');
  }
  if (req.method === 'POST') return res.json({ got: req.body, query: req.query });
  res.set('X-Function', 'hello').send(shout(req.query.name || 'world'));
};
EOF
(cd "$H/app" && npm install --package-lock-only --offline >"$WORK/lock.log" 2>&1)
check "npm made a lockfile offline" test -f "$H/app/package-lock.json"
unset npm_config_cache
setenv "$H" FUNC_NAME hello

check "detect passes on a dir with package.json" bp detect "$H" >/dev/null
check "detect writes a build plan providing nodejs-function" grep -q 'name = "nodejs-function"' "$H/layers/detect-plan.toml"
N=$(new_root nojs)
echo 'print("hi")' >"$N/app/main.py"
bp detect "$N" >/dev/null 2>&1
check_eq "detect without package.json or index.js exits 100" 100 "$?"
echo 'exports.f = () => {};' >"$N/app/index.js"
check "detect passes on a dir with only index.js" bp detect "$N" >/dev/null

L=$H/layers/$BP_ID
build_ok "build of the http function with an npm dependency succeeds offline" "$H" "$WORK/http-build.log"
check "the build ran npm ci (there is a lockfile)" grep -q 'npm ci (1 dependency, from package-lock.json)' "$WORK/http-build.log"
check "the function file is package.json main" grep -q 'function hello (http) in fn.js' "$WORK/http-build.log"
check "node_modules.toml is a launch and cache layer" \
	bash -c "grep -qx 'launch = true' '$L/node_modules.toml' && grep -qx 'cache = true' '$L/node_modules.toml'"
check "node_modules.toml records the checksum" grep -qE '^checksum = "[0-9a-f]{64}"$' "$L/node_modules.toml"
check "the dependency is in the node_modules layer" test -f "$L/node_modules/node_modules/kiln-shout/index.js"
check_eq "the app's node_modules links to the layer" "/layers/$BP_ID/node_modules/node_modules" "$(readlink "$H/app/node_modules")"
check "npm-cache.toml is a cache layer only" \
	bash -c "grep -qx 'cache = true' '$L/npm-cache.toml' && grep -qx 'launch = false' '$L/npm-cache.toml'"
check "framework.toml is a launch layer" grep -qx 'launch = true' "$L/framework.toml"
check "the framework is in its layer, without its tests" \
	bash -c "test -f '$L/framework/server.js' && test -f '$L/framework/cloudevent.js' && test ! -e '$L/framework/test'"
check_eq "launch.toml command runs node from PATH" \
	"command = [\"node\", \"/layers/$BP_ID/framework/server.js\"]" "$(grep '^command' "$L/launch.toml")"
check "launch.toml web process is the default" grep -qx 'default = true' "$L/launch.toml"
check_eq "launch env FUNC_NAME.default" hello "$(cat "$L/framework/env/FUNC_NAME.default")"
check_eq "launch env FUNC_SIGNATURE_TYPE.default" http "$(cat "$L/framework/env/FUNC_SIGNATURE_TYPE.default")"
check_eq "launch env FUNC_SOURCE.default" /workspace/fn.js "$(cat "$L/framework/env/FUNC_SOURCE.default")"
check_eq "launch env PORT.default" 8080 "$(cat "$L/framework/env/PORT.default")"

if serve "$H" http; then
	U="http://127.0.0.1:$PORT_http"
	check_eq "http function answers with its dependency's help" "KILN!" "$(curl -s "$U/?name=kiln")"
	check_eq "http function sets its header" hello \
		"$(curl -s -D - -o /dev/null "$U/" | tr -d '\r' | sed -n 's/^X-Function: //Ip')"
	check_eq "req.body is parsed JSON, req.query the query" '{"got":{"a":[1,2]},"query":{"x":"1"}}' \
		"$(curl -s "$U/p?x=1" -H 'Content-Type: application/json' -d '{"a":[1,2]}')"
	check_eq "req.body is parsed for forms" '{"got":{"a":"1","b":"x y"},"query":{}}' "$(curl -s "$U/" -d 'a=1&b=x%20y')"
	check_eq "an async handler answers when it resolves" "202 later" "$(curl -s -w '%{http_code} ' -o "$WORK/later" "$U/later")$(cat "$WORK/later")"
	check_eq "bad JSON answers 400" 400 "$(http_code "$U/" -H 'Content-Type: application/json' -d '{x')"
	check_eq "a thrown error answers 500" 500 "$(http_code "$U/boom")"
	check "the request is logged" wait_log "$OUT_http" '^GET /\?name=kiln 200 [0-9.]+(µs|ms|s)$'
	check "the error's request line is logged" wait_log "$OUT_http" '^GET /boom 500 .* function error: boom from the function$'
	check "the error's stack is logged" grep -qE '^    at exports.hello \(/workspace/fn.js:[0-9]+' "$OUT_http"
	check "the framework logs what it serves" grep -q "serving http function hello on :$PORT_http" "$OUT_http"
else
	fail "http function did not start: $(cat "$OUT_http")"
fi

# --- a second build with only the function changed reuses node_modules -------------
D1=$(layer_diff_id "$H" node_modules)
H2=$(new_root http2)
restore_cache "$H" "$H2"
cp -a "$H/app/." "$H2/app/"
rm "$H2/app/node_modules"
sed -i 's/shout(req.query.name/"v2 " + shout(req.query.name/' "$H2/app/fn.js"
cp "$H/platform/env/FUNC_NAME" "$H2/platform/env/"
touch -d '2001-01-01' "$H2/layers/$BP_ID/node_modules/node_modules/kiln-shout/index.js"
build_ok "second build (function changed) succeeds" "$H2" "$WORK/http2-build.log"
check "second build reuses the node_modules layer" grep -q 'reusing the node_modules layer' "$WORK/http2-build.log"
check "second build does not run npm" bash -c "! grep -q 'npm ci' '$WORK/http2-build.log'"
check "the reused layer was not rewritten" \
	test "$(stat -c %Y "$H2/layers/$BP_ID/node_modules/node_modules/kiln-shout/index.js")" = "$(date -d 2001-01-01 +%s)"
check_eq "the reused node_modules layer has the same diff_id" "$D1" "$(layer_diff_id "$H2" node_modules)"
if serve "$H2" http2; then
	check_eq "the changed function answers" "v2 KILN!" "$(curl -s "http://127.0.0.1:$PORT_http2/?name=kiln")"
fi

# A changed package.json reinstalls; the same dependencies give the same layer.
H3=$(new_root http3)
restore_cache "$H2" "$H3"
cp -a "$H2/app/." "$H3/app/"
sed -i 's/"main": "fn.js",/"main": "fn.js",\n  "description": "changed",/' "$H3/app/package.json"
cp "$H/platform/env/FUNC_NAME" "$H3/platform/env/"
build_ok "third build (package.json changed) succeeds" "$H3" "$WORK/http3-build.log"
check "a changed package.json runs npm ci again" grep -q 'npm ci' "$WORK/http3-build.log"
check_eq "reinstalled dependencies give the same diff_id (reproducible)" "$D1" "$(layer_diff_id "$H3" node_modules)"

# --- a cloudevent function: index.js alone, no package.json, no npm --------------------
C=$(new_root event)
cat >"$C/app/index.js" <<'EOF'
exports.receive = (event) => {
  if (event.type === 'fail') throw new Error(`refusing event ${event.id}`);
  console.log('[event id]', event.id, 'msg', event.data && event.data.msg, 'ext', event.extensions.color || '-');
};
EOF
setenv "$C" FUNC_NAME receive
setenv "$C" FUNC_SIGNATURE_TYPE cloudevent
build_ok "build of the cloudevent function succeeds" "$C" "$WORK/event-build.log"
check "no dependencies: npm does not run" grep -q 'declares no dependencies' "$WORK/event-build.log"
check "no dependencies: no node_modules layer" test ! -e "$C/layers/$BP_ID/node_modules.toml"
check_eq "launch env FUNC_SIGNATURE_TYPE.default is cloudevent" cloudevent \
	"$(cat "$C/layers/$BP_ID/framework/env/FUNC_SIGNATURE_TYPE.default")"
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
	check "the function's error is logged with its stack" \
		bash -c "grep -q '^function failed on event f-1: Error: refusing event f-1' '$OUT_event' && grep -q '^POST / 500 ' '$OUT_event'"
else
	fail "cloudevent function did not start: $(cat "$OUT_event")"
fi

# --- SIGTERM: graceful shutdown, exit 0 ---------------------------------------------------
P=$(free_port)
env -i PATH=/usr/bin:/bin PORT="$P" FUNC_SOURCE="$C/app/index.js" FUNC_NAME=receive FUNC_SIGNATURE_TYPE=cloudevent \
	node "$C/layers/$BP_ID/framework/server.js" >"$WORK/term.out" 2>&1 &
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
cp -a "$ROOT_DIR/samples/node-http/." "$S/app/"
setenv "$S" FUNC_NAME helloWorld
build_ok "samples/node-http builds (npm install of its local dependency)" "$S" "$WORK/sample-http-build.log"
check "samples/node-http: npm install without a lockfile" grep -q 'npm install --no-package-lock' "$WORK/sample-http-build.log"
check "samples/node-http: the source stays without a lockfile" test ! -e "$S/app/package-lock.json"
check "samples/node-http: the local dependency is copied, not linked" \
	bash -c "test -d '$S/layers/$BP_ID/node_modules/node_modules/kiln-greeting' && test ! -L '$S/layers/$BP_ID/node_modules/node_modules/kiln-greeting'"
if serve "$S" shttp; then
	check_eq "samples/node-http answers" "Hello, kiln!" "$(curl -s "http://127.0.0.1:$PORT_shttp/?name=kiln")"
	check_eq "samples/node-http answers JSON" '{"message":"Hello, kiln!"}' \
		"$(curl -s -H 'Accept: application/json' -H 'Content-Type: application/json' -d '{"name":"kiln"}' "http://127.0.0.1:$PORT_shttp/")"
fi
S=$(new_root sample-event)
cp -a "$ROOT_DIR/samples/node-cloudevent/." "$S/app/"
setenv "$S" FUNC_NAME handleEvent
setenv "$S" FUNC_SIGNATURE_TYPE cloudevent
build_ok "samples/node-cloudevent builds" "$S" "$WORK/sample-event-build.log"
if serve "$S" sevent; then
	U="http://127.0.0.1:$PORT_sevent/"
	check_eq "samples/node-cloudevent takes a binary event" 204 "$(http_code "$U" \
		-H 'ce-id: 1' -H 'ce-source: /samples/curl' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.greeting' \
		-H 'Content-Type: application/json' -d '{"name":"kiln"}')"
	check_eq "samples/node-cloudevent takes a structured event" 204 "$(http_code "$U" \
		-H 'Content-Type: application/cloudevents+json' \
		-d '{"specversion":"1.0","id":"2","source":"/samples/curl","type":"dev.kiln.greeting","datacontenttype":"application/json","data":{"name":"structured"}}')"
	check_eq "samples/node-cloudevent refuses an event without a name" 500 "$(http_code "$U" \
		-H 'ce-id: 3' -H 'ce-source: /samples/curl' -H 'ce-specversion: 1.0' -H 'ce-type: dev.kiln.greeting')"
	check "samples/node-cloudevent printed both greetings" wait_log "$OUT_sevent" '^event 2 .*Hello, structured!$'
	check "samples/node-cloudevent printed the binary event" grep -q '^event 1 from /samples/curl (dev.kiln.greeting): Hello, kiln!$' "$OUT_sevent"
fi

# --- failures ------------------------------------------------------------------------------------
F=$(new_root fail)
echo 'exports.hello = (req, res) => res.send("hi");' >"$F/app/index.js"
check_fails "missing FUNC_NAME is one line" '^FUNC_NAME is required: ' bp build "$F"
setenv "$F" FUNC_NAME 'hello-world'
check_fails "a FUNC_NAME that is no identifier is one line" 'is not a JavaScript identifier' bp build "$F"
setenv "$F" FUNC_NAME hello
setenv "$F" FUNC_SIGNATURE_TYPE event
check_fails "unknown FUNC_SIGNATURE_TYPE is one line" '^FUNC_SIGNATURE_TYPE must be http or cloudevent, not "event"$' bp build "$F"
rm "$F/platform/env/FUNC_SIGNATURE_TYPE"
setenv "$F" FUNC_SRC lib/fn.js
check_fails "a FUNC_SRC that does not exist is one line" '^FUNC_SRC is "lib/fn.js", which is not a file in the app$' bp build "$F"
mkdir -p "$F/app/lib" && echo 'exports.hello = (req, res) => res.send("lib");' >"$F/app/lib/fn.js"
build_ok "FUNC_SRC names the function file" "$F" "$WORK/funcsrc-build.log"
check_eq "FUNC_SRC becomes FUNC_SOURCE" /workspace/lib/fn.js "$(cat "$F/layers/$BP_ID/framework/env/FUNC_SOURCE.default")"
rm -r "$F/platform/env/FUNC_SRC" "$F/app/lib"
echo '{"main": "lib/missing.js"}' >"$F/app/package.json"
check_fails "a package.json main that does not exist is one line" \
	'^package.json "main" is "lib/missing.js", which is not a file in the app$' bp build "$F"
echo '{"main": ' >"$F/app/package.json"
check_fails "invalid package.json is one line" '^package.json is not valid JSON: ' bp build "$F"
echo '{"dependencies": {"left-pad-kiln-test": "^1.0.0"}}' >"$F/app/package.json"
setenv "$F" npm_config_offline true
bp build "$F" >/dev/null 2>"$WORK/npm.err"
check_eq "a dependency that is not in the cache fails an offline build (npm_config_offline)" 1 "$?"
check "the last line says npm failed and why" grep -qE "^npm install failed: .*only-if-cached" <(tail -n 1 "$WORK/npm.err")
rm "$F/app/package.json" "$F/platform/env/npm_config_offline"
printf 'exports.hello = (req, res) => {\n  return (;\n};\n' >"$F/app/index.js"
bp build "$F" >/dev/null 2>"$WORK/syntax.err"
check_eq "a syntax error fails the build with exit 1" 1 "$?"
check_eq "the last line names the file, the line and the error" \
	"JavaScript syntax error: index.js:2: SyntaxError: Unexpected token ';'" "$(tail -n 1 "$WORK/syntax.err")"
check "node's report shows the line" grep -q '^  return (;$' "$WORK/syntax.err"
echo 'exports.other = () => {};' >"$F/app/index.js"
build_ok "a FUNC_NAME the file does not export still builds" "$F" "$WORK/noexport-build.log"
serve "$F" noexport 2>/dev/null
check "...and the web process stops with a clear error" \
	grep -q 'cannot load function hello from /workspace/index.js: function hello is not exported by /workspace/index.js (it exports: other)' "$OUT_noexport"

echo "# took $(($(date +%s) - START)) s"
# KEEP_LOGS=DIR keeps the build logs and the functions' output.
[ -n "${KEEP_LOGS:-}" ] && cp "$WORK"/*.log "$WORK"/*.err "$WORK"/*.out "$KEEP_LOGS"/ 2>/dev/null
finish
