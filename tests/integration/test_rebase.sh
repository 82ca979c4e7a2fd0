#!/usr/bin/env bash
# kiln rebase: a function image built on the Python stack moves to a
# rebuilt stack (one more package).  Only the run-image layer changes, the
# app's layer keeps its digest and is neither downloaded nor uploaded
# (counted at a proxy), the labels name the new stack, and the function
# still answers under bubblewrap.  Images without the labels, or whose
# layers no longer match them, are refused (the latter unless --force).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"
. "$(dirname "$0")/lib_regimg.sh"
. "$(dirname "$0")/lib_stack.sh"

start_plain_registry || exit 1
UPSTREAM=$REG
start_proxy "$UPSTREAM" || { fail "proxy"; finish; }

# Two versions of the Python stack: v2 adds netbase (/etc/services).
seed_stack_cache "$WORK/cache"
sed 's/^  - libpython3.11-stdlib$/  - libpython3.11-stdlib\n  - netbase/' \
        "$ROOT_DIR/stacks/python.yaml" >"$WORK/python-v2.yaml"
v1=$("$KILN" stack build "$ROOT_DIR/stacks/python.yaml" --cache-dir "$WORK/cache" \
        --image "$UPSTREAM/stacks/python:v1" 2>"$WORK/v1.err")
v2=$("$KILN" stack build "$WORK/python-v2.yaml" --cache-dir "$WORK/cache" \
        --image "$UPSTREAM/stacks/python:v2" 2>"$WORK/v2.err")
save_stack_cache "$WORK/cache"
check "stack v1 is pushed ($v1)" grep -qE '^sha256:' <<<"$v1"
check "stack v2 is pushed ($v2)" grep -qE '^sha256:' <<<"$v2"
[ -n "$v1" ] && [ -n "$v2" ] || { cat "$WORK/v1.err" "$WORK/v2.err"; finish; }
check "v2 is another image" test "$v1" != "$v2"

# The function: an app layer over v1, with the run-image labels.
mkdir -p "$WORK/app"
cat >"$WORK/app/main.py" <<'EOF'
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            svc = socket.getservbyport(80)
        except OSError:
            svc = "none"
        body = "%s, service 80 is %s\n" % (os.environ["GREETING"], svc)
        self.send_response(200); self.end_headers(); self.wfile.write(body.encode())
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
EOF
app=$("$KILN" append --base "$PROXY/stacks/python:v1" --layer "$WORK/app:/workspace" \
        --entrypoint '["python3","/workspace/main.py"]' --workdir /workspace --env GREETING=hello \
        --run-image-labels --output "$PROXY/fn/app:v1" 2>"$WORK/app.err")
check "the app image is pushed ($app)" grep -qE '^sha256:' <<<"$app"
skopeo inspect --tls-verify=false --raw "docker://$UPSTREAM/fn/app:v1" >"$WORK/app1.json"
app_layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][1]["digest"])' "$WORK/app1.json")

# Rebase in the registry, counted at the proxy.
proxy_reset
new=$("$KILN" --log-level info rebase "$PROXY/fn/app:v1" --run-image "$PROXY/stacks/python:v2" \
        --output "$PROXY/fn/app:v2" 2>"$WORK/rebase.err")
check "rebase prints a digest ($new)" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$new"
[ -n "$new" ] || cat "$WORK/rebase.err"
check_eq "only the config is uploaded" 1 "$(kiln_stat "$WORK/rebase.err" uploaded)"
check_eq "the app layer is not downloaded" 0 "$(proxy_count GET "/blobs/$app_layer")"
check_eq "the app layer is not uploaded" 0 "$(proxy_count '*' "/blobs/uploads/.*${app_layer#sha256:}")"
check_eq "no layer is downloaded at all" 0 \
        "$(proxy_count GET "/blobs/sha256:($(python3 -c 'import json,sys; print("|".join(l["digest"][7:] for l in json.load(open(sys.argv[1]))["layers"]))' "$WORK/app1.json"))")"
check_eq "skopeo sees the rebased digest" "$new" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$UPSTREAM/fn/app:v2")"
skopeo inspect --tls-verify=false --raw "docker://$UPSTREAM/fn/app:v2" >"$WORK/app2.json"
skopeo inspect --tls-verify=false --raw "docker://$UPSTREAM/stacks/python:v2" >"$WORK/v2.json"
check_eq "the run-image layer is v2's, the app layer is unchanged" \
        "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$WORK/v2.json") $app_layer" \
        "$(python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(open(sys.argv[1]))["layers"]))' "$WORK/app2.json")"
skopeo inspect --tls-verify=false --config "docker://$UPSTREAM/fn/app:v2" >"$WORK/c2.json"
skopeo inspect --tls-verify=false --config "docker://$UPSTREAM/stacks/python:v2" >"$WORK/v2c.json"
check_eq "the labels name v2" "$v2 $PROXY/stacks/python:v2 1 $(config_get "$WORK/v2c.json" 'c["rootfs"]["diff_ids"][0]')" \
        "$(config_get "$WORK/c2.json" '" ".join(c["config"]["Labels"]["dev.kiln.run-image." + k] for k in ("digest", "name", "layers", "top-layer"))')"
