#!/usr/bin/env bash
# kiln serve's /metrics and its CloudEvents sink: after a Succeeded and a
# Failed kiln-append BuildRun (a revision that does not exist) the counters,
# the duration histogram and the HTTP counters say so, in a page a strict
# parser of the Prometheus text format accepts; a sink (a python3 HTTP
# server that records what it gets, and answers the first POST with 503)
# receives one CloudEvent per BuildRun with the right ce-* headers and the
# BuildRun as body; a sink that is down does not stop builds and its
# failure is logged in one line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"

start_registry metrics || exit 1
make_git_repo "$WORK/repo" || exit 1

SINK_PORT=$(free_port)
cat >"$WORK/sink.py" <<'EOF'
import http.server, json, sys
port, out = int(sys.argv[1]), sys.argv[2]
seen = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen += 1
        code = 503 if seen == 1 else 202
        rec = {"path": self.path, "code": code, "body": body.decode(),
               "headers": {k.lower(): v for k, v in self.headers.items()}}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
python3 "$WORK/sink.py" "$SINK_PORT" "$WORK/sink.jsonl" &
SINK_PID=$!
T_PIDS+=("$SINK_PID")
start_serve --events-sink "http://127.0.0.1:$SINK_PORT/events" || exit 1

metrics() { # the page in $WORK/metrics; the status in API_STATUS
        API_STATUS=$(curl -s -o "$WORK/metrics" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$SERVE_URL/metrics")
}
# value NAME{LABELS}: the sample's value ("" when absent)
value() {
        awk -v k="$1" '$1 == k { print $2 }' "$WORK/metrics"
}

metrics
check_eq "GET /metrics with the token: 200" 200 "$API_STATUS"
check "its Content-Type is the text format 0.0.4" bash -c \
        "curl -s -o /dev/null -D - -H 'Authorization: Bearer $TOKEN' '$SERVE_URL/metrics' | tr -d '\r' | grep -qi '^content-type: text/plain; version=0.0.4'"
noauth_api GET /metrics
check_eq "GET /metrics without the token: 401" 401 "$API_STATUS"
get0=$(value 'kiln_http_requests_total{code="200",method="GET"}')
check "the first page counts the GETs before it" test "${get0:-0}" -ge 1

cbs='"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"}'
api POST "$(ns_path m builds)" '{"metadata":{"name":"good"},"spec":{"source":{"type":"Git","git":{"url":"file://'$WORK'/repo"},"contextDir":"app"},'"$cbs"',"output":{"image":"'$REG'/m/good:1"}}}'
check_eq "a Build from the test repository: 201" 201 "$API_STATUS"
api POST "$(ns_path m builds)" '{"metadata":{"name":"bad"},"spec":{"source":{"type":"Git","git":{"url":"file://'$WORK'/repo","revision":"no-such-branch"},"contextDir":"app"},'"$cbs"',"output":{"image":"'$REG'/m/bad:1"}}}'
check_eq "a Build on a revision that does not exist: 201" 201 "$API_STATUS"

api POST "$(ns_path m buildruns)" '{"metadata":{"name":"run-good"},"spec":{"build":{"name":"good"}}}'
check_eq "the good BuildRun ends Succeeded" Succeeded "$(wait_done m run-good 60)"
good_digest=$(j 'd["status"]["output"]["digest"]')
good_uid=$(j 'd["metadata"]["uid"]')
api POST "$(ns_path m buildruns)" '{"metadata":{"name":"run-bad"},"spec":{"build":{"name":"bad"}}}'
bad_reason=$(wait_done m run-bad 60)
check_eq "the bad BuildRun ends Failed" "False Failed" \
        "$(j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["status"]') $bad_reason"
noauth_api GET "$(ns_path m buildruns)"

# the watcher sees the last status a moment after it is stored
for _ in $(seq 50); do
        metrics
        [ "$(value kiln_buildrun_duration_seconds_count)" = 2 ] && break
        sleep 0.1
done
check_eq "kiln_buildruns_total{result=\"Succeeded\"} is 1" 1 "$(value 'kiln_buildruns_total{result="Succeeded"}')"
check_eq "kiln_buildruns_total{result=\"Failed\"} is 1" 1 "$(value 'kiln_buildruns_total{result="Failed"}')"
check_eq "no other result is counted" 2 "$(grep -c '^kiln_buildruns_total{' "$WORK/metrics")"
check_eq "the duration histogram counts both" 2 "$(value kiln_buildrun_duration_seconds_count)"
check_eq "... its +Inf bucket too" 2 "$(value 'kiln_buildrun_duration_seconds_bucket{le="+Inf"}')"
check "... and its sum is above 0" python3 -c 'import sys; assert float(sys.argv[1]) > 0' "$(value kiln_buildrun_duration_seconds_sum)"
check_eq "nothing queued" 0 "$(value kiln_buildruns_queued)"
check_eq "nothing running" 0 "$(value kiln_buildruns_running)"
get1=$(value 'kiln_http_requests_total{code="200",method="GET"}')
check "GET 200 went up with the polling ($get0 -> $get1)" test "${get1:-0}" -gt $((get0 + 2))
check_eq "POST 201 counts the two Builds and two BuildRuns" 4 "$(value 'kiln_http_requests_total{code="201",method="POST"}')"
check_eq "GET 401 counts the two requests without a token" 2 "$(value 'kiln_http_requests_total{code="401",method="GET"}')"
check "process metrics are there" test -n "$(value process_resident_memory_bytes)" -a -n "$(value process_start_time_seconds)"
check "the page is valid text format 0.0.4 (HELP and TYPE for every family, cumulative buckets)" python3 - "$WORK/metrics" <<'EOF'
import re, sys
types, helps, fams = {}, set(), {}
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? ([-+0-9.eE]+|[+-]Inf|NaN)$')
for line in open(sys.argv[1]).read().splitlines():
    if line.startswith("# HELP "):
        helps.add(line.split()[2]); continue
    if line.startswith("# TYPE "):
        _, _, n, t = line.split(); assert t in ("counter", "gauge", "histogram"), line
        assert n not in types, "TYPE twice: " + n; types[n] = t; continue
    m = sample.match(line); assert m, "bad line: " + line
    name = m.group(1); base = re.sub(r'_(bucket|sum|count)$', '', name)
    fam = name if name in types else base
    assert fam in types and fam in helps, "no TYPE/HELP before " + line
    fams.setdefault(fam, []).append((name, m.group(3) or "", float(m.group(5))))
b = [v for n, l, v in fams["kiln_buildrun_duration_seconds"] if n.endswith("_bucket")]
assert b == sorted(b), "buckets not cumulative"
EOF

# ---- the sink ----
for _ in $(seq 100); do
        [ "$(grep -c '"code": 202' "$WORK/sink.jsonl" 2>/dev/null)" -ge 2 ] && break
        sleep 0.1
done
check_eq "the sink accepted two events" 2 "$(grep -c '"code": 202' "$WORK/sink.jsonl")"
check_eq "... after one answered 503 (three POSTs in all)" 3 "$(grep -c . "$WORK/sink.jsonl")"
check "the sink's requests are CloudEvents 1.0 in binary mode, one per BuildRun" \
        python3 - "$WORK/sink.jsonl" "$good_uid" "$good_digest" <<'EOF'
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in recs if r["code"] == 202]
failed = recs[0]
assert failed["code"] == 503
# the event refused with 503 was sent again, with the same id
assert failed["headers"]["ce-id"] in [r["headers"]["ce-id"] for r in ok], "503 not retried"
by = {}
for r in ok:
    h, body = r["headers"], json.loads(r["body"])
    assert r["path"] == "/events", r["path"]
    assert h["ce-specversion"] == "1.0" and h["ce-type"] == "dev.kiln.buildrun.finished", h
    assert h["content-type"] == "application/json", h
    name = body["metadata"]["name"]
    assert body["kind"] == "BuildRun" and h["ce-subject"] == name, (h, name)
    assert h["ce-source"] == "/apis/shipwright.io/v1beta1/namespaces/m/buildruns/" + name, h
    assert h["ce-id"] == body["metadata"]["uid"] + "-" + body["metadata"]["resourceVersion"], h
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", h["ce-time"]), h
    by[name] = body
