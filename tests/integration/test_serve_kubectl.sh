#!/usr/bin/env bash
# kiln serve with a real kubectl: discovery, `get` tables with Shipwright's
# printer columns, `apply` of YAML (create, then a merge patch), `get -w`
# until a BuildRun succeeds, -o json/yaml, `patch` (merge and json),
# `delete`, a wrong token; then shipwright.io/v1alpha1 objects written
# with curl and read back in both versions, one of them built.
#
# kubectl sends a kubeconfig's token only over TLS, so kiln serves HTTPS
# here (--tls-cert, a test CA) and curl trusts the CA through
# CURL_CA_BUNDLE.  KILN_KUBECTL names the kubectl to use (default: kubectl
# on PATH).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"
. "$(dirname "$0")/lib_registry.sh"

KUBECTL=${KILN_KUBECTL:-kubectl}
if ! command -v "$KUBECTL" >/dev/null; then
        fail "kubectl is not installed (scripts/install-deps installs kubernetes-client)"
        finish
fi

start_registry kubectl || exit 1
make_git_repo "$WORK/repo" || exit 1
make_test_ca || exit 1
export CURL_CA_BUNDLE="$CA_FILE"

# start_serve's way, over HTTPS: api, wait_done and the rest use SERVE_URL.
SERVE_PORT=$(free_port)
SERVE_URL="https://127.0.0.1:$SERVE_PORT"
SERVE_DATA="$WORK/serve-data"
SERVE_LOG="$WORK/serve.log"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
TOKEN=$(cat "$WORK/token")
"$KILN" serve --listen "127.0.0.1:$SERVE_PORT" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" \
        --data-dir "$SERVE_DATA" --token-file "$WORK/token" >>"$SERVE_LOG" 2>&1 &
T_PIDS+=($!)
wait_https "$SERVE_URL/healthz" || {
        tail -n 20 "$SERVE_LOG" >&2
        exit 1
}
KURL=$SERVE_URL

kubeconfig() { # FILE TOKEN
        cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kiln
  cluster:
    server: $KURL
    certificate-authority: $CA_FILE
users:
- name: kiln
  user:
    token: $2
contexts:
- name: kiln
  context:
    cluster: kiln
    user: kiln
    namespace: dev
current-context: kiln
EOF
}
kubeconfig "$WORK/kubeconfig" "$TOKEN"
kubeconfig "$WORK/kubeconfig.bad" "not-the-token-$RANDOM$RANDOM"
k() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" "$@"; }

# ---- discovery and names ----

out=$(k get clusterbuildstrategies 2>&1)
check "get clusterbuildstrategies lists kiln-append" grep -q '^kiln-append ' <<<"$out"
for name in cbs cbss clusterbuildstrategy builds build buildruns buildrun br brs \
        buildstrategies buildstrategy bs bss secrets; do
        k get "$name" >"$WORK/get.out" 2>&1 || fail "kubectl get $name: $(cat "$WORK/get.out")"
done
pass "kubectl get by plural, singular and short names"

# ---- apply a Build and a BuildRun written in YAML ----

cat >"$WORK/build.yaml" <<EOF
apiVersion: shipwright.io/v1beta1
kind: Build
metadata:
  name: hello
spec:
  source:
    type: Git
    git:
      url: file://$WORK/repo
    contextDir: app
  strategy:
    kind: ClusterBuildStrategy
    name: kiln-append
  paramValues:
    - name: entrypoint
      value: '["/workspace/bin/busybox", "cat", "/workspace/hello.txt"]'
  output:
    image: $REG/dev/hello:latest
EOF
cat >"$WORK/buildrun.yaml" <<EOF
apiVersion: shipwright.io/v1beta1
kind: BuildRun
metadata:
  name: hello-1
spec:
  build:
    name: hello
EOF
# kiln's /openapi/v2 has no schemas: kubectl's own validation passes.
check_eq "kubectl apply creates the Build" "build.shipwright.io/hello created" \
        "$(k apply -f "$WORK/build.yaml" 2>&1)"
api GET "$(ns_path dev builds hello)"
check "the Build carries kubectl's last-applied-configuration" \
        test -n "$(j 'd["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]')"

timeout 90 "$KUBECTL" --kubeconfig "$WORK/kubeconfig" --cache-dir "$WORK/kube-cache" \
        get buildruns -w >"$WORK/watch.out" 2>"$WORK/watch.err" &
watcher=$!
T_PIDS+=("$watcher")
sleep 1
check_eq "kubectl apply creates the BuildRun" "buildrun.shipwright.io/hello-1 created" \
        "$(k apply --validate=false -f "$WORK/buildrun.yaml" 2>&1)"
