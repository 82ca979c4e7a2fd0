#!/usr/bin/env bash
# kiln stack build: the Python and Node.js stacks from Debian's archive.
# The same package versions give the same digest, from a cache that has
# only the downloaded packages as from one that has the image; the image
# carries an SPDX SBOM that agrees with its label; its interpreter runs a
# stdlib HTTP server as the non-root user under bubblewrap.  Bad stack
# files and missing packages fail on one line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"
. "$(dirname "$0")/lib_stack.sh"

STACKS="$ROOT_DIR/stacks"
start_plain_registry || exit 1

# ---- Python: build, build again with a fresh cache, and from the cache.
seed_stack_cache "$WORK/c1"
d1=$("$KILN" --log-level info stack build "$STACKS/python.yaml" --cache-dir "$WORK/c1" \
        --image "$REG/stacks/python:a" 2>"$WORK/b1.err")
check "the python stack builds and is pushed (digest $d1)" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$d1"
[ -n "$d1" ] || { cat "$WORK/b1.err"; finish; }
save_stack_cache "$WORK/c1"

# A fresh cache with the same packages downloaded: unpacked and written
# again (under another umask), the same bytes.
mkdir -p "$WORK/c2"
cp -al "$WORK/c1/debs" "$WORK/c2/" && cp -a "$WORK/c1/apt" "$WORK/c2/"
d2=$(umask 077 && "$KILN" --log-level info stack build "$STACKS/python.yaml" --cache-dir "$WORK/c2" \
        --image "$REG/stacks/python:b" 2>"$WORK/b2.err")
check_eq "a rebuild with the same package versions gives the same digest" "$d1" "$d2"
check "the rebuild made the image again (not from the cache)" \
        bash -c "! grep -q '(cached)' '$WORK/b2.err' && test -d '$WORK/c2/images'"
d3=$("$KILN" --log-level info stack build "$STACKS/python.yaml" --cache-dir "$WORK/c1" \
        --output "oci:$WORK/py:a" 2>"$WORK/b3.err")
check_eq "the cached image has that digest too" "$d1" "$d3"
check "the third build came from the cache" grep -q '(cached)' "$WORK/b3.err"
check_eq "skopeo sees the digest kiln printed" "$d1" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/stacks/python:a")"

# ---- What is in it.
skopeo copy --src-tls-verify=false "docker://$REG/stacks/python:a" "oci:$WORK/pulled:a" >/dev/null 2>&1
check "umoci unpacks the pulled stack" \
        bash -c "umoci unpack --rootless --image '$WORK/pulled:a' '$WORK/pyb' >/dev/null 2>&1"
skopeo inspect --tls-verify=false --config "docker://$REG/stacks/python:a" >"$WORK/py.config"
R="$WORK/pyb/rootfs"
C="$WORK/py.config"
check_eq "runs as the non-root user" "65532:65532" "$(config_get "$C" 'c["config"]["User"]')"
check "Env from the stack" grep -q '"LANG=C.UTF-8"' "$C"
check_eq "stack name label" python "$(config_get "$C" 'c["config"]["Labels"]["dev.kiln.stack.name"]')"
label_ver=$(config_get "$C" '[p.split("=",1)[1] for p in c["config"]["Labels"]["dev.kiln.stack.packages"].split(",") if p.startswith("python3-minimal=")][0]')
check "the packages label names python3-minimal's version ($label_ver)" test -n "$label_ver"
sbom="$R/usr/share/kiln/sbom.spdx.json"
check "the SBOM is in the image" test -s "$sbom"
check_eq "the SBOM is SPDX 2.3 and lists python3-minimal at the label's version" \
        "SPDX-2.3 $label_ver" "$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(d["spdxVersion"], [p["versionInfo"] for p in d["packages"] if p["name"]=="python3-minimal"][0])' "$sbom")"
check_eq "the SBOM and the label list the same packages" \
        "$(config_get "$C" 'c["config"]["Labels"]["dev.kiln.stack.packages"]')" \
        "$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
print(",".join("%s=%s" % (p["name"], p["versionInfo"]) for p in d["packages"]))' "$sbom")"
check_eq "the SBOM's time is the epoch" "1970-01-01T00:00:00Z" \
        "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["creationInfo"]["created"])' "$sbom")"
check "scanners find each package's control data" test -s "$R/var/lib/dpkg/status.d/python3-minimal"
check "excluded packages are not in the image" test ! -e "$R/usr/bin/dpkg"
check "documentation is gone but copyright notices stay" \
        bash -c "test ! -d '$R/usr/share/man' && test -s '$R/usr/share/doc/libc6/copyright' && test -z \"\$(ls '$R/usr/share/doc/libc6' | grep -v copyright)\""
