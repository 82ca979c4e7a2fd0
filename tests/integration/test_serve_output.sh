#!/usr/bin/env bash
# kiln serve's image processing: strategies that write the image to
# $(params.shp-output-directory) (an OCI layout, an oci-archive, a
# docker-archive) and kiln pushes it; output.labels, output.annotations and
# output.timestamp (Zero, SourceTimestamp, BuildTimestamp, an epoch) on
# that push and on a strategy's own push (kiln-append, pulled back and
# pushed again without its layers); status.output.digest and size against
# skopeo; a directory without one image fails; bad timestamps on a Build.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"
. "$(dirname "$0")/lib_serve.sh"

start_registry output || exit 1
UPSTREAM=$REG
start_proxy "$UPSTREAM" || exit 1
make_git_repo "$WORK/repo" || exit 1
start_serve --max-concurrent 2 || exit 1

b64() { printf '%s' "$1" | base64 -w0; }
dockercfg=$(printf '{"auths":{"%s":{"auth":"%s"}}}' "$REG" "$(b64 "pusher:pw-$RANDOM")")
api POST "/api/v1/namespaces/dev/secrets" "{\"metadata\":{\"name\":\"push-creds\"},\"type\":\"kubernetes.io/dockerconfigjson\",\"data\":{\".dockerconfigjson\":\"$(b64 "$dockercfg")\"}}"
check_eq "create the push Secret: 201" 201 "$API_STATUS"

# A strategy whose one step writes the image into the output directory:
# TRANSPORT + DIR + FILE is kiln append's --output.
api POST "$SHP/clusterbuildstrategies" '{"metadata":{"name":"to-dir"},"spec":{
 "parameters":[{"name":"transport","description":"oci:, oci-archive: or docker-archive:","default":"oci:"},
               {"name":"file","description":"a file name in the directory, or empty","default":""}],
 "steps":[{"name":"write","image":"kiln","command":["kiln"],
  "args":["append","--base","kiln:static","--layer","$(params.shp-source-context):/workspace",
          "--label","from-step=yes",
          "--output","$(params.transport)$(params.shp-output-directory)$(params.file)"]}]}}'
check_eq "create the to-dir strategy: 201" 201 "$API_STATUS"
api POST "$SHP/clusterbuildstrategies" '{"metadata":{"name":"empty-dir"},"spec":{
 "steps":[{"name":"nothing","image":"kiln","command":["kiln"],"args":["version"],
  "env":[{"name":"OUT","value":"$(params.shp-output-directory)"}]}]}}'
check_eq "create the empty-dir strategy: 201" 201 "$API_STATUS"
api POST "$SHP/clusterbuildstrategies" '{"metadata":{"name":"two-files"},"spec":{
 "steps":[{"name":"one","image":"kiln","command":["kiln"],
  "args":["append","--base","kiln:static","--layer","$(params.shp-source-context):/w","--output","oci-archive:$(params.shp-output-directory)/a.tar"]},
 {"name":"two","image":"kiln","command":["kiln"],
  "args":["append","--base","kiln:static","--layer","$(params.shp-source-context):/w","--output","oci-archive:$(params.shp-output-directory)/b.tar"]}]}}'
check_eq "create the two-files strategy: 201" 201 "$API_STATUS"

api POST "$SHP/clusterbuildstrategies" '{"metadata":{"name":"index-dir"},"spec":{
 "steps":[{"name":"one","image":"kiln","command":["kiln"],
  "args":["append","--base","kiln:static","--layer","$(params.shp-source-context):/a","--output","oci:$(params.shp-output-directory):a"]},
 {"name":"two","image":"kiln","command":["kiln"],
  "args":["append","--base","kiln:static","--layer","$(params.shp-source-context):/b","--output","oci:$(params.shp-output-directory):b"]}]}}'
check_eq "create the index-dir strategy: 201" 201 "$API_STATUS"

src='"source":{"type":"Git","git":{"url":"file://'$WORK'/repo"},"contextDir":"app"}'