assert sorted(by) == ["run-bad", "run-good"], sorted(by)
assert len({r["headers"]["ce-id"] for r in ok}) == 2
reason = lambda b: [c for c in b["status"]["conditions"] if c["type"] == "Succeeded"][0]["reason"]
assert reason(by["run-good"]) == "Succeeded" and reason(by["run-bad"]) == "Failed"
assert by["run-good"]["metadata"]["uid"] == sys.argv[2]
assert by["run-good"]["status"]["output"]["digest"] == sys.argv[3]
EOF

# ---- a sink that is down ----
kill "$SINK_PID"
wait "$SINK_PID" 2>/dev/null
api POST "$(ns_path m buildruns)" '{"metadata":{"name":"run-nosink"},"spec":{"build":{"name":"good"}}}'
check_eq "with the sink down a BuildRun still succeeds" Succeeded "$(wait_done m run-nosink 60)"
check_eq "... and keeps its digest" "$good_digest" "$(j 'd["status"]["output"]["digest"]')"
for _ in $(seq 150); do
        grep -q 'events sink: buildrun m/run-nosink' "$SERVE_LOG" && break
        sleep 0.1
done
check_eq "the undelivered event is logged in one line, after the retries" 1 \
        "$(grep -c 'events sink: buildrun m/run-nosink: event .* not delivered: ' "$SERVE_LOG")"
api POST "$(ns_path m buildruns)" '{"metadata":{"name":"run-after"},"spec":{"build":{"name":"good"}}}'
check_eq "builds go on after the failed delivery" Succeeded "$(wait_done m run-after 60)"
metrics
check_eq "the counter has all three successes" 3 "$(value 'kiln_buildruns_total{result="Succeeded"}')"

stop_serve
check "no sanitizer report in the daemon's log" bash -c "! grep -qE 'Sanitizer|runtime error' '$SERVE_LOG'"
finish
