#!/usr/bin/env bash
# sanitizers: skip
# The whole path of a Go function through kiln serve, with curl alone: a
# kubernetes.io/ssh-auth clone secret for a repository behind a real sshd
# (known_hosts checked) and a dockerconfigjson push secret for a registry
# with htpasswd auth; a Build on kiln-buildpacks, whose step clones the
# source itself; a BuildRun watched to Succeeded; the digest against
# skopeo's, the commit; then the image pulled, unpacked, run under
# bubblewrap, and asked over HTTP: it answers the function's text.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"
. "$(dirname "$0")/lib_build.sh"
. "$(dirname "$0")/lib_serve.sh"
. "$(dirname "$0")/lib_sshd.sh"

PUSHPASS="push-$RANDOM$RANDOM$RANDOM"
start_htpasswd_registry pusher "$PUSHPASS" gofn || exit 1
write_docker_config "$WORK/docker" "$REG" pusher "$PUSHPASS"
export REGISTRY_AUTH_FILE=$DOCKER_CONFIG_FILE # skopeo's credentials
start_sshd || exit 1

mkdir -p "$WORK/gofn"
printf 'module example.com/fn\n\ngo 1.19\n' >"$WORK/gofn/go.mod"
cat >"$WORK/gofn/fn.go" <<'EOF'
package fn

import (
	"fmt"
	"net/http"
)

func Hello(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the go function") }
EOF
(cd "$WORK/gofn" && git init -q -b main && git add . && git -c user.name="Go Author" -c user.email=go@example.com commit -qm fn) || exit 1
COMMIT=$(git -C "$WORK/gofn" rev-parse HEAD)
git clone -q --bare "$WORK/gofn" "$WORK/gofn.git" || exit 1
start_serve || exit 1

key=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$SSH_KEY")
kh=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]+"\n"))' "$SSH_KNOWN_HOSTS")
api POST /api/v1/namespaces/fn/secrets '{"metadata":{"name":"git-ssh"},"type":"kubernetes.io/ssh-auth","stringData":{"ssh-privatekey":'"$key"',"known_hosts":'"$kh"'}}'
check_eq "create the ssh-auth clone Secret: 201" 201 "$API_STATUS"
api POST /api/v1/namespaces/fn/secrets '{"metadata":{"name":"push"},"type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"'"$(base64 -w0 "$DOCKER_CONFIG_FILE")"'"}}'
check_eq "create the dockerconfigjson push Secret: 201" 201 "$API_STATUS"

api POST "$(ns_path fn builds)" '{"metadata":{"name":"gofn"},"spec":{
 "source":{"type":"Git","git":{"url":"'"$(ssh_repo "$WORK/gofn.git")"'","cloneSecret":"git-ssh"}},
 "strategy":{"kind":"ClusterBuildStrategy","name":"kiln-buildpacks"},
 "paramValues":[{"name":"func-name","value":"Hello"}],
 "output":{"image":"'"$REG"'/fn/gofn:latest","pushSecret":"push"}}}'
check_eq "create the Build: 201, registered" "201 True" "$API_STATUS $(j 'd["status"]["registered"]')"
rv=$(j 'd["metadata"]["resourceVersion"]')

curl -sN --max-time 600 -H "Authorization: Bearer $TOKEN" \
        "$SERVE_URL$(ns_path fn buildruns)?watch=true&resourceVersion=$rv" >"$WORK/watch.out" &
watcher=$!
api POST "$(ns_path fn buildruns)" '{"metadata":{"name":"gofn-1"},"spec":{"build":{"name":"gofn"}}}'
check_eq "create the BuildRun: 201" 201 "$API_STATUS"

# Follow the watch stream until the run's Succeeded condition is final.
final=""
for ((i = 0; i < 6000; i++)); do
        final=$(python3 -c 'import json,sys
r=""
for l in open(sys.argv[1]):
    try: e=json.loads(l)
    except Exception: continue
    o=e["object"]
    if o["metadata"]["name"]!="gofn-1": continue
    for c in (o.get("status") or {}).get("conditions") or []:
        if c["type"]=="Succeeded" and c["status"]!="Unknown": r=c["status"]+" "+c["reason"]
print(r)' "$WORK/watch.out")
        [ -n "$final" ] && break
        kill -0 "$watcher" 2>/dev/null || break
        sleep 0.1
done
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
check_eq "the watch sees the BuildRun succeed" "True Succeeded" "$final"
api GET "$(ns_path fn buildruns gofn-1)"
if [ "$final" != "True Succeeded" ]; then
        j 'd["status"]' | sed 's/^/    /'
        api GET "$(ns_path fn buildruns gofn-1)/log"
        tail -n 20 "$RESP" | sed 's/^/    /'
        api GET "$(ns_path fn buildruns gofn-1)"
fi
digest=$(j 'd["status"]["output"]["digest"]')
check_eq "status.output.digest is skopeo's digest" \
        "$(skopeo inspect --tls-verify=false "docker://$REG/fn/gofn:latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')" "$digest"
check_eq "status.source.git.commitSha is the commit" "$COMMIT" "$(j 'd["status"]["source"]["git"]["commitSha"]')"

check "pull and unpack the image" pull_unpack "$REG/fn/gofn:latest" img
if serve_image img; then
        check_eq "the function answers over HTTP" "hello from the go function" \
                "$(curl -s "http://127.0.0.1:$PORT_img/")"
else
        fail "the image does not start"
fi

api GET "$(ns_path fn buildruns gofn-1)/log"
check "no secret in the run's log" test "$(grep -c -e "$PUSHPASS" -e "$(sed -n 2p "$SSH_KEY")" "$RESP")" = 0
check "no secret in any response" test "$(grep -c -F -e "$PUSHPASS" -e "$(sed -n 2p "$SSH_KEY")" "$WORK/all-responses")" = 0

finish