check_eq "the BuildRun succeeds" Succeeded "$(wait_done dev hello-1 60)"
for ((i = 0; i < 100; i++)); do
        grep -qE '^hello-1 +True +Succeeded' "$WORK/watch.out" && break
        sleep 0.1
done
kill "$watcher" 2>/dev/null
check "kubectl get buildruns -w shows the run reach True Succeeded" \
        grep -qE '^hello-1 +True +Succeeded' "$WORK/watch.out"
check "the watch showed it before it finished too" grep -qE '^hello-1 +Unknown ' "$WORK/watch.out"
check_eq "the watch's header has Shipwright's BuildRun columns" \
        "NAME SUCCEEDED REASON STARTTIME COMPLETIONTIME" "$(head -n 1 "$WORK/watch.out" | tr -s ' ')"
check "kubectl ran no error during the watch" test ! -s "$WORK/watch.err"

out=$(k get builds)
check_eq "kubectl get builds: the columns" \
        "NAME REGISTERED REASON BUILDSTRATEGYKIND BUILDSTRATEGYNAME CREATIONTIME" \
        "$(head -n 1 <<<"$out" | tr -s ' ')"
check_eq "kubectl get builds: Registered is True" "hello True Succeeded ClusterBuildStrategy kiln-append" \
        "$(sed -n 2p <<<"$out" | awk '{print $1, $2, $3, $4, $5}')"
out=$(k get br hello-1 --no-headers)
check_eq "kubectl get br NAME: True Succeeded" "hello-1 True Succeeded" "$(awk '{print $1, $2, $3}' <<<"$out")"

k get buildrun hello-1 -o json >"$WORK/br.json"
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["output"]["digest"])' "$WORK/br.json")
check_eq "-o json: the digest is skopeo's" \
        "$(skopeo inspect --tls-verify=false "docker://$REG/dev/hello:latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" \
        "$digest"
out=$(k get buildrun hello-1 -o yaml)
check "-o yaml: a v1beta1 object with the digest" \
        grep -q "digest: $digest" <<<"$out"
check "-o yaml: its apiVersion" grep -q '^apiVersion: shipwright.io/v1beta1' <<<"$out"
check_eq "-o jsonpath reads the commit" "$GIT_COMMIT" \
        "$(k get buildrun hello-1 -o 'jsonpath={.status.source.git.commitSha}')"

# ---- apply again after an edit: a merge patch ----

sed -i 's|/dev/hello:latest|/dev/hello:v2|' "$WORK/build.yaml"
check_eq "apply after an edit: configured" "build.shipwright.io/hello configured" \
        "$(k apply -f "$WORK/build.yaml" 2>&1)"
api GET "$(ns_path dev builds hello)"
check_eq "the edit is stored" "$REG/dev/hello:v2 2" "$(j 'd["spec"]["output"]["image"]+" "+str(d["metadata"]["generation"])')"
check "kubectl sent it as a PATCH" grep -q 'PATCH /apis/shipwright.io/v1beta1/namespaces/dev/builds/hello 200' "$SERVE_LOG"
check_eq "apply without an edit: unchanged" "build.shipwright.io/hello unchanged" \
        "$(k apply --validate=false -f "$WORK/build.yaml" 2>&1)"

# ---- patch, delete ----

check_eq "kubectl patch --type=merge" "build.shipwright.io/hello patched" \
        "$(k patch build hello --type=merge -p '{"spec":{"timeout":"5m"}}' 2>&1)"
check_eq "kubectl patch --type=json" "build.shipwright.io/hello patched" \
        "$(k patch build hello --type=json -p '[{"op":"add","path":"/metadata/labels","value":{"team":"a"}}]' 2>&1)"
api GET "$(ns_path dev builds hello)"
check_eq "both patches are stored" "5m a" "$(j 'd["spec"]["timeout"]+" "+d["metadata"]["labels"]["team"]')"
check "a json patch that fails its test is refused" \
        test -n "$(k patch build hello --type=json -p '[{"op":"test","path":"/spec/timeout","value":"1h"}]' 2>&1 >/dev/null | grep -i 'error')"
check_eq "kubectl delete buildrun" 'buildrun.shipwright.io "hello-1" deleted' "$(k delete buildrun hello-1 2>&1)"
api GET "$(ns_path dev buildruns hello-1)"
check_eq "the BuildRun is gone" 404 "$API_STATUS"
check_eq "kubectl delete -f" 'build.shipwright.io "hello" deleted' "$(k delete -f "$WORK/build.yaml" 2>&1)"
check "kubectl get of a deleted Build: NotFound" \
        grep -q 'NotFound' <<<"$(k get build hello 2>&1)"

