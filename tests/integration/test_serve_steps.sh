#!/usr/bin/env bash
# kiln serve runs strategy steps that name any image: the image is pulled
# with kiln's registry client into a cache, and each step runs under
# bubblewrap with Kubernetes' rules (command, args, env, workingDir),
# emptyDir volumes shared between steps, runAsUser, the source at
# /workspace/source and the results where $(results.NAME.path) points.
#
# The image is busybox on scratch, made here with kiln append and pushed
# to a loopback registry; a regproxy in front of it counts blob GETs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_serve.sh"
. "$(dirname "$0")/lib_registry.sh"

command -v bwrap >/dev/null || {
        fail "bubblewrap (bwrap) is missing: run scripts/install-deps"
        finish
}
start_plain_registry steps || exit 1
start_proxy "$REG" || exit 1
make_git_repo "$WORK/repo" || exit 1

# ---- the image: busybox-static on scratch ----
tree=$WORK/bb
mkdir -p "$tree/bin"
cp /bin/busybox "$tree/bin/busybox"
for a in sh cat echo id ls sleep printf mkdir touch sha256sum cut pwd; do
        ln -s busybox "$tree/bin/$a"
done
IMG=$PROXY/tools/busybox:1
check "kiln append makes a busybox image on scratch" "$KILN" append -q --base scratch \
        --layer "$tree" --env GREETING=from-image --env LEVEL=image --workdir /bin \
        --cmd '["/bin/sh","-c","echo image default cmd"]' --output "$IMG"

start_serve || exit 1
CBS=$SHP/clusterbuildstrategies
src='"source":{"type":"Git","git":{"url":"file://'$WORK'/repo"},"contextDir":"app"}'

# ---- a strategy in Shipwright's JSON ----
read -r -d '' STEP1 <<'EOS'
echo "first: pwd=$(pwd)"
printf 'arg=[%s]\n' "$@"
echo "env: S=$S GREETING=$GREETING LEVEL=$LEVEL"
echo "context=$CTX"
cat /workspace/source/app/hello.txt
echo "note from first" > /shared/note
echo "first uid=$(id -u)"
EOS
read -r -d '' STEP2 <<'EOS'
echo "second sees: $(cat /shared/note)"
echo "second uid=$(id -u) gid=$(id -g)"
touch /workspace/source/by-second && echo "second wrote the source"
d=$(sha256sum /workspace/source/app/hello.txt | cut -d' ' -f1)
printf 'sha256:%s' "$d" > "$1"
echo "digest written"
EOS
strategy=$(python3 -c 'import json,sys
img, s1, s2 = sys.argv[1:4]
print(json.dumps({"apiVersion": "shipwright.io/v1beta1", "kind": "ClusterBuildStrategy",
  "metadata": {"name": "bb-steps"},
  "spec": {
    "parameters": [
      {"name": "s", "description": "a string", "type": "string", "default": "hello world"},
      {"name": "arr", "description": "an array", "type": "array", "defaults": ["a b", "c"]}],
    "volumes": [{"name": "shared", "description": "between the steps", "emptyDir": {}}],
    "steps": [
      {"name": "first", "image": img, "workingDir": "$(params.shp-source-root)",
       "command": ["/bin/sh", "-c", s1], "args": ["first", "$(params.s)", "$(params.arr[*])"],
       "env": [{"name": "S", "value": "$(params.s)"}, {"name": "CTX", "value": "$(params.shp-source-context)"}],
       "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
      {"name": "second", "image": img,
       "command": ["/bin/sh", "-c", s2, "second", "$(results.shp-image-digest.path)"],
       "securityContext": {"runAsUser": 1000, "runAsGroup": 1001},
       "volumeMounts": [{"name": "shared", "mountPath": "/shared", "readOnly": True}]},
      {"name": "third", "image": img}]}}))' "$IMG" "$STEP1" "$STEP2")
api POST "$CBS" "$strategy"
check_eq "the ClusterBuildStrategy is created" 201 "$API_STATUS"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"bb"},"spec":{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"bb-steps"},"env":[{"name":"LEVEL","value":"build"}],"output":{"image":"'$REG'/out/bb:1"}}}'
check_eq "the Build is registered" True "$(j 'd["status"]["registered"]')"

