#!/usr/bin/env bash
# Self-test of the registry test infrastructure (lib_registry.sh and
# tests/helpers/regproxy.py), driven by skopeo and curl only.
# sanitizers: skip
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"

# No credentials from the host's auth files.  (Not through the
# REGISTRY_AUTH_FILE variable: docker-registry reads REGISTRY_* variables as
# configuration.)
echo '{}' >"$WORK/empty-auth.json"
MANIFEST_ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"
SK=(skopeo copy -q --retry-times 0 --authfile "$WORK/empty-auth.json")
# c/image's blob-info cache remembers blobs across runs: a fresh random
# image keeps each run's pushes real uploads.
make_test_image "$WORK/img" 3 3
check "make_test_image writes a layout skopeo reads" \
        skopeo inspect --raw "oci:$WORK/img:latest" >/dev/null
check "make_test_image sets digests and sizes" \
        test -n "$IMG_MANIFEST_DIGEST" -a "$IMG_BLOB_BYTES" -gt 3000000
check "umoci unpacks it (diff_ids match)" \
        umoci unpack --rootless --image "$WORK/img:latest" "$WORK/unpacked"
SRC="oci:$WORK/img:latest"
LAYER0=${IMG_LAYER_DIGESTS%% *}

# (a) plain registry
start_plain_registry
PLAIN=$REG
check "push to the plain registry" \
        "${SK[@]}" --dest-tls-verify=false "$SRC" "docker://$PLAIN/test/plain:latest"
check_eq "manifest digest kept" "$IMG_MANIFEST_DIGEST" \
        "$(http_header Docker-Content-Digest -I -H "$MANIFEST_ACCEPT" \
                "http://$PLAIN/v2/test/plain/manifests/latest")"

# (b) through the counting proxy
start_proxy "$PLAIN"
check "push through the proxy" \
        "${SK[@]}" --dest-tls-verify=false "$SRC" "docker://$PROXY/test/proxied:latest"
check_eq "upload bytes = layers + config" "$IMG_BLOB_BYTES" "$(proxy_stat upload_body_bytes)"
check_eq "one blob upload started per blob" 4 "$(proxy_count POST '/blobs/uploads/$' 202)"
check_eq "one manifest PUT, 201" 1 "$(proxy_count PUT '/manifests/latest$' 201)"
check_eq "stats file matches /_proxy/stats" "$(proxy_stats)" "$(cat "$PROXY_STATS")"
check_eq "total = sum by method" "$(proxy_stat total)" \
        "$(proxy_stat by_method | python3 -c 'import json,sys; print(sum(json.load(sys.stdin).values()))')"
loc=$(http_header Location -X POST "http://$PROXY/v2/test/proxied/blobs/uploads/")
check "absolute upstream Location rewritten to the proxy" \
        grep -q "^http://$PROXY/v2/test/proxied/blobs/uploads/." <<<"$loc"
check "pull back through the proxy" \
        "${SK[@]}" --src-tls-verify=false "docker://$PROXY/test/proxied:latest" "oci:$WORK/pulled:latest"
proxy_reset
check_eq "reset zeroes the stats" "0 0" "$(proxy_stat total) $(proxy_stat request_body_bytes)"
curl -s -o /dev/null -o /dev/null "http://$PROXY/v2/" "http://$PROXY/v2/test/proxied/tags/list"
check_eq "keep-alive: two requests, one connection" "2 1" \
        "$(proxy_stat total) $(proxy_stat connections)"

# (c) TLS registry
start_tls_registry
TLS_REG=$REG
check "push over TLS with --dest-cert-dir" \
        "${SK[@]}" --dest-cert-dir "$CERT_DIR" "$SRC" "docker://$TLS_REG/test/tls:latest"
check_fails "push over TLS without the CA fails" 'x509|certificate' \
        "${SK[@]}" "$SRC" "docker://$TLS_REG/test/tls2:latest"
