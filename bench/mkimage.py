#!/usr/bin/env python3
"""Wraps existing layer files into a minimal OCI image layout.

    mkimage.py OUT_DIR TAG LAYER_FILE...

Each layer file (tar+gzip) becomes a blob (hard-linked when possible); the
config gets each layer's diff_id (the sha256 of the decompressed tar) and
fixed times, so the same layers give the same manifest digest.  Used by the
benchmarks to give umoci and skopeo an image holding exactly the bytes kiln
wrote.
"""
import gzip
import hashlib
import json
import os
import shutil
import sys
import zlib


def sha256_file(path, decompress=False):
    h = hashlib.sha256()
    if decompress:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                h.update(d.decompress(chunk))
                while d.unconsumed_tail:
                    h.update(d.decompress(d.unconsumed_tail))
            h.update(d.flush())
    else:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
    return h.hexdigest()


def put_bytes(out, data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd, len(data)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, tag, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids = [], []
    for path in layers:
        hexd = sha256_file(path)
        dst = os.path.join(out, "blobs", "sha256", hexd)
        if not os.path.exists(dst):
            try:
                os.link(path, dst)
            except OSError:
                shutil.copyfile(path, dst)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": "sha256:" + hexd, "size": os.path.getsize(path)})
        diff_ids.append("sha256:" + sha256_file(path, decompress=True))
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "bench layer"} for _ in layers],
    }
    cdig, csize = put_bytes(out, json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdig, "size": csize},
        "layers": descs,
    }
    mdig, msize = put_bytes(out, json.dumps(manifest, separators=(",", ":")).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdig,
                       "size": msize, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    print(mdig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
