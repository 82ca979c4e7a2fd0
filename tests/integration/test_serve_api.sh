#!/usr/bin/env bash
# kiln serve's API contract: auth, discovery, Status errors (401, 400, 404,
# 409, 413, 415, 422) naming the field, patches, the status subresource,
# label selectors and paging, every validation reason a request can cause,
# watch reconnects (and 410), and slow clients that block no one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"

start_serve --event-history 40 || exit 1

# ---- auth and discovery ----
noauth_api GET /healthz
check_eq "healthz needs no token" 200 "$API_STATUS"
noauth_api GET "$(ns_path dev builds)"
check_eq "no token: 401 Unauthorized Status" "401 Status Unauthorized" "$API_STATUS $(j 'd["kind"]') $(j 'd["reason"]')"
API_STATUS=$(curl -s -o "$RESP" -w '%{http_code}' -H "Authorization: Bearer wrong-token-0000000000" "$SERVE_URL$(ns_path dev builds)")
check_eq "a wrong token: 401" 401 "$API_STATUS"
api GET /apis
check_eq "/apis lists the shipwright.io group" shipwright.io/v1beta1 "$(j 'd["groups"][0]["preferredVersion"]["groupVersion"]')"
api GET /apis/shipwright.io/v1beta1
check_eq "the APIResourceList names the four kinds and their status" \
        "builds builds/status buildruns buildruns/status buildstrategies buildstrategies/status clusterbuildstrategies clusterbuildstrategies/status" \
        "$(j '" ".join(r["name"] for r in d["resources"])')"
api GET /version
check_eq "/version answers" 1 "$(j 'd["major"]')"

# ---- errors ----
api GET "$(ns_path dev builds nope)"
check_eq "a missing Build: 404 NotFound naming it" '404 NotFound builds.shipwright.io "nope" not found' \
        "$API_STATUS $(j 'd["reason"]') $(j 'd["message"]')"
api GET /apis/shipwright.io/v1beta1/namespaces/dev/widgets
check_eq "an unknown resource: 404" "404 NotFound" "$API_STATUS $(j 'd["reason"]')"
api POST "$(ns_path dev builds)" '{"metadata": {"name": "x"'
check_eq "bad JSON: 400 BadRequest" "400 BadRequest" "$API_STATUS $(j 'd["reason"]')"
check "... whose message says where" grep -q 'not valid JSON.*line 1' "$RESP"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"x","namespace":"prod"},"spec":{}}'
check_eq "wrong namespace: 400 naming metadata.namespace" "400 metadata.namespace" \
        "$API_STATUS $(j 'd["message"].split(":")[0]')"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"x"},"spec":{"strategy":{"name":"kiln-append","kind":"ClusterBuildStrategy"},"output":{}}}'