# kubectl says "You must be logged in" on a 401 (1.20 adds the Status'
# message, "Unauthorized: ...", newer ones do not).
out=$("$KUBECTL" --kubeconfig "$WORK/kubeconfig.bad" --cache-dir "$WORK/kube-cache-bad" get builds 2>&1)
check_eq "kubectl with a wrong token fails" 1 "$?"
check "kubectl with a wrong token: Unauthorized" grep -q 'You must be logged in to the server' <<<"$out"
check "kiln answered it 401" grep -q 'GET /api 401' "$SERVE_LOG"

# ---- the Table kubectl asks for, as curl sees it ----

curl -s -o "$RESP" -H "Authorization: Bearer $TOKEN" \
        -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json' \
        "$SERVE_URL$SHP/clusterbuildstrategies"
check_eq "a Table: its kind, first column and row objects" "Table Name PartialObjectMetadata" \
        "$(j 'd["kind"]+" "+d["columnDefinitions"][0]["name"]+" "+d["rows"][0]["object"]["kind"]')"

# ---- shipwright.io/v1alpha1 ----

ALPHA=/apis/shipwright.io/v1alpha1
api GET /apis
check_eq "/apis lists both versions, v1beta1 preferred" "v1beta1,v1alpha1 v1beta1" \
        "$(j '",".join(v["version"] for v in d["groups"][0]["versions"])+" "+d["groups"][0]["preferredVersion"]["version"]')"
api GET "$ALPHA"
check "/apis/shipwright.io/v1alpha1 lists buildruns" test "$(j '"buildruns" in [r["name"] for r in d["resources"]]')" = True

b64() { printf '%s' "$1" | base64 -w0; }
api POST "/api/v1/namespaces/dev/secrets" '{"metadata":{"name":"git-creds"},"type":"kubernetes.io/basic-auth","stringData":{"username":"jane","password":"pw"}}'
api POST "/api/v1/namespaces/dev/secrets" "{\"metadata\":{\"name\":\"push-creds\"},\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"$(b64 '{"auths":{}}')\"}}"
check_eq "the Secrets for the v1alpha1 Build" 201 "$API_STATUS"

alpha_build='{"apiVersion":"shipwright.io/v1alpha1","kind":"Build","metadata":{"name":"alpha"},
 "spec":{"source":{"url":"file://'$WORK'/repo","contextDir":"app","credentials":{"name":"git-creds"}},
 "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},
 "paramValues":[{"name":"entrypoint","value":"[\"/workspace/bin/busybox\",\"cat\",\"/workspace/hello.txt\"]"}],
 "output":{"image":"'$REG'/dev/alpha:latest","credentials":{"name":"push-creds"}}}}'
api POST "$ALPHA/namespaces/dev/builds" "$alpha_build"
check_eq "POST a v1alpha1 Build: 201" 201 "$API_STATUS"
check_eq "the answer is v1alpha1, registered" "shipwright.io/v1alpha1 True" \
        "$(j 'd["apiVersion"]+" "+d["status"]["registered"]')"
api GET "$(ns_path dev builds alpha)"
check_eq "read as v1beta1: source.git, cloneSecret, contextDir, pushSecret" \
        "Git file://$WORK/repo git-creds app push-creds shipwright.io/v1beta1" \
        "$(j '" ".join([d["spec"]["source"]["type"],d["spec"]["source"]["git"]["url"],d["spec"]["source"]["git"]["cloneSecret"],d["spec"]["source"]["contextDir"],d["spec"]["output"]["pushSecret"],d["apiVersion"]])')"
api GET "$ALPHA/namespaces/dev/builds/alpha"
check_eq "read as v1alpha1: source.url, credentials" "file://$WORK/repo git-creds push-creds" \
        "$(j '" ".join([d["spec"]["source"]["url"],d["spec"]["source"]["credentials"]["name"],d["spec"]["output"]["credentials"]["name"]])')"
check_eq "read as v1alpha1: no v1beta1 fields" "False False" \
        "$(j 'str("git" in d["spec"]["source"])+" "+str("pushSecret" in d["spec"]["output"])')"
check_eq "kubectl reads builds.v1alpha1.shipwright.io" "shipwright.io/v1alpha1 file://$WORK/repo" \
        "$(k get builds.v1alpha1.shipwright.io alpha -o 'jsonpath={.apiVersion} {.spec.source.url}')"

api POST "$ALPHA/namespaces/dev/buildruns" '{"apiVersion":"shipwright.io/v1alpha1","kind":"BuildRun","metadata":{"name":"alpha-1"},"spec":{"buildRef":{"name":"alpha"},"serviceAccount":{"generate":true}}}'
check_eq "POST a v1alpha1 BuildRun with buildRef: 201" 201 "$API_STATUS"
check_eq "the v1alpha1 BuildRun succeeds" Succeeded "$(wait_done dev alpha-1 60)"
check_eq "as v1beta1: build.name and serviceAccount" "alpha .generate" \
        "$(j 'd["spec"]["build"]["name"]+" "+d["spec"]["serviceAccount"]')"