proxy_reset
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"bb-1"},"spec":{"build":{"name":"bb"},"paramValues":[{"name":"arr","values":[{"value":"x y"},{"value":"z"}]}]}}'
check_eq "the BuildRun of image steps succeeds" Succeeded "$(wait_done dev bb-1 60)"
want="sha256:$(sha256sum "$WORK/repo/app/hello.txt" | cut -d' ' -f1)"
check_eq "status.output.digest is what the step wrote" "$want" "$(j 'd["status"]["output"]["digest"]')"
check_eq "the commit is reported" "$GIT_COMMIT" "$(j 'd["status"]["source"]["git"]["commitSha"]')"
api GET "$(ns_path dev buildruns bb-1)/log"
cp "$RESP" "$WORK/log1"
has() { grep -qxF -- "$1" "$WORK/log1"; }
check "workingDir \$(params.shp-source-root) is /workspace/source" has "[step-first] first: pwd=/workspace/source"
check "the string parameter is one argument" has "[step-first] arg=[hello world]"
check "each array item is one argument (1)" has "[step-first] arg=[x y]"
check "each array item is one argument (2)" has "[step-first] arg=[z]"
check_eq "no other argument" 3 "$(grep -c '^\[step-first\] arg=' "$WORK/log1")"
check "env: the step's over the Build's over the image's" has "[step-first] env: S=hello world GREETING=from-image LEVEL=build"
check "shp-source-context is inside the sandbox" has "[step-first] context=/workspace/source/app"
check "the source is at /workspace/source" has "[step-first] hello from git"
check "a step without runAsUser runs as 0" has "[step-first] first uid=0"
check "the second step sees the first one's volume file" has "[step-second] second sees: note from first"
check "runAsUser and runAsGroup" has "[step-second] second uid=1000 gid=1001"
check "runAsUser 1000 can write the source" has "[step-second] second wrote the source"
check "no command: the image's Cmd runs" has "[step-third] image default cmd"
check "the layers were fetched through the registry client" test "$(proxy_count GET '/blobs/')" -ge 1
cache=$SERVE_DATA/step-images
dir=$(find "$cache" -mindepth 1 -maxdepth 1 -name 'sha256:*' | head -n 1)
check "the image is unpacked once under DATA/step-images/DIGEST/rootfs" test -x "$dir/rootfs/bin/busybox"
check_eq "one image in the cache, no temporary dir left" 1 "$(find "$cache" -mindepth 1 -maxdepth 1 | wc -l)"
inode=$(stat -c %i "$dir/rootfs")

# ---- the second run uses the cache ----
proxy_reset
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"bb-2"},"spec":{"build":{"name":"bb"},"paramValues":[{"name":"s","value":"again"}]}}'
check_eq "a second run succeeds" Succeeded "$(wait_done dev bb-2 60)"
check_eq "... without a blob GET" 0 "$(proxy_count GET '/blobs/')"
check_eq "... on the same unpacked rootfs" "$inode" "$(stat -c %i "$dir/rootfs")"
api GET "$(ns_path dev buildruns bb-2)/log"
check "... with its own parameter value" grep -qxF "[step-first] arg=[again]" "$RESP"
check "... and the array's defaults" grep -qxF "[step-first] arg=[a b]" "$RESP"
check "the step's changes to the source did not reach the cache" test ! -e "$dir/rootfs/workspace"

