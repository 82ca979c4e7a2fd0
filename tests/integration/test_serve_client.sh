#!/usr/bin/env bash
# Local source uploads (POST .../buildruns/NAME/source) and kiln's own API
# client commands (get, apply, delete, logs, cancel, upload) against a real
# kiln serve and a real docker-registry; image content checked with skopeo
# and umoci.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"

start_registry client || exit 1
start_serve --max-concurrent 2 --max-body 64K --max-source-size 2M || exit 1

cbs='"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"}'
api POST "$(ns_path up builds)" '{"metadata":{"name":"loc"},"spec":{"source":{"type":"Local","local":{"name":"local-copy","timeout":"1m"}},'"$cbs"',"output":{"image":"'$REG'/up/loc:1"}}}'
check_eq "a Build with a Local source: 201, registered" "201 True" "$API_STATUS $(j 'd["status"]["registered"]')"
check_eq "local.timeout is kept" 1m "$(j 'd["spec"]["source"]["local"]["timeout"]')"

# ---- the upload endpoint with curl ----
upload() { # NAME FILE [CONTENT-TYPE]: POSTs FILE as the run's source
        API_STATUS=$(curl -s -o "$RESP" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
                -H "Content-Type: ${3:-application/x-tar}" --data-binary "@$2" \
                "$SERVE_URL$(ns_path up buildruns "$1")/source")
}
mkdir -p "$WORK/src1/sub"
echo "uploaded by curl" >"$WORK/src1/hello.txt"
echo "nested" >"$WORK/src1/sub/n.txt"
tar -C "$WORK/src1" -czf "$WORK/src1.tgz" .

api POST "$(ns_path up buildruns)" '{"metadata":{"name":"c1"},"spec":{"build":{"name":"loc"}}}'
check_eq "a BuildRun of the Local Build is created" 201 "$API_STATUS"
upload c1 "$WORK/src1.tgz" application/gzip
check_eq "upload a tar.gz: 200" 200 "$API_STATUS"
upload c1 "$WORK/src1.tgz" application/gzip
check_eq "a second upload to the same run: 409 Conflict" "409 Conflict" "$API_STATUS $(j 'd["reason"]')"
check_eq "the run built and pushed the uploaded tree" Succeeded "$(wait_done up c1 60)"
skopeo copy -q --src-tls-verify=false "docker://$REG/up/loc:1" "oci:$WORK/img:c1"
umoci unpack --rootless --image "$WORK/img:c1" "$WORK/b1" >/dev/null 2>&1
check_eq "the image holds the uploaded files" "uploaded by curl nested" \
        "$(cat "$WORK/b1/rootfs/workspace/hello.txt" "$WORK/b1/rootfs/workspace/sub/n.txt" 2>&1 | tr '\n' ' ' | sed 's/ $//')"
upload c1 "$WORK/src1.tgz"
check_eq "an upload to a finished run: 409 naming why" "409 finished" \
        "$API_STATUS $(j '"finished" if "already finished" in d["message"] else d["message"]')"
check "no upload is left behind" test -z "$(ls -A "$SERVE_DATA/uploads")"

# a run that is not Local
api POST "$(ns_path up builds)" '{"metadata":{"name":"gitb"},"spec":{"source":{"type":"Git","git":{"url":"file:///nonexistent"}},'"$cbs"',"output":{"image":"'$REG'/up/g:1"}}}'
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"g1"},"spec":{"build":{"name":"gitb"}}}'
upload g1 "$WORK/src1.tgz"
check_eq "an upload to a Git run: 400 naming its source type" "400 True" \
        "$API_STATUS $(j '"source type is Git" in d["message"]')"
upload nope "$WORK/src1.tgz"
check_eq "an upload to a missing run: 404" 404 "$API_STATUS"
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"bad-src"},"spec":{"build":{"name":"loc"},"source":{"type":"Git"}}}'
check_eq "a BuildRun source other than Local: 422" "422 True" "$API_STATUS $(j '"spec.source.type" in d["message"]')"

# bodies: bounded by --max-source-size, not --max-body
head -c 300000 /dev/urandom >"$WORK/src2/big.bin" 2>/dev/null || { mkdir -p "$WORK/src2" && head -c 300000 /dev/urandom >"$WORK/src2/big.bin"; }
tar -C "$WORK/src2" -cf "$WORK/src2.tar" .
head -c 3000000 /dev/urandom >"$WORK/huge.bin"
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"c2"},"spec":{"build":{"name":"loc"}}}'
upload c2 "$WORK/huge.bin"
check_eq "an upload over --max-source-size: 413" "413 RequestEntityTooLarge" "$API_STATUS $(j 'd["reason"]')"
upload c2 "$WORK/src2.tar"
check_eq "a plain tar larger than --max-body is taken" 200 "$API_STATUS"
check_eq "... and the run succeeds" Succeeded "$(wait_done up c2 60)"

