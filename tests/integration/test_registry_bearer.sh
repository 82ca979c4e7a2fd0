#!/usr/bin/env bash
# kiln against a token-auth (Bearer) registry: regproxy --auth bearer is the
# token server in front of a real docker-registry.  Anonymous pulls, pushes
# with credentials from a docker config.json and the scopes they ask for,
# a token that expires in the middle of a push, wrong credentials, and blob
# redirects to another host, which must not get the token.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"

start_plain_registry || exit 1
UP=$REG
# No credentials or registry settings from the host's files.
export DOCKER_CONFIG="$WORK/docker" XDG_RUNTIME_DIR="$WORK/run" XDG_CONFIG_HOME="$WORK/config"
unset REGISTRY_AUTH_FILE KILN_REGISTRIES_CONFIG
mkdir -p "$DOCKER_CONFIG" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
PASS='s3cret-Pa55-x9'
write_users_file "$WORK/users" "alice:$PASS"
start_proxy "$UP" --auth bearer --users "$WORK/users" --anonymous-pull 'public/.*' || exit 1
A=$PROXY
A_URL=$PROXY_URL
make_test_image "$WORK/img" 1 2 || exit 1
WANT=$IMG_MANIFEST_DIGEST

no_creds() { echo '{}' >"$DOCKER_CONFIG/config.json"; }
creds() { no_creds && write_docker_config "$DOCKER_CONFIG" "$A" alice "$1"; }

# registry_digest REPO:TAG: the manifest digest the registry itself holds.
registry_digest() {
        skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$UP/$1" 2>/dev/null
}

# requests [PATH_REGEX]: "METHOD STATUS AUTH QUERY" per request to $PROXY.
requests() {
        proxy_stats | python3 -c 'import json,re,sys
for r in json.load(sys.stdin)["requests"]:
    if re.search(sys.argv[1], r["path"]):
        print(r["method"], r["status"], r["auth"] or "-", r["query"])' "${1:-.}"
}

# token_scopes: the scope parameters of each /token request, one request a line.
token_scopes() {
        proxy_stats | python3 -c 'import json,sys,urllib.parse
for r in json.load(sys.stdin)["requests"]:
    if r["path"] == "/token":
        print(" ".join(urllib.parse.parse_qs(r["query"]).get("scope", [])))'
}

# ---- push with credentials from config.json ----
creds "$PASS"
proxy_reset
out=$("$KILN" --log-level debug push oci:"$WORK/img":latest "$A/public/app:v1" 2>"$WORK/push.err")
check_eq "push through the token server" "$WANT" "$out"
check_eq "the registry holds the digest kiln printed" "$WANT" "$(registry_digest public/app:v1)"
check_eq "tokens asked: pull (the tag HEAD), then pull,push" \
        "repository:public/app:pull
repository:public/app:pull,push" "$(token_scopes)"
check_eq "every token request carried Basic credentials" "basic" \
        "$(requests '^/token$' | cut -d' ' -f3 | sort -u)"
check_eq "every registry request but the ping carried a token" "bearer" \
        "$(requests '^/v2/.' | cut -d' ' -f3 | sort -u)"
check_eq "no token was refused (the scopes fit)" 0 "$(proxy_count '*' '^/v2/.' 401)"
check "the password is not in the debug output" fails grep -qF "$PASS" "$WORK/push.err"

# A copy to another repository mounts the layers with one token for both.
proxy_reset
out=$("$KILN" copy "$A/public/app:v1" "$A/team/app:v1" 2>/dev/null)
check_eq "copy within the registry" "$WANT" "$out"
check_eq "both layers mounted" 2 "$(proxy_count POST '/team/app/blobs/uploads/$' 201)"
check "the blob token asks push on the target and pull on the source" \
        grep -qx "repository:team/app:pull,push repository:public/app:pull" <<<"$(token_scopes)"

# ---- anonymous pull ----
no_creds
proxy_reset
out=$("$KILN" pull "$A/public/app:v1" oci:"$WORK/anon" 2>/dev/null)
check_eq "anonymous pull of a public repository" "$WANT" "$out"
check_eq "only anonymous tokens were issued" '""' \
        "$(proxy_stat tokens | python3 -c 'import json,sys; print(" ".join(sorted({json.dumps(t["user"]) for t in json.load(sys.stdin)})))')"
check_eq "no credentials went to the token server" "-" \
        "$(requests '^/token$' | cut -d' ' -f3 | sort -u)"
check_eq "the anonymous token asked pull only" "repository:public/app:pull" "$(token_scopes | sort -u)"
check_fails "anonymous pull outside --anonymous-pull: auth error naming the registry" \
        "^kiln: error: pull $A/team/app:v1: .*authentication refused by $A" \
        "$KILN" pull "$A/team/app:v1" oci:"$WORK/denied"

