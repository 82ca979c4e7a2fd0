#!/usr/bin/env bash
# kiln serve Secrets and ConfigMaps at run time, with curl alone:
# ConfigMaps over the core API; a kubernetes.io/ssh-auth clone secret used
# by kiln's own clone from a real sshd (host key unchecked, checked against
# the secret's known_hosts, a wrong host key, a key the server refuses);
# paramValues configMapValue / secretValue and env valueFrom
# (configMapKeyRef, secretKeyRef) reaching the kiln-append step (as image
# labels and SOURCE_DATE_EPOCH); missing references failing the run; and
# no secret value anywhere in responses or logs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"
. "$(dirname "$0")/lib_sshd.sh"

start_registry secrets || exit 1
start_sshd || exit 1
make_git_repo "$WORK/src" || exit 1
git clone -q --bare "$WORK/src" "$WORK/repo.git" || exit 1
URL=$(ssh_repo "$WORK/repo.git")
start_serve || exit 1

b64() { printf '%s' "$1" | base64 -w0; }
cm_path() { echo "/api/v1/namespaces/${1:-dev}/configmaps${2:+/$2}"; }
label_of() { # IMAGE KEY
        skopeo inspect --config --tls-verify=false "docker://$1" |
                python3 -c 'import json,sys; print(((json.load(sys.stdin).get("config") or {}).get("Labels") or {}).get(sys.argv[1],""))' "$2"
}
created_of() {
        skopeo inspect --config --tls-verify=false "docker://$1" |
                python3 -c 'import json,sys; print(json.load(sys.stdin).get("created",""))'
}

# ---- ConfigMaps over the API ----
api POST "$(cm_path)" '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings"},"data":{"greeting":"hello-cm","epoch":"1000000000"}}'
check_eq "create a ConfigMap: 201" 201 "$API_STATUS"
check_eq "  it comes back with its data and kind" "ConfigMap hello-cm" "$(j 'd["kind"]+" "+d["data"]["greeting"]')"
api GET "$(cm_path dev settings)"
check_eq "GET a ConfigMap" "200 1000000000" "$API_STATUS $(j 'd["data"]["epoch"]')"
api POST "$(cm_path)" '{"metadata":{"name":"other"},"data":{"a":"1"}}'
api GET "$(cm_path)"
names=$(j 'd["kind"]+" "+" ".join([i["metadata"]["name"] for i in d["items"]])')
check_eq "list ConfigMaps" "ConfigMapList other settings" "$names"
api PATCH "$(cm_path dev other)" '{"data":{"b":"2"}}' application/merge-patch+json
check_eq "merge-patch a ConfigMap" "200 1 2" "$API_STATUS $(j 'd["data"]["a"]+" "+d["data"]["b"]')"
api PUT "$(cm_path dev other)" '{"metadata":{"name":"other"},"data":{"c":"3"}}'
check_eq "replace a ConfigMap" "200 c" "$API_STATUS $(j 'list(d["data"])[0]')"
api POST "$(cm_path)" '{"metadata":{"name":"bad"},"data":{"n":5}}'
check_eq "a ConfigMap value that is not a string: 422" "422 Invalid" "$API_STATUS $(j 'd["reason"]')"
check "  naming the field" grep -q 'data' "$RESP"
api GET "$(cm_path dev other)/status"
check_eq "ConfigMaps have no status subresource" 404 "$API_STATUS"
api DELETE "$(cm_path dev other)"
check_eq "delete a ConfigMap" 200 "$API_STATUS"
api GET "$(cm_path dev other)"
check_eq "  then it is gone" "404 NotFound" "$API_STATUS $(j 'd["reason"]')"
api GET /api/v1
check_eq "discovery lists configmaps" True "$(j 'any(r["name"]=="configmaps" and r["kind"]=="ConfigMap" for r in d["resources"])')"

