#!/usr/bin/env bash
# kiln serve's listeners: HTTPS with a certificate from a test CA (curl
# trusts it with --cacert, refuses it without), a Unix socket beside it
# (mode 0600, removed at exit, a stale one taken over, a live one or a
# file refused), a bad certificate or key refused at start with one line;
# and the request log: one JSON line per request with the X-Request-Id
# the client got, and no token or query in it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"
. "$(dirname "$0")/lib_registry.sh"

make_test_ca >/dev/null 2>&1 || {
        fail "make a test CA with openssl"
        finish
}
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token"
TOKEN=$(cat "$WORK/token")
SOCK="$WORK/kiln.sock"
PORT=$(free_port)
URL="https://127.0.0.1:$PORT"
LOG="$WORK/serve.log"

serve() { # serve ARGS...: kiln serve in the background; sets PID
        "$KILN" --json serve --data-dir "$WORK/data" --token-file "$WORK/token" "$@" >>"$LOG" 2>&1 &
        PID=$!
        T_PIDS+=("$PID")
}
stop() {
        kill -TERM "$1" 2>/dev/null
        wait "$1" 2>/dev/null
}
wait_sock() {
        local i
        for ((i = 0; i < 100; i++)); do
                curl -s -o /dev/null --unix-socket "$1" http://kiln/healthz && return 0
                sleep 0.1
        done
        return 1
}
auth=(-H "Authorization: Bearer $TOKEN")

# ---- HTTPS and a Unix socket together ----
serve --listen "127.0.0.1:$PORT" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY" --unix "$SOCK"
check "kiln serve answers over HTTPS, verified by the test CA" wait_https "$URL/healthz"
code=$(curl -s -o "$WORK/v.json" -w '%{http_code}' --cacert "$CA_FILE" "${auth[@]}" "$URL/version")
check_eq "GET /version with the token over HTTPS: 200" 200 "$code"
check "... and it is JSON" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/v.json"
curl -s -o /dev/null "$URL/healthz"
check_eq "without --cacert curl refuses the certificate (exit 60)" 60 "$?"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")
check "plain HTTP on the HTTPS port gets no answer" test "$code" != 200
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA_FILE" "$URL/apis/shipwright.io/v1beta1/namespaces/a/builds")
check_eq "HTTPS without the token: 401" 401 "$code"

check "the Unix socket answers" wait_sock "$SOCK"
check_eq "the socket is mode 0600" 600 "$(stat -c %a "$SOCK")"
code=$(curl -s -o "$WORK/l.json" -w '%{http_code}' --unix-socket "$SOCK" "${auth[@]}" \
        "http://kiln/apis/shipwright.io/v1beta1/namespaces/a/builds")
check_eq "a list over the socket with the token: 200" 200 "$code"
check_eq "... a BuildList" BuildList "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kind"])' "$WORK/l.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" "http://kiln/apis/shipwright.io/v1beta1/namespaces/a/builds")
check_eq "the socket needs the token too: 401" 401 "$code"

# the request log
hdrs=$(curl -s -D - -o /dev/null --cacert "$CA_FILE" "${auth[@]}" \
        "$URL/apis/shipwright.io/v1beta1/namespaces/logs/buildruns?labelSelector=secret%3Dhunter2")
rid=$(tr -d '\r' <<<"$hdrs" | sed -n 's/^[Xx]-[Rr]equest-[Ii]d: //p')
check "the answer carries an X-Request-Id" test -n "$rid"
sleep 0.2
line=$(grep -F "\"request_id\":\"$rid\"" "$LOG")
check_eq "one log line has that request id" 1 "$(grep -c . <<<"$line")"
check_eq "it is JSON with method, path, code and a duration" "GET /apis/shipwright.io/v1beta1/namespaces/logs/buildruns 200 True" \
        "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["method"], d["path"], d["code"], float(d["duration_ms"]) >= 0)' "$line" 2>&1)"