start_proxy "https://$TLS_REG" --upstream-ca "$CA_FILE" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY"
check "push through a TLS proxy to the TLS registry" \
        "${SK[@]}" --dest-cert-dir "$CERT_DIR" "$SRC" "docker://$PROXY/test/tls3:latest"
check_eq "TLS proxy: upload bytes counted" "$IMG_BLOB_BYTES" "$(proxy_stat upload_body_bytes)"
check "TLS proxy: Location rewritten to https://$PROXY" grep -q "^https://$PROXY/v2/" \
        <<<"$(http_header Location --cacert "$CA_FILE" -X POST "$PROXY_URL/v2/test/tls3/blobs/uploads/")"

# (d) htpasswd registry
start_htpasswd_registry alice 's3cret pass'
HT_REG=$REG
check "push with --dest-creds" \
        "${SK[@]}" --dest-tls-verify=false --dest-creds "$REG_USER:$REG_PASS" \
        "$SRC" "docker://$HT_REG/test/ht:latest"
check_fails "push with wrong creds fails" 'unauthorized|authentication required' \
        "${SK[@]}" --dest-tls-verify=false --dest-creds alice:wrong \
        "$SRC" "docker://$HT_REG/test/ht2:latest"
write_docker_config "$WORK/docker" "$HT_REG" "$REG_USER" "$REG_PASS"
check "push with write_docker_config's config.json" \
        "${SK[@]}" --dest-tls-verify=false --authfile "$DOCKER_CONFIG_FILE" \
        "$SRC" "docker://$HT_REG/test/ht3:latest"

# Basic auth at the proxy
write_users_file "$WORK/users" 'alice:s3cret' 'reader:rpass:pull'
start_proxy "$PLAIN" --auth basic --users "$WORK/users"
check_eq "basic proxy: challenge" 'Basic realm="kiln-test"' \
        "$(http_header WWW-Authenticate "http://$PROXY/v2/")"
check_eq "basic proxy: wrong password refused" 401 "$(http_status -u alice:x "http://$PROXY/v2/")"
check "basic proxy: push with creds" \
        "${SK[@]}" --dest-tls-verify=false --dest-creds alice:s3cret \
        "$SRC" "docker://$PROXY/test/basic:latest"

# (e) bearer token front
start_proxy "$PLAIN" --auth bearer --users "$WORK/users"
check_eq "/v2/ challenge: realm, service, no scope" \
        "Bearer realm=\"http://$PROXY/token\",service=\"kiln-test\"" \
        "$(http_header WWW-Authenticate "http://$PROXY/v2/")"
check_eq "blob HEAD challenge asks pull" \
        "Bearer realm=\"http://$PROXY/token\",service=\"kiln-test\",scope=\"repository:test/b:pull\"" \
        "$(http_header WWW-Authenticate -I "http://$PROXY/v2/test/b/blobs/sha256:00")"
check "anonymous push is refused" \
        fails "${SK[@]}" --dest-tls-verify=false "$SRC" "docker://$PROXY/test/bearer:latest"
check "push with a wrong password is refused" \
        fails "${SK[@]}" --dest-tls-verify=false --dest-creds alice:nope \
        "$SRC" "docker://$PROXY/test/bearer:latest"
proxy_reset
check "push with creds through the bearer proxy" \
        "${SK[@]}" --dest-tls-verify=false --dest-creds alice:s3cret \
        "$SRC" "docker://$PROXY/test/bearer:latest"
check_eq "a push token was issued to alice" 1 "$(proxy_stat tokens | python3 -c 'import json,sys
print(sum(1 for t in json.load(sys.stdin) if t["user"]=="alice" and "repository:test/bearer:pull,push" in t["scope"]))')"
check "the registry never saw a 401 (all challenges are the proxy's)" \
        test "$(proxy_stat challenges)" -eq "$(proxy_count '*' . 401)"
