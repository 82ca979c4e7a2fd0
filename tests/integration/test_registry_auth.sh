#!/usr/bin/env bash
# kiln against a TLS registry (private CA), an htpasswd registry (basic
# auth from a docker config.json), a registry that is down, and a registry
# that serves corrupt blobs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_regimg.sh"

make_umoci_image "$WORK/src" v1 1 || { fail "umoci image"; finish; }
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$WORK/src/index.json")

# ---- TLS with a private CA ----
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kiln-test-ca \
        -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$WORK/srv.key" \
        -out "$WORK/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/srv.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
        -days 2 -extfile "$WORK/ext" -out "$WORK/srv.pem" 2>/dev/null
start_registry tls "  tls:" "    certificate: $WORK/srv.pem" "    key: $WORK/srv.key" || exit 1
TLS=$REG
out=$("$KILN" push --registry-ca "$TLS=$WORK/ca.pem" oci:"$WORK/src":v1 "$TLS/app:v1" 2>/dev/null)
check_eq "push over TLS with --registry-ca" "$want" "$out"
check_fails "without the CA: a clear error" "certificate of $TLS not trusted.*--registry-ca" \
        "$KILN" digest "$TLS/app:v1"
check_eq "--insecure-registry skips verification" "$want" \
        "$("$KILN" digest --insecure-registry "$TLS" "$TLS/app:v1")"
printf '{"registries":{"%s":{"ca":"%s"}}}' "$TLS" "$WORK/ca.pem" >"$WORK/registries.json"
check_eq "the registries file gives the CA" "$want" \
        "$(KILN_REGISTRIES_CONFIG="$WORK/registries.json" "$KILN" digest "$TLS/app:v1")"

# ---- basic auth (htpasswd) with credentials from config.json ----
htpasswd -Bbc "$WORK/htpasswd" kiln 's3cr3t-Pa55' >/dev/null 2>&1
start_registry auth "auth:" "  htpasswd:" "    realm: kiln-test" "    path: $WORK/htpasswd" || exit 1
AUTH=$REG
mkdir -p "$WORK/docker"
export DOCKER_CONFIG="$WORK/docker"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$AUTH" "$(printf 'kiln:s3cr3t-Pa55' | base64)" \
        >"$WORK/docker/config.json"
out=$("$KILN" --log-level debug push oci:"$WORK/src":v1 "$AUTH/app:v1" 2>"$WORK/auth.err")
check_eq "push with basic auth from config.json" "$want" "$out"
check_eq "skopeo with the same credentials sees it" "$want" \
        "$(skopeo inspect --tls-verify=false --creds 'kiln:s3cr3t-Pa55' --format '{{.Digest}}' "docker://$AUTH/app:v1")"
check "no secret in debug output" bash -c "! grep -q 's3cr3t' '$WORK/auth.err'"
printf '{"auths":{"http://%s/v2/":{"username":"kiln","password":"wr0ng-Pa55"}}}' "$AUTH" \
        >"$WORK/docker/config.json"
check_fails "wrong password: auth error naming the registry" \
        "^kiln: error: push $AUTH/app:v2: .*authentication refused by $AUTH \\(401" \
        "$KILN" push oci:"$WORK/src":v1 "$AUTH/app:v2"
"$KILN" --json --log-level debug push oci:"$WORK/src":v1 "$AUTH/app:v2" >"$WORK/j.out" 2>"$WORK/j.err"
check "the password appears nowhere" bash -c "! grep -q 'wr0ng' '$WORK/j.out' '$WORK/j.err'"
check "--json reports an auth error" grep -q '"code":"auth"' "$WORK/j.out"
rm "$WORK/docker/config.json"
check_fails "anonymous: auth error" "authentication refused by $AUTH" \
        "$KILN" digest "$AUTH/app:v1"
unset DOCKER_CONFIG

# ---- a registry that stays down ----
port=$(free_port)
start=$(date +%s)
check_fails "dead registry: network error naming it" "cannot reach 127.0.0.1:$port" \
        "$KILN" push --registry-timeout 3s oci:"$WORK/src":v1 "127.0.0.1:$port/app:v1"
check "dead registry fails within the timeout" test $(($(date +%s) - start)) -le 10

# ---- a registry serving a corrupt blob ----
start_registry plain || exit 1
"$KILN" push oci:"$WORK/src":v1 "$REG/app:v1" >/dev/null 2>&1
pport=$(free_port)
python3 - "$REG" "$pport" >"$WORK/proxy.log" 2>&1 <<'PY' &
import http.server, sys, urllib.request
up, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def relay(self, body_ok=True):
        req = urllib.request.Request("http://" + up + self.path, method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            r = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            r = e
        data = r.read() if self.command != "HEAD" else b""
        if "/blobs/sha256:" in self.path and self.command == "GET" and len(data) > 1000:
            data = bytearray(data); data[500] ^= 0xff; data = bytes(data)
        self.send_response(r.status if hasattr(r, "status") else r.code)
        for k, v in r.headers.items():
            if k.lower() not in ("transfer-encoding", "connection"):
                self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_HEAD = relay
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
T_PIDS+=($!)
wait_http "http://127.0.0.1:$pport/v2/" 10
check_fails "corrupt blob: digest mismatch" "digest" \
        "$KILN" pull "127.0.0.1:$pport/app:v1" oci:"$WORK/corrupt"
check "no blob file is kept" bash -c "[ \$(ls '$WORK/corrupt/blobs/sha256' | wc -l) -eq 0 ]"

finish
