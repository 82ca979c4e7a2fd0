#!/usr/bin/env bash
# kiln pull/push/copy/inspect/digest/tag against a plain HTTP registry on
# loopback, cross-checked with skopeo.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_regimg.sh"

start_registry plain || exit 1
make_umoci_image "$WORK/src" v1 2 || { fail "umoci image"; finish; }

out=$("$KILN" push oci:"$WORK/src":v1 "$REG/app:v1" 2>"$WORK/push.err")
check "push succeeds" test -n "$out"
sk=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/app:v1")
check_eq "skopeo sees the digest kiln printed" "$sk" "$out"
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$WORK/src/index.json")
check_eq "the manifest is pushed byte for byte" "$want" "$out"

# Pushing the same image again uploads nothing and costs a few requests.
again=$("$KILN" --log-level info push oci:"$WORK/src":v1 "$REG/app:v1" 2>"$WORK/again.err")
check_eq "second push gives the same digest" "$out" "$again"
check_eq "second push uploads no blob" 0 "$(kiln_stat "$WORK/again.err" uploaded)"
check "second push makes at most 3 requests" test "$(kiln_stat "$WORK/again.err" requests)" -le 3

# Copy to another repository of the same registry: blobs are mounted.
cp_out=$("$KILN" --log-level info copy "$REG/app:v1" "$REG/team/app:v2" 2>"$WORK/copy.err")
check_eq "copy keeps the digest" "$out" "$cp_out"
check_eq "copy mounts the layer" 1 "$(kiln_stat "$WORK/copy.err" mounted)"
check_eq "copy uploads only the config" 1 "$(kiln_stat "$WORK/copy.err" uploaded)"
sk2=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/team/app:v2")
check_eq "skopeo sees the copy" "$out" "$sk2"

# Pull into a layout, then skopeo copies that layout back: same digest.
pulled=$("$KILN" pull "$REG/team/app:v2" oci:"$WORK/pulled":t 2>/dev/null)
check_eq "pull prints the digest" "$out" "$pulled"
check "every pulled blob matches its name" \
        bash -c "cd '$WORK/pulled/blobs/sha256' && sha256sum * | awk '{ if (\$1 != \$2) exit 1 }'"
skopeo copy --dest-tls-verify=false "oci:$WORK/pulled:t" "docker://$REG/fromskopeo:t" >/dev/null 2>&1
check_eq "skopeo reads the pulled layout" "$out" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/fromskopeo:t")"
check "no temporary files are left in the layout" \
        bash -c "! ls '$WORK/pulled/blobs/sha256' | grep -q kiln-tmp"

# inspect, digest, tag.
check_eq "digest" "$out" "$("$KILN" digest "$REG/app:v1")"
check_eq "inspect reports the digest" "$out" \
        "$("$KILN" inspect "$REG/app:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')"
"$KILN" inspect --manifest "$REG/app:v1" | head -c -1 >"$WORK/m.json"
check_eq "inspect --manifest gives the stored bytes" "${out#sha256:}" "$(sha256sum <"$WORK/m.json" | cut -d' ' -f1)"
check_eq "tag prints the digest" "$out" "$("$KILN" tag "$REG/app:v1" latest 2>/dev/null)"
check_eq "the new tag is there" "$out" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/app:latest")"
check_eq "--json digest" "{\"digest\":\"$out\",\"reference\":\"$REG/app:v1\"}" \
        "$("$KILN" --json digest "$REG/app:v1")"
"$KILN" digest --digest-file "$WORK/d.txt" "$REG/app:v1" >/dev/null
check_eq "--digest-file" "$out" "$(cat "$WORK/d.txt")"

# A pull by digest is verified; a skopeo-pushed image pulls too.
check_eq "pull by digest" "$out" "$("$KILN" pull "$REG/app@$out" oci:"$WORK/bydigest" 2>/dev/null)"
check_fails "missing tag is a one-line error naming the reference" \
        "pull $REG/app:nope: .*$REG.*404" "$KILN" pull "$REG/app:nope" oci:"$WORK/x"
check_fails "bad reference" "invalid image reference" "$KILN" pull "$REG/App:x" oci:"$WORK/x"

# Chunked uploads (PATCH parts) give the same image.
ch=$("$KILN" push --upload-chunk 256k oci:"$WORK/src":v1 "$REG/chunked:v1" 2>/dev/null)
check_eq "chunked upload" "$out" "$ch"

finish
