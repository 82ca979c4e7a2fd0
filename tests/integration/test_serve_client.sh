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
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"h1"},"spec":{"build":{"name":"loc"},"source":{"type":"Local","local":{"name":"local-copy","timeout":"3s"}}}}'
check_eq "a BuildRun-level Local source override is accepted" 201 "$API_STATUS"
upload h1 "$WORK/dotdot.tar"
check_eq "a tar with ../ paths: 400 naming the entry" "400 True" "$API_STATUS $(j '".." in d["message"] and "outside/escaped.txt" in d["message"]')"
upload h1 "$WORK/abs.tar"
check_eq "a tar with an absolute path: 400" 400 "$API_STATUS"
upload h1 "$WORK/symlink.tar"
check "nothing was written outside (../, absolute, through an absolute symlink)" test -z "$(ls -A "$WORK/outside")"
check "no partial upload is left" test -z "$(find "$SERVE_DATA/uploads" -name '.extract-*')"

# no upload in time: local.timeout
api POST "$(ns_path up buildruns)" '{"metadata":{"name":"late"},"spec":{"build":{"name":"loc"},"source":{"type":"Local","local":{"name":"local-copy","timeout":"2s"}}}}'
check_eq "no upload within local.timeout: Failed with LocalSourceUploadTimeout" LocalSourceUploadTimeout "$(wait_done up late 30)"
check_eq "... failureDetails in step-source-local" "LocalSourceUploadTimeout step-source-local" \
        "$(j 'd["status"]["failureDetails"]["reason"]+" "+d["status"]["failureDetails"]["location"]["container"]')"
check "... the message says so" grep -q 'no source was uploaded to buildrun late within 2s' "$RESP"

finish
