#!/usr/bin/env bash
# kiln serve end to end with curl alone: Secrets, a Build on kiln-append
# from a git repository the test makes, BuildRuns watched to Succeeded,
# the digest against skopeo's, the commit, the image's content (umoci),
# overrides, an embedded spec, the log, and no secret value anywhere.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"

start_registry serve || exit 1
make_git_repo "$WORK/repo" || exit 1
start_serve --max-concurrent 2 || exit 1

PASSWORD="s3cr3t-clone-$RANDOM$RANDOM"
PUSHPASS="s3cr3t-push-$RANDOM$RANDOM"
b64() { printf '%s' "$1" | base64 -w0; }
dockercfg=$(printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG" "$(b64 "pusher:$PUSHPASS")")

api POST "/api/v1/namespaces/dev/secrets" "{\"metadata\":{\"name\":\"git-creds\"},\"type\":\"kubernetes.io/basic-auth\",\"stringData\":{\"username\":\"jane\",\"password\":\"$PASSWORD\"}}"
check_eq "create a basic-auth Secret: 201" 201 "$API_STATUS"
check_eq "the Secret's values are not in the response" "" "$(j 'd.get("data") or d.get("stringData")')"
api POST "/api/v1/namespaces/dev/secrets" "{\"metadata\":{\"name\":\"push-creds\"},\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"$(b64 "$dockercfg")\"}}"
check_eq "create a dockerconfigjson Secret: 201" 201 "$API_STATUS"
api GET "/api/v1/namespaces/dev/secrets"
check_eq "listed Secrets carry no data" "2 0" "$(j 'str(len(d["items"]))+" "+str(sum(1 for i in d["items"] if "data" in i))')"

build='{"apiVersion":"shipwright.io/v1beta1","kind":"Build","metadata":{"name":"hello"},
 "spec":{"source":{"type":"Git","git":{"url":"file://'$WORK'/repo","cloneSecret":"git-creds"},"contextDir":"app"},
 "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},
 "paramValues":[{"name":"entrypoint","value":"[\"/workspace/bin/busybox\",\"cat\",\"/workspace/hello.txt\"]"}],
 "output":{"image":"'$REG'/dev/hello:latest","pushSecret":"push-creds"}}}'
api POST "$(ns_path dev builds)" "$build"
check_eq "create the Build: 201" 201 "$API_STATUS"
check_eq "the Build is registered" "True Succeeded" "$(j 'd["status"]["registered"]+" "+d["status"]["reason"]')"
rv=$(j 'd["metadata"]["resourceVersion"]')

# A watcher from the Build's resourceVersion sees the BuildRun's whole life.
curl -sN --max-time 30 -H "Authorization: Bearer $TOKEN" \
        "$SERVE_URL$(ns_path dev buildruns)?watch=true&resourceVersion=$rv" >"$WORK/watch.out" &
watcher=$!

api POST "$(ns_path dev buildruns)" '{"metadata":{"generateName":"hello-"},"spec":{"build":{"name":"hello"}}}'
check_eq "create a BuildRun with generateName: 201" 201 "$API_STATUS"
br=$(j 'd["metadata"]["name"]')
check "the generated name starts with the prefix" grep -q '^hello-' <<<"$br"
check_eq "it carries the build labels" "hello 1" \
        "$(j 'd["metadata"]["labels"]["build.shipwright.io/name"]+" "+d["metadata"]["labels"]["build.shipwright.io/generation"]')"
check_eq "the BuildRun succeeds" Succeeded "$(wait_done dev "$br" 60)"
digest=$(j 'd["status"]["output"]["digest"]')
check_eq "status.output.digest is skopeo's digest" \
        "$(skopeo inspect --tls-verify=false "docker://$REG/dev/hello:latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" "$digest"
check_eq "status.source.git.commitSha is the commit" "$GIT_COMMIT" "$(j 'd["status"]["source"]["git"]["commitSha"]')"
check_eq "commitAuthor and branchName" "Jane Doe main" \
        "$(j 'd["status"]["source"]["git"]["commitAuthor"]+" "+d["status"]["source"]["git"]["branchName"]')"
