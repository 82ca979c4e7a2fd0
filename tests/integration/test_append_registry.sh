#!/usr/bin/env bash
# kiln append with a base that lives in a registry: the base's layers are
# never downloaded when the output goes to the same registry; only the new
# layer and the config are uploaded (counted at a proxy).  Cross-checked
# with skopeo and umoci.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"
. "$(dirname "$0")/lib_regimg.sh"

start_registry plain || exit 1
UPSTREAM=$REG
# A 100 MiB base (random bytes: gzip cannot shrink it) pushed straight to
# the registry.
make_umoci_image "$WORK/base" v1 100 || { fail "umoci base image"; finish; }
base_digest=$("$KILN" push oci:"$WORK/base":v1 "$UPSTREAM/base:v1" 2>/dev/null)
check "the base is in the registry" test -n "$base_digest"
base_layer=$(skopeo inspect --tls-verify=false "docker://$UPSTREAM/base:v1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Layers"][0])')

start_proxy "$UPSTREAM" || { fail "proxy"; finish; }
mkdir -p "$WORK/app"
head -c 262144 /dev/urandom >"$WORK/app/blob.bin"
echo "hello from the new layer" >"$WORK/app/hello.txt"

# Into another repository of the same registry: the base layer is mounted.
proxy_reset
out=$("$KILN" --log-level info append --base "$PROXY/base:v1" --layer "$WORK/app:/app" \
        --env MODE=appended --output "$PROXY/app:v1" 2>"$WORK/append.err")
check "append to the registry prints a digest" grep -qE '^sha256:[0-9a-f]{64}$' <<<"$out"
check_eq "the base layer is not downloaded" 0 "$(proxy_count GET "/blobs/$base_layer")"
check_eq "the base layer is mounted" 1 "$(kiln_stat "$WORK/append.err" mounted)"
check_eq "only the new layer and the config are uploaded" 2 "$(kiln_stat "$WORK/append.err" uploaded)"
up=$(proxy_stat upload_body_bytes)
check "at most 1.1 MB goes up in all (sent $up bytes)" test "$up" -le 1100000
check "at least the new layer goes up (sent $up bytes)" test "$up" -ge 262144
check_eq "skopeo sees the digest kiln printed" "$out" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$UPSTREAM/app:v1")"
skopeo inspect --tls-verify=false --raw "docker://$UPSTREAM/app:v1" >"$WORK/m.json"
check_eq "the manifest keeps the base layer and adds one" "2 $base_layer" \
        "$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(len(m["layers"]), m["layers"][0]["digest"])' "$WORK/m.json")"
check_eq "base.name and base.digest annotations" "$PROXY/base:v1 $base_digest" \
        "$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["annotations"]; print(a["org.opencontainers.image.base.name"], a["org.opencontainers.image.base.digest"])' "$WORK/m.json")"
skopeo copy --src-tls-verify=false "docker://$UPSTREAM/app:v1" "oci:$WORK/check:v1" >/dev/null 2>&1
check "umoci unpacks what skopeo pulled" \
        bash -c "umoci unpack --rootless --image '$WORK/check:v1' '$WORK/bundle' >/dev/null 2>&1"
check_eq "the new file is in the image" "hello from the new layer" "$(cat "$WORK/bundle/rootfs/app/hello.txt" 2>/dev/null)"
check "the base's file is in the image" test -s "$WORK/bundle/rootfs/data.bin"
check "the env is set" grep -q '"MODE=appended"' "$WORK/bundle/config.json"

# The same again: the same digest, nothing uploaded.
again=$("$KILN" --log-level info append --base "$PROXY/base:v1" --layer "$WORK/app:/app" \
        --env MODE=appended --output "$PROXY/app:v1" 2>"$WORK/again.err")
check_eq "appending again gives the same digest" "$out" "$again"
check_eq "appending again uploads nothing" 0 "$(kiln_stat "$WORK/again.err" uploaded)"

# Into the base's own repository: the base layer is already there.
proxy_reset
v2=$("$KILN" --log-level info append --base "$PROXY/base:v1" --layer "$WORK/app:/app" \
        --env MODE=appended --output "$PROXY/base:v2" 2>"$WORK/same.err")
check_eq "same image whatever the repository" "$out" "$v2"
check_eq "the base layer is found by HEAD" 1 "$(kiln_stat "$WORK/same.err" existing)"
check_eq "the base layer is not downloaded either" 0 "$(proxy_count GET "/blobs/$base_layer")"

# A registry base written to disk: the base's layers are downloaded and
# verified, and the result is the same image.
disk=$("$KILN" append --base "$UPSTREAM/base:v1" --layer "$WORK/app:/app" --env MODE=appended \
        --output "oci:$WORK/ondisk:v1" 2>/dev/null)
check "a registry base can be written to a layout" test -n "$disk"
check_eq "skopeo reads the layout" "$disk" "$(skopeo inspect --format '{{.Digest}}' "oci:$WORK/ondisk:v1")"
check "the base layer was downloaded into the layout" test -s "$WORK/ondisk/blobs/sha256/${base_layer#sha256:}"

# A base on disk pushed to a registry gives the digest it gives on disk.
local_oci=$("$KILN" append --base "oci:$WORK/base:v1" --layer "$WORK/app:/app" \
        --output "oci:$WORK/local:v1" 2>/dev/null)
local_reg=$("$KILN" append --base "oci:$WORK/base:v1" --layer "$WORK/app:/app" \
        --output "$UPSTREAM/fromdisk:v1" 2>/dev/null)
check_eq "disk base: registry output equals layout output" "$local_oci" "$local_reg"
check_eq "skopeo agrees" "$local_reg" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$UPSTREAM/fromdisk:v1")"
check "kiln:static is a base" "$KILN" --quiet append --base kiln:static --layer "$WORK/app:/app" \
        --output "$UPSTREAM/static:v1"

# Bad inputs: one line, and the output tag does not move.
check_fails "a missing base names it" "base image .$UPSTREAM/base:nope.*404|not found" \
        "$KILN" append --base "$UPSTREAM/base:nope" --layer "$WORK/app" --output "$UPSTREAM/app:v1"
check_fails "a missing layer dir names it" "layer .*/nodir" \
        "$KILN" append --base "$UPSTREAM/base:v1" --layer "$WORK/nodir" --output "$UPSTREAM/app:v1"
check_eq "after failures the tag is where it was" "$out" \
        "$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$UPSTREAM/app:v1")"
check_fails "a bad output reference" "invalid image reference" \
        "$KILN" append --base "$UPSTREAM/base:v1" --layer "$WORK/app" --output "$UPSTREAM/App:v1"

finish