check "the query (it may hold secrets) is not logged" bash -c "! grep -q hunter2 '$LOG'"
check "the token is never logged" bash -c "! grep -qF '$TOKEN' '$LOG'"
check "every log line is JSON" python3 -c '
import json,sys
for l in open(sys.argv[1]):
    json.loads(l)' "$LOG"
ids=$(curl -s -D - -o /dev/null --unix-socket "$SOCK" http://kiln/healthz | tr -d '\r' | sed -n 's/^[Xx]-[Rr]equest-[Ii]d: //p')
check "request ids differ between requests" test -n "$ids" -a "$ids" != "$rid"

# a second server on a live socket is refused
check_fails "a second kiln serve on a live socket: one-line error" "another server is listening" \
        "$KILN" --log-level error serve --data-dir "$WORK/data2" --token-file "$WORK/token" --unix "$SOCK"
check "... and the first one still answers there" wait_sock "$SOCK"

stop "$PID"
check "the socket is removed at exit" test ! -e "$SOCK"

# ---- a stale socket is taken over; --unix alone listens only there ----
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$SOCK"
check "a stale socket file is there" test -S "$SOCK"
serve --unix "$SOCK"
check "kiln serve takes a stale socket over" wait_sock "$SOCK"
check "with --unix alone it listens only there" \
        grep -qF "listening on unix:$SOCK, data" "$LOG"
stop "$PID"

# ---- refusals at start ----
echo "not a socket" >"$WORK/file"
check_fails "--unix on a regular file: one-line error" "exists and is not a socket" \
        "$KILN" --log-level error serve --data-dir "$WORK/data" --token-file "$WORK/token" --unix "$WORK/file"
check_eq "... and the file is left alone" "not a socket" "$(cat "$WORK/file")"
P2=$(free_port)
echo "garbage" >"$WORK/bad.crt"
check_fails "a certificate file that is not PEM: one-line error" "error: --tls-cert .*bad.crt.*not a PEM certificate" \
        "$KILN" --log-level error serve --listen "127.0.0.1:$P2" --data-dir "$WORK/data" --token-file "$WORK/token" \
        --tls-cert "$WORK/bad.crt" --tls-key "$TLS_KEY"
printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' >"$WORK/bad2.crt"
check_fails "a broken PEM certificate: one-line error naming both files" "error: --tls-cert .*bad2.crt.*--tls-key" \
        "$KILN" --log-level error serve --listen "127.0.0.1:$P2" --data-dir "$WORK/data" --token-file "$WORK/token" \
        --tls-cert "$WORK/bad2.crt" --tls-key "$TLS_KEY"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/other.key" \
        -out "$WORK/other.crt" -days 1 -subj /CN=other >/dev/null 2>&1
check_fails "a key that does not match the certificate: one-line error" "do not match" \
        "$KILN" --log-level error serve --listen "127.0.0.1:$P2" --data-dir "$WORK/data" --token-file "$WORK/token" \
        --tls-cert "$TLS_CERT" --tls-key "$WORK/other.key"
check_fails "a missing certificate file: one-line error" "error: --tls-cert: open .*nope.crt" \
        "$KILN" --log-level error serve --listen "127.0.0.1:$P2" --data-dir "$WORK/data" --token-file "$WORK/token" \
        --tls-cert "$WORK/nope.crt" --tls-key "$TLS_KEY"
"$KILN" serve --listen "127.0.0.1:$P2" --data-dir "$WORK/data" --token-file "$WORK/token" \
        --tls-cert "$TLS_CERT" >/dev/null 2>"$WORK/err"
check_eq "--tls-cert without --tls-key is a usage error (exit 2)" 2 "$?"
check "... that says they go together" grep -q "go together" "$WORK/err"
check "nothing was left listening on the refused port" bash -c "! curl -ks -o /dev/null https://127.0.0.1:$P2/healthz"

if [ -n "${KILN_SANITIZED:-}" ]; then
        check "no sanitizer report in the daemon's log" bash -c "! grep -qE 'Sanitizer|runtime error' '$LOG'"
fi
finish