api GET "$ALPHA/namespaces/dev/buildruns/alpha-1"
check_eq "as v1alpha1: buildRef, serviceAccount.generate, sources[0]" \
        "alpha True default $GIT_COMMIT" \
        "$(j '" ".join([d["spec"]["buildRef"]["name"],str(d["spec"]["serviceAccount"]["generate"]),d["status"]["sources"][0]["name"],d["status"]["sources"][0]["git"]["commitSha"]])')"
check_eq "as v1alpha1: the digest is skopeo's" \
        "$(skopeo inspect --tls-verify=false "docker://$REG/dev/alpha:latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" \
        "$(j 'd["status"]["output"]["digest"]')"
api GET "$ALPHA/namespaces/dev/buildruns/alpha-1/status"
check_eq "the v1alpha1 status subresource: sources, failedAt absent" "shipwright.io/v1alpha1 default False" \
        "$(j '" ".join([d["apiVersion"],d["status"]["sources"][0]["name"],str("failedAt" in d["status"])])')"
api GET "$ALPHA/namespaces/dev/buildruns"
check_eq "a v1alpha1 list holds v1alpha1 items" "shipwright.io/v1alpha1 shipwright.io/v1alpha1 alpha" \
        "$(j 'd["apiVersion"]+" "+d["items"][0]["apiVersion"]+" "+d["items"][0]["spec"]["buildRef"]["name"]')"
curl -sN --max-time 2 -H "Authorization: Bearer $TOKEN" "$SERVE_URL$ALPHA/namespaces/dev/buildruns?watch=true" >"$WORK/alpha-watch.out"
check_eq "a v1alpha1 watch sends v1alpha1 objects" "shipwright.io/v1alpha1 default" \
        "$(head -n 1 "$WORK/alpha-watch.out" | python3 -c 'import json,sys; o=json.load(sys.stdin)["object"]; print(o["apiVersion"], o["status"]["sources"][0]["name"])')"

api PATCH "$ALPHA/namespaces/dev/builds/alpha" '{"spec":{"output":{"credentials":{"name":"other-creds"}}}}' application/merge-patch+json
check_eq "a v1alpha1 merge patch applies to the v1alpha1 form" "200 other-creds" "$API_STATUS $(j 'd["spec"]["output"]["credentials"]["name"]')"
api GET "$(ns_path dev builds alpha)"
check_eq "and is stored as pushSecret" "other-creds False SpecOutputSecretRefNotFound" \
        "$(j 'd["spec"]["output"]["pushSecret"]+" "+d["status"]["registered"]+" "+d["status"]["reason"]')"
api POST "$ALPHA/namespaces/dev/builds" '{"apiVersion":"shipwright.io/v1beta1","kind":"Build","metadata":{"name":"x"},"spec":{}}'
check_eq "a v1beta1 body on a v1alpha1 path: 400" "400 BadRequest" "$API_STATUS $(j 'd["reason"]')"
api POST "$ALPHA/namespaces/dev/builds" '{"apiVersion":"shipwright.io/v1alpha1","kind":"Build","metadata":{"name":"y"},"spec":{"source":{"url":5},"strategy":{"name":"kiln-append"},"output":{"image":"r/x"}}}'
check_eq "a v1alpha1 Build with a bad type: 422 naming the field" "422 True" \
        "$API_STATUS $(j 'str("url" in d["message"])')"

api POST "$ALPHA/clusterbuildstrategies" '{"apiVersion":"shipwright.io/v1alpha1","kind":"ClusterBuildStrategy","metadata":{"name":"alpha-steps"},
 "spec":{"buildSteps":[{"name":"build","image":"busybox","command":["/bin/true"],"ports":[{"containerPort":80}]}]}}'
check_eq "POST a v1alpha1 ClusterBuildStrategy with buildSteps: 201" "201 build" "$API_STATUS $(j 'd["spec"]["buildSteps"][0]["name"]')"
api GET "$SHP/clusterbuildstrategies/alpha-steps"
check_eq "read as v1beta1: steps, without the container-only fields" "build /bin/true False False" \
        "$(j '" ".join([d["spec"]["steps"][0]["name"],d["spec"]["steps"][0]["command"][0],str("buildSteps" in d["spec"]),str("ports" in d["spec"]["steps"][0])])')"
api GET "$ALPHA/namespaces/dev/secrets"
check_eq "Secrets are not served under v1alpha1" 404 "$API_STATUS"

finish