# inspect REF EXPR: a Python expression over i = skopeo inspect's JSON and
# m = the raw manifest.
inspect() {
        skopeo inspect --tls-verify=false "docker://$1" >"$WORK/inspect.json" 2>>"$WORK/skopeo.log" &&
                skopeo inspect --raw --tls-verify=false "docker://$1" >"$WORK/raw.json" 2>>"$WORK/skopeo.log" ||
                return 1
        python3 -c 'import json,sys
i=json.load(open(sys.argv[1])); m=json.load(open(sys.argv[2]))
v=eval(sys.argv[3]); print("" if v is None else v)' "$WORK/inspect.json" "$WORK/raw.json" "$2"
}
SIZE='m["config"]["size"]+sum(l["size"] for l in m["layers"])'
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# run_build NAME SPEC [BUILDRUN-OUTPUT]: creates the Build and a BuildRun,
# waits; sets BR and leaves the BuildRun in $RESP.
run_build() {
        api POST "$(ns_path dev builds)" "{\"metadata\":{\"name\":\"$1\"},\"spec\":$2}"
        [ "$API_STATUS" = 201 ] || echo "create build $1: $API_STATUS $(cat "$RESP")" >&2
        api POST "$(ns_path dev buildruns)" "{\"metadata\":{\"generateName\":\"$1-\"},\"spec\":{\"build\":{\"name\":\"$1\"}${3:+,\"output\":$3}}}"
        BR=$(j 'd["metadata"]["name"]')
        RESULT=$(wait_done dev "$BR" 90)
}

# ---- an OCI layout, labels, annotations, Zero ----
run_build layout '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "output":{"image":"'$REG'/dev/layout:latest","pushSecret":"push-creds",
  "labels":{"team":"kiln","app.version":"1.2"},
  "annotations":{"org.opencontainers.image.source":"https://example.com/fn"},"timestamp":"Zero"}}'
check_eq "OCI layout in the output directory: Succeeded" Succeeded "$RESULT"
digest=$(j 'd["status"]["output"]["digest"]')
size=$(j 'd["status"]["output"]["size"]')
check_eq "status.output.digest is skopeo's" "$(inspect "$REG/dev/layout:latest" 'i["Digest"]')" "$digest"
check_eq "the configured labels are in the image config, beside the step's" "kiln 1.2 yes" \
        "$(inspect "$REG/dev/layout:latest" 'i["Labels"]["team"]+" "+i["Labels"]["app.version"]+" "+i["Labels"]["from-step"]')"
check_eq "the annotation is in the manifest" "https://example.com/fn" \
        "$(inspect "$REG/dev/layout:latest" 'm["annotations"]["org.opencontainers.image.source"]')"
check_eq "Zero: created is the epoch" "1970-01-01T00:00:00Z" "$(inspect "$REG/dev/layout:latest" 'i["Created"]')"
check_eq "status.output.size is the config's and the layers' compressed size" \
        "$(inspect "$REG/dev/layout:latest" "$SIZE")" "$size"
check "the log has the image-processing step" grep -q '\[step-image-processing\]' "$SERVE_DATA/logs/$(j 'd["metadata"]["uid"]').log"
skopeo inspect --config --tls-verify=false "docker://$REG/dev/layout:latest" >"$WORK/config.json"
check_eq "Zero: every history entry is dated the epoch too" "True" \
        "$(python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["history"]; print(len(h)>0 and all(e["created"]=="1970-01-01T00:00:00Z" for e in h))' "$WORK/config.json")"
check "the run's work dir (and its output directory) is gone" test -z "$(ls "$SERVE_DATA/runs")"

# ---- SourceTimestamp, from a BuildRun's output override ----
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"layout-src"},"spec":{"build":{"name":"layout"},
 "output":{"image":"'$REG'/dev/layout:src","timestamp":"SourceTimestamp"}}}'
check_eq "SourceTimestamp: Succeeded" Succeeded "$(wait_done dev layout-src 90)"
commit_time=$(git -C "$WORK/repo" log -1 --format=%ct)
check_eq "SourceTimestamp: created is the commit's time" "$(iso "$commit_time")" \
        "$(inspect "$REG/dev/layout:src" 'i["Created"]')"
check_eq "status.source.timestamp is that time too" "$(iso "$commit_time")" "$(j 'd["status"]["source"]["timestamp"]')"
check_eq "its digest is skopeo's" "$(inspect "$REG/dev/layout:src" 'i["Digest"]')" "$(j 'd["status"]["output"]["digest"]')"

# ---- an oci-archive file, an epoch ----
run_build ociarchive '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "paramValues":[{"name":"transport","value":"oci-archive:"},{"name":"file","value":"/image.tar"}],
 "output":{"image":"'$REG'/dev/ociarchive:v1","pushSecret":"push-creds","timestamp":"1700000000"}}'
