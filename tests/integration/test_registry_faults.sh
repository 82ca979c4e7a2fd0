#!/usr/bin/env bash
# kiln push and pull through regproxy injecting faults in front of a real
# docker-registry: 503s, 429 with Retry-After, connection resets, truncated,
# corrupt and wrong bodies, slow answers; a registry that stays down; and a
# push that fails, which must leave the tag where it was.  What kiln printed
# is checked against the registry itself, not through the proxy.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_registry.sh"

start_plain_registry || exit 1
UP=$REG
export DOCKER_CONFIG="$WORK/docker" XDG_RUNTIME_DIR="$WORK/run" XDG_CONFIG_HOME="$WORK/config"
unset REGISTRY_AUTH_FILE KILN_REGISTRIES_CONFIG
start_proxy "$UP" || exit 1
make_test_image "$WORK/img" 2 2 || exit 1
WANT=$IMG_MANIFEST_DIGEST
LAYER0=${IMG_LAYER_DIGESTS%% *}

registry_digest() {
        skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$UP/$1" 2>/dev/null
}

# manifest_status REPO REF: the registry's own HTTP status for the manifest
# (docker-registry says 404 for an OCI manifest not in Accept).
manifest_status() {
        http_status -I -H "Accept: application/vnd.oci.image.manifest.v1+json" \
                "http://$UP/v2/$1/manifests/$2"
}

now_ms() { date +%s%3N; }

# run_kiln NAME FAULTS KILN_ARGS...: runs kiln with FAULTS set on a zeroed
# proxy; sets OUT (stdout), ERR (the stderr file) and MS (wall time).
run_kiln() {
        local name=$1 start
        proxy_set_faults "$2"
        proxy_reset
        shift 2
        ERR="$WORK/$name.err"
        start=$(now_ms)
        OUT=$("$KILN" --log-level debug "$@" 2>"$ERR")
        MS=$(($(now_ms) - start))
}

# push_with NAME FAULTS [KILN_ARGS...]: pushes the image to a repository
# of its own, so every blob is uploaded; checks the digest kiln printed and
# the one the registry holds.
push_with() {
        local name=$1 faults=$2
        shift 2
        run_kiln "$name" "$faults" push "$@" oci:"$WORK/img":latest "$PROXY/$name/app:v1"
        check_eq "$name: kiln prints the digest" "$WANT" "$OUT"
        check_eq "$name: the registry holds it" "$WANT" "$(registry_digest "$name/app:v1")"
}

fired() { proxy_stat faults_fired; }

# ---- push: transient failures are retried ----
push_with post503 'POST /blobs/uploads/$ status:503 count=2'
check_eq "post503: both 503s were met" 2 "$(fired)"

push_with put503 'PUT /blobs/uploads/ status:503 count=2'
check_eq "put503: both 503s were met" 2 "$(fired)"
check_eq "put503: each failed upload restarted in a new session (3 blobs + 2)" 5 \
        "$(proxy_count POST '/blobs/uploads/$' 202)"

push_with manifest503 'PUT /manifests/ status:503 count=2'
check_eq "manifest503: the manifest PUT was answered 503 twice, then 201" "2 1" \
        "$(proxy_count PUT /manifests/ 503) $(proxy_count PUT /manifests/ 201)"

push_with ratelimit 'HEAD /manifests/ status:429:retry-after=2 count=1'
check_eq "ratelimit: the 429 was met" 1 "$(fired)"
check "ratelimit: kiln planned its retry after Retry-After (2 s)" \
        grep -q "retrying HEAD .* in 2000 ms" "$ERR"
check "ratelimit: and waited that long (${MS} ms)" test "$MS" -ge 2000

push_with reset 'PUT /blobs/uploads/ reset count=2'
check_eq "reset: two connections were reset" 2 "$(proxy_count PUT /blobs/uploads/ 0)"

# The registry stores the manifest but the answer is lost: the PUT is sent
# again, on a fresh connection.
push_with lostanswer 'PUT /manifests/ reset:upstream count=1'
check_eq "lostanswer: the manifest PUT was reset after the registry took it" 1 "$(fired)"