check_eq "startTime, completionTime and buildSpec are set" "True" \
        "$(j 'all(k in d["status"] for k in ("startTime","completionTime","buildSpec"))')"
check "the run's work dir is gone" test -z "$(ls "$SERVE_DATA/runs")"

skopeo copy -q --src-tls-verify=false "docker://$REG/dev/hello:latest" "oci:$WORK/img:hello"
umoci unpack --rootless --image "$WORK/img:hello" "$WORK/bundle" >/dev/null 2>&1
check_eq "the image holds the source's context dir at /workspace" "hello from git" \
        "$(cat "$WORK/bundle/rootfs/workspace/hello.txt")"
# kiln serve makes its own files private (umask 077); the clone must not be.
check_eq "its files have git's modes, not the daemon's umask" "644 755 755" \
        "$(stat -c %a "$WORK/bundle/rootfs/workspace/hello.txt" "$WORK/bundle/rootfs/workspace/bin/busybox" "$WORK/bundle/rootfs/workspace/bin" | tr '\n' ' ' | sed 's/ $//')"
skopeo inspect --config "oci:$WORK/img:hello" >"$WORK/config.json"
check_eq "the entrypoint parameter reached the image" "hello from git" "$(run_in_root "$WORK/bundle/rootfs" "$WORK/config.json")"

kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
check_eq "the watch saw ADDED then MODIFIED up to Succeeded" "ADDED Succeeded" \
        "$(python3 -c 'import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ev=[e for e in ev if e["object"]["metadata"]["name"]==sys.argv[2]]
last=[c["reason"] for c in ev[-1]["object"]["status"]["conditions"]][0]
print(ev[0]["type"], last if all(e["type"]=="MODIFIED" for e in ev[1:]) else "not-modified")' "$WORK/watch.out" "$br")"

api GET "$(ns_path dev buildruns "$br")/log"
check "the log has the source and step lines" grep -q '^\[step-append\] sha256:' "$RESP"
check "the log says which commit" grep -q "commit $GIT_COMMIT" "$RESP"

# Overrides: params (string and array), output image; then an embedded spec.
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"hello-v2"},"spec":{"build":{"name":"hello"},
 "paramValues":[{"name":"destination","value":"/srv"},{"name":"append-args","values":[{"value":"--label"},{"value":"org.example.run=v2"}]}],
 "output":{"image":"'$REG'/dev/hello:v2"}}}'
check_eq "a BuildRun with overrides succeeds" Succeeded "$(wait_done dev hello-v2 60)"
skopeo copy -q --src-tls-verify=false "docker://$REG/dev/hello:v2" "oci:$WORK/img:v2"
umoci unpack --rootless --image "$WORK/img:v2" "$WORK/bundle2" >/dev/null 2>&1
check_eq "the paramValues override moved the source to /srv" "hello from git" \
        "$(cat "$WORK/bundle2/rootfs/srv/hello.txt" 2>&1)"
check_eq "the array parameter's items became kiln append arguments" v2 \
        "$(skopeo inspect --config "oci:$WORK/img:v2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["Labels"]["org.example.run"])')"
check_eq "the output override went to the :v2 tag" "$(j 'd["status"]["output"]["digest"]')" \
        "$(skopeo inspect --tls-verify=false "docker://$REG/dev/hello:v2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')"

api POST "$(ns_path other buildruns)" '{"metadata":{"name":"embedded"},"spec":{"build":{"spec":{
 "source":{"type":"Git","git":{"url":"file://'$WORK'/repo"},"contextDir":"app"},
 "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},
 "output":{"image":"'$REG'/other/embedded:latest"}}}}}'
check_eq "an embedded spec.build.spec runs in another namespace" Succeeded "$(wait_done other embedded 60)"