check "the stack labels are v2's" grep -q 'netbase=' <<<"$(config_get "$WORK/c2.json" 'c["config"]["Labels"]["dev.kiln.stack.packages"]')"
check_eq "the app's settings are kept" '["python3", "/workspace/main.py"] /workspace 65532:65532' \
        "$(config_get "$WORK/c2.json" 'json.dumps(c["config"]["Entrypoint"]) + " " + c["config"]["WorkingDir"] + " " + c["config"]["User"]')"
check "the app's env is kept" grep -q '"GREETING=hello"' "$WORK/c2.json"
check "the base annotation names v2" grep -q "\"org.opencontainers.image.base.digest\":\"$v2\"" "$WORK/app2.json"

# It still answers, and it now sees v2's /etc/services.
skopeo copy --src-tls-verify=false "docker://$UPSTREAM/fn/app:v2" "oci:$WORK/pulled:v2" >/dev/null 2>&1
check "umoci unpacks the rebased image" \
        bash -c "umoci unpack --rootless --image '$WORK/pulled:v2' '$WORK/b2' >/dev/null 2>&1"
port=$(free_port)
serve_in_root "$WORK/b2/rootfs" "$WORK/c2.json" "$port"
wait_http "http://127.0.0.1:$port/" 20
check_eq "the function answers on the new stack" "hello, service 80 is http" \
        "$(curl -s "http://127.0.0.1:$port/")"

# The same rebase again gives the same image, and rebasing back gives the
# original.
again=$("$KILN" rebase "$PROXY/fn/app:v1" --run-image "$PROXY/stacks/python:v2" \
        --output "$PROXY/fn/app:v2b" 2>/dev/null)
check_eq "rebasing is reproducible" "$new" "$again"
back=$("$KILN" rebase "$PROXY/fn/app:v2" --run-image "$PROXY/stacks/python:v1" \
        --output "$PROXY/fn/app:back" 2>/dev/null)
check_eq "rebasing back to v1 gives the original image" "$app" "$back"

# On disk: an OCI layout rebased in place.
skopeo copy --src-tls-verify=false "docker://$UPSTREAM/fn/app:v1" "oci:$WORK/disk:app" >/dev/null 2>&1
disk=$("$KILN" rebase "oci:$WORK/disk:app" --run-image "$PROXY/stacks/python:v2" 2>"$WORK/disk.err")
check_eq "an image on disk rebases to the same digest" "$new" "$disk"
check_eq "in place: the layout's tag moved" "$new" "$(skopeo inspect --format '{{.Digest}}' "oci:$WORK/disk:app")"

# Refusals.
"$KILN" append --base "$UPSTREAM/stacks/python:v1" --layer "$WORK/app:/workspace" \
        --output "$UPSTREAM/fn/nolabels:v1" >/dev/null 2>&1
check_fails "an image without the labels is refused" "no dev.kiln.run-image.layers .*labels" \
        "$KILN" rebase "$UPSTREAM/fn/nolabels:v1" --run-image "$UPSTREAM/stacks/python:v2"
check_fails "even with --force" "no dev.kiln.run-image.layers" \
        "$KILN" rebase "$UPSTREAM/fn/nolabels:v1" --run-image "$UPSTREAM/stacks/python:v2" --force
# Labels that claim two run-image layers where the second is the app's.
"$KILN" append --base "$UPSTREAM/fn/app:v1" --layer "$WORK/app:/extra" \
        --label dev.kiln.run-image.layers=2 --output "$UPSTREAM/fn/moved:v1" >/dev/null 2>&1
check_fails "a top layer that does not match is refused" "layer 2 is not the run image's top layer" \
        "$KILN" rebase "$UPSTREAM/fn/moved:v1" --run-image "$UPSTREAM/stacks/python:v2" \
        --output "$UPSTREAM/fn/moved:v2"
forced=$("$KILN" rebase "$UPSTREAM/fn/moved:v1" --run-image "$UPSTREAM/stacks/python:v2" \
        --output "$UPSTREAM/fn/moved:v2" --force 2>/dev/null)
check "--force cuts at the recorded count anyway" grep -qE '^sha256:' <<<"$forced"
check_eq "forced: v2's layer and the last app layer" 2 \
        "$(skopeo inspect --tls-verify=false --raw "docker://$UPSTREAM/fn/moved:v2" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["layers"]))')"
"$KILN" rebase "$UPSTREAM/fn/app@$app" --run-image "$UPSTREAM/stacks/python:v2" >/dev/null 2>"$WORK/usage.err"
check_eq "a digest without --output is a usage error (exit 2)" "2 1" \
        "$? $(grep -c 'names a digest: give --output' "$WORK/usage.err")"

finish
