#!/usr/bin/env bash
# kiln append end to end: a busybox image on scratch, read by skopeo and
# umoci and run under bubblewrap; reproducibility; archives; bad inputs.
. "$(dirname "$0")/lib.sh"

tree="$WORK/tree"
make_busybox_tree "$tree"
mkdir -p "$tree/etc" "$tree/empty"
echo "kiln test" >"$tree/etc/motd"

img="$WORK/img"
check "append busybox on scratch" "$KILN" append --base scratch --layer "$tree" \
        --entrypoint '["/bin/busybox","sh","-c"]' --cmd '["echo \"$GREETING from $PWD\"; cat /etc/motd"]' \
        --env GREETING=hello --workdir /etc --user 0:0 --port 8080 --label org.example.k=v \
        --annotation org.example.a=b --output "oci:$img:v1" --digest-file "$WORK/digest"
digest=$(cat "$WORK/digest")
check "digest file holds a sha256 digest" grep -qE '^sha256:[0-9a-f]{64}$' "$WORK/digest"

check "skopeo inspects the OCI layout" skopeo inspect "oci:$img:v1"
skopeo inspect --config "oci:$img:v1" >"$WORK/config.json"
check_eq "config Env" '["GREETING=hello"]' \
        "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["config"]["Env"],separators=(",",":")))' "$WORK/config.json")"
check_eq "config WorkingDir/User/ExposedPorts/Labels" "/etc 0:0 ['8080/tcp'] {'org.example.k': 'v'}" \
        "$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["config"]; print(c["WorkingDir"], c["User"], list(c["ExposedPorts"]), c["Labels"])' "$WORK/config.json")"
check_eq "manifest digest matches what kiln printed" "$digest" \
        "$(skopeo inspect "oci:$img:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Digest"])')"
check_eq "annotation set" "b" \
        "$(skopeo inspect --raw "oci:$img:v1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["annotations"]["org.example.a"])')"

check "umoci unpacks the image" umoci unpack --image "$img:v1" "$WORK/bundle" >/dev/null
out=$(run_in_root "$WORK/bundle/rootfs" "$WORK/config.json" 2>&1)
check_eq "entrypoint+cmd run in the unpacked root print what the config says" \
        "hello from /etc
kiln test" "$out"
check "empty directories survive" test -d "$WORK/bundle/rootfs/empty"

# Reproducibility: the same tree elsewhere, with other mtimes, under another
# umask, gives the same digest; SOURCE_DATE_EPOCH moves the times.
cp -a "$tree" "$WORK/tree2"
find "$WORK/tree2" -exec touch -h -d '2001-02-03 04:05:06' {} +
d2=$(cd "$WORK" && umask 077 && env -u SOURCE_DATE_EPOCH "$KILN" append --base scratch --layer "$WORK/tree2" \
        --entrypoint '["/bin/busybox","sh","-c"]' --cmd '["echo \"$GREETING from $PWD\"; cat /etc/motd"]' \
        --env GREETING=hello --workdir /etc --user 0:0 --port 8080 --label org.example.k=v \
        --annotation org.example.a=b --output "oci:$WORK/img2")
check_eq "same inputs elsewhere, other mtimes and umask: same digest" "$digest" "$d2"
d3=$(SOURCE_DATE_EPOCH=1700000000 "$KILN" append --base scratch --layer "$tree" --output "oci:$WORK/img3")
d4=$(SOURCE_DATE_EPOCH=1700000000 "$KILN" append --base scratch --layer "$WORK/tree2" --output "oci:$WORK/img4")
check_eq "SOURCE_DATE_EPOCH: still reproducible" "$d3" "$d4"
skopeo inspect --config "oci:$WORK/img3" >"$WORK/config3.json"
check_eq "SOURCE_DATE_EPOCH sets created and history times" "2023-11-14T22:13:20Z 2023-11-14T22:13:20Z" \
        "$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["created"], c["history"][-1]["created"])' "$WORK/config3.json")"