# ---- Secrets ----
TOKENVAL="tok-$RANDOM$RANDOM$RANDOM"
KEYBODY=$(sed -n 2p "$SSH_KEY")
api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"ssh-nokey"},"type":"kubernetes.io/ssh-auth","stringData":{"known_hosts":"x"}}'
check_eq "an ssh-auth Secret without ssh-privatekey: 422" 422 "$API_STATUS"
check "  naming the key" grep -q 'ssh-privatekey' "$RESP"
# mk_ssh NAME [KNOWN_HOSTS] [KEYFILE]
mk_ssh() {
        local kh='' key
        key=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "${3:-$SSH_KEY}")
        [ -n "${2:-}" ] && kh=',"known_hosts":'$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]+"\n"))' "$2")
        api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"'"$1"'"},"type":"kubernetes.io/ssh-auth","stringData":{"ssh-privatekey":'"$key$kh"'}}'
}
mk_ssh ssh-plain
check_eq "create an ssh-auth Secret: 201" 201 "$API_STATUS"
mk_ssh ssh-known "$SSH_KNOWN_HOSTS"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/otherkey"
mk_ssh ssh-wronghost "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$WORK/otherkey.pub")"
mk_ssh ssh-refused '' "$WORK/otherkey"
api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"vals"},"type":"Opaque","data":{"token":"'"$(b64 "$TOKENVAL")"'","epoch":"'"$(b64 1100000000)"'"}}'
check_eq "create an Opaque Secret: 201" 201 "$API_STATUS"

# build NAME SECRET ENV_JSON PARAMS_JSON: a kiln-append Build from the ssh URL
build() {
        api POST "$(ns_path dev builds)" '{"metadata":{"name":"'"$1"'"},"spec":{
 "source":{"type":"Git","git":{"url":"'"$URL"'","cloneSecret":"'"$2"'"},"contextDir":"app"},
 "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},
 "env":'"${3:-[]}"',"paramValues":'"${4:-[]}"',
 "output":{"image":"'"$REG"'/dev/'"$1"':latest"}}}'
}
runit() { # NAME BUILD: creates the BuildRun, prints its end reason
        api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"'"$1"'"},"spec":{"build":{"name":"'"$2"'"}}}'
        wait_done dev "$1" 60
}

build plain ssh-plain '[{"name":"SOURCE_DATE_EPOCH","valueFrom":{"configMapKeyRef":{"name":"settings","key":"epoch"}}}]' \
        '[{"name":"append-args","values":[{"value":"--label"},
   {"configMapValue":{"name":"settings","key":"greeting","format":"org.example.greeting=${CONFIGMAP_VALUE}"}},
   {"value":"--label"},
   {"secretValue":{"name":"vals","key":"token","format":"org.example.token=${SECRET_VALUE}"}}]}]'
check_eq "a Build with valueFrom and configMapValue is registered" "True Succeeded" "$(j 'd["status"]["registered"]+" "+d["status"]["reason"]')"
check_eq "ssh clone with an ssh-auth Secret (host key not checked) succeeds" Succeeded "$(runit plain-1 plain)"
check_eq "  status.source.git.commitSha is the commit" "$GIT_COMMIT" "$(j 'd["status"]["source"]["git"]["commitSha"]')"
check_eq "  the image holds the cloned file" "hello from git" \
        "$(skopeo copy -q --src-tls-verify=false "docker://$REG/dev/plain:latest" "oci:$WORK/img:p" && umoci unpack --rootless --image "$WORK/img:p" "$WORK/bundle" >/dev/null 2>&1 && cat "$WORK/bundle/rootfs/workspace/hello.txt")"
check_eq "configMapValue (with format) reached the step" "hello-cm" "$(label_of "$REG/dev/plain:latest" org.example.greeting)"
check_eq "secretValue (with format) reached the step" "$TOKENVAL" "$(label_of "$REG/dev/plain:latest" org.example.token)"
check_eq "env valueFrom configMapKeyRef reached the step (SOURCE_DATE_EPOCH)" 2001-09-09T01:46:40Z "$(created_of "$REG/dev/plain:latest")"