# ---- failures ----
one_step() { # NAME IMAGE SCRIPT: a strategy and a Build of one step
        local s
        s=$(python3 -c 'import json,sys
n, img, script = sys.argv[1:4]
print(json.dumps({"apiVersion": "shipwright.io/v1beta1", "kind": "ClusterBuildStrategy",
  "metadata": {"name": n}, "spec": {"steps": [{"name": "only", "image": img,
  "command": ["/bin/sh", "-c", script]}]}}))' "$1" "$2" "$3")
        api POST "$CBS" "$s"
        api POST "$(ns_path dev builds)" '{"metadata":{"name":"'$1'"},"spec":{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"'$1'"},"output":{"image":"'$REG'/out/'$1':1"}}}'
}
msg() { j '[c for c in d["status"]["conditions"] if c["type"]=="Succeeded"][0]["message"]'; }

one_step missing "$PROXY/tools/nothing-here:1" "true"
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"missing-1"},"spec":{"build":{"name":"missing"}}}'
check_eq "an image that does not exist: Failed" Failed "$(wait_done dev missing-1 60)"
m=$(msg)
check "... with one line naming the step and the image ($m)" \
        bash -c '[[ "$1" == *"step only"*"tools/nothing-here:1"* && "$1" != *$'"'\n'"'* ]]' _ "$m"

one_step exit3 "$IMG" 'echo working; echo "first problem" >&2; echo "the last problem" >&2; exit 3'
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"exit3-1"},"spec":{"build":{"name":"exit3"}}}'
check_eq "a step exiting 3: Failed" Failed "$(wait_done dev exit3-1 60)"
check_eq "... with its last stderr line" "buildrun step step-only failed: the last problem" "$(msg)"
check_eq "... in failureDetails" "the last problem step-only" \
        "$(j 'd["status"]["failureDetails"]["message"]+" "+d["status"]["failureDetails"]["location"]["container"]')"

# ---- cancel stops the whole bwrap tree ----
one_step slow "$IMG" 'echo started; sleep 3171; echo never'
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"slow-1"},"spec":{"build":{"name":"slow"}}}'
api GET "$(ns_path dev buildruns slow-1)"
uid=$(j 'd["metadata"]["uid"]')
for ((i = 0; i < 300; i++)); do
        grep -q 'step-only\] started' "$SERVE_DATA/logs/$uid.log" 2>/dev/null && break
        sleep 0.1
done
run_procs() { pgrep -f "$SERVE_DATA/runs/$uid" | wc -l; }
check "the slow step runs under bwrap" test "$(run_procs)" -ge 1
sleeping() { [ "$(pgrep -f 'sleep 3171' | wc -l)" -ge 1 ]; }
check "its sleep runs" sleeping
start=$(date +%s%N)
api PATCH "$(ns_path dev buildruns slow-1)" '{"spec":{"state":"BuildRunCanceled"}}' application/merge-patch+json
check_eq "cancel: BuildRunCanceled" BuildRunCanceled "$(wait_done dev slow-1 10)"
ms=$((($(date +%s%N) - start) / 1000000))
check "... within 5 s (${ms} ms)" test "$ms" -lt 5000
check_eq "no bwrap of the run is left" 0 "$(run_procs)"
check_eq "no process of the step is left" 0 "$(pgrep -f 'sleep 3171' | wc -l)"
check "its work dir is removed" test ! -e "$SERVE_DATA/runs/$uid"

# ---- a timeout stops it too ----
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"slow-2"},"spec":{"build":{"name":"slow"},"timeout":"4s"}}'
api GET "$(ns_path dev buildruns slow-2)"
uid=$(j 'd["metadata"]["uid"]')
start=$(date +%s%N)
check_eq "timeout 4s: BuildRunTimeout" BuildRunTimeout "$(wait_done dev slow-2 20)"
ms=$((($(date +%s%N) - start) / 1000000))
check "... within 4 s + 5 s (${ms} ms)" test "$ms" -lt 9000
check "... after the step started" grep -qF "[step-only] started" "$SERVE_DATA/logs/$uid.log"
check_eq "no bwrap of the timed-out run is left" 0 "$(run_procs)"
check_eq "no process of its step is left" 0 "$(pgrep -f 'sleep 3171' | wc -l)"

stop_serve
check "no sanitizer report in the daemon's log" bash -c "! grep -q Sanitizer '$SERVE_LOG'"
finish