# ---- a token that expires during a push ----
# The first blob PUT is held for 2 s; every token is expired while it is
# held, so that PUT and the requests after it meet an expired token.
creds "$PASS"
proxy_reset
proxy_set_faults 'PUT /blobs/uploads/ slow:2 count=1'
"$KILN" --log-level debug push oci:"$WORK/img":latest "$A/public/expiry:v1" \
        >"$WORK/exp.out" 2>"$WORK/exp.err" &
kpid=$!
for ((i = 0; i < 100; i++)); do
        fired=$(curl -s "$A_URL/_proxy/faults" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["rules"][0]["fired"])')
        [ "$fired" = 1 ] && break
        sleep 0.05
done
proxy_expire_tokens
wait "$kpid"
check_eq "push across a token expiry completes" "$WANT" "$(cat "$WORK/exp.out")"
check_eq "the registry holds its digest" "$WANT" "$(registry_digest public/expiry:v1)"
check "the held upload was refused with 401 (the expiry took effect)" \
        test "$(proxy_count PUT /blobs/uploads/ 401)" -ge 1
check "kiln asked for a new push token" \
        test "$(token_scopes | grep -c 'pull,push')" -ge 2
check "the upload was restarted in a new session" grep -q "restarting the upload" "$WORK/exp.err"
proxy_set_faults ""

# ---- wrong credentials ----
BAD='Wr0ng-Pa55-q7'
creds "$BAD"
check_fails "wrong password: one-line auth error naming the registry" \
        "^kiln: error: push $A/public/app:v2: .*authentication refused by $A" \
        "$KILN" push oci:"$WORK/img":latest "$A/public/app:v2"
"$KILN" --log-level debug push oci:"$WORK/img":latest "$A/public/app:v2" \
        >"$WORK/bad.out" 2>"$WORK/bad.err"
"$KILN" --json --log-level debug push oci:"$WORK/img":latest "$A/public/app:v2" \
        >>"$WORK/bad.out" 2>>"$WORK/bad.err"
bad64=$(printf 'alice:%s' "$BAD" | base64)
check "the debug run did fail with an auth error" grep -q "authentication refused" "$WORK/bad.err"
check "the password is nowhere in stdout or stderr" \
        fails grep -qF -e "$BAD" -e "$bad64" "$WORK/bad.out" "$WORK/bad.err"
check_eq "the tag was not created" 404 "$(http_status -I \
        -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$UP/v2/public/app/manifests/v2")"
check_eq "(the same request finds the tag pushed before)" 200 "$(http_status -I \
        -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://$UP/v2/public/app/manifests/v1")"

# ---- blob redirects ----
# Proxy B, on another port, serves blobs without auth and records what it
# was sent; A answers blob GETs with a 307 to B.
start_proxy "$UP" || exit 1
B=$PROXY
B_URL=$PROXY_URL
PROXY=$A
PROXY_URL=$A_URL
creds "$PASS"
proxy_set_faults "GET /blobs/ redirect:http://$B"
proxy_reset
out=$("$KILN" pull "$A/team/app:v1" oci:"$WORK/redir" 2>/dev/null)
check_eq "pull following blob redirects to another host" "$WANT" "$out"
check "the blobs from the other host match their digests" \
        bash -c "cd '$WORK/redir/blobs/sha256' && sha256sum * | awk '{ if (\$1 != \$2) bad = 1 } END { exit bad || NR < 4 }'"
check_eq "A answered each blob GET (config, 2 layers) with 307, to a request with a token" \
        "3 307 bearer" "$(requests /blobs/ | cut -d' ' -f1-3 | sort | uniq -c | awk '{print $1, $3, $4}')"
check_eq "B got the 3 blob GETs without Authorization" "3 200 -" \
        "$(PROXY_URL=$B_URL requests /blobs/ | cut -d' ' -f1-3 | sort | uniq -c | awk '{print $1, $3, $4}')"
# A redirect to the same host keeps the token.
proxy_set_faults "GET /blobs/ redirect:http://$A count=1"
proxy_reset
out=$("$KILN" pull "$A/team/app:v1" oci:"$WORK/redir2" 2>/dev/null)
check_eq "pull following a redirect to the same host" "$WANT" "$out"
check_eq "the redirected GET went back to A with its token" "3 200 bearer|1 307 bearer" \
        "$(requests /blobs/ | cut -d' ' -f1-3 | sort | uniq -c | awk '{print $1, $3, $4}' | paste -sd'|')"

finish