check_eq "the upload passed the proxy" "$IMG_BLOB_BYTES" "$(proxy_stat upload_body_bytes)"
check "anonymous pull through the bearer proxy" \
        "${SK[@]}" --src-tls-verify=false "docker://$PROXY/test/bearer:latest" "oci:$WORK/anon:latest"
check "an anonymous token was issued" \
        grep -q '"user": ""' <<<"$(proxy_stat tokens)"
tok=$(curl -s -u reader:rpass "http://$PROXY/token?service=kiln-test&scope=repository:test/bearer:pull,push" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
check_eq "pull-only user: push gets insufficient_scope" \
        "Bearer realm=\"http://$PROXY/token\",service=\"kiln-test\",scope=\"repository:test/bearer:pull,push\",error=\"insufficient_scope\"" \
        "$(http_header WWW-Authenticate -X POST -H "Authorization: Bearer $tok" "http://$PROXY/v2/test/bearer/blobs/uploads/")"
check_eq "pull-only user: pull works" 200 \
        "$(http_status -I -H "Authorization: Bearer $tok" -H "$MANIFEST_ACCEPT" "http://$PROXY/v2/test/bearer/manifests/latest")"
proxy_expire_tokens
check "expired token gets invalid_token" \
        grep -q 'error="invalid_token"' <<<"$(http_header WWW-Authenticate -I -H "Authorization: Bearer $tok" \
                "http://$PROXY/v2/test/bearer/manifests/latest")"
oauth=$(curl -s -d grant_type=password -d username=alice -d password=s3cret -d service=kiln-test \
        -d client_id=kiln -d 'scope=repository:test/bearer:pull' "http://$PROXY/token")
refresh=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["refresh_token"])' "$oauth")
check "OAuth2 refresh_token grant" grep -q '"access_token"' <<<"$(curl -s -d grant_type=refresh_token \
        -d "refresh_token=$refresh" -d service=kiln-test -d 'scope=repository:test/bearer:pull' "http://$PROXY/token")"
check "the log shows no password or token" \
        fails grep -qE "s3cret|rpass|$tok|$refresh" "$PROXY_LOG"
start_proxy "$PLAIN" --auth bearer --users "$WORK/users" --token-ttl 2
tok=$(curl -s "http://$PROXY/token?service=kiln-test&scope=repository:test/bearer:pull" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
check_eq "short-lived token works at first" 200 \
        "$(http_status -I -H "Authorization: Bearer $tok" -H "$MANIFEST_ACCEPT" "http://$PROXY/v2/test/bearer/manifests/latest")"
sleep 2.1
check_eq "then expires (--token-ttl 2)" 401 \
        "$(http_status -I -H "Authorization: Bearer $tok" -H "$MANIFEST_ACCEPT" "http://$PROXY/v2/test/bearer/manifests/latest")"

# (f) fault injection
make_test_image "$WORK/img2" 1 2
start_proxy "$PLAIN" --faults 'PATCH /blobs/uploads/ status:503 count=2'
ok=1
for _ in 1 2 3; do
        "${SK[@]}" --dest-tls-verify=false "oci:$WORK/img2:latest" \
                "docker://$PROXY/test/faulty:latest" >/dev/null 2>&1 && { ok=0; break; }
done
check "push succeeds once the faults are spent" test "$ok" -eq 0
check_eq "two faults fired" 2 "$(proxy_stat faults_fired)"
check_eq "two 503s answered to PATCH" 2 "$(proxy_count PATCH /blobs/uploads/ 503)"
check_eq "the rule shows fired=2" 2 "$(curl -s "$PROXY_URL/_proxy/faults" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rules"][0]["fired"])')"
proxy_set_faults 'GET ^/v2/$ status:429:retry-after=1 count=1; GET ^/v2/$ reset count=1; GET ^/v2/$ slow:0.5 count=1'
check_eq "status:429 with Retry-After" "1" "$(http_header Retry-After "http://$PROXY/v2/")"
check_eq "reset: no answer" 000 "$(http_status "http://$PROXY/v2/")"
start_s=$(date +%s%N)
check_eq "slow: answers" 200 "$(http_status "http://$PROXY/v2/")"
check "slow: after the delay" test $(($(date +%s%N) - start_s)) -ge 500000000
blob="http://$PROXY/v2/test/plain/blobs/$LAYER0"
proxy_set_faults '[{"method":"GET","path":"/blobs/","action":"truncate","count":1},
        {"method":"GET","path":"/blobs/","action":"wrong-blob","count":1}]'