check_eq "one oci-archive file in the output directory: Succeeded" Succeeded "$RESULT"
check_eq "an epoch timestamp: created is that time" "2023-11-14T22:13:20Z" \
        "$(inspect "$REG/dev/ociarchive:v1" 'i["Created"]')"
check_eq "its digest is skopeo's" "$(inspect "$REG/dev/ociarchive:v1" 'i["Digest"]')" "$(j 'd["status"]["output"]["digest"]')"
check_eq "its size" "$(inspect "$REG/dev/ociarchive:v1" "$SIZE")" "$(j 'd["status"]["output"]["size"]')"

# ---- a docker-archive file, BuildTimestamp ----
run_build dockerarchive '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "paramValues":[{"name":"transport","value":"docker-archive:"},{"name":"file","value":"/image.tar"}],
 "output":{"image":"'$REG'/dev/dockerarchive:v1","timestamp":"BuildTimestamp","labels":{"kind":"docker"}}}'
check_eq "one docker-archive file in the output directory: Succeeded" Succeeded "$RESULT"
check_eq "BuildTimestamp: created is the BuildRun's creationTimestamp" "$(j 'd["metadata"]["creationTimestamp"]')" \
        "$(inspect "$REG/dev/dockerarchive:v1" 'i["Created"]')"
check_eq "its label" docker "$(inspect "$REG/dev/dockerarchive:v1" 'i["Labels"]["kind"]')"
check_eq "its digest is skopeo's" "$(inspect "$REG/dev/dockerarchive:v1" 'i["Digest"]')" "$(j 'd["status"]["output"]["digest"]')"

# ---- nothing to change: the layout is pushed as the step wrote it ----
run_build plain '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "output":{"image":"'$REG'/dev/plain:v1"}}'
check_eq "an output directory without labels or timestamp: Succeeded" Succeeded "$RESULT"
check_eq "its digest is skopeo's" "$(inspect "$REG/dev/plain:v1" 'i["Digest"]')" "$(j 'd["status"]["output"]["digest"]')"
check_eq "its size" "$(inspect "$REG/dev/plain:v1" "$SIZE")" "$(j 'd["status"]["output"]["size"]')"
# Without changes the image goes up as written: kiln image-processing on
# kiln append's own layout pushes the very manifest append reported.
local_digest=$("$KILN" append -q --base kiln:static --layer "$WORK/repo/app:/workspace" \
        --output "oci:$WORK/local" 2>>"$WORK/append.log")
"$KILN" image-processing -q --image "$REG/dev/local:v1" --push "$WORK/local" \
        --result-file-image-digest "$WORK/local.digest" >/dev/null 2>>"$WORK/append.log"
check_eq "kiln image-processing with nothing to change pushes the layout's manifest byte for byte" \
        "$local_digest $local_digest" "$(cat "$WORK/local.digest") $(inspect "$REG/dev/local:v1" 'i["Digest"]')"

# ---- a layout whose index has two images: pushed as an index ----
run_build index '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"index-dir"},
 "output":{"image":"'$REG'/dev/index:v1"}}'
check_eq "an OCI layout with two manifests: Succeeded" Succeeded "$RESULT"
skopeo inspect --raw --tls-verify=false "docker://$REG/dev/index:v1" >"$WORK/index.raw" 2>>"$WORK/skopeo.log"
check_eq "the registry has an index of both images" "application/vnd.oci.image.index.v1+json 2" \
        "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["mediaType"], len(d["manifests"]))' "$WORK/index.raw")"
check_eq "status.output.digest is the index's" "sha256:$(sha256sum <"$WORK/index.raw" | cut -d' ' -f1)" \
        "$(j 'd["status"]["output"]["digest"]')"
check_eq "an index has no size" "" "$(j 'd["status"]["output"].get("size")')"
for child in $(python3 -c 'import json,sys; print(" ".join(m["digest"] for m in json.load(open(sys.argv[1]))["manifests"]))' "$WORK/index.raw"); do
        check "its image $child is in the repository" skopeo inspect --raw --tls-verify=false "docker://$REG/dev/index@$child"
done

# ---- directories without one image ----
run_build empty '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"empty-dir"},
 "output":{"image":"'$REG'/dev/empty:v1"}}'
check_eq "an empty output directory: Failed" Failed "$RESULT"
check "the message says no image was found at the directory" \
        grep -q "no image was found at \"$SERVE_DATA/runs/.*/output-image\"" <<<"$(j 'd["status"]["conditions"][0]["message"]')"