check_eq "a missing output.image: 422 Invalid naming spec.output.image" "422 Invalid" "$API_STATUS $(j 'd["reason"]')"
check "... in its message" grep -q 'spec.output.image: Required value' "$RESP"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"x"},"spec":{"strategy":{"name":"kiln-append"},"output":{"image":"r/x"},"timeout":"soon"}}'
check "a bad duration: 422 naming spec.timeout" grep -q 'spec.timeout: Invalid value' "$RESP"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"Bad_Name"},"spec":{"strategy":{"name":"kiln-append"},"output":{"image":"r/x"}}}'
check_eq "an invalid name: 422 naming metadata.name" "422 metadata.name" "$API_STATUS $(j 'd["message"].split(": ")[1]')"
head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' 'a' >"$WORK/big"
API_STATUS=$(curl -s -o "$RESP" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "@$WORK/big" "$SERVE_URL$(ns_path dev builds)")
check_eq "a 10 MB body: 413 RequestEntityTooLarge" "413 RequestEntityTooLarge" "$API_STATUS $(j 'd["reason"]')"
API_STATUS=$(curl -s -o "$RESP" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" -H 'Transfer-Encoding: chunked' \
        -H 'Content-Type: application/json' --data-binary "@$WORK/big" "$SERVE_URL$(ns_path dev builds)")
check_eq "a 10 MB chunked body: 413" 413 "$API_STATUS"

# ---- create, conflicts, patches, status ----
good='{"metadata":{"name":"good","labels":{"team":"a"}},"spec":{"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},"output":{"image":"127.0.0.1:1/x"}}}'
api POST "$(ns_path dev builds)" "$good"
check_eq "create: 201 with uid, resourceVersion, generation 1" "201 True 1" \
        "$API_STATUS $(j 'bool(d["metadata"]["uid"] and d["metadata"]["resourceVersion"])') $(j 'd["metadata"]["generation"]')"
old=$(cat "$RESP")
api POST "$(ns_path dev builds)" "$good"
check_eq "the same name again: 409 AlreadyExists" "409 AlreadyExists" "$API_STATUS $(j 'd["reason"]')"
api PATCH "$(ns_path dev builds good)" '{"metadata":{"labels":{"tier":"x"}},"spec":{"timeout":"5m"}}' application/merge-patch+json
check_eq "a merge patch: labels merged, generation 2" "200 a x 2" \
        "$API_STATUS $(j 'd["metadata"]["labels"]["team"]') $(j 'd["metadata"]["labels"]["tier"]') $(j 'd["metadata"]["generation"]')"
api PUT "$(ns_path dev builds good)" "$old"
check_eq "PUT with a stale resourceVersion: 409 Conflict" "409 Conflict" "$API_STATUS $(j 'd["reason"]')"
api PATCH "$(ns_path dev builds good)" '[{"op":"replace","path":"/spec/output/image","value":"127.0.0.1:1/y"},{"op":"add","path":"/metadata/labels/z","value":"1"}]' application/json-patch+json
check_eq "a JSON patch" "200 127.0.0.1:1/y 1" "$API_STATUS $(j 'd["spec"]["output"]["image"]') $(j 'd["metadata"]["labels"]["z"]')"
api PATCH "$(ns_path dev builds good)" '[{"op":"test","path":"/spec/output/image","value":"other"}]' application/json-patch+json
check_eq "a failed JSON patch test: 409" 409 "$API_STATUS"
api PATCH "$(ns_path dev builds good)" '{"spec":{}}' application/strategic-merge-patch+json
check_eq "strategic merge patch: 415 UnsupportedMediaType" "415 UnsupportedMediaType" "$API_STATUS $(j 'd["reason"]')"
api PUT "$(ns_path dev builds good)/status" '{"metadata":{"name":"good"},"spec":{"output":{"image":"ignored"}},"status":{"registered":"False","reason":"X"}}'
check_eq "PUT /status changes the status, not the spec" "200 X 127.0.0.1:1/y" \
        "$API_STATUS $(j 'd["status"]["reason"]') $(j 'd["spec"]["output"]["image"]')"

for n in b1 b2 b3; do
        api POST "$(ns_path dev builds)" '{"metadata":{"name":"'$n'","labels":{"team":"b"}},"spec":{"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},"output":{"image":"127.0.0.1:1/x"}}}'
done
api GET "$(ns_path dev builds)?labelSelector=team%3Db"
check_eq "labelSelector team=b" "b1 b2 b3" "$(j '" ".join(i["metadata"]["name"] for i in d["items"])')"
api GET "$(ns_path dev builds)?labelSelector=team!%3Db"
check_eq "labelSelector team!=b" "good" "$(j '" ".join(i["metadata"]["name"] for i in d["items"])')"
api GET "$(ns_path dev builds)?limit=2"
tok=$(j 'd["metadata"]["continue"]')
first=$(j '" ".join(i["metadata"]["name"] for i in d["items"])')
api GET "$(ns_path dev builds)?limit=2&continue=$tok"
check_eq "limit and continue page through the list" "b1 b2 | b3 good" "$first | $(j '" ".join(i["metadata"]["name"] for i in d["items"])')"
api GET "$SHP/builds"
check_eq "a list across namespaces" 4 "$(j 'len(d["items"])')"

# ---- Build validation reasons ----
build_reason() { # NAME SPEC-JSON
        api POST "$(ns_path dev builds)" "{\"metadata\":{\"name\":\"$1\"},\"spec\":$2}"
        j 'd["status"]["reason"]'
}
out='"output":{"image":"127.0.0.1:1/x"}'
cbs='"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"}'
check_eq "BuildStrategyNotFound" BuildStrategyNotFound "$(build_reason v1 '{"strategy":{"kind":"BuildStrategy","name":"nope"},'"$out"'}')"
check_eq "ClusterBuildStrategyNotFound" ClusterBuildStrategyNotFound "$(build_reason v2 '{"strategy":{"kind":"ClusterBuildStrategy","name":"nope"},'"$out"'}')"
check_eq "SpecSourceSecretRefNotFound" SpecSourceSecretRefNotFound \
        "$(build_reason v3 '{"source":{"type":"Git","git":{"url":"file:///x","cloneSecret":"missing"}},'"$cbs,$out"'}')"
check_eq "SpecOutputSecretRefNotFound" SpecOutputSecretRefNotFound \
        "$(build_reason v4 '{'"$cbs"',"output":{"image":"r/x","pushSecret":"missing"}}')"
check_eq "MultipleSecretRefNotFound" MultipleSecretRefNotFound \
        "$(build_reason v5 '{"source":{"git":{"url":"file:///x","cloneSecret":"a"}},'"$cbs"',"output":{"image":"r/x","pushSecret":"b"}}')"
check_eq "UndefinedParameter" UndefinedParameter "$(build_reason v6 '{'"$cbs,$out"',"paramValues":[{"name":"nope","value":"1"}]}')"
check "... its message names the parameter" grep -q 'not defined in the build strategy: nope' "$RESP"
check_eq "RestrictedParametersInUse" RestrictedParametersInUse \
        "$(build_reason v7 '{'"$cbs,$out"',"paramValues":[{"name":"shp-source-root","value":"/"}]}')"
check_eq "WrongParameterValueType (a string given values)" WrongParameterValueType \
        "$(build_reason v8 '{'"$cbs,$out"',"paramValues":[{"name":"base","values":[{"value":"a"}]}]}')"
check_eq "WrongParameterValueType (an array given value)" WrongParameterValueType \
        "$(build_reason v9 '{'"$cbs,$out"',"paramValues":[{"name":"append-args","value":"a"}]}')"
check_eq "InconsistentParameterValues" InconsistentParameterValues \
        "$(build_reason v10 '{'"$cbs,$out"',"paramValues":[{"name":"base","value":"a","secretValue":{"name":"s","key":"k"}}]}')"
check_eq "SpecEnvNameForbidden" SpecEnvNameForbidden "$(build_reason v11 '{'"$cbs,$out"',"env":[{"name":"LD_PRELOAD","value":"x"}]}')"
check_eq "SpecEnvNameCanNotBeBlank" SpecEnvNameCanNotBeBlank "$(build_reason v12 '{'"$cbs,$out"',"env":[{"name":"","value":"x"}]}')"
long=$(printf 'a%.0s' {1..64})
check_eq "BuildNameInvalid (64 characters)" BuildNameInvalid "$(build_reason "$long" '{'"$cbs,$out"'}')"
check_eq "... registered False" False "$(j 'd["status"]["registered"]')"
api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"missing"},"type":"kubernetes.io/basic-auth","stringData":{"username":"u","password":"p"}}'
api GET "$(ns_path dev builds v3)"
check_eq "creating the missing Secret registers the Build" "True Succeeded" "$(j 'd["status"]["registered"]+" "+d["status"]["reason"]')"