layer=$(skopeo inspect --raw "oci:$WORK/img3" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"].split(":")[1])')
check_eq "SOURCE_DATE_EPOCH sets file times in the layer" "1700000000" \
        "$(python3 -c 'import tarfile,sys; print(" ".join(sorted({str(int(m.mtime)) for m in tarfile.open(sys.argv[1])})))' "$WORK/img3/blobs/sha256/$layer")"
check_eq "layer entries are root-owned with empty names" "0 0  " \
        "$(python3 -c 'import tarfile,sys; s={(m.uid,m.gid,m.uname,m.gname) for m in tarfile.open(sys.argv[1])}; print(*s.pop()) if len(s)==1 else print(s)' "$WORK/img3/blobs/sha256/$layer")"

# Archives out, and back in as a base.
check "docker-archive output" "$KILN" append --base "oci:$img:v1" --layer "$tree:/opt/app" \
        --output "docker-archive:$WORK/img.tar:example.com/app:v2"
check "skopeo inspects the docker-archive" skopeo inspect "docker-archive:$WORK/img.tar"
check "docker-archive has manifest.json with RepoTags" \
        python3 -c 'import json,tarfile,sys; t=tarfile.open(sys.argv[1]); m=json.load(t.extractfile("manifest.json")); assert m[0]["RepoTags"]==["example.com/app:v2"], m' "$WORK/img.tar"
check "oci-archive output from a docker-archive base" "$KILN" append --base "docker-archive:$WORK/img.tar" \
        --layer "$tree:/srv" --output "oci-archive:$WORK/img-oci.tar:v3"
check "skopeo inspects the oci-archive" skopeo inspect "oci-archive:$WORK/img-oci.tar:v3"
n=$(skopeo inspect "oci-archive:$WORK/img-oci.tar:v3" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["Layers"]))')
check_eq "three layers after two appends" 3 "$n"
check "oci-archive as a base" "$KILN" append --base "oci-archive:$WORK/img-oci.tar:v3" --layer "$tree:/x" \
        --output "oci:$WORK/img5:v5"
check "umoci unpacks an image made from archives" umoci unpack --image "$WORK/img5:v5" "$WORK/bundle5" >/dev/null
check "files from every layer are there" test -x "$WORK/bundle5/rootfs/opt/app/bin/busybox" -a -x "$WORK/bundle5/rootfs/srv/bin/busybox" -a -x "$WORK/bundle5/rootfs/x/bin/busybox"

# Bad input: one line that names the problem; nothing written.
check_fails "missing base layout" "base image .*nonexistent" \
        "$KILN" append --base "oci:$WORK/nonexistent" --layer "$tree" --output "oci:$WORK/bad1"
check_fails "unknown tag" "no image tagged nope" \
        "$KILN" append --base "oci:$img:nope" --layer "$tree" --output "oci:$WORK/bad2"
mkfifo "$WORK/fifo-tree-pipe" && mkdir "$WORK/fifotree" && mv "$WORK/fifo-tree-pipe" "$WORK/fifotree/pipe"
check_fails "a fifo in a layer is refused" "pipe.*fifo" \
        "$KILN" append --base scratch --layer "$WORK/fifotree" --output "oci:$WORK/bad3"
"$KILN" append --base scratch --env NOEQUALS --output "oci:$WORK/bad4" 2>/dev/null
check_eq "usage errors exit 2" 2 $?
check "no image written on failure" test ! -e "$WORK/bad3/index.json" -o -z "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"] or "")' "$WORK/bad3/index.json" 2>/dev/null)"

# A hostile archive as a base: refused, nothing outside the scratch dir.
python3 - "$WORK/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    data = b"pwned"
    ti = tarfile.TarInfo("../../../../tmp/kiln-evil-escape"); ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
PY
check_fails "oci-archive with path traversal is refused" "\.\." \
        "$KILN" append --base "oci-archive:$WORK/evil.tar" --layer "$tree" --output "oci:$WORK/bad5"
check "nothing escaped" test ! -e /tmp/kiln-evil-escape

# A malformed manifest in a layout: a clear error.
cp -a "$img" "$WORK/broken"
mdig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$WORK/broken/index.json")
python3 - "$WORK/broken" "$mdig" <<'PY'
import hashlib, json, sys, os
d, h = sys.argv[1], sys.argv[2]
m = json.load(open(f"{d}/blobs/sha256/{h}"))
m["layers"][0]["size"] = "twelve"
b = json.dumps(m).encode()
nh = hashlib.sha256(b).hexdigest()
open(f"{d}/blobs/sha256/{nh}", "wb").write(b)
i = json.load(open(f"{d}/index.json"))
i["manifests"][0]["digest"] = "sha256:" + nh
i["manifests"][0]["size"] = len(b)
json.dump(i, open(f"{d}/index.json", "w"))
PY
check_fails "a manifest with a wrong type is refused naming the field" "layers\[0\]\.size" \
        "$KILN" append --base "oci:$WORK/broken" --layer "$tree" --output "oci:$WORK/bad6"

finish