push_with chunkreset 'PATCH /blobs/uploads/ reset:after count=2' --upload-chunk 256k
check_eq "chunkreset: two PATCHes were reset" 2 "$(proxy_count PATCH /blobs/uploads/ 0)"

push_with slow 'PUT /blobs/uploads/ slow:2 count=2'
check_eq "slow: two uploads were held" 2 "$(fired)"

# ---- pull: retried, or refused with nothing corrupt kept ----
"$KILN" -q push oci:"$WORK/img":latest "$UP/src/app:v1" >/dev/null || fail "seed push"

# layout_clean DIR: every blob file matches its name; no temporary file.
layout_clean() {
        [ -d "$1/blobs/sha256" ] || return 0
        (cd "$1/blobs/sha256" && for f in *; do
                [ -e "$f" ] || continue
                [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$f" ] || exit 1
        done) || return 1
        ! find "$1" -name '*kiln-tmp*' | grep -q .
}

# pull_with NAME FAULTS [KILN_ARGS...]: pulls into $WORK/NAME.
pull_with() {
        local name=$1 faults=$2
        shift 2
        run_kiln "$name" "$faults" pull "$@" "$PROXY/src/app:v1" oci:"$WORK/$name"
}

pull_ok() {
        check_eq "$1: kiln prints the digest" "$WANT" "$OUT"
        check "$1: every blob matches its digest, no temporary file" layout_clean "$WORK/$1"
        check_eq "$1: layers, config and manifest are there" 4 "$(ls "$WORK/$1/blobs/sha256" | wc -l)"
}

pull_refused() { # NAME PATTERN
        check_eq "$1: no digest printed" "" "$OUT"
        check_eq "$1: one line of error" 1 "$(grep -vc '^kiln: debug:\|: pulled ' "$ERR")"
        check "$1: the error names the damage" grep -qE "^kiln: error: pull $PROXY/src/app:v1: .*$2" "$ERR"
        check "$1: nothing corrupt or temporary is kept" layout_clean "$WORK/$1"
        check "$1: the damaged layer is not in the layout" test ! -e "$WORK/$1/blobs/sha256/${LAYER0#sha256:}"
        check "$1: the manifest is not in the layout" test ! -e "$WORK/$1/blobs/sha256/${WANT#sha256:}"
}

pull_with pull503 "GET /blobs/$LAYER0 status:503 count=2"
pull_ok pull503
check_eq "pull503: both 503s were met" 2 "$(fired)"

pull_with pulltrunc "GET /blobs/$LAYER0 truncate count=1"
pull_ok pulltrunc
check_eq "pulltrunc: the layer GET was cut short once, then sent whole" "1 2" \
        "$(fired) $(proxy_count GET "/blobs/$LAYER0" 200)"

pull_with pullreset "GET /blobs/$LAYER0 reset count=2"
pull_ok pullreset
check_eq "pullreset: two connections were reset" 2 "$(proxy_count GET "/blobs/$LAYER0" 0)"

pull_with corrupt "GET /blobs/$LAYER0 corrupt"
pull_refused corrupt "blob $LAYER0 .*content has digest"

pull_with wrongblob "GET /blobs/$LAYER0 wrong-blob"
pull_refused wrongblob "blob $LAYER0 .*content has digest"

pull_with alwaystrunc "GET /blobs/$LAYER0 truncate" --registry-timeout 2s
pull_refused alwaystrunc "blob $LAYER0: .*(bytes remaining|after retries)"
check "alwaystrunc: it was retried before giving up" test "$(fired)" -ge 2

pull_with badmanifest "GET /manifests/ corrupt"
check "badmanifest: refused, the registry's digest header disagreeing with the bytes" \
        grep -q "^kiln: error: .*says $WANT, the bytes are sha256:" "$ERR"
check_eq "badmanifest: no blob was fetched" 0 "$(proxy_count GET /blobs/)"

# ---- a registry that stays down ----
run_kiln down503 '* . status:503' push --registry-timeout 3s oci:"$WORK/img":latest "$PROXY/down/app:v1"
check_eq "down503: one line of error" 1 "$(grep -vc '^kiln: debug:' "$ERR")"
check "down503: it names the registry and its answer" \
        grep -qE "^kiln: error: push $PROXY/down/app:v1: .*$PROXY answered 503" "$ERR"
check "down503: retried before giving up" test "$(fired)" -ge 3
check_eq "down503: gave up at the API check, asking for nothing else" 0 \
        "$(proxy_count '*' '^/v2/.')"
check "down503: gave up in bounded time (${MS} ms)" test "$MS" -lt 30000

run_kiln down429 '* . status:429:retry-after=300' push --registry-timeout 3s \
        oci:"$WORK/img":latest "$PROXY/down/app:v1"
check "down429: a Retry-After beyond the timeout is a rate-limit error" \
        grep -qE "^kiln: error: push $PROXY/down/app:v1: .*rate limited by $PROXY" "$ERR"
check "down429: without waiting 300 s (${MS} ms)" test "$MS" -lt 30000

run_kiln hang '* . slow:120' push --registry-timeout 2s oci:"$WORK/img":latest "$PROXY/down/app:v1"
check "hang: a registry that never answers times out" \
        grep -qE "^kiln: error: push $PROXY/down/app:v1: .*$PROXY timed out" "$ERR"
check "hang: after about the timeout (${MS} ms)" test "$MS" -ge 2000 -a "$MS" -lt 30000
check_eq "the runs against a registry that is down pushed nothing" 404 \
        "$(manifest_status down/app v1)"

# ---- a failed push leaves the tag alone ----
proxy_set_faults ''
OLD=$("$KILN" -q push oci:"$WORK/img":latest "$PROXY/keep/app:v1")
check_eq "the tag holds the first image" "$WANT" "$(registry_digest keep/app:v1)"
check_eq "(the registry answers 200 for it when asked directly)" 200 "$(manifest_status keep/app v1)"
make_test_image "$WORK/img2" 1 2 || exit 1
NEW=$IMG_MANIFEST_DIGEST
check "the second image differs" test "$NEW" != "$OLD"

run_kiln failmanifest 'PUT /manifests/ status:500' push --registry-timeout 3s \
        oci:"$WORK/img2":latest "$PROXY/keep/app:v1"
check_eq "failmanifest: one line of error" 1 "$(grep -vc '^kiln: debug:\|: pushed ' "$ERR")"
check "failmanifest: it names the registry's answer" \
        grep -qE "^kiln: error: push $PROXY/keep/app:v1: .*$PROXY answered 500" "$ERR"
check "failmanifest: the blobs went up, the manifest PUT was refused" \
        test "$(proxy_count PUT /blobs/uploads/ 201)" -ge 3 -a "$(proxy_count PUT /manifests/ 500)" -ge 1
check_eq "failmanifest: the tag still holds the old digest" "$OLD" "$(registry_digest keep/app:v1)"

# A third image, whose blobs the registry has not seen yet.
make_test_image "$WORK/img3" 1 2 || exit 1
run_kiln failblob 'PUT /blobs/uploads/ status:500' push --registry-timeout 3s \
        oci:"$WORK/img3":latest "$PROXY/keep/app:v1"
check "failblob: refused with an error naming the registry" \
        grep -qE "^kiln: error: push $PROXY/keep/app:v1: .*$PROXY answered 500" "$ERR"
check "failblob: the blob uploads were refused" test "$(proxy_count PUT /blobs/uploads/ 500)" -ge 1
check_eq "failblob: no manifest PUT was tried" 0 "$(proxy_count PUT /manifests/)"
check_eq "failblob: the tag still holds the old digest" "$OLD" "$(registry_digest keep/app:v1)"
check_eq "failblob: the new manifest is nowhere" 404 "$(manifest_status keep/app "$IMG_MANIFEST_DIGEST")"

finish