# hostile tars
mkdir -p "$WORK/outside"
python3 - "$WORK" <<'PY'
import io, sys, tarfile
w = sys.argv[1]
def add(t, name, data=b"x", **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data) if i.isfile() else None)
with tarfile.open(w + "/dotdot.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "ok.txt")
    add(t, "../../outside/escaped.txt", b"pwned")
with tarfile.open(w + "/symlink.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, "link", b"", type=tarfile.SYMTYPE, linkname=w + "/outside")
    add(t, "link/through.txt", b"pwned")
with tarfile.open(w + "/abs.tar", "w", format=tarfile.GNU_FORMAT) as t:
    add(t, w + "/outside/abs.txt", b"pwned")
PY
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"h1"},"spec":{"build":{"name":"loc"},"source":{"type":"Local","local":{"name":"local-copy","timeout":"1m"}}}}'
check_eq "a BuildRun-level Local source override is accepted" 201 "$API_STATUS"
upload h1 "$WORK/dotdot.tar"
check_eq "a tar with ../ paths: 400 naming the entry" "400 True" "$API_STATUS $(j '".." in d["message"] and "outside/escaped.txt" in d["message"]')"
upload h1 "$WORK/abs.tar"
check_eq "a tar with an absolute path: 400" 400 "$API_STATUS"
upload h1 "$WORK/symlink.tar"
check "nothing was written outside (../, absolute, through an absolute symlink)" test -z "$(ls -A "$WORK/outside")"
check "no partial upload is left" test -z "$(find "$SERVE_DATA/uploads" -name '.extract-*')"
# h1 waits for a good upload that never comes: free its worker.
api DELETE "$(ns_path up buildruns h1)"

# no upload in time: local.timeout
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"late"},"spec":{"build":{"name":"loc"},"source":{"type":"Local","local":{"name":"local-copy","timeout":"2s"}}}}'
check_eq "no upload within local.timeout: Failed with LocalSourceUploadTimeout" LocalSourceUploadTimeout "$(wait_done up late 30)"
check_eq "... failureDetails in step-source-local" "LocalSourceUploadTimeout step-source-local" \
        "$(j 'd["status"]["failureDetails"]["reason"]+" "+d["status"]["failureDetails"]["location"]["container"]')"
check "... the message says so" grep -q 'no source was uploaded to buildrun late within 2s' "$RESP"

# ---- the client commands ----
export KILN_SERVER="$SERVE_URL" KILN_TOKEN="$TOKEN"
k() { "$KILN" "$@" >"$WORK/k.out" 2>"$WORK/k.err"; }

# kiln upload of a directory with .git, .gitignore'd files and a nested file
src="$WORK/app"
mkdir -p "$src/.git/objects" "$src/deep/er" "$src/build" "$src/logs" "$src/keep"
echo "ref: refs/heads/main" >"$src/.git/HEAD"
echo "hello from upload" >"$src/hello.txt"
echo "deep file" >"$src/deep/er/nested.txt"
echo "secret" >"$src/secret.env"
echo "build output" >"$src/build/out.o"
echo "a log" >"$src/logs/a.log"
echo "kept log" >"$src/logs/keep.log"
echo "tmp" >"$src/deep/x.tmp"
echo "anchored" >"$src/root-only.txt"
echo "not anchored" >"$src/deep/root-only.txt"
printf '# comment\n\n*.env\n/build/\n*.log\n!keep.log\n**/*.tmp\n/root-only.txt\n' >"$src/.gitignore"
check "kiln upload prints the BuildRun's name" k upload loc "$src" -n up
upname=$(cat "$WORK/k.out")
check "... named after the Build" grep -q '^loc-' <<<"$upname"
check_eq "the uploaded run succeeds" Succeeded "$(wait_done up "$upname" 60)"
check_eq "its spec.source is Local local-copy, as shp sends it" "Local local-copy" \
        "$(j 'd["spec"]["source"]["type"]+" "+d["spec"]["source"]["local"]["name"]')"