check_eq "truncate: curl sees a short body (exit 18)" 18 "$(curl -s -o /dev/null "$blob"; echo $?)"
curl -s -o "$WORK/wrong" "$blob"
curl -s -o "$WORK/right" "$blob"
check_eq "wrong-blob: same length" "$(stat -c %s "$WORK/right")" "$(stat -c %s "$WORK/wrong")"
check "wrong-blob: other bytes" fails cmp -s "$WORK/right" "$WORK/wrong"
check_eq "the good copy has the right digest" "$LAYER0" \
        "sha256:$(sha256sum <"$WORK/right" | cut -d' ' -f1)"
proxy_set_faults "GET /blobs/ redirect:http://$PLAIN count=2"
proxy_reset
check_eq "redirect: Location is the base plus the request target" \
        "http://$PLAIN/v2/test/plain/blobs/$LAYER0?x=1" "$(http_header Location "$blob?x=1")"
check_eq "redirect: curl -L gets the blob from the other host" "$LAYER0" \
        "sha256:$(curl -sL "$blob" | sha256sum | cut -d' ' -f1)"
check_eq "redirect: both answered 307, none forwarded" "2 0" \
        "$(proxy_count GET /blobs/ 307) $(proxy_count GET /blobs/ 200)"
check "redirect: a spec without a URL base is refused" \
        fails proxy_set_faults "GET /blobs/ redirect:nowhere"
proxy_set_faults ""
proxy_reset
curl -s -o /dev/null -H "Authorization: Bearer not-a-secret" "http://$PROXY/v2/"
curl -s -o /dev/null "http://$PROXY/v2/"
check_eq "stats record the Authorization scheme, not its value" '"bearer" null' \
        "$(proxy_stat requests | python3 -c 'import json,sys
print(" ".join(json.dumps(r["auth"]) for r in json.load(sys.stdin)))')"
check "stats never hold the credentials" fails grep -q not-a-secret "$PROXY_STATS"
seq_of() {
        local out=""
        for _ in 1 2 3 4 5 6 7 8 9 10; do out+="$(http_status "http://$PROXY/v2/") "; done
        echo "$out"
}
proxy_set_faults '{"seed":3,"rules":[{"method":"GET","path":"^/v2/$","action":"status:503","prob":0.5}]}'
first=$(seq_of)
proxy_set_faults '{"seed":3,"rules":[{"method":"GET","path":"^/v2/$","action":"status:503","prob":0.5}]}'
check_eq "prob with a seed repeats ($first)" "$first" "$(seq_of)"
check "prob: some pass, some fail" grep -q '200.*503\|503.*200' <<<"$first"

# (g) corrupt blob bytes: the client's digest check catches them
proxy_set_faults 'GET /blobs/sha256: corrupt'
proxy_reset
check_fails "corrupt blob makes skopeo copy fail" 'Digest did not match' \
        "${SK[@]}" --src-tls-verify=false "docker://$PROXY/test/plain:latest" "oci:$WORK/corrupt:latest"
check "every blob GET was corrupted, and counted" \
        test "$(proxy_stat faults_fired)" -ge 1 -a "$(proxy_stat faults_fired)" -eq "$(proxy_count GET /blobs/)"

finish