# ---- BuildRun validation reasons ----
run_reason() { # NAME SPEC-JSON
        api POST "$(ns_path dev buildruns)" "{\"metadata\":{\"name\":\"$1\"},\"spec\":$2}"
        j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["status"]+" "+[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["reason"]'
}
check_eq "BuildNotFound" "False BuildNotFound" "$(run_reason r1 '{"build":{"name":"nope"}}')"
check "... with completionTime" test -n "$(j 'd["status"]["completionTime"]')"
check_eq "BuildRegistrationFailed" "False BuildRegistrationFailed" "$(run_reason r2 '{"build":{"name":"v2"}}')"
check_eq "BuildRunNoRefOrSpec" "False BuildRunNoRefOrSpec" "$(run_reason r3 '{"build":{}}')"
check_eq "BuildRunAmbiguousBuild" "False BuildRunAmbiguousBuild" "$(run_reason r4 '{"build":{"name":"good","spec":{'"$cbs,$out"'}}}')"
check_eq "BuildRunBuildFieldOverrideForbidden" "False BuildRunBuildFieldOverrideForbidden" \
        "$(run_reason r5 '{"build":{"spec":{'"$cbs,$out"'}},"timeout":"1m"}')"
check_eq "UndefinedParameter in a BuildRun override" "False UndefinedParameter" \
        "$(run_reason r6 '{"build":{"name":"b1"},"paramValues":[{"name":"nope","value":"x"}]}')"
check_eq "MissingParameterValues (kiln-buildpacks without func-name)" "False MissingParameterValues" \
        "$(run_reason r7 '{"build":{"spec":{"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-buildpacks"},'"$out"'}}}')"
check "... naming func-name" grep -q 'no value has been provided: func-name' "$RESP"
check_eq "BuildRunNameInvalid" "False BuildRunNameInvalid" "$(run_reason "$long" '{"build":{"name":"good"}}')"
check_eq "a BuildRun created canceled never runs" "False BuildRunCanceled" "$(run_reason r8 '{"build":{"name":"b1"},"state":"BuildRunCanceled"}')"
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"r9"},"spec":{"build":{"name":"b1"},"state":"Stop"}}'
check_eq "spec.state other than BuildRunCanceled: 422" 422 "$API_STATUS"

# ---- watch: reconnect from a resourceVersion, and 410 when too old ----
api GET "$(ns_path w builds)"
rv=$(j 'd["metadata"]["resourceVersion"]')
for n in w1 w2 w3; do
        api POST "$(ns_path w builds)" '{"metadata":{"name":"'$n'"},"spec":{'"$cbs,$out"'}}'