rm -rf "$WORK/b3"
skopeo copy -q --src-tls-verify=false "docker://$REG/up/loc:1" "oci:$WORK/img:up"
umoci unpack --rootless --image "$WORK/img:up" "$WORK/b3" >/dev/null 2>&1
ws="$WORK/b3/rootfs/workspace"
check_eq "the image holds the top file and the nested one" "hello from upload|deep file" \
        "$(cat "$ws/hello.txt")|$(cat "$ws/deep/er/nested.txt" 2>&1)"
check_eq "... and the re-included and unanchored files" "kept log|not anchored" \
        "$(cat "$ws/logs/keep.log" 2>&1)|$(cat "$ws/deep/root-only.txt" 2>&1)"
check_eq "nothing of .git or what .gitignore excludes reached the image" "" \
        "$(cd "$ws" && ls -d .git secret.env build logs/a.log deep/x.tmp root-only.txt 2>/dev/null)"

check "kiln upload -f follows the log and exits 0 on success" k upload loc "$src" -n up -f
check "... the log came out" grep -q '^\[step-append\]' "$WORK/k.out"
check "... with the last line" grep -q '^\[kiln\] Succeeded' "$WORK/k.out"
api POST "$(ns_path up builds)" '{"metadata":{"name":"badbase"},"spec":{"source":{"type":"Local"},'"$cbs"',"paramValues":[{"name":"base","value":"127.0.0.1:1/none/base:1"}],"output":{"image":"'$REG'/up/bad:1"}}}'
k upload badbase "$src" -n up -f
check_eq "kiln upload -f exits 1 when the run fails" 1 "$?"
check "... saying so in one line" grep -q "^kiln upload: buildrun badbase-.* failed: Failed" "$WORK/k.err"
check_eq "... the only line on stderr" 1 "$(grep -c '' "$WORK/k.err")"

# kiln apply
cat >"$WORK/objs.yaml" <<YAML
apiVersion: shipwright.io/v1beta1
kind: Build
metadata:
  name: applied
  namespace: ap
spec:
  source:
    type: Local
    local: {name: local-copy, timeout: 1m}
  strategy: {kind: ClusterBuildStrategy, name: kiln-append}
  output:
    image: $REG/ap/applied:1
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: ap
type: kubernetes.io/basic-auth
stringData:
  username: u
  password: p
YAML
check "kiln apply -f of a two-document YAML" k apply -f "$WORK/objs.yaml"
check_eq "... prints created for each" "build.shipwright.io/applied created|secret/creds created" "$(paste -sd'|' "$WORK/k.out")"
check "kiln apply again" k apply -f "$WORK/objs.yaml"
check_eq "... prints unchanged for each" "build.shipwright.io/applied unchanged|secret/creds unchanged" "$(paste -sd'|' "$WORK/k.out")"
sed -i 's#applied:1#applied:2#' "$WORK/objs.yaml"
check "kiln apply of a changed Build from stdin" k apply -f - <"$WORK/objs.yaml"
check_eq "... prints configured for it" "build.shipwright.io/applied configured|secret/creds unchanged" "$(paste -sd'|' "$WORK/k.out")"
api GET "$(ns_path ap builds applied)"
check_eq "the update reached the server" "$REG/ap/applied:2 2" "$(j 'd["spec"]["output"]["image"]+" "+str(d["metadata"]["generation"])')"
printf '{"apiVersion":"shipwright.io/v1beta1","kind":"Build","metadata":{"name":"j1"},"spec":{"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},"output":{"image":"%s/ap/j1:1"}}}' "$REG" >"$WORK/j1.json"
check "kiln apply -f of JSON, the namespace from -n" k apply -f "$WORK/j1.json" -n ap
check_eq "... created" "build.shipwright.io/j1 created" "$(cat "$WORK/k.out")"
printf 'kind: Build\nmetadata: {name: bad}\nspec: {output: {}}\n' >"$WORK/bad.yaml"
check_fails "kiln apply of an invalid object: one line naming the field" '^kiln apply: build.shipwright.io "bad": .*spec.strategy' \
        "$KILN" apply -f "$WORK/bad.yaml" -n ap

# kiln get
check "kiln get builds" k get builds -n ap
check_eq "the builds table has kubectl's columns" "NAME REGISTERED REASON BUILDSTRATEGYKIND BUILDSTRATEGYNAME CREATIONTIME" \
        "$(head -n1 "$WORK/k.out" | tr -s ' ')"
check "... and a row per Build" grep -Eq '^applied +True +Succeeded +ClusterBuildStrategy +kiln-append +[0-9]+[smhd]' "$WORK/k.out"
check "kiln get buildruns" k get br -n up
check_eq "the buildruns table has the printer columns" "NAME SUCCEEDED REASON STARTTIME COMPLETIONTIME" \
        "$(head -n1 "$WORK/k.out" | tr -s ' ')"