check_eq "failureDetails: OutputImageNotFound in step-image-processing" "OutputImageNotFound step-image-processing" \
        "$(j 'd["status"]["failureDetails"]["reason"]+" "+d["status"]["failureDetails"]["location"]["container"]')"
check_eq "nothing was pushed" "" "$(skopeo inspect --tls-verify=false "docker://$REG/dev/empty:v1" 2>/dev/null)"

run_build twofiles '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"two-files"},
 "output":{"image":"'$REG'/dev/twofiles:v1"}}'
check_eq "two files in the output directory: Failed" Failed "$RESULT"
check "the message says no image was found" grep -q 'no image was found at' <<<"$(j 'd["status"]["conditions"][0]["message"]')"
check_eq "failureDetails.reason OutputImageNotFound" OutputImageNotFound "$(j 'd["status"]["failureDetails"]["reason"]')"

# ---- a strategy's own push (kiln-append), through a counting proxy ----
proxy_reset
run_build append '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},
 "output":{"image":"'$PROXY'/dev/append:v1","pushSecret":"push-creds","labels":{"team":"kiln"},
  "annotations":{"org.example.note":"re-pushed"}}}'
check_eq "kiln-append with labels: Succeeded" Succeeded "$RESULT"
check_eq "the label is on the image" kiln "$(inspect "$REG/dev/append:v1" 'i["Labels"]["team"]')"
check_eq "the annotation is in the manifest" re-pushed "$(inspect "$REG/dev/append:v1" 'm["annotations"]["org.example.note"]')"
check_eq "status.output.digest is the final (re-pushed) image's" "$(inspect "$REG/dev/append:v1" 'i["Digest"]')" \
        "$(j 'd["status"]["output"]["digest"]')"
check_eq "status.output.size is set and is the image's" "$(inspect "$REG/dev/append:v1" "$SIZE")" "$(j 'd["status"]["output"]["size"]')"
n_layers=$(inspect "$REG/dev/append:v1" 'len(m["layers"])')
# Each blob upload ends with a PUT to .../blobs/uploads/...: the step's
# push sends the layers and a config, the second push its config alone.
check_eq "the layers were uploaded once: only the new config went up again" $((n_layers + 2)) \
        "$(proxy_count PUT '/blobs/uploads/')"
check_eq "two manifest PUTs: the step's and the labelled one" 2 "$(proxy_count PUT '/manifests/')"

run_build appendplain '{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"kiln-append"},
 "output":{"image":"'$REG'/dev/appendplain:v1"}}'
check_eq "kiln-append without labels: Succeeded" Succeeded "$RESULT"
check_eq "its size is set too (read back from the registry)" "$(inspect "$REG/dev/appendplain:v1" "$SIZE")" \
        "$(j 'd["status"]["output"]["size"]')"
check_eq "its digest is skopeo's" "$(inspect "$REG/dev/appendplain:v1" 'i["Digest"]')" "$(j 'd["status"]["output"]["digest"]')"

# ---- output.timestamp validation ----
api POST "$(ns_path dev builds)" '{"metadata":{"name":"badts"},"spec":{'"$src"',"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "output":{"image":"'$REG'/dev/x:v1","timestamp":"yesterday"}}}'
check_eq "a timestamp that is no number: registered False, OutputTimestampNotValid" "False OutputTimestampNotValid" \
        "$(j 'd["status"]["registered"]+" "+d["status"]["reason"]')"
check "with Shipwright's message" grep -q "output timestamp value is invalid" <<<"$(j 'd["status"]["message"]')"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"nosrc"},"spec":{"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "output":{"image":"'$REG'/dev/x:v1","timestamp":"SourceTimestamp"}}}'
check_eq "SourceTimestamp without a source: OutputTimestampNotSupported" "False OutputTimestampNotSupported" \
        "$(j 'd["status"]["registered"]+" "+d["status"]["reason"]')"
api POST "$(ns_path dev builds)" '{"metadata":{"name":"numts"},"spec":{"strategy":{"kind":"ClusterBuildStrategy","name":"to-dir"},
 "output":{"image":"'$REG'/dev/x:v1","timestamp":123}}}'
check_eq "a timestamp that is not a string: 422" 422 "$API_STATUS"
api POST "$(ns_path dev buildruns)" '{"metadata":{"name":"badts-override"},"spec":{"build":{"name":"layout"},
 "output":{"timestamp":"soon"}}}'
check_eq "a bad timestamp in a BuildRun's override fails it" OutputTimestampNotValid "$(wait_done dev badts-override 30)"

finish