done
api DELETE "$(ns_path w builds w2)"
curl -sN --max-time 5 -H "Authorization: Bearer $TOKEN" \
        "$SERVE_URL$(ns_path w builds)?watch=true&resourceVersion=$rv&timeoutSeconds=1" >"$WORK/w1"
check_eq "a watch from an old resourceVersion gets every event since, in order" \
        "ADDED:w1 ADDED:w2 ADDED:w3 DELETED:w2" \
        "$(python3 -c 'import json,sys; print(" ".join(e["type"]+":"+e["object"]["metadata"]["name"] for e in map(json.loads, open(sys.argv[1]))))' "$WORK/w1")"
last=$(tail -n 1 "$WORK/w1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["object"]["metadata"]["resourceVersion"])')
api POST "$(ns_path w builds)" '{"metadata":{"name":"w4"},"spec":{'"$cbs,$out"'}}'
curl -sN --max-time 5 -H "Authorization: Bearer $TOKEN" \
        "$SERVE_URL$(ns_path w builds)?watch=true&resourceVersion=$last&timeoutSeconds=1" >"$WORK/w2"
check_eq "reconnecting with the last resourceVersion misses nothing and repeats nothing" "ADDED:w4" \
        "$(python3 -c 'import json,sys; print(" ".join(e["type"]+":"+e["object"]["metadata"]["name"] for e in map(json.loads, open(sys.argv[1]))))' "$WORK/w2")"
curl -sN --max-time 5 -H "Authorization: Bearer $TOKEN" \
        "$SERVE_URL$(ns_path w builds)?watch=true&timeoutSeconds=1" >"$WORK/w3"
check_eq "a watch without resourceVersion starts with the current objects" "ADDED:w1 ADDED:w3 ADDED:w4" \
        "$(python3 -c 'import json,sys; print(" ".join(e["type"]+":"+e["object"]["metadata"]["name"] for e in map(json.loads, open(sys.argv[1]))))' "$WORK/w3")"
for i in $(seq 1 45); do api PATCH "$(ns_path w builds w1)" '{"metadata":{"labels":{"n":"'$i'"}}}' application/merge-patch+json; done
api GET "$(ns_path w builds)?watch=true&resourceVersion=$rv"
check_eq "a resourceVersion older than the kept history: 410 Expired" "410 Expired" "$API_STATUS $(j 'd["reason"]')"

# ---- watchers that hang up do not keep their threads ----
threads() { ls "/proc/$SERVE_PID/task" | wc -l; }
base=$(threads)
pids=()
for i in 1 2 3 4 5 6; do
        curl -sN --max-time 1 -H "Authorization: Bearer $TOKEN" "$SERVE_URL$SHP/builds?watch=true" >/dev/null &
        pids+=($!)
done
sleep 0.5
during=$(threads)
wait "${pids[@]}"
sleep 2.5
check "idle watches whose clients hung up end (threads: $base, $during with them, $(threads) after)" \
        test "$(threads)" -le "$base"

# ---- slow clients ----
exec 3<>"/dev/tcp/127.0.0.1/$SERVE_PORT"
printf 'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n' "$(ns_path dev builds)" >&3
for i in 1 2 3 4 5; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$SERVE_PORT"
        printf 'GET /healthz HTTP/1.1\r\nHo' >&$fd
done
start=$(date +%s%N)
api GET "$(ns_path dev builds good)"
ms=$((($(date +%s%N) - start) / 1000000))
check_eq "half-sent requests do not block another client" 200 "$API_STATUS"
check "... which is answered in under a second (${ms} ms)" test "$ms" -lt 1000
exec 3>&-

# ---- secrets ----
api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"s1"},"type":"kubernetes.io/basic-auth","data":{"password":"not base64!"}}'
check_eq "a secret value that is not base64: 422" 422 "$API_STATUS"
api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"s2"},"type":"kubernetes.io/dockerconfigjson","data":{}}'
check_eq "a dockerconfigjson Secret without .dockerconfigjson: 422" 422 "$API_STATUS"
api GET "/api/v1/namespaces/dev/secrets/missing"
check_eq "GET of a Secret shows its keys, not its values" '["password", "username"] False' \
        "$(j 'd["metadata"]["annotations"]["kiln.dev/data-keys"].replace(",",", ")') $(j '"data" in d')"

stop_serve
check "SIGTERM stops the daemon" bash -c "! kill -0 $SERVE_PID 2>/dev/null"
check "no sanitizer report in the daemon's log" bash -c "! grep -q Sanitizer '$SERVE_LOG'"
finish