check "... a finished run shows True Succeeded and ages" grep -Eq '^c1 +True +Succeeded +[0-9]+[smhd]+ +[0-9]+[smhd]' "$WORK/k.out"
check "kiln get buildrun NAME -o json" k get buildrun c1 -n up -o json
check_eq "... parses, and is the run" "BuildRun c1" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["kind"], d["metadata"]["name"])' "$WORK/k.out")"
check "kiln get builds -o yaml" k get builds applied -n ap -o yaml
check_eq "... parses as YAML to the same object" "applied $REG/ap/applied:2" \
        "$(python3 -c 'import yaml,sys; d=yaml.safe_load(open(sys.argv[1])); print(d["metadata"]["name"], d["spec"]["output"]["image"])' "$WORK/k.out" 2>&1)"
check "kiln get -o name -l selector" k get buildruns -n up -o name -l build.shipwright.io/name=gitb
check_eq "... lists the selected runs" "buildrun.shipwright.io/g1" "$(cat "$WORK/k.out")"
check "kiln get cbs" k get clusterbuildstrategies
check "... lists kiln-append" grep -q '^kiln-append ' "$WORK/k.out"

# kiln get -w sees a run to Succeeded
timeout 60 "$KILN" get buildruns -n up -w >"$WORK/watch.out" 2>&1 &
wpid=$!
T_PIDS+=("$wpid")
# the watch is open (its first rows are out) before the run is made
for _ in $(seq 50); do [ -s "$WORK/watch.out" ] && break; sleep 0.1; done
"$KILN" upload loc "$src" -n up >"$WORK/wname" 2>/dev/null
wname=$(cat "$WORK/wname")
wait_done up "$wname" 60 >/dev/null
for _ in $(seq 50); do grep -Eq "^$wname +True +Succeeded" "$WORK/watch.out" && break; sleep 0.2; done
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
check "kiln get -w streams the run to Succeeded" grep -Eq "^$wname +True +Succeeded" "$WORK/watch.out"
check "... after it was Pending or Running" grep -Eq "^$wname +Unknown +(Pending|Running)" "$WORK/watch.out"

# kiln logs
check "kiln logs" k logs c1 -n up
check "... prints the run's log" grep -q '^\[kiln\] Succeeded' "$WORK/k.out"
check "kiln logs -f of a finished run ends" timeout 20 "$KILN" logs -f c1 -n up

# kiln cancel of a run waiting for its source (slow by nature)
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"slow"},"spec":{"build":{"name":"loc"}}}'
wait_reason up slow Running 20 >/dev/null
check "kiln cancel of a running run" k cancel slow -n up
check_eq "... the run ends BuildRunCanceled" BuildRunCanceled "$(wait_done up slow 20)"
check_fails "kiln cancel of a finished run is refused in one line" '^kiln cancel: buildrun "c1" has already finished \(Succeeded\): nothing to cancel$' \
        "$KILN" cancel c1 -n up

# kiln delete
check "kiln delete two objects" k delete builds applied j1 -n ap
check_eq "... prints each" 'build.shipwright.io "applied" deleted|build.shipwright.io "j1" deleted' "$(paste -sd'|' "$WORK/k.out")"
api GET "$(ns_path ap builds applied)"
check_eq "... they are gone" 404 "$API_STATUS"

# one-line errors
check_fails "a missing object: one line" '^kiln get: builds.shipwright.io "nope" not found$' "$KILN" get builds nope -n ap
check_fails "a bad token: one line" '^kiln get: Unauthorized: a valid bearer token is required$' "$KILN" get builds -n ap --token wrong
check_fails "a token file with a bad token: one line" '^kiln get: Unauthorized' env -u KILN_TOKEN "$KILN" get builds -n ap --token-file "$WORK/bad.yaml"
check_fails "an unknown kind: one line naming it" '^kiln get: .*"pods"' "$KILN" get pods
check_fails "delete without a name: one line" '^kiln delete: a NAME is required after builds$' "$KILN" delete builds
check_fails "logs without a name: one line" '^kiln logs: a BUILDRUN is required$' "$KILN" logs
check_fails "upload to a missing Build: one line" '^kiln upload: builds.shipwright.io "nobuild" not found$' "$KILN" upload nobuild "$src" -n up
check_fails "an unreachable server: one line" '^kiln get: GET http://127.0.0.1:[0-9]+/.*: ' "$KILN" get builds --server "http://127.0.0.1:$(free_port)"

finish