build known ssh-known '[{"name":"SOURCE_DATE_EPOCH","valueFrom":{"secretKeyRef":{"name":"vals","key":"epoch"}}}]'
check_eq "ssh clone checking the host key against known_hosts succeeds" Succeeded "$(runit known-1 known)"
check_eq "env valueFrom secretKeyRef reached the step (SOURCE_DATE_EPOCH)" 2004-11-09T11:33:20Z "$(created_of "$REG/dev/known:latest")"

build wronghost ssh-wronghost
check_eq "a host key not in known_hosts fails the run" Failed "$(runit wronghost-1 wronghost)"
check_eq "  in step-source-default with GitError" "GitError step-source-default" \
        "$(j 'd["status"]["failureDetails"]["reason"]+" "+d["status"]["failureDetails"]["location"]["container"]')"
check "  saying why" grep -q 'not in known_hosts' <<<"$(j 'd["status"]["conditions"][0]["message"]')"

build refused ssh-refused
check_eq "a key the server refuses fails the run" Failed "$(runit refused-1 refused)"
check_eq "  with GitAuthInvalidKey" GitAuthInvalidKey "$(j 'd["status"]["failureDetails"]["reason"]')"

# ---- missing references fail at run time, one line ----
build miss-secret ssh-plain '[{"name":"X","valueFrom":{"secretKeyRef":{"name":"nope","key":"k"}}}]'
check_eq "a Build whose env names a missing Secret is still registered" True "$(j 'd["status"]["registered"]')"
check_eq "  its run fails" Failed "$(runit miss-secret-1 miss-secret)"
msg=$(j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["message"]')
check_eq "  with a one-line reason naming the variable and the Secret" "env X: secret nope not found" "$msg"
build miss-cm ssh-plain '[]' '[{"name":"base","configMapValue":{"name":"settings","key":"missing"}}]'
check_eq "a configMapValue naming a missing key fails the run" Failed "$(runit miss-cm-1 miss-cm)"
check_eq "  saying which" "parameter base: configmap settings has no key missing" \
        "$(j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["message"]')"
build miss-cmref ssh-plain '[{"name":"Y","valueFrom":{"configMapKeyRef":{"name":"gone","key":"k"}}}]'
check_eq "an env configMapKeyRef to a missing ConfigMap fails the run" \
        "Failed env Y: configmap gone not found" \
        "$(runit miss-cmref-1 miss-cmref) $(j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["message"]')"
build both ssh-plain '[{"name":"Z","value":"v","valueFrom":{"secretKeyRef":{"name":"vals","key":"token"}}}]'
check_eq "value and valueFrom together" "False SpecEnvOnlyOneOfValueOrValueFromMustBeSpecified" \
        "$(j 'd["status"]["registered"]+" "+d["status"]["reason"]')"

# ---- no secret value anywhere ----
for br in plain-1 known-1 wronghost-1 refused-1 miss-secret-1; do
        api GET "$(ns_path dev buildruns "$br")/log"
        cat "$RESP" >>"$WORK/all-logs"
done
check "the logs have the runs' lines" grep -q '^\[step-append\]' "$WORK/all-logs"
check "the secret token is in no response" test "$(grep -c -- "$TOKENVAL" "$WORK/all-responses")" = 0
check "  in no BuildRun log" test "$(grep -c -- "$TOKENVAL" "$WORK/all-logs")" = 0
check "  nor in the daemon's log" test "$(grep -c -- "$TOKENVAL" "$SERVE_LOG")" = 0
check "the private key is in no response, log or daemon log" \
        test "$(cat "$WORK/all-responses" "$WORK/all-logs" "$SERVE_LOG" | grep -c -F -- "$KEYBODY")" = 0
check "no run left its work dir (and key file) behind" test -z "$(ls "$SERVE_DATA/runs")"

finish