check "no package-manager logs or state" bash -c "test ! -e '$R/var/log/dpkg.log' && test ! -e '$R/var/lib/apt'"
check "passwd names the user" grep -q '^nonroot:x:65532:65532:' "$R/etc/passwd"
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"].split(":")[1])' \
        "$WORK/pulled/blobs/sha256/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$WORK/pulled/index.json")")
check_eq "in the layer: /tmp 1777, the home owned by 65532, every time the epoch" "1777 65532:65532 0" \
        "$(python3 -c 'import sys,tarfile
t=tarfile.open(sys.argv[1]); m={x.name: x for x in t.getmembers()}
print("%o" % m["tmp"].mode, "%d:%d" % (m["home/nonroot"].uid, m["home/nonroot"].gid), max(x.mtime for x in m.values()))' "$WORK/pulled/blobs/sha256/$layer")"

# ---- It runs: the stdlib modules a functions framework needs, and an
# HTTP server answering, as uid 65532.
check_eq "python3 imports http.server and friends as uid 65532" "65532" \
        "$(in_root "$R" 65532 /usr/bin/python3 -c 'import http.server, socketserver, json, traceback, signal, threading, urllib.parse, email.utils, os; print(os.getuid())' 2>&1)"
cat >"$WORK/serve.py" <<'EOF'
import http.server, threading, urllib.request
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"python answers")
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=s.serve_forever, daemon=True).start()
print(urllib.request.urlopen("http://127.0.0.1:%d/" % s.server_address[1]).read().decode())
EOF
cp "$WORK/serve.py" "$R/tmp/serve.py" 2>/dev/null || true
check_eq "a stdlib HTTP server answers" "python answers" \
        "$(bwrap --bind "$R" / --ro-bind "$WORK/serve.py" /serve.py --dev /dev --proc /proc --tmpfs /tmp \
                --unshare-all --die-with-parent --uid 65532 --gid 65532 --clearenv \
                --setenv PATH /usr/bin:/bin /usr/bin/python3 /serve.py 2>&1)"

# ---- Node.js.
dn=$("$KILN" stack build "$STACKS/nodejs.yaml" --cache-dir "$WORK/c1" --output "oci:$WORK/node:a" \
        2>"$WORK/bn.err")
check "the nodejs stack builds (digest $dn)" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$dn"
[ -n "$dn" ] || cat "$WORK/bn.err"
save_stack_cache "$WORK/c1"
check "umoci unpacks the nodejs stack" \
        bash -c "umoci unpack --rootless --image '$WORK/node:a' '$WORK/nodeb' >/dev/null 2>&1"
N="$WORK/nodeb/rootfs"
check_eq "node requires http as uid 65532" "65532 function" \
        "$(in_root "$N" 65532 /usr/bin/node -e 'console.log(process.getuid(), typeof require("http").createServer)' 2>&1)"
check_eq "a node HTTP server answers" "node answers" \
        "$(in_root "$N" 65532 /usr/bin/node -e '
const http = require("http");
const s = http.createServer((q, r) => r.end("node answers"));
s.listen(0, "127.0.0.1", () => http.get("http://127.0.0.1:" + s.address().port + "/", (r) => {
  let d = ""; r.on("data", (c) => d += c); r.on("end", () => { console.log(d); s.close(); });
}));' 2>&1)"
check "the node SBOM lists nodejs" python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); assert any(p["name"]=="nodejs" for p in d["packages"])' \
        "$N/usr/share/kiln/sbom.spdx.json"

# ---- Errors: one line each.
printf 'name: bad\nsuite: bookworm\npackages:\n  - python3-minimal\n   - nodejs\n' >"$WORK/bad.yaml"
check_fails "a malformed stack file names the line" "bad.yaml.: line 5: " \
        "$KILN" stack build "$WORK/bad.yaml" --cache-dir "$WORK/c1"
printf 'name: bad\nsuite: bookworm\npackages: [python3-minimal]\nuser:\n  uid: 0\n' >"$WORK/root.yaml"
check_fails "a root user is refused, with its line" "root.yaml.: line 5: .user.uid." \
        "$KILN" stack build "$WORK/root.yaml" --cache-dir "$WORK/c1"
printf 'name: missing\nsuite: bookworm\npackages:\n  - python3-minimal\n  - kiln-no-such-package\n' \
        >"$WORK/missing.yaml"
check_fails "a missing package is named" "package .kiln-no-such-package. is not in bookworm" \
        "$KILN" stack build "$WORK/missing.yaml" --cache-dir "$WORK/c1"
check_fails "a missing stack file" "stack file: open .*nope.yaml" \
        "$KILN" stack build "$WORK/nope.yaml" --cache-dir "$WORK/c1"

finish
