#!/usr/bin/env python3
"""mkimage: writes an OCI image layout with incompressible layers, for tests.

  mkimage.py DIR SIZE_MB LAYERS [SEED] [TAG]

DIR gets oci-layout, index.json (one manifest, ref.name TAG, default
"latest") and blobs/sha256/: LAYERS gzip layers, each a tar holding one
file of pseudo-random bytes (together about SIZE_MB MiB; fractions are
fine), an image config with the layers' diff_ids, and the manifest.  The
same SEED gives the same bytes; without it the content is random.

Prints shell assignments on stdout:
  IMG_MANIFEST_DIGEST IMG_MANIFEST_SIZE IMG_CONFIG_DIGEST
  IMG_LAYER_DIGESTS (space-separated) IMG_LAYER_BYTES (compressed, total)
  IMG_BLOB_BYTES (layers + config: what a fresh push uploads)
"""

import gzip
import hashlib
import json
import os
import random
import sys
import tarfile

PIECE = 1 << 20


class HashingWriter:
    """A write-only file that hashes and counts what passes to `out`."""

    def __init__(self, out):
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self):
        pass


class RandomReader:
    def __init__(self, rng, size):
        self.rng = rng
        self.left = size

    def read(self, n=-1):
        if n < 0 or n > self.left:
            n = self.left
        self.left -= n
        return self.rng.randbytes(n)


def write_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def write_layer(blobs, rng, index, size):
    tmp = os.path.join(blobs, ".layer.tmp")
    with open(tmp, "wb") as raw:
        outer = HashingWriter(raw)
        with gzip.GzipFile(fileobj=outer, mode="wb", mtime=0,
                           compresslevel=1) as gz:
            inner = HashingWriter(gz)
            with tarfile.open(fileobj=inner, mode="w|",
                              format=tarfile.PAX_FORMAT) as tar:
                d = tarfile.TarInfo("data")
                d.type = tarfile.DIRTYPE
                d.mode = 0o755
                tar.addfile(d)
                ti = tarfile.TarInfo("data/layer%d.bin" % index)
                ti.size = size
                ti.mode = 0o644
                tar.addfile(ti, RandomReader(rng, size))
    digest = outer.sha.hexdigest()
    os.replace(tmp, os.path.join(blobs, digest))
    return "sha256:" + digest, outer.size, "sha256:" + inner.sha.hexdigest()


def main(argv):
    if len(argv) not in (3, 4, 5):
        sys.exit("usage: mkimage.py DIR SIZE_MB LAYERS [SEED] [TAG]")
    out, size_mb, nlayers = argv[0], float(argv[1]), int(argv[2])
    seed = argv[3] if len(argv) > 3 and argv[3] != "" else None
    tag = argv[4] if len(argv) > 4 else "latest"
    if nlayers < 1:
        sys.exit("mkimage.py: LAYERS must be at least 1")
    rng = random.Random(seed if seed is not None else os.urandom(16))
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    per_layer = max(1, int(size_mb * 1024 * 1024) // nlayers)
    layers, diff_ids, history = [], [], []
    for i in range(nlayers):
        digest, size, diff_id = write_layer(blobs, rng, i, per_layer)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": digest, "size": size})
        diff_ids.append(diff_id)
        history.append({"created": "1970-01-01T00:00:00Z",
                        "created_by": "mkimage layer %d" % i})
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                           "/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cdigest, csize = write_blob(blobs, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cdigest, "size": csize},
        "layers": layers,
    }
    mdigest, msize = write_blob(blobs, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": mdigest, "size": msize,
            "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    layer_bytes = sum(l["size"] for l in layers)
    print("IMG_MANIFEST_DIGEST=%s" % mdigest)
    print("IMG_MANIFEST_SIZE=%d" % msize)
    print("IMG_CONFIG_DIGEST=%s" % cdigest)
    print("IMG_LAYER_DIGESTS='%s'" % " ".join(l["digest"] for l in layers))
    print("IMG_LAYER_BYTES=%d" % layer_bytes)
    print("IMG_BLOB_BYTES=%d" % (layer_bytes + csize))


if __name__ == "__main__":
    main(sys.argv[1:])