# A clone that fails says why, as Shipwright's source step does.
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"norepo"},"spec":{"build":{"spec":{
 "source":{"type":"Git","git":{"url":"file://'$WORK'/no-such-repo"}},
 "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},"output":{"image":"'$REG'/dev/none:1"}}}}}'
check_eq "a missing repository: Failed" Failed "$(wait_done dev norepo 30)"
check_eq "... with failureDetails from the source step" "GitRemoteRepositoryNotFound step-source-default" \
        "$(j 'd["status"]["failureDetails"]["reason"]+" "+d["status"]["failureDetails"]["location"]["container"]')"
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"norev"},"spec":{"build":{"name":"hello"},"paramValues":[]}}'
api PATCH "$(ns_path dev builds hello)" '{"spec":{"source":{"git":{"revision":"v9"}}}}' application/merge-patch+json
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"norev2"},"spec":{"build":{"name":"hello"}}}'
check_eq "a missing revision: Failed" Failed "$(wait_done dev norev2 30)"
check_eq "... GitRevisionNotFound" GitRevisionNotFound "$(j 'd["status"]["failureDetails"]["reason"]')"
check_eq "a run created before the Build changed used its snapshot" Succeeded "$(wait_done dev norev 30)"

# kiln-buildpacks runs `kiln build`.
if "$KILN" build --help >/dev/null 2>&1; then
        mkdir -p "$WORK/gofn"
        printf 'module example.com/fn\n\ngo 1.19\n' >"$WORK/gofn/go.mod"
        cat >"$WORK/gofn/fn.go" <<'EOF'
package fn

import (
	"fmt"
	"net/http"
)

func Hello(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from fn") }
EOF
        (cd "$WORK/gofn" && git init -q -b main && git add . && git -c user.name=A -c user.email=a@b commit -qm fn)
        api POST "$(ns_path dev builds)" '{"metadata":{"name":"gofn"},"spec":{"source":{"type":"Git","git":{"url":"file://'$WORK'/gofn"}},
         "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-buildpacks"},"paramValues":[{"name":"func-name","value":"Hello"}],
         "output":{"image":"'$REG'/dev/gofn:latest"}}}'
        api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"gofn-1"},"spec":{"build":{"name":"gofn"}}}'
        check_eq "kiln-buildpacks builds a Go function" Succeeded "$(wait_done dev gofn-1 120)"
        check_eq "its digest is skopeo's" "$(j 'd["status"]["output"]["digest"]')" \
                "$(skopeo inspect --tls-verify=false "docker://$REG/dev/gofn:latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')"
        check_eq "its source timestamp is the commit's, from kiln build's report" \
                "$(date -u -d "@$(git -C "$WORK/gofn" log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)" \
                "$(j 'd["status"]["source"]["timestamp"]')"
else
        fail "kiln build is missing from this binary: the kiln-buildpacks strategy cannot run"
fi

api DELETE "$(ns_path dev buildruns hello-v2)"
check_eq "delete a BuildRun: 200" 200 "$API_STATUS"
api GET "$(ns_path dev buildruns hello-v2)"
check_eq "then it is 404 NotFound" "404 NotFound" "$API_STATUS $(j 'd["reason"]')"

stop_serve
cat "$SERVE_DATA"/logs/*.log >"$WORK/all-logs" 2>/dev/null
check "no secret value in the daemon's log, the build logs or any response" \
        bash -c '! grep -qF -e "$1" -e "$2" -e "$(printf %s "$1" | base64 -w0)" "$3" "$4" "$5"' _ \
        "$PASSWORD" "$PUSHPASS" "$SERVE_LOG" "$WORK/all-logs" "$WORK/all-responses"
check_eq "the database and its directory are private to the daemon" "600 700" \
        "$(stat -c %a "$SERVE_DATA/kiln.db") $(stat -c %a "$SERVE_DATA")"
check "no sanitizer report in the daemon's log" bash -c "! grep -q Sanitizer '$SERVE_LOG'"
finish
